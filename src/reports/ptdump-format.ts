import { LastIp } from '../packets/last-ip.js';
import { Packet } from '../packets/packet.js';
import { IpCompression, PacketType } from '../packets/packet-type.js';
import { errorMessage, ErrorCode } from '../packets/errors.js';
import { hex64, hex64Pad, hexPad } from './hex.js';

/** Display options of ptdump that change how a packet line looks. */
export interface PtdumpLineOptions {
  showOffset: boolean;
  showRawBytes: boolean;
  showLastIp: boolean;
  showExecMode: boolean;
  noPad: boolean;
  noTiming: boolean;
  noCyc: boolean;
}

/**
 * The columns of one ptdump line. Field widths are libipt ptdump's: each
 * field is a fixed-size C buffer, so longer text is cut to width - 1.
 */
export class PtdumpLine {
  offset = 0;
  raw = '';
  opcode = '';
  payload = '';
  trackingId = '';
  trackingPayload = '';
  skip = false;
  skipTime = false;
  skipTcal = false;

  reset(offset: number): void {
    this.offset = offset;
    this.raw = '';
    this.opcode = '';
    this.payload = '';
    this.trackingId = '';
    this.trackingPayload = '';
    this.skip = false;
    this.skipTime = false;
    this.skipTcal = false;
  }
}

const OPCODE_WIDTH = 10;
const PAYLOAD_WIDTH = 25;
const TRACKING_ID_WIDTH = 5;
const TRACKING_PAYLOAD_WIDTH = 17;
const RAW_WIDTH = 33;

function field(text: string, size: number): string {
  return text.length < size ? text : text.slice(0, size - 1);
}

function padRight(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** A ptdump diagnostic line: `[offset: message: error]`. */
export function diagLine(message: string, offset: number, code: number): string {
  const off = offset < 0 ? hex64(0xffffffff, 0xffffffff) : offset.toString(16);
  return code ? `[${off}: ${message}: ${errorMessage(code)}]` : `[${off}: ${message}]`;
}

const CFE_NAMES: Record<number, string> = {
  1: 'intr', 2: 'iret', 3: 'smi', 4: 'rsm', 5: 'sipi', 6: 'init', 7: 'vmentry',
  8: 'vmexit', 9: 'vmexit_intr', 10: 'shutdown', 12: 'uintr', 13: 'uiret', 14: 'swintr',
  15: 'syscall',
};

const EVD_NAMES: Record<number, string> = { 0: 'cr2', 1: 'vmxq', 2: 'vmxr' };

/**
 * Formats packets the way libipt's ptdump prints them. It owns the last-IP
 * tracking for `--lastip`; time columns are filled in by the caller through
 * {@link PtdumpLine.trackingId}/{@link PtdumpLine.trackingPayload}.
 */
export class PtdumpFormatter {
  readonly lastIp = new LastIp();
  readonly line = new PtdumpLine();
  /** Diagnostics produced while formatting the current packet, printed before it. */
  readonly diags: string[] = [];

  constructor(readonly options: PtdumpLineOptions) {}

  reset(): void {
    this.lastIp.reset();
  }

  /** Fill {@link line} for `pkt`; `bytes` is the trace (for --raw). */
  describe(pkt: Packet, bytes: Uint8Array | null, bytesBase = 0): PtdumpLine {
    const line = this.line;
    const opts = this.options;
    line.reset(pkt.offset);
    if (opts.showRawBytes && bytes) {
      let raw = '';
      const start = pkt.offset - bytesBase;
      for (let i = 0; i < pkt.size; i++) {
        if (raw.length + 2 >= RAW_WIDTH) {
          this.diags.push(diagLine('truncating raw packet', pkt.offset, 0));
          break;
        }
        raw += hexPad(bytes[start + i], 2);
      }
      line.raw = raw;
    }
    switch (pkt.type) {
      case PacketType.Invalid:
        line.opcode = '<invalid>';
        break;
      case PacketType.Psb:
        line.opcode = 'psb';
        break;
      case PacketType.PsbEnd:
        line.opcode = 'psbend';
        break;
      case PacketType.Pad:
        line.opcode = 'pad';
        if (opts.noPad) line.skip = true;
        break;
      case PacketType.Ovf:
        line.opcode = 'ovf';
        break;
      case PacketType.Stop:
        line.opcode = 'stop';
        break;
      case PacketType.Fup:
      case PacketType.Tip:
      case PacketType.TipPge:
      case PacketType.TipPgd:
        line.opcode = pkt.type === PacketType.Fup ? 'fup' : pkt.type === PacketType.Tip ? 'tip'
          : pkt.type === PacketType.TipPge ? 'tip.pge' : 'tip.pgd';
        line.payload = ipPayload(pkt);
        if (opts.showLastIp) this.trackLastIp(pkt);
        break;
      case PacketType.Pip: {
        line.opcode = 'pip';
        line.payload = field(hex64(pkt.hi, pkt.lo) + (pkt.nr ? ', nr' : ''), PAYLOAD_WIDTH);
        line.trackingId = 'cr3';
        line.trackingPayload = hex64Pad(pkt.hi, pkt.lo);
        break;
      }
      case PacketType.Vmcs:
        line.opcode = 'vmcs';
        line.payload = hex64(pkt.hi, pkt.lo);
        line.trackingId = 'vmcs';
        line.trackingPayload = hex64Pad(pkt.hi, pkt.lo);
        break;
      case PacketType.Tnt8:
      case PacketType.Tnt64: {
        line.opcode = pkt.type === PacketType.Tnt8 ? 'tnt.8' : 'tnt.64';
        let s = '';
        for (let bit = pkt.tntSize - 1; bit >= 0; bit--) {
          s += Math.floor(pkt.tntBits / 2 ** bit) % 2 ? '!' : '.';
        }
        line.payload = s;
        break;
      }
      case PacketType.ModeExec: {
        line.opcode = 'mode.exec';
        const parts: string[] = [];
        if (pkt.csd) parts.push('cs.d');
        if (pkt.csl) parts.push('cs.l');
        if (pkt.iflag) parts.push('if');
        line.payload = parts.join(', ');
        if (opts.showExecMode) {
          line.trackingId = 'em';
          line.trackingPayload = pkt.csl ? (pkt.csd ? 'unknown' : '64-bit') : pkt.csd ? '32-bit' : '16-bit';
        }
        break;
      }
      case PacketType.ModeTsx: {
        line.opcode = 'mode.tsx';
        const parts: string[] = [];
        if (pkt.intx) parts.push('intx');
        if (pkt.abrt) parts.push('abrt');
        line.payload = parts.join(', ');
        break;
      }
      case PacketType.Tsc:
        line.opcode = 'tsc';
        line.payload = hex64(pkt.hi, pkt.lo);
        if (opts.noTiming) line.skip = true;
        break;
      case PacketType.Cbr:
        line.opcode = 'cbr';
        line.payload = pkt.ratio.toString(16);
        line.skipTime = true;
        if (opts.noTiming) line.skip = true;
        break;
      case PacketType.Tma:
        line.opcode = 'tma';
        line.payload = `${pkt.ctc.toString(16)}, ${pkt.fc.toString(16)}`;
        line.skipTcal = true;
        if (opts.noTiming) line.skip = true;
        break;
      case PacketType.Mtc:
        line.opcode = 'mtc';
        line.payload = pkt.ctc.toString(16);
        if (opts.noTiming) line.skip = true;
        break;
      case PacketType.Cyc:
        line.opcode = 'cyc';
        line.payload = hex64(pkt.hi, pkt.lo);
        line.skipTcal = true;
        if (opts.noTiming || opts.noCyc) line.skip = true;
        break;
      case PacketType.Mnt:
        line.opcode = 'mnt';
        line.payload = hex64(pkt.hi, pkt.lo);
        break;
      case PacketType.Exstop:
        line.opcode = 'exstop';
        line.payload = pkt.ip ? 'ip' : '';
        break;
      case PacketType.Mwait:
        line.opcode = 'mwait';
        line.payload = `${hexPad(pkt.hints, 8)}, ${hexPad(pkt.ext, 8)}`;
        break;
      case PacketType.Pwre:
        line.opcode = 'pwre';
        line.payload = `c${(pkt.state + 1) & 0xf}.${(pkt.subState + 1) & 0xf}${pkt.hw ? ', hw' : ''}`;
        break;
      case PacketType.Pwrx: {
        line.opcode = 'pwrx';
        const n = (pkt.wakeInterrupt ? 1 : 0) + (pkt.wakeStore ? 1 : 0) + (pkt.wakeAutonomous ? 1 : 0);
        const wr = n !== 1 ? 'bad' : pkt.wakeInterrupt ? 'int' : pkt.wakeStore ? ' st' : ' hw';
        line.payload = `${wr}: c${(pkt.last + 1) & 0xf}, c${(pkt.deepest + 1) & 0xf}`;
        break;
      }
      case PacketType.Ptw:
        line.opcode = 'ptw';
        line.payload = field(`${pkt.plc.toString(16)}: ${hex64(pkt.hi, pkt.lo)}${pkt.ip ? ', ip' : ''}`, PAYLOAD_WIDTH);
        break;
      case PacketType.Cfe: {
        line.opcode = 'cfe';
        const ip = pkt.ip ? ', ip' : '';
        switch (pkt.cfeType) {
          case 1: case 9: case 12: case 14:
            line.payload = `${pkt.cfeType}: ${pkt.vector}${ip}`;
            break;
          case 5:
            line.payload = `${pkt.cfeType}: ${pkt.vector.toString(16)}${ip}`;
            break;
          default:
            line.payload = `${pkt.cfeType}${ip}`;
        }
        line.trackingId = 'type';
        line.trackingPayload = CFE_NAMES[pkt.cfeType] ?? 'unknown';
        break;
      }
      case PacketType.Evd: {
        line.opcode = 'evd';
        line.payload = field(`${pkt.evdType}: ${hex64(pkt.hi, pkt.lo)}`, PAYLOAD_WIDTH);
        line.trackingId = 'type';
        line.trackingPayload = EVD_NAMES[pkt.evdType] ?? 'unknown';
        break;
      }
      case PacketType.Trig: {
        line.opcode = 'trig';
        let s = hexPad(pkt.trbv, 2);
        if (pkt.ip) s += ', ip';
        if (pkt.mult) s += ', mult';
        if (pkt.icntv) s += `, icnt: ${pkt.icnt}`;
        line.payload = s;
        break;
      }
      case PacketType.Bbp:
        line.opcode = 'bbp';
        line.payload = `sz: ${pkt.bbpSize}, type: ${pkt.bbpType.toString(16)}`;
        break;
      case PacketType.Bip:
        line.opcode = 'bip';
        line.payload = `${pkt.bipId.toString(16)}: ${hex64(pkt.hi, pkt.lo)}`;
        break;
      case PacketType.Bep:
        line.opcode = 'bep';
        line.payload = pkt.ip ? 'ip' : '';
        break;
      default:
        this.diags.push(diagLine('unknown packet', pkt.offset, -ErrorCode.BadOpcode));
    }
    return line;
  }

  private trackLastIp(pkt: Packet): void {
    const line = this.line;
    line.trackingId = 'ip';
    const err = this.lastIp.update(pkt);
    if (err < 0) {
      line.trackingPayload = '<unavailable>';
      this.diags.push(diagLine('error tracking last-ip', pkt.offset, err));
      return;
    }
    const status = this.lastIp.status();
    if (status === -ErrorCode.IpSuppressed) line.trackingPayload = '<suppressed>';
    else if (status < 0) {
      line.trackingPayload = '<unavailable>';
      this.diags.push(diagLine('error tracking last-ip', pkt.offset, status));
    } else line.trackingPayload = hex64Pad(this.lastIp.hi, this.lastIp.lo);
  }

  /** Render the line in ptdump's column layout (without newline). */
  render(line: PtdumpLine = this.line): string {
    let out = '';
    let sep = '';
    if (this.options.showOffset) {
      out += padRight(hexPad(line.offset, 16), 17);
      sep = ' ';
    }
    if (line.raw) {
      out += sep + padRight(line.raw, RAW_WIDTH);
      sep = ' ';
    }
    const opcode = field(line.opcode, OPCODE_WIDTH);
    out += sep + (line.payload ? padRight(opcode, OPCODE_WIDTH) : opcode);
    if (line.trackingId) {
      out += ' ' + padRight(field(line.payload, PAYLOAD_WIDTH), PAYLOAD_WIDTH);
      out += ' ' + padRight(field(line.trackingId, TRACKING_ID_WIDTH), TRACKING_ID_WIDTH);
      out += field(line.trackingPayload, TRACKING_PAYLOAD_WIDTH);
    } else if (line.payload) {
      out += ' ' + line.payload;
    }
    return out;
  }
}

function ipPayload(pkt: Packet): string {
  switch (pkt.ipc) {
    case IpCompression.Suppressed:
      return '0: ????????????????';
    case IpCompression.Update16:
      return '1: ????????????' + hexPad(pkt.lo & 0xffff, 4);
    case IpCompression.Update32:
      return '2: ????????' + hexPad(pkt.lo >>> 0, 8);
    case IpCompression.Update48:
      return '4: ????' + hex64Pad(pkt.hi & 0xffff, pkt.lo, 12);
    case IpCompression.Sext48:
      return '3: ' + hex64Pad(pkt.hi & 0x8000 ? (pkt.hi | 0xffff0000) >>> 0 : pkt.hi, pkt.lo);
    case IpCompression.Full:
      return '6: ' + hex64Pad(pkt.hi, pkt.lo);
  }
  return `${pkt.ipc.toString(16)}: ${hex64Pad(pkt.hi, pkt.lo)}`;
}
