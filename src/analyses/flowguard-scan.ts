/**
 * FlowGuard's fast path over a trace: the TIP-pair edges (consecutive
 * indirect-branch targets), read with the packet decoder only. The scan
 * can pause at a place where a per-CPU stream's task may change, so that
 * the streams of several CPUs are read in the order their runs ran
 * (cpu-walk.ts) and each thread's chain of targets goes on from its last
 * run, on whatever CPU, to its next ({@link TipEdgeScan.prev}).
 */
import { PacketDecoder } from '../packets/decoder.js';
import { LastIp } from '../packets/last-ip.js';
import { Packet } from '../packets/packet.js';
import { PacketType } from '../packets/packet-type.js';

export interface TipScanCallbacks {
  /** An edge: the previous target `a`, the target `b`, at the packet at `offset`. */
  onEdge: (a: number, b: number, offset: number) => void;
  /** A TIP.PGD (a syscall boundary): the window ends at `endOffset`; `psbOffset` is the last PSB. */
  onCheck?: (endOffset: number, psbOffset: number) => void;
  /**
   * Where a task may change on a per-CPU stream (see TaskSwitcher): a
   * tracing enable (TIP.PGE, `overflow` false) or an overflow, with the
   * trace's last TSC (the SDM has a TSC packet precede every TIP.PGE when
   * TSC is on), before that packet's edge. PSB+ is no such place. True
   * pauses the scan before the packet: {@link TipEdgeScan.step} returns and
   * the next step goes on with it.
   */
  onBoundary?: (overflow: boolean, tsc: bigint | null, offset: number, psbOffset: number) => boolean | void;
  /** The trace ends (by default a check there). */
  onEnd?: (endOffset: number, psbOffset: number) => void;
}

export class TipEdgeScan {
  /**
   * The last target of the chain (NaN: none, after an overflow or a
   * resync): the next target's edge starts there. A caller that changes
   * tasks at a pause puts the next task's own here.
   */
  prev = NaN;
  packets = 0;
  tips = 0;
  tntBits = 0;
  private readonly dec: PacketDecoder;
  private readonly pkt = new Packet();
  private readonly last = new LastIp();
  private psb = 0;
  private tsc: bigint | null = null;
  private status: number;
  /** The size of the packet in `pkt` the scan paused before; 0 when not paused. */
  private pausedSize = 0;
  private ended = false;

  constructor(
    private readonly trace: Uint8Array,
    private readonly cb: TipScanCallbacks,
  ) {
    this.dec = new PacketDecoder(trace);
    this.status = this.dec.syncForward();
  }

  /** Scan until a boundary pauses it (true) or the trace ends (false, after onEnd). */
  step(): boolean {
    if (this.ended) return false;
    const { dec, pkt, last, cb } = this;
    let prev = this.prev;
    while (this.status >= 0) {
      // After a pause, the packet paused before (still in `pkt`), its boundary already heard.
      const resumed = this.pausedSize > 0;
      const n = resumed ? this.pausedSize : dec.next(pkt);
      this.pausedSize = 0;
      if (n < 0) {
        // Resync at the next PSB after an error; the edge chain restarts.
        prev = NaN;
        this.status = dec.syncForward();
        continue;
      }
      if (!resumed) this.packets++;
      switch (pkt.type) {
        case PacketType.Psb:
          this.psb = pkt.offset;
          last.reset();
          break;
        case PacketType.Tsc:
          if (cb.onBoundary !== undefined) this.tsc = (BigInt(pkt.hi >>> 0) << 32n) | BigInt(pkt.lo >>> 0);
          break;
        case PacketType.Tip:
        case PacketType.TipPge:
          // A tracing enable may start another task's run; its target is an edge's end like a TIP's.
          if (pkt.type === PacketType.TipPge && !resumed && cb.onBoundary?.(false, this.tsc, pkt.offset, this.psb) === true) {
            this.prev = prev;
            this.pausedSize = n;
            return true;
          }
          if (last.update(pkt) === 0 && !last.suppressed) {
            const ip = last.ip;
            this.tips++;
            if (!Number.isNaN(prev)) cb.onEdge(prev, ip, pkt.offset);
            prev = ip;
          }
          break;
        case PacketType.TipPgd:
          last.update(pkt);
          cb.onCheck?.(pkt.offset + n, this.psb);
          break;
        case PacketType.Fup:
          last.update(pkt);
          break;
        case PacketType.Ovf:
          // Packets were lost: the chain of the task before and of the task after breaks.
          prev = NaN;
          if (!resumed && cb.onBoundary?.(true, this.tsc, pkt.offset, this.psb) === true) {
            this.prev = prev;
            this.pausedSize = n;
            return true;
          }
          break;
        case PacketType.Tnt8:
        case PacketType.Tnt64:
          this.tntBits += pkt.tntSize;
          break;
      }
    }
    this.prev = prev;
    this.ended = true;
    (cb.onEnd ?? cb.onCheck)?.(this.trace.length, this.psb);
    return false;
  }
}

/**
 * Visit the TIP-pair edges of a trace with the packet decoder only. `onEdge`
 * gets (previous target, target, packet offset); `onCheck` is called at each
 * TIP.PGD (a syscall boundary) and at the end with the window's end offset.
 * Returns packet counts.
 */
export function scanTipEdges(
  trace: Uint8Array,
  onEdge: TipScanCallbacks['onEdge'],
  onCheck?: TipScanCallbacks['onCheck'],
): { packets: number; tips: number; tntBits: number } {
  const scan = new TipEdgeScan(trace, { onEdge, onCheck });
  while (scan.step());
  return { packets: scan.packets, tips: scan.tips, tntBits: scan.tntBits };
}
