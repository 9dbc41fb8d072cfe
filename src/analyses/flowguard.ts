/**
 * FlowGuard-style checking: a credit-labelled CFG checked at syscall
 * boundaries, with a packet-level fast path and a full-decode slow path.
 *
 * Edges are pairs of consecutive indirect-branch targets as the trace
 * reports them (TIP after TIP: FlowGuard's "ITC" edges, which need no
 * instruction decoding to observe). Credits:
 * - an edge seen in benign training traces ({@link trainFlowGuard}, saved in
 *   a policy file's `flowguard.edges`) has the trained credit (1);
 * - an edge whose target training saw reached from another source has the
 *   target credit ({@link TARGET_CREDIT}): the target is a place benign
 *   runs go through an indirect branch (a data-dependent dispatch reaches
 *   it from another case on another input). A code-reuse chain always has
 *   a target no benign run reaches (a gadget in the middle of code, a
 *   function entered by a return), so its window does not settle;
 * - an edge only plausible from static analysis (its target is an allowed
 *   indirect target of the module's CFG, or a call-preceded return site)
 *   has low credit ({@link STATIC_CREDIT});
 * - anything else has none.
 *
 * Online, at each syscall boundary (tracing disabled: TIP.PGD, what a
 * FarCall or a disabled gap is in the flow stream), the fast path reads
 * only the raw TIP/TNT packets since the previous check with the packet
 * decoder. This is the one place in ptscope where an analysis reads
 * packets, by design: not decoding instructions is the point of the fast
 * path. If every edge of the window has credit >= threshold, the check is
 * settled. Otherwise the slow path decodes that window fully (from the PSB
 * before it) with the shadow-stack, rop, cfi and inter-module detectors and
 * reports what they find in the window. On a per-CPU stream that PSB can
 * lie in another task's run: the decode follows the stream's tasks (each
 * run with its own image), its detectors hear only the thread's run, after
 * the thread's runs since the PSB's time on every CPU (flowguard-tasks.ts).
 * The windows of the thread's successive runs share one such decode: one
 * detector set hears the thread's runs once, in the order they ran, each
 * stream walked once from its PSB (decodeGroups). Those detectors have not seen the
 * trace before that PSB: a stack switch that an unseen event could have
 * prepared (a longjmp to a setjmp made earlier, a landing pad of an unwind
 * already under way, a signal return) is counted as unchecked, not reported
 * (stack-switch.ts). The full decode of `analyze` sees it all and judges it.
 *
 * Reported: the fraction of checks settled on the fast path and the
 * throughput of each path (trace bytes per second).
 */
import { EventType } from '../events/event.js';
import { ControlFlowWalker, type FlowConsumer, type FlowStats } from '../flow/control-flow.js';
import { fromOffset } from './from-offset.js';
import { grow } from '../flow/grow.js';
import { InsnDecoder } from '../flow/insn-decoder.js';
import { PacketStream } from '../packets/packet-stream.js';
import { BufferSource, SliceSource, type TraceSource } from '../packets/trace-source.js';
import { LastIp } from '../packets/last-ip.js';
import { Packet } from '../packets/packet.js';
import { PacketType } from '../packets/packet-type.js';
import { CfiDetector } from './cfi.js';
import { DetectorBase, type Detector, type DetectorContext } from './detector-base.js';
import type { Finding } from './finding.js';
import { hexAddress } from './finding.js';
import { InterModuleDetector } from './inter-module.js';
import type { ModuleMap } from './modules.js';
import { existsSync } from 'node:fs';
import { emptyPolicy, loadPolicy, parseHexAddress, savePolicy, type PolicyFile } from './policy.js';
import { RopDetector } from './rop.js';
import { ShadowStackDetector } from './shadow-stack.js';
import { PREPARED_UNSEEN_REASON, SWITCH_KIND_NAMES, SwitchKind } from './stack-switch.js';
import { startingAt, type TaskContext, type TaskSwitcher } from '../flow/task-switch.js';

/** The stat under which the slow path's detectors count switches prepared before their decode start. */
const PREPARED_UNSEEN_STAT = `switch.${SWITCH_KIND_NAMES[SwitchKind.PreparedUnseen]}`;

/** Credit of an edge justified only by static analysis. */
export const STATIC_CREDIT = 0.25;
/** Credit of an edge whose target was seen in training (from another source). */
export const TARGET_CREDIT = 0.5;
/** Credit of an edge seen in training. */
export const TRAINED_CREDIT = 1;

/** Edge credits: source target -> (next target -> credit). Lookups allocate nothing. */
export class CreditedEdges {
  private readonly map = new Map<number, Map<number, number>>();
  /** Targets of trained edges. */
  private readonly targets = new Set<number>();
  size = 0;

  set(a: number, b: number, credit: number): void {
    let m = this.map.get(a);
    if (m === undefined) {
      m = new Map();
      this.map.set(a, m);
    }
    if (!m.has(b)) this.size++;
    m.set(b, Math.max(credit, m.get(b) ?? 0));
    if (credit >= TRAINED_CREDIT) this.targets.add(b);
  }

  /** The credit of edge a -> b: its own, else {@link TARGET_CREDIT} if training saw b reached from elsewhere. */
  get(a: number, b: number): number {
    const m = this.map.get(a);
    const own = m === undefined ? 0 : (m.get(b) ?? 0);
    return own > 0 ? own : this.targets.has(b) ? TARGET_CREDIT : 0;
  }

  toJson(): [string, string, number][] {
    const out: [string, string, number][] = [];
    for (const [a, m] of this.map) for (const [b, c] of m) out.push([hexAddress(a), hexAddress(b), c]);
    return out;
  }
}

/*
 * The fast path's scan: the TIP-pair edges of a trace, read with the packet
 * decoder only. It can pause where a per-CPU stream's task may change, so
 * that several CPUs' streams are read in the order their runs ran
 * (cpu-walk.ts) and each thread's chain of targets goes on from its last
 * run, on whatever CPU, to its next ({@link TipEdgeScan.prev}).
 */
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
  private readonly dec: PacketStream;
  private readonly source: TraceSource;
  private readonly pkt = new Packet();
  private readonly last = new LastIp();
  private psb = 0;
  private tsc: bigint | null = null;
  private status: number;
  /** The size of the packet in `pkt` the scan paused before; 0 when not paused. */
  private pausedSize = 0;
  private ended = false;

  /** `trace`: in memory, or a source read in windows (memory flat in its size). */
  constructor(
    trace: Uint8Array | TraceSource,
    private readonly cb: TipScanCallbacks,
  ) {
    this.source = trace instanceof Uint8Array ? new BufferSource(trace) : trace;
    this.dec = new PacketStream(this.source);
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
    (cb.onEnd ?? cb.onCheck)?.(this.source.size, this.psb);
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
  trace: Uint8Array | TraceSource,
  onEdge: TipScanCallbacks['onEdge'],
  onCheck?: TipScanCallbacks['onCheck'],
): { packets: number; tips: number; tntBits: number } {
  const scan = new TipEdgeScan(trace, { onEdge, onCheck });
  while (scan.step());
  return { packets: scan.packets, tips: scan.tips, tntBits: scan.tntBits };
}

/** Learn the edges of benign traces (high credit). */
export function trainFlowGuard(traces: readonly (Uint8Array | TraceSource)[], into = new CreditedEdges()): CreditedEdges {
  for (const t of traces) scanTipEdges(t, (a, b) => into.set(a, b, TRAINED_CREDIT));
  return into;
}

/** Static credit of an edge into `b` (independent of `a`: the CFG cannot tell TIP pairs apart). */
function staticCredit(modules: ModuleMap, callPreceded: (ip: number) => number, b: number): number {
  const m = modules.find(b);
  if (m === null) return 0;
  if (callPreceded(b) === 1) return STATIC_CREDIT;
  const cfg = m.cfg();
  if (cfg === null) return 0;
  const t = b - m.bias;
  if (cfg.isAllowedIndirectTarget(t) || cfg.functionIndex(t) >= 0 || cfg.isLandingPad(t)) return STATIC_CREDIT;
  const blk = cfg.blockStartingAt(t);
  return blk >= 0 ? STATIC_CREDIT : 0;
}

/** The last TSC of the PSB+ at `offset` (the PSB's time), or null when it has none. */
export function psbTsc(trace: TraceSource, offset: number): bigint | null {
  // A small window: a PSB+ is a few dozen bytes.
  const dec = new PacketStream(trace, { windowSize: 4096 });
  const pkt = new Packet();
  let tsc: bigint | null = null;
  if (dec.syncSet(offset) < 0) return null;
  // A PSB+ holds a handful of packets; a bound keeps a hostile one from running on.
  for (let i = 0; i < 64; i++) {
    if (dec.next(pkt) < 0 || (i === 0 && pkt.type !== PacketType.Psb)) return null;
    if (pkt.type === PacketType.Tsc) tsc = (BigInt(pkt.hi >>> 0) << 32n) | BigInt(pkt.lo >>> 0);
    else if (pkt.type === PacketType.PsbEnd) break;
  }
  return tsc;
}

/** Where a thread's run is in a stream: a whole trace, or on a per-CPU stream the stretch one task ran. */
interface Run {
  /** Its place among the thread's runs. */
  index: number;
  /** The stream the run is in, read in windows. */
  trace: TraceSource;
  start: number;
  /** Where the run was cut (set at its end). */
  end: number;
  /** The last PSB at or before `start`. */
  psb: number;
  /** The trace's TSC where the run starts (null: the TSC of its PSB, or unknown). */
  tsc: bigint | null;
  /** A per-CPU stream's tasks: from a PSB in another task's run, the slow path decodes each run with its task's image. */
  tasks: (() => TaskSwitcher) | null;
  /** The task the stream's tasks name for the run (the thread in one migration epoch); null: the stream's own thread. */
  task: TaskContext | null;
}

/** A per-CPU stream's walk from a PSB, paused at the end of the thread's last run on it (FlowGuardDetector.decodeGroups). */
interface StreamWalk {
  base: number;
  decoder: InsnDecoder;
  walker: ControlFlowWalker;
  ended: boolean;
  /** Where the thread's run being walked starts: the detectors hear nothing of the stream before it. */
  runStart: number;
  /** The end of the run the walk last went to: it goes on only to a later run. */
  stoppedAt: number;
  stats: FlowStats;
}

/** Missed windows of one run that share a PSB, and the thread's runs the slow path replays before them (historyOf). */
interface Group {
  windows: Window[];
  history: Run[];
}

interface Window {
  start: number;
  end: number;
  /** The last PSB at or before `start`. */
  psb: number;
  /** The thread's run the window (or its piece) is in: the slow path's detectors see nothing of the stream before its start. */
  run: Run;
}

/**
 * The windows the fast path could not settle, in columns: an untrained
 * run misses every check, one per system call, so they are kept in a few
 * bytes each rather than as objects (1.4 million on a 71 MB per-CPU
 * trace; a thread's own trace holds one group at a time).
 */
class WindowColumns {
  private starts = new Float64Array(256);
  private ends = new Float64Array(256);
  private psbs = new Float64Array(256);
  private runs = new Int32Array(256);
  length = 0;

  push(w: Window): void {
    const n = this.length;
    if (n === this.starts.length) {
      this.starts = grow(this.starts, new Float64Array(n * 2));
      this.ends = grow(this.ends, new Float64Array(n * 2));
      this.psbs = grow(this.psbs, new Float64Array(n * 2));
      this.runs = grow(this.runs, new Int32Array(n * 2));
    }
    this.starts[n] = w.start;
    this.ends[n] = w.end;
    this.psbs[n] = w.psb;
    this.runs[n] = w.run.index;
    this.length = n + 1;
  }

  psb(i: number): number {
    return this.psbs[i]!;
  }

  clear(): void {
    this.length = 0;
  }

  run(i: number): number {
    return this.runs[i]!;
  }

  /** Window `i`, its run one of `runs` (by index). */
  at(i: number, runs: readonly Run[]): Window {
    return { start: this.starts[i]!, end: this.ends[i]!, psb: this.psbs[i]!, run: runs[this.runs[i]!]! };
  }
}

export class FlowGuardDetector extends DetectorBase {
  readonly parameters: Readonly<Record<string, number | string>>;
  private readonly threshold: number;
  /** Missed windows held on per-CPU streams before the slow path decodes them (see {@link pushSlow}). */
  private readonly slowBatch: number;
  private readonly edges: CreditedEdges;
  private readonly staticCache = new Map<number, number>();
  private statsOut: Record<string, number> = {};
  // The fast path's state: the open window, and the windows it could not settle.
  private readonly slow = new WindowColumns();
  /** The thread's runs in the order they ran (one for a thread's own trace). */
  private readonly runs: Run[] = [];
  private windowStart = 0;
  /** The last PSB before the window's start: the slow path decodes the whole window from there. */
  private windowPsb = 0;
  private windowMiss = false;
  /** Edges in the open window. */
  private windowEdges = 0;
  /**
   * The open window's pieces in the thread's earlier runs: a run cut with
   * no syscall boundary (a switch at an overflow, a CPU's trace that ends
   * with tracing on) leaves its window open into the thread's next run.
   */
  private readonly pieces: Window[] = [];
  /**
   * The thread's last indirect-branch target (NaN: none) between its runs
   * on per-CPU streams: its next run's first target chains on from it, as
   * in the thread's own trace (flowguard-tasks.ts).
   */
  chain = NaN;
  private checks = 0;
  /** Checks the fast path could not settle. */
  private missed = 0;
  private fastSeconds = 0;
  /** The slow path's work so far (it runs during the fast path on a thread's own trace: drainSlow). */
  private readonly slowCost = { bytes: 0, instructions: 0, seconds: 0 };
  private readonly seen = new Set<string>();
  private fastPackets = 0;
  private fastTips = 0;
  private fastBytes = 0;

  constructor(ctx: DetectorContext, edges?: CreditedEdges) {
    super('flowguard', ctx);
    let threshold = 0.5;
    this.edges = edges ?? new CreditedEdges();
    if (ctx.policyFile) {
      const p: PolicyFile = loadPolicy(ctx.policyFile);
      for (const [a, b, c] of p.flowguard?.edges ?? []) this.edges.set(parseHexAddress(a), parseHexAddress(b), c);
      if (p.flowguard?.threshold !== undefined) threshold = p.flowguard.threshold;
    }
    this.threshold = this.numParam('threshold', threshold);
    this.slowBatch = this.numParam('slowBatch');
    this.parameters = { threshold: this.threshold, trainedEdges: this.edges.size, policy: ctx.policyFile ?? '' };
    if (this.edges.size === 0) this.log.note('no trained edges (policy flowguard.edges): only static credit, most checks take the slow path', 0);
  }

  private credit(a: number, b: number): number {
    const c = this.edges.get(a, b);
    if (c >= this.threshold) return c;
    let s = this.staticCache.get(b);
    if (s === undefined) {
      s = staticCredit(this.ctx.modules, (ip) => this.ctx.facts.isCallPreceded(ip), b);
      this.staticCache.set(b, s);
    }
    return Math.max(c, s);
  }

  /** The fast path over the whole trace, then the slow path over the windows it could not settle. */
  runStandalone(): void {
    if (this.ctx.openTrace === null) {
      this.log.note('no raw trace available: FlowGuard not run', 0);
      return;
    }
    const source = this.ctx.openTrace();
    try {
      const t0 = process.hrtime.bigint();
      const slowBefore = this.slowCost.seconds;
      this.beginRun(source, 0, 0);
      const scan = scanTipEdges(
        source,
        (a, b) => this.edge(a, b),
        (end, psb) => this.check(end, psb),
      );
      // The slow path's decodes during the scan are its own time, not the fast path's.
      this.scanned(source.size, scan, Number(process.hrtime.bigint() - t0) / 1e9 - (this.slowCost.seconds - slowBefore));
      this.finish();
    } finally {
      source.close();
    }
  }

  /**
   * The fast path, fed piecewise (a per-CPU stream's runs of this thread,
   * flowguard-tasks.ts): a run of the thread starts at `start` of `trace`
   * (the last PSB before it at `psb`). The open window goes on into it; the
   * window's piece in this run never reaches back before it. On a per-CPU
   * stream, `stream` gives the trace's TSC at the run's start, the
   * stream's tasks and the task that runs.
   */
  beginRun(trace: TraceSource, start: number, psb: number, stream?: { tsc: bigint | null; tasks: () => TaskSwitcher; task: TaskContext }): void {
    this.runs.push({ index: this.runs.length, trace, start, end: trace.size, psb, tsc: stream?.tsc ?? null, tasks: stream?.tasks ?? null, task: stream?.task ?? null });
    this.windowStart = start;
    this.windowPsb = psb;
  }

  /**
   * The thread's run is cut at `end` (another task's run starts there, or
   * the stream ends). A window a syscall boundary did not close stays open
   * for the thread's next run: its piece here is kept for the check.
   */
  endRun(end: number): void {
    this.runs[this.runs.length - 1]!.end = end;
    if (this.windowEdges > 0 && end > this.windowStart) this.pieces.push(this.piece(end));
    this.windowStart = end;
  }

  /** An edge of the running window. */
  edge(a: number, b: number): void {
    this.windowEdges++;
    if (!this.windowMiss && this.credit(a, b) < this.threshold) this.windowMiss = true;
  }

  /** A check at a syscall boundary (or the trace's end): the window ends at `end`; the next starts there, after the PSB at `psb`. */
  check(end: number, psb: number): void {
    const open = end > this.windowStart;
    if (!open && this.pieces.length === 0) return;
    this.checks++;
    if (this.windowMiss) {
      this.missed++;
      for (const w of this.pieces) this.pushSlow(w);
      if (open) this.pushSlow(this.piece(end));
    }
    this.pieces.length = 0;
    this.windowStart = end;
    this.windowPsb = psb;
    this.windowMiss = false;
    this.windowEdges = 0;
  }

  /**
   * A window for the slow path. On a thread's own trace, the groups before
   * it are complete once it starts a new one (another PSB), and each group
   * is decoded on its own: they are decoded now, so that only the group
   * being filled is held, whatever the trace's length. On per-CPU streams
   * the groups of the thread's successive runs share one decode, which
   * waits until {@link slowBatch} windows are held (or the end): then the
   * next group starts a new decode, from its own PSB after the thread's
   * runs since that PSB's time (historyOf), as a group on a thread's own
   * trace does. So memory stays bounded (28 bytes a window), and the
   * decodes' cost grows only by one history per batch.
   */
  private pushSlow(w: Window): void {
    const n = this.slow.length;
    // A new group (another PSB or run) may start a new decode.
    if (n > 0 && (this.slow.psb(n - 1) !== w.psb || this.slow.run(n - 1) !== w.run.index)) {
      // A run without tasks is a thread's own trace (runStandalone's one run).
      if (w.run.tasks === null || n >= this.slowBatch) this.drainSlow();
    }
    this.slow.push(w);
  }

  private piece(end: number): Window {
    return { start: this.windowStart, end, psb: this.windowPsb, run: this.runs[this.runs.length - 1]! };
  }

  /** Count a fast-path scan (of `bytes` of trace) toward the stats. */
  scanned(bytes: number, scan: { packets: number; tips: number }, seconds: number): void {
    this.fastBytes += bytes;
    this.fastPackets += scan.packets;
    this.fastTips += scan.tips;
    this.fastSeconds += seconds;
  }

  /** The slow path over the windows the fast path could not settle, and the stats. */
  finish(): void {
    // The thread's trace ended with tracing on (its last run cut, no syscall boundary): its window's last check.
    if (this.windowEdges > 0) this.check(this.windowStart, this.windowPsb);
    this.drainSlow();
    const slowBytes = this.slowCost.bytes;
    const slowInsns = this.slowCost.instructions;
    const slowSeconds = this.slowCost.seconds;
    const checks = this.checks;
    const fast = checks - this.missed;
    const fastSeconds = this.fastSeconds;
    this.statsOut = {
      checks,
      fastSettled: fast,
      fastFraction: 0,
      fastPackets: this.fastPackets,
      fastTips: this.fastTips,
      fastBytes: this.fastBytes,
      fastBytesPerSecond: 0,
      fastPacketsPerSecond: 0,
      slowWindows: this.missed,
      slowBytes,
      slowInstructions: slowInsns,
      slowBytesPerSecond: 0,
      fastSeconds,
      slowSeconds,
    };
    this.deriveStats(this.statsOut);
  }

  /**
   * The slow path over the windows held: each group of missed windows that
   * share a PSB (and a run) is decoded once; on per-CPU streams, the groups
   * of the thread's successive runs share one decode (decodeGroups).
   */
  private drainSlow(): void {
    const t1 = process.hrtime.bigint();
    const slow = this.slow;
    const cost = this.slowCost;
    // The groups are made and decoded in turn, so that only those decoded together are held.
    let batch: Group[] = [];
    const runOf = (g: Group): Run => g.windows[0]!.run;
    for (let i = 0; i < slow.length; ) {
      let j = i;
      while (j + 1 < slow.length && slow.psb(j + 1) === slow.psb(i) && slow.run(j + 1) === slow.run(i)) j++;
      const windows: Window[] = [];
      for (let k = i; k <= j; k++) windows.push(slow.at(k, this.runs));
      const group: Group = { windows, history: this.historyOf(windows[0]!.run, windows[0]!.psb) };
      // A group joins the batch before it while the thread's runs (on per-CPU streams) go on in order.
      if (batch.length > 0 && !(runOf(batch[0]!).tasks !== null && runOf(group).index >= runOf(batch[batch.length - 1]!).index)) {
        this.decodeGroups(batch, this.seen, cost);
        batch = [];
      }
      batch.push(group);
      i = j + 1;
    }
    if (batch.length > 0) this.decodeGroups(batch, this.seen, cost);
    slow.clear();
    cost.seconds += Number(process.hrtime.bigint() - t1) / 1e9;
  }

  deriveStats(s: Record<string, number>): void {
    s.fastFraction = s.checks! > 0 ? s.fastSettled! / s.checks! : 1;
    s.fastBytesPerSecond = s.fastSeconds! > 0 ? s.fastBytes! / s.fastSeconds! : 0;
    s.fastPacketsPerSecond = s.fastSeconds! > 0 ? s.fastPackets! / s.fastSeconds! : 0;
    s.slowBytesPerSecond = s.slowSeconds! > 0 ? s.slowBytes! / s.slowSeconds! : 0;
  }

  /**
   * The thread's runs whose history the slow path replays before a window
   * of `run` that is decoded from the PSB at `psb`: when that PSB lies
   * before the run (in another task's run on a per-CPU stream), the
   * thread's runs since the PSB's time, on any CPU, as its own trace from
   * that PSB would hold them (a call made in an earlier run, on another
   * CPU, returns in this one). They are the latest runs before this one, so
   * the detectors see the thread without a hole.
   */
  private historyOf(run: Run, psb: number): Run[] {
    const k = run.index;
    if (k <= 0 || psb >= run.start) return [];
    const since = psbTsc(run.trace, psb);
    if (since === null) return [];
    let h = k;
    while (h > 0) {
      const r = this.runs[h - 1]!;
      const at = r.tsc ?? psbTsc(r.trace, r.psb);
      if (at === null || at < since) break;
      h--;
    }
    return this.runs.slice(h, k);
  }

  /**
   * Decode groups of missed windows (each of one run, from their PSB, after
   * the thread's history since it) and report what the detectors find in
   * them. Several groups (of the thread's successive runs on per-CPU
   * streams; a run's groups at its PSBs decoded together) share one detector set, as one decode of the thread's own
   * trace from its first PSB would: it hears the thread's runs from the
   * earliest any group replays (historyOf) to the last group's last window,
   * each run decoded once from its PSB (a stream's walk goes on from the
   * thread's run before on it), instead of each group replaying the thread's
   * runs again. A later group's detectors thus also know the runs before its
   * own PSB's time.
   */
  private decodeGroups(groups: Group[], seen: Set<string>, cost: { bytes: number; instructions: number }): void {
    const config = this.ctx.config;
    if (config === null) return;
    const { run } = groups[0]!.windows[0]!;
    // One group decodes from its PSB; a run of several from the run's PSB, so that the thread has no hole.
    const fromOf = (g: Group): number => (groups.length === 1 ? g.windows[0]!.psb : Math.min(g.windows[0]!.psb, g.windows[0]!.run.psb));
    // The stretch being decoded: its trace offset and decoder.
    let base = 0;
    let decoder: InsnDecoder | null = null;
    let first = groups[0]!.history[0] ?? run;
    for (const g of groups) if (g.history.length > 0 && g.history[0]!.index < first.index) first = g.history[0]!;
    // Decoding starts at a PSB: what came before it (a setjmp, an unwind or
    // a signal under way) is unseen, and judged as unchecked, not as a finding.
    const unseen = (first === run ? fromOf(groups[0]!) : first.psb) > 0 || first.index > 0;
    // A run decoded past its group's last window (for the next group) reports what it finds before tracing is
    // enabled again at that window's end, as the decode that stopped there would: at the window's end.
    let clampTo = Infinity;
    const at = (): number => base + (decoder?.offset ?? 0);
    const inner: DetectorContext = { ...this.ctx, offset: () => Math.min(at(), clampTo), params: {}, historyUnseen: unseen };
    const detectors: Detector[] = [
      new ShadowStackDetector(inner),
      new RopDetector(inner),
      new CfiDetector(inner),
      new InterModuleDetector(inner),
    ];
    // With the stream's tasks: whether the task decoded now is the run's. The stream's tasks give one object per
    // thread and migration epoch, so the thread's run just before this one on the stream (cut where it moved to
    // another CPU and back) is not this one: the packets that end it, at this run's start offset, are not heard.
    let mine = true;
    let task: TaskContext | null = null;
    const watch: FlowConsumer = {
      onTask: (t) => (mine = task === null || t === task),
      onEvent: (ev) => {
        if (ev.type === EventType.Enabled && !ev.statusUpdate && at() > clampTo) clampTo = Infinity;
      },
    };
    // A window's bytes from `start` in its stream (where the image timeline of rewritten code counts from),
    // read in the decoder's windows: memory flat in the window's size.
    const decoderOf = (r: Run, start: number, end: number): InsnDecoder => {
      const dec = new InsnDecoder(new SliceSource(r.trace, start, end), config, this.ctx.image);
      dec.traceOrigin = start;
      return dec;
    };
    // On a per-CPU stream, decoded from a PSB inside it: the stream's tasks from the task at the PSB's time (null: none known).
    const tasksFrom = (r: Run, start: number): TaskSwitcher | null => {
      const at = r.tasks === null ? null : psbTsc(r.trace, start);
      return at === null ? null : startingAt(r.tasks!(), at);
    };
    const decode = (r: Run, start: number, end: number, last: boolean): void => {
      if (!last && r.tasks !== null && r.start > start && resume(r, start)) return;
      base = start;
      mine = true;
      task = r.task;
      decoder = decoderOf(r, start, end);
      const dec = decoder;
      // Before the thread's run (another task's, on a per-CPU stream) the detectors hear nothing; the end is heard once.
      let consumers: FlowConsumer[] = detectors;
      if (r.start > start || !last) {
        const gate = fromOffset(() => start + dec.offset, r.start, detectors, () => mine);
        consumers = [watch, last ? gate : { ...gate, onEnd: undefined }];
      }
      const walker = new ControlFlowWalker(dec, consumers);
      // From a PSB in another task's run, each run decodes with its own task's image.
      const tasks = r.start > start ? tasksFrom(r, start) : null;
      if (tasks !== null) walker.tasks = tasks;
      cost.bytes += end - start;
      cost.instructions += walker.run().instructions;
    };
    /*
     * A run replayed whole on a per-CPU stream, from a PSB in another task's
     * run: the walk of that stream from that PSB goes on from the thread's
     * run before on it (paused at the switch that ended it, ControlFlowWalker.step)
     * instead of decoding the stream again from the PSB, so that each
     * stream is decoded once per shared decode. The detectors hear the
     * stream's flow from the run's start offset while the run's task runs.
     * False: no walk to go on with (another PSB, or it went past the run's start).
     */
    const resume = (r: Run, start: number): boolean => {
      let c = walks.get(r.trace);
      if (c !== undefined && (c.base !== start || c.stoppedAt > r.start || c.ended)) c = undefined;
      if (c === undefined) {
        const tasks = tasksFrom(r, start);
        if (tasks === null) return false;
        const dec = decoderOf(r, start, r.trace.size);
        const walk: StreamWalk = { base: start, decoder: dec, walker: null!, ended: false, runStart: start, stoppedAt: start, stats: { instructions: 0, transfers: 0, errors: 0, gaps: 0 } };
        const gate = fromOffset(() => start + dec.offset, start, detectors, () => mine && start + dec.offset >= walk.runStart);
        walk.walker = new ControlFlowWalker(dec, [watch, { ...gate, onEnd: undefined }]);
        walk.walker.tasks = tasks;
        walks.set(r.trace, walk);
        c = walk;
        mine = true;
      }
      base = c.base;
      decoder = c.decoder;
      task = r.task;
      c.runStart = r.start;
      const from = c.base + c.decoder.offset;
      const insns = c.stats.instructions;
      // Each step walks to the next task switch on the stream, paused after the packet that makes it (the
      // decoder's offset is that of the next packet): past the run's end, it is the switch that ends the run.
      while (c.base + c.decoder.offset <= r.end) {
        if (!c.walker.step(c.stats)) {
          c.ended = true;
          break;
        }
      }
      c.stoppedAt = r.end;
      cost.bytes += Math.min(c.base + c.decoder.offset, r.trace.size) - from;
      cost.instructions += c.stats.instructions - insns;
      return true;
    };
    const walks = new Map<TraceSource, StreamWalk>();
    const lastGroup = groups[groups.length - 1]!;
    const lastRun = lastGroup.windows[0]!.run;
    let g = 0;
    for (let k = first.index; k <= lastRun.index; k++) {
      const r = this.runs[k]!;
      if (groups[g]!.windows[0]!.run !== r) {
        decode(r, r.psb, r.end, false);
        continue;
      }
      // The run's groups (several when PSBs lie in it): the run is decoded once, from the first's PSB.
      const own = [groups[g]!];
      while (g + own.length < groups.length && groups[g + own.length]!.windows[0]!.run === r) own.push(groups[g + own.length]!);
      g += own.length;
      const windows = own.flatMap((x) => x.windows);
      const end = windows[windows.length - 1]!.end;
      // Only what the detectors find in the window's own run counts (the history's windows had their own checks).
      const before = detectors.map((d) => d.findings().length);
      if (own.includes(lastGroup)) decode(r, fromOf(own[0]!), end, true);
      else {
        clampTo = end;
        decode(r, fromOf(own[0]!), r.end, false);
        clampTo = Infinity;
      }
      detectors.forEach((d, i) => {
        for (const f of d.findings().slice(before[i])) {
          if (!windows.some((w) => f.offset >= w.start && f.offset <= w.end)) continue;
          const key = `${f.kind}@${f.transfer?.from}>${f.transfer?.to}`;
          if (seen.has(key)) continue;
          seen.add(key);
          const found: Finding = { ...f, detector: this.name, details: { ...f.details, slowPath: d.name } };
          this.report(found);
        }
      });
    }
    const prepared = Math.max(...detectors.map((d) => d.stats?.()[PREPARED_UNSEEN_STAT] ?? 0));
    if (prepared > 0) this.log.note(PREPARED_UNSEEN_REASON, first === run ? fromOf(groups[0]!) : first.psb, prepared);
  }

  stats(): Record<string, number> {
    return this.statsOut;
  }
}

/**
 * Learn the edges of benign traces into the policy file `path` (created, or
 * merged into its existing `flowguard.edges`). Returns the number of edges.
 */
export function trainFlowGuardPolicy(path: string, traces: readonly (Uint8Array | TraceSource)[]): number {
  const policy: PolicyFile = existsSync(path) ? loadPolicy(path) : emptyPolicy();
  const edges = new CreditedEdges();
  for (const [a, b, c] of policy.flowguard?.edges ?? []) edges.set(parseHexAddress(a), parseHexAddress(b), c);
  trainFlowGuard(traces, edges);
  policy.flowguard = { ...(policy.flowguard ?? {}), edges: edges.toJson() };
  savePolicy(path, policy);
  return edges.size;
}
