import { PacketDecoder } from '../../packets/decoder.js';
import { ErrorCode } from '../../packets/errors.js';
import { LastIp } from '../../packets/last-ip.js';
import { Packet } from '../../packets/packet.js';
import { PacketType } from '../../packets/packet-type.js';

/**
 * A thread's trace cut into its runs: the stretches during which tracing was
 * on, from the packet that enables it (TIP.PGE, or a PSB whose PSB+ carries a
 * FUP: tracing was already on) to the TIP.PGD that disables it. With
 * user-only tracing every syscall, fault and signal disables tracing, and
 * only there can the kernel switch the CPU to another task: a run is the
 * unit a per-CPU trace interleaves (SDM Vol. 3C "Trace Filtering", "Packet
 * Generation": TIP.PGE/TIP.PGD; "Packet Stream Boundary": FUP in PSB+ only
 * while packet generation is enabled).
 */

/** One run of a thread's trace. Offsets are trace offsets. */
export interface TraceRun {
  /** Where its prologue starts: just after the previous run (or at the trace's start). */
  from: number;
  /** The packet that enables tracing: a TIP.PGE, or the PSB of a PSB+ with a FUP. */
  enableAt: number;
  /** Just after the TIP.PGD that ends it, or the trace's end. */
  to: number;
  /** A TIP.PGD ends it; false when the trace ends with tracing on. */
  disabled: boolean;
  /** The TSC in effect when tracing is enabled (the last TSC packet before the enable, or in its PSB+). */
  startTsc: number;
  /** The last TSC packet of the run (startTsc if none follows). */
  lastTsc: number;
  /** Where tracing is enabled. */
  enableIp: number;
  /** The last-IP state at `from`: the run's first IP packets may be compressed against it (SDM "IP Compression"). */
  lastIpAtFrom: { hi: number; lo: number; haveIp: boolean };
}

/** TSC packets carry 56 bits; the layout keeps times as exact doubles. */
const MAX_TSC = Number.MAX_SAFE_INTEGER;

export function tscOf(pkt: Packet): number {
  return (pkt.hi >>> 0) * 4294967296 + (pkt.lo >>> 0);
}

/**
 * The runs of `trace` in order. Throws an Error with one line (naming
 * `label`) for a trace this cut cannot carry over faithfully: an undecodable
 * packet, an overflow, MTC/CYC timing, or a run with no TSC before it.
 */
export function cutRuns(trace: Uint8Array, label: string): TraceRun[] {
  const dec = new PacketDecoder(trace);
  const runs: TraceRun[] = [];
  if (dec.syncForward() < 0) return runs;
  const pkt = new Packet();
  const ip = new LastIp();
  let enabled = false;
  let inPsb = false;
  let psbAt = -1;
  let tsc = -1;
  let from = dec.offset;
  let fromIp = { hi: 0, lo: 0, haveIp: false };
  let run: TraceRun | null = null;
  const fail = (why: string, at: number): never => {
    throw new Error(`${label}: ${why} at offset 0x${at.toString(16)}`);
  };
  const enable = (at: number, target: number): void => {
    if (tsc < 0) fail('tracing is enabled with no TSC before it (record with --timing tsc)', at);
    run = { from, enableAt: at, to: at, disabled: false, startTsc: tsc, lastTsc: tsc, enableIp: target, lastIpAtFrom: fromIp };
    enabled = true;
  };
  for (;;) {
    const at = dec.offset;
    const n = dec.next(pkt);
    if (n === -ErrorCode.Eos) break;
    if (n < 0) fail(`undecodable packet (${ErrorCode[-n] ?? n})`, at);
    switch (pkt.type) {
      case PacketType.Psb:
        inPsb = true;
        psbAt = at;
        ip.reset();
        break;
      case PacketType.PsbEnd:
        inPsb = false;
        break;
      case PacketType.Tsc:
        tsc = tscOf(pkt);
        if (tsc > MAX_TSC) fail('TSC beyond 2^53', at);
        if (run !== null) (run as TraceRun).lastTsc = tsc;
        break;
      case PacketType.Mtc:
      case PacketType.Cyc:
      case PacketType.Tma:
        fail('MTC/CYC timing packets (record with --timing tsc only)', at);
        break;
      case PacketType.Ovf:
        fail('an overflow (OVF)', at);
        break;
      case PacketType.Fup:
        if (ip.update(pkt) < 0) fail('bad IP compression', at);
        if (inPsb && !enabled) enable(psbAt, ip.ip);
        break;
      case PacketType.TipPge:
        if (ip.update(pkt) < 0) fail('bad IP compression', at);
        if (enabled) fail('TIP.PGE while tracing is on', at);
        enable(at, ip.ip);
        break;
      case PacketType.TipPgd:
        if (ip.update(pkt) < 0) fail('bad IP compression', at);
        if (!enabled) fail('TIP.PGD while tracing is off', at);
        enabled = false;
        run!.to = dec.offset;
        run!.disabled = true;
        runs.push(run!);
        run = null;
        from = dec.offset;
        fromIp = { hi: ip.hi, lo: ip.lo, haveIp: ip.haveIp };
        break;
      case PacketType.Tip:
        if (ip.update(pkt) < 0) fail('bad IP compression', at);
        break;
    }
  }
  if (run !== null) {
    (run as TraceRun).to = trace.length;
    runs.push(run);
  }
  return runs;
}
