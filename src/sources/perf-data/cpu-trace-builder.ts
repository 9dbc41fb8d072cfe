import { PacketDecoder } from '../../packets/decoder.js';
import { ErrorCode } from '../../packets/errors.js';
import { LastIp } from '../../packets/last-ip.js';
import { Packet } from '../../packets/packet.js';
import { IpCompression, PacketType } from '../../packets/packet-type.js';
import { TraceWriter } from '../../packets/trace-writer.js';
import { type TraceRun, tscOf } from './thread-runs.js';

/**
 * One CPU's Intel PT trace, built from runs of several threads' traces: what
 * the trace unit of a CPU writes while the kernel switches it between tasks.
 *
 * - It starts with a PSB+ (PSB, TSC, MODE.EXEC, PSBEND: tracing is off, so
 *   no FUP), and gets another PSB+ between runs once `psbPeriod` bytes
 *   followed the last PSB.
 * - Each run is its thread's packets from the enable to the TIP.PGD, with
 *   every IP packet (FUP, TIP, TIP.PGE, TIP.PGD) decompressed against its
 *   own trace's last IP and compressed again against this trace's last IP,
 *   as the hardware would have (SDM Vol. 3C "IP Compression"): the last IP
 *   carries over from the previous run, which may be another task's.
 * - TSCs move by the run's offset to this CPU's timeline; a TSC at the run's
 *   start precedes its enable, as the hardware sends one with TIP.PGE.
 * - The thread's PSB+s and TSCs between runs are dropped (this trace has
 *   its own); a MODE.EXEC is sent before a run whose mode differs from the
 *   CPU's last.
 */
export class CpuTraceBuilder {
  private readonly out = new TraceWriter();
  /** The packet written (the one read is {@link read}: writing must not overwrite it). */
  private readonly pkt = new Packet();
  private readonly read = new Packet();
  /** The decoder's last IP as this trace leaves it (what the next IP packet compresses against). */
  private readonly lastIp = new LastIp();
  private lastPsb = -1;
  private csl = true;
  private csd = false;
  /** The last TSC written. */
  tsc = -1;

  constructor(private readonly psbPeriod: number) {}

  get size(): number {
    return this.out.offset;
  }

  /** A PSB+ at time `tsc` if the stream has none yet or `psbPeriod` bytes followed the last one. Call between runs only. */
  psbIfDue(tsc: number): void {
    if (this.lastPsb >= 0 && this.out.offset - this.lastPsb < this.psbPeriod) return;
    this.lastPsb = this.out.offset;
    const p = this.pkt;
    p.type = PacketType.Psb;
    this.out.packet(p);
    this.lastIp.reset();
    this.writeTsc(tsc);
    this.writeMode(this.csl, this.csd);
    p.type = PacketType.PsbEnd;
    this.out.packet(p);
  }

  /**
   * Append `run` of `trace`, its TSCs moved by `delta` (its start TSC plus
   * `delta` must not be before the last TSC written).
   */
  appendRun(trace: Uint8Array, run: TraceRun, delta: number, label: string): void {
    const start = run.startTsc + delta;
    if (start < this.tsc) throw new Error(`${label}: a run would start at TSC ${start}, before the CPU's last ${this.tsc}`);
    const dec = new PacketDecoder(trace.subarray(0, run.to));
    dec.syncSet(run.from);
    const src = new LastIp();
    src.hi = run.lastIpAtFrom.hi;
    src.lo = run.lastIpAtFrom.lo;
    src.haveIp = run.lastIpAtFrom.haveIp;
    const p = this.read;
    let inPsb = false;
    let csl = this.csl;
    let csd = this.csd;
    for (;;) {
      const at = dec.offset;
      const n = dec.next(p);
      if (n === -ErrorCode.Eos) break;
      if (n < 0) throw new Error(`${label}: undecodable packet at offset 0x${at.toString(16)}`);
      if (at < run.enableAt) {
        // The prologue: the thread's own PSB+s and TSCs are replaced by the CPU's.
        switch (p.type) {
          case PacketType.Psb:
            inPsb = true;
            src.reset();
            break;
          case PacketType.PsbEnd:
            inPsb = false;
            break;
          case PacketType.ModeExec:
            csl = p.csl;
            csd = p.csd;
            break;
          case PacketType.Fup:
          case PacketType.Tip:
          case PacketType.TipPge:
          case PacketType.TipPgd:
            src.update(p);
            break;
          case PacketType.Tsc:
          case PacketType.Pad:
            break;
          default:
            if (!inPsb) this.out.packet(p);
        }
        continue;
      }
      if (at === run.enableAt) {
        if (csl !== this.csl || csd !== this.csd) this.writeMode(csl, csd);
        this.writeTsc(start);
      }
      switch (p.type) {
        case PacketType.Pad:
          break;
        case PacketType.Psb:
          src.reset();
          this.lastIp.reset();
          this.lastPsb = this.out.offset;
          this.out.packet(p);
          break;
        case PacketType.Tsc:
          this.writeTsc(tscOf(p) + delta);
          break;
        case PacketType.ModeExec:
          this.writeMode(p.csl, p.csd);
          break;
        case PacketType.Fup:
        case PacketType.Tip:
        case PacketType.TipPge:
        case PacketType.TipPgd:
          if (src.update(p) < 0) throw new Error(`${label}: bad IP compression at offset 0x${at.toString(16)}`);
          this.writeIp(p.type as PacketType, src);
          break;
        default:
          this.out.packet(p);
      }
    }
  }

  /** The finished trace. */
  finish(): Uint8Array {
    return this.out.finish();
  }

  private writeTsc(tsc: number): void {
    if (tsc < this.tsc) throw new Error(`TSC ${tsc} after ${this.tsc}: the CPU's clock would go back`);
    const p = this.pkt;
    p.type = PacketType.Tsc;
    p.hi = Math.floor(tsc / 4294967296) & 0xffffff;
    p.lo = tsc >>> 0;
    this.out.packet(p);
    this.tsc = tsc;
  }

  private writeMode(csl: boolean, csd: boolean): void {
    const p = this.pkt;
    p.type = PacketType.ModeExec;
    p.csl = csl;
    p.csd = csd;
    p.iflag = false;
    this.out.packet(p);
    this.csl = csl;
    this.csd = csd;
  }

  /** An IP packet for the IP in `src`, compressed against this trace's last IP as the hardware does. */
  private writeIp(type: PacketType, src: LastIp): void {
    const p = this.pkt;
    p.type = type;
    if (src.suppressed) {
      p.ipc = IpCompression.Suppressed;
      p.hi = 0;
      p.lo = 0;
      this.out.packet(p);
      return;
    }
    this.lastIp.compress(p, src.hi >>> 0, src.lo >>> 0);
    this.out.packet(p);
  }
}
