/**
 * ptscope packets in the neutral text format of `ptoracle packets`
 * (test/oracle/ptoracle.c), so that a test can diff ptscope's packet
 * decoder against libipt 2.0.5 line by line.
 *
 * A line is `<offset> <name> <fields...>`, every number in lower-case hex
 * without 0x, booleans as 0/1; fields follow libipt's `struct pt_packet`.
 */
import { PacketDecoder } from '../../src/packets/decoder.js';
import { ErrorCode, errorName } from '../../src/packets/errors.js';
import { Packet } from '../../src/packets/packet.js';
import { PACKET_NAMES, PacketType } from '../../src/packets/packet-type.js';

function hex(n: number): string {
  return n.toString(16);
}

/** A 64-bit value split in uint32 halves, as hex. */
function hex64(hi: number, lo: number): string {
  if (hi === 0) return (lo >>> 0).toString(16);
  return (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, '0');
}

function bit(b: boolean): string {
  return b ? '1' : '0';
}

/**
 * The fields of `pkt` after its name, or null for packet kinds that
 * libipt 2.0.5 does not know (CFE, EVD, TRIG and the PEBS block packets).
 */
function fields(pkt: Packet): string | null {
  switch (pkt.type) {
    case PacketType.Pad:
    case PacketType.Psb:
    case PacketType.PsbEnd:
    case PacketType.Ovf:
    case PacketType.Stop:
      return '';
    case PacketType.Tnt8:
    case PacketType.Tnt64:
      return ` ${hex(pkt.tntSize)} ${hex(pkt.tntBits)}`;
    case PacketType.Tip:
    case PacketType.TipPge:
    case PacketType.TipPgd:
    case PacketType.Fup:
      return ` ${hex(pkt.ipc)} ${hex64(pkt.hi, pkt.lo)}`;
    case PacketType.ModeExec:
      // libipt 2.0.5 has no iflag.
      return ` ${bit(pkt.csl)} ${bit(pkt.csd)}`;
    case PacketType.ModeTsx:
      return ` ${bit(pkt.intx)} ${bit(pkt.abrt)}`;
    case PacketType.Pip:
      return ` ${hex64(pkt.hi, pkt.lo)} ${bit(pkt.nr)}`;
    case PacketType.Vmcs:
    case PacketType.Tsc:
    case PacketType.Mnt:
      return ` ${hex64(pkt.hi, pkt.lo)}`;
    case PacketType.Cbr:
      return ` ${hex(pkt.ratio)}`;
    case PacketType.Tma:
      return ` ${hex(pkt.ctc)} ${hex(pkt.fc)}`;
    case PacketType.Mtc:
      return ` ${hex(pkt.ctc)}`;
    case PacketType.Cyc:
      return ` ${hex64(pkt.hi, pkt.lo)}`;
    case PacketType.Exstop:
      return ` ${bit(pkt.ip)}`;
    case PacketType.Mwait:
      return ` ${hex(pkt.hints >>> 0)} ${hex(pkt.ext >>> 0)}`;
    case PacketType.Pwre:
      return ` ${hex(pkt.state)} ${hex(pkt.subState)} ${bit(pkt.hw)}`;
    case PacketType.Pwrx:
      return (
        ` ${hex(pkt.last)} ${hex(pkt.deepest)} ${bit(pkt.wakeInterrupt)}` +
        ` ${bit(pkt.wakeStore)} ${bit(pkt.wakeAutonomous)}`
      );
    case PacketType.Ptw:
      return ` ${hex(pkt.plc)} ${bit(pkt.ip)} ${hex64(pkt.hi, pkt.lo)}`;
    default:
      return null;
  }
}

/**
 * One packet as a `ptoracle packets` line, or null if libipt 2.0.5 does not
 * know its kind (cfe, evd, trig, bbp, bip, bep): a stream containing such
 * a packet cannot be compared.
 */
export function formatNeutral(pkt: Packet): string | null {
  const rest = fields(pkt);
  if (rest === null) return null;
  return `${hex(pkt.offset)} ${PACKET_NAMES[pkt.type]}${rest}`;
}

/** A neutral dump and what keeps it from being comparable with libipt 2.0.5. */
export interface NeutralDump {
  text: string;
  /**
   * Why the dump cannot be compared with libipt 2.0.5, e.g. `cfe` or
   * `mode.exec.if`, each reason listed once; empty if it can.
   */
  unknownToLibipt205: string[];
}

/**
 * Decode `buf` with ptscope's PacketDecoder under the same policy as
 * `ptoracle packets`: sync forward, decode until an error, report it and
 * sync forward again, stop at the end of the trace; finish with
 * `end <offset where decoding stopped>` (0 if never synchronized).
 *
 * The decoder runs without errata and without PEBS block packets, like
 * libipt 2.0.5 with no `--cpu`. Packets libipt 2.0.5 does not know are
 * printed as `<offset> <name>` and listed in `unknownToLibipt205`.
 */
export function neutralDumpDetailed(buf: Uint8Array): NeutralDump {
  const decoder = new PacketDecoder(buf, { pebs: false });
  const pkt = new Packet();
  const lines: string[] = [];
  const unknown = new Set<string>();

  for (;;) {
    let status = decoder.syncForward();
    if (status < 0) break;

    let offset = decoder.offset;
    for (;;) {
      offset = decoder.offset;
      status = decoder.next(pkt);
      if (status < 0) break;

      const line = formatNeutral(pkt);
      if (line === null) {
        unknown.add(PACKET_NAMES[pkt.type]);
        lines.push(`${hex(pkt.offset)} ${PACKET_NAMES[pkt.type]}`);
        continue;
      }
      // libipt 2.0.5 ignores the mode.exec IF bit, so such a line would
      // compare equal while meaning something else: flag it.
      if (pkt.type === PacketType.ModeExec && pkt.iflag) unknown.add('mode.exec.if');
      lines.push(line);
    }

    if (status === -ErrorCode.Eos) break;
    lines.push(`error ${hex(offset)} ${errorName(status)}`);
  }

  const end = decoder.offset;
  lines.push(`end ${hex(end < 0 ? 0 : end)}`);
  return { text: lines.join('\n') + '\n', unknownToLibipt205: [...unknown] };
}

/** The text `ptoracle packets` would print for `buf`, from ptscope's decoder. */
export function neutralDump(buf: Uint8Array): string {
  return neutralDumpDetailed(buf).text;
}
