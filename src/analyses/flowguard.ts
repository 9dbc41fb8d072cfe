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
 * reports what they find in the window. Those detectors have not seen the
 * trace before that PSB: a stack switch that an unseen event could have
 * prepared (a longjmp to a setjmp made earlier, a landing pad of an unwind
 * already under way, a signal return) is counted as unchecked, not reported
 * (stack-switch.ts). The full decode of `analyze` sees it all and judges it.
 *
 * Reported: the fraction of checks settled on the fast path and the
 * throughput of each path (trace bytes per second).
 */
import { ControlFlowWalker, type FlowConsumer } from '../flow/control-flow.js';
import { fromOffset } from './from-offset.js';
import { InsnDecoder } from '../flow/insn-decoder.js';
import { PacketDecoder } from '../packets/decoder.js';
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

/** Learn the edges of benign traces (high credit). */
export function trainFlowGuard(traces: Uint8Array[], into = new CreditedEdges()): CreditedEdges {
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

interface Window {
  /** The trace (stream) the window is in. */
  trace: Uint8Array;
  start: number;
  end: number;
  /** The last PSB at or before `start`. */
  psb: number;
  /** Where the window's run of its thread starts: the slow path's detectors see nothing before (another task ran there). */
  runStart: number;
}

export class FlowGuardDetector extends DetectorBase {
  readonly standalone = true;
  readonly parameters: Readonly<Record<string, number | string>>;
  private readonly threshold: number;
  private readonly edges: CreditedEdges;
  private readonly staticCache = new Map<number, number>();
  private statsOut: Record<string, number> = {};
  // The fast path's state: the open window, and the windows it could not settle.
  private readonly slow: Window[] = [];
  private trace: Uint8Array = new Uint8Array(0);
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
  private runStart = 0;
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
    const trace = this.ctx.trace;
    if (trace === null) {
      this.log.note('no raw trace available: FlowGuard not run', 0);
      return;
    }
    const t0 = process.hrtime.bigint();
    this.beginRun(trace, 0, 0);
    const scan = scanTipEdges(
      trace,
      (a, b) => this.edge(a, b),
      (end, psb) => this.check(end, psb),
    );
    this.scanned(trace.length, scan, Number(process.hrtime.bigint() - t0) / 1e9);
    this.finish();
  }

  /**
   * The fast path, fed piecewise (a per-CPU stream's runs of this thread,
   * flowguard-tasks.ts): a run of the thread starts at `start` of `trace`
   * (the last PSB before it at `psb`). The open window goes on into it; the
   * window's piece in this run never reaches back before it.
   */
  beginRun(trace: Uint8Array, start: number, psb: number): void {
    this.trace = trace;
    this.runStart = start;
    this.windowStart = start;
    this.windowPsb = psb;
  }

  /**
   * The thread's run is cut at `end` (another task's run starts there, or
   * the stream ends). A window a syscall boundary did not close stays open
   * for the thread's next run: its piece here is kept for the check.
   */
  endRun(end: number): void {
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
      this.slow.push(...this.pieces);
      if (open) this.slow.push(this.piece(end));
    }
    this.pieces.length = 0;
    this.windowStart = end;
    this.windowPsb = psb;
    this.windowMiss = false;
    this.windowEdges = 0;
  }

  private piece(end: number): Window {
    return { trace: this.trace, start: this.windowStart, end, psb: this.windowPsb, runStart: this.runStart };
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
    const t1 = process.hrtime.bigint();
    const slow = this.slow;
    // Slow path: decode each group of missed windows that share a PSB once.
    let slowBytes = 0;
    let slowInsns = 0;
    const seen = new Set<string>();
    for (let i = 0; i < slow.length; ) {
      let j = i;
      while (j + 1 < slow.length && slow[j + 1].psb === slow[i].psb && slow[j + 1].trace === slow[i].trace && slow[j + 1].runStart === slow[i].runStart) j++;
      const from = slow[i].psb;
      const to = slow[j].end;
      slowBytes += to - from;
      slowInsns += this.decodeWindow(slow[i].trace, from, to, slow.slice(i, j + 1), seen);
      i = j + 1;
    }
    const slowSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
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

  deriveStats(s: Record<string, number>): void {
    s.fastFraction = s.checks! > 0 ? s.fastSettled! / s.checks! : 1;
    s.fastBytesPerSecond = s.fastSeconds! > 0 ? s.fastBytes! / s.fastSeconds! : 0;
    s.fastPacketsPerSecond = s.fastSeconds! > 0 ? s.fastPackets! / s.fastSeconds! : 0;
    s.slowBytesPerSecond = s.slowSeconds! > 0 ? s.slowBytes! / s.slowSeconds! : 0;
  }

  private decodeWindow(trace: Uint8Array, from: number, to: number, windows: Window[], seen: Set<string>): number {
    const packets = new PacketDecoder(trace.subarray(from, to), { skd007: this.ctx.config?.errata.skd007 ?? false });
    const config = this.ctx.config;
    if (config === null) return 0;
    const decoder = new InsnDecoder(packets, config, this.ctx.image);
    // Decoding starts at a PSB: what came before it (a setjmp, an unwind or
    // a signal under way) is unseen, and judged as unchecked, not as a finding.
    const inner: DetectorContext = { ...this.ctx, offset: () => from + decoder.offset, params: {}, historyUnseen: from > 0 };
    const detectors: Detector[] = [
      new ShadowStackDetector(inner),
      new RopDetector(inner),
      new CfiDetector(inner),
      new InterModuleDetector(inner),
    ];
    // Before the thread's run (another task's, on a per-CPU stream) the detectors hear nothing.
    const runStart = windows[0]!.runStart;
    const consumers: FlowConsumer[] = runStart > from ? [fromOffset(() => from + decoder.offset, runStart, detectors)] : detectors;
    const stats = new ControlFlowWalker(decoder, consumers).run();
    const unseen = Math.max(...detectors.map((d) => d.stats?.()[PREPARED_UNSEEN_STAT] ?? 0));
    if (unseen > 0) this.log.note(PREPARED_UNSEEN_REASON, from, unseen);
    for (const d of detectors) {
      for (const f of d.findings()) {
        if (!windows.some((w) => f.offset >= w.start && f.offset <= w.end)) continue;
        const key = `${f.kind}@${f.transfer?.from}>${f.transfer?.to}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const g: Finding = { ...f, detector: this.name, details: { ...f.details, slowPath: d.name } };
        this.report(g);
      }
    }
    return stats.instructions;
  }

  stats(): Record<string, number> {
    return this.statsOut;
  }
}

/**
 * Learn the edges of benign traces into the policy file `path` (created, or
 * merged into its existing `flowguard.edges`). Returns the number of edges.
 */
export function trainFlowGuardPolicy(path: string, traces: Uint8Array[]): number {
  const policy: PolicyFile = existsSync(path) ? loadPolicy(path) : emptyPolicy();
  const edges = new CreditedEdges();
  for (const [a, b, c] of policy.flowguard?.edges ?? []) edges.set(parseHexAddress(a), parseHexAddress(b), c);
  trainFlowGuard(traces, edges);
  policy.flowguard = { ...(policy.flowguard ?? {}), edges: edges.toJson() };
  savePolicy(path, policy);
  return edges.size;
}
