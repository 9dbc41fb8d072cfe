/**
 * Feature windows for the learned exploit detector: the last N control
 * transfers before each sensitive call, turned into fixed-size numbers.
 *
 * A "sensitive call" is where an attacker must end up to do harm:
 * - a system call (FarCall; in a user-only trace the kernel entry also shows
 *   as a tracing-disabled gap, which triggers a window when no FarCall did);
 * - a transfer of any kind to the entry of a sensitive library function
 *   (exec*, system, mprotect, exit, ...: {@link SENSITIVE_FUNCTIONS}).
 *
 * Per position of the window (oldest first, zero-padded at the front) the
 * sequence holds the branch kind (one-hot), the instructions since the
 * previous transfer (a gadget's length), whether a return went to a target
 * no call preceded (return-target novelty) and whether it was a short
 * indirect transfer. A summary vector adds window-level numbers: kind
 * fractions, the gadget-length profile, novelty, the entropy of indirect
 * targets, and the packet kinds the window's stretch of trace consists of.
 *
 * The extractor is a {@link FlowConsumer}: it rides the same walk as the
 * rule-based detectors, keeps the last N transfers in typed-array rings and
 * allocates only when it emits a window.
 */
import { Packet } from '../../packets/packet.js';
import { PacketStream } from '../../packets/packet-stream.js';
import { SliceSource, type TraceSource } from '../../packets/trace-source.js';
import { PacketType } from '../../packets/packet-type.js';
import { ControlFlowWalker, GapKind, TransferKind, type FlowConsumer, type FlowStats } from '../../flow/control-flow.js';
import { InsnDecoder } from '../../flow/insn-decoder.js';
import type { ModuleMap } from '../modules.js';
import { insnDecoderFor, modulesOf, type TraceInput } from '../trace-input.js';
import { walkCpuStreams } from '../cpu-walk.js';
import { TaskDetectors } from '../task-detectors.js';
import type { StreamTask } from '../../sources/model/recording.js';
import { createDetectors, isStandalone } from '../analyze.js';
import type { Finding } from '../finding.js';
import { partitionPoint } from '../../flow/sorted-search.js';
import { grow } from '../../flow/grow.js';

/** Bumped whenever the meaning or layout of a feature changes (models record it). */
export const FEATURE_VERSION = 1;
/** Transfers per window. */
export const WINDOW = 32;
/** Transfer kinds one-hot (TransferKind.DirectCall .. Async). */
const KIND_COUNT = 11;
const CH_LENGTH = KIND_COUNT;
const CH_NOVEL = KIND_COUNT + 1;
const CH_SHORT_INDIRECT = KIND_COUNT + 2;
const CH_PRESENT = KIND_COUNT + 3;
/** Numbers per window position. */
export const SEQ_CHANNELS = KIND_COUNT + 4;
/** Numbers in a window's summary vector (see {@link SUMMARY_NAMES}). */
export const SUMMARY_NAMES: readonly string[] = [
  'fill', 'ret-fraction', 'indirect-fraction', 'cond-fraction', 'novel-of-returns', 'novel-fraction',
  'mean-log-length', 'len<=2-fraction', 'len<=5-fraction', 'short-indirect-run', 'indirect-target-entropy',
  'distinct-indirect-targets', 'pkt-tnt', 'pkt-tip', 'pkt-tip-pge', 'pkt-tip-pgd', 'pkt-fup', 'pkt-other',
  'packets-per-transfer', 'function-trigger',
];
export const SUMMARY_FEATURES = SUMMARY_NAMES.length;

/** Library functions whose entry triggers a window. */
export const SENSITIVE_FUNCTIONS: readonly string[] = [
  'system', 'popen', 'execve', 'execveat', 'execv', 'execvp', 'execvpe', 'execl', 'execle', 'execlp', 'fexecve',
  'posix_spawn', 'posix_spawnp', 'fork', 'vfork', 'mprotect', 'pkey_mprotect', 'mmap', 'mmap64', 'dlopen',
  'dup2', 'dup3', 'socket', 'connect', 'bind', 'listen', 'accept', 'kill', 'setuid', 'setgid', 'setreuid',
  'setresuid', 'chmod', 'chown', 'unlink', 'exit', '_exit', '_Exit', 'abort',
];

export type TriggerKind = 'syscall' | 'gap' | 'function';

/** One window: what triggered it and its features. */
export interface FeatureWindow {
  /** Index (in the transfer stream) of the triggering transfer, or of the last transfer before a gap. */
  transferIndex: number;
  trigger: TriggerKind;
  /** The sensitive function (function triggers), else null. */
  functionName: string | null;
  /** Source and target of the triggering transfer (NaN when unknown). */
  from: number;
  to: number;
  /** Trace offsets of the window's first transfer and of the trigger. */
  startOffset: number;
  offset: number;
  /** Real transfers in the window (≤ WINDOW; fewer at the start of the trace). */
  length: number;
  /** WINDOW × SEQ_CHANNELS, oldest position first. */
  seq: Float32Array;
  summary: Float32Array;
  /** Targets of the window's transfers, oldest first (for ground-truth labelling). */
  targets: Float64Array;
  /** Transfers of the window at which a rule-based detector reported a finding (0 without rules). */
  ruleHits: number;
  /** The thread whose transfers these are (per-CPU streams: each thread has its own windows), when known. */
  pid?: number;
  tid?: number;
}

/** Packet groups of the per-window summary: TNT, TIP, TIP.PGE, TIP.PGD, FUP, other; PAD is not counted (-1). */
function packetGroup(type: PacketType): number {
  switch (type) {
    case PacketType.Pad:
      return -1;
    case PacketType.Tnt8:
    case PacketType.Tnt64:
      return 0;
    case PacketType.Tip:
      return 1;
    case PacketType.TipPge:
      return 2;
    case PacketType.TipPgd:
      return 3;
    case PacketType.Fup:
      return 4;
    default:
      return 5;
  }
}

const GROUPS = 6;
/** Counts kept per checkpoint: the groups, then their total. */
const CUM = GROUPS + 1;
/** Packets between checkpoints: a look-up behind the scan re-decodes at most this many. */
const CHECKPOINT_EVERY = 4096;

/**
 * The packets of one trace stream by group, for per-window packet
 * summaries, counted as the decode goes: a scan through a sliding window
 * runs ahead to each offset asked for, keeping running counts and a
 * checkpoint (offset, counts) every few thousand packets and at every
 * resynchronisation. A count up to an offset the scan has passed starts
 * from the checkpoint before it and decodes the few packets after it
 * again. The packets are those of a scan of the whole trace from its first
 * PSB that resynchronises at the next PSB after an error; memory is the
 * checkpoints (a few bytes per thousand packets), not the trace.
 */
export class PacketKindCounter {
  private readonly scan: PacketStream;
  private readonly probe: PacketStream;
  private readonly pkt = new Packet();
  /** Running counts of the packets before the scan's pending packet. */
  private readonly cum = new Float64Array(CUM);
  private status: number;
  /** The offset of the last packet counted (-1: none). */
  private lastTaken = -1;
  /** The packet decoded and not yet counted (its offset is past what was asked for). */
  private pending = false;
  private pendingOffset = 0;
  private pendingGroup = 0;
  private sinceCheckpoint = 0;
  private cpOffsets = new Float64Array(64);
  private cpCounts = new Float64Array(64 * CUM);
  private checkpoints = 0;

  constructor(private readonly source: TraceSource) {
    this.scan = new PacketStream(new SliceSource(source, 0, source.size));
    this.probe = new PacketStream(new SliceSource(source, 0, source.size), { windowSize: 64 << 10 });
    this.status = this.scan.syncForward();
    if (this.status >= 0) this.checkpoint(this.scan.offset);
  }

  /** The counts (CUM values: by group, then the total) of the packets at offsets below `x`, into `out` from `at`. */
  countBefore(x: number, out: Float64Array, at: number): void {
    // Run the scan on to the first packet at or past `x`.
    while (this.fetch() && this.pendingOffset < x) this.take();
    if (x > this.lastTaken) {
      for (let g = 0; g < CUM; g++) out[at + g] = this.cum[g]!;
      return;
    }
    // Behind the scan: from the last checkpoint at or before `x`.
    const offsets = this.cpOffsets;
    const i = partitionPoint(this.checkpoints, (k) => offsets[k]! <= x) - 1;
    for (let g = 0; g < CUM; g++) out[at + g] = i < 0 ? 0 : this.cpCounts[i * CUM + g]!;
    if (i < 0) return;
    const probe = this.probe;
    const pkt = this.pkt;
    if (probe.syncSet(offsets[i]!) < 0) return;
    // Up to `x`, or to the error the scan resynchronised after (the next checkpoint is at its PSB).
    while (probe.next(pkt) >= 0 && pkt.offset < x) {
      const g = packetGroup(pkt.type);
      if (g < 0) continue;
      out[at + g]!++;
      out[at + GROUPS]!++;
    }
  }

  /** Make sure a packet is pending (decoding the next one, resynchronising after an error); false at the end. */
  private fetch(): boolean {
    if (this.pending) return true;
    const pkt = this.pkt;
    while (this.status >= 0) {
      if (this.sinceCheckpoint >= CHECKPOINT_EVERY) this.checkpoint(this.scan.offset);
      if (this.scan.next(pkt) < 0) {
        this.status = this.scan.syncForward();
        if (this.status >= 0) this.checkpoint(this.scan.offset);
        continue;
      }
      this.pending = true;
      this.pendingOffset = pkt.offset;
      this.pendingGroup = packetGroup(pkt.type);
      return true;
    }
    return false;
  }

  /** Count the pending packet. */
  private take(): void {
    this.pending = false;
    this.lastTaken = this.pendingOffset;
    this.sinceCheckpoint++;
    const g = this.pendingGroup;
    if (g < 0) return;
    this.cum[g]!++;
    this.cum[GROUPS]!++;
  }

  private checkpoint(offset: number): void {
    this.sinceCheckpoint = 0;
    const n = this.checkpoints;
    if (n > 0 && this.cpOffsets[n - 1] === offset) {
      this.cpCounts.set(this.cum, (n - 1) * CUM);
      return;
    }
    if (n === this.cpOffsets.length) {
      this.cpOffsets = grow(this.cpOffsets, new Float64Array(n * 2));
      this.cpCounts = grow(this.cpCounts, new Float64Array(n * 2 * CUM));
    }
    this.cpOffsets[n] = offset;
    this.cpCounts.set(this.cum, n * CUM);
    this.checkpoints = n + 1;
  }

  close(): void {
    this.scan.close();
    this.probe.close();
    this.source.close();
  }
}

/** What an extractor needs of a trace's packets: counts by group up to an offset. */
export interface PacketCounts {
  countBefore(x: number, out: Float64Array, at: number): void;
}

/** A trace without packets (an extractor that summarises none). */
const NO_PACKETS: PacketCounts = { countBefore: (_x, out, at) => out.fill(0, at, at + CUM) };

/** Run-time entry addresses of {@link SENSITIVE_FUNCTIONS} in the mapped modules, with their names. */
export function sensitiveEntries(modules: ModuleMap): Map<number, string> {
  const wanted = new Set(SENSITIVE_FUNCTIONS);
  const out = new Map<number, string>();
  for (const m of modules.modules) {
    if (m.elf === null) continue;
    for (const s of m.elf.symbols) {
      if (s.type !== 2 /* STT_FUNC */ || s.value === 0 || !wanted.has(s.name)) continue;
      const at = s.value + m.bias;
      if (m.contains(at) && !out.has(at)) out.set(at, s.name);
    }
  }
  return out;
}

export interface ExtractorOptions {
  /** Sensitive function entries (run-time address → name). */
  sensitive?: ReadonlyMap<number, string>;
  /** The decoder's trace offset (windows record where they are). */
  offset?: () => number;
  /** The packets of the trace being decoded (per-CPU streams: of the CPU running now). */
  packets?: PacketCounts | (() => PacketCounts);
  /** The thread whose flow this extractor hears (per-CPU streams). */
  thread?: { pid: number; tid: number };
  /** A monotone count of rule-based findings; a transfer at which it grew is a rule hit. */
  ruleCount?: () => number;
  /** Where each window goes as it is made (default: kept in {@link WindowExtractor.windows}). */
  onWindow?: (w: FeatureWindow) => void;
}

/** Makes each extractor's window sink, in the order the extractors are made (a thread's stream: one). */
export type WindowSinks = () => (w: FeatureWindow) => void;

/** Consumes the control-flow stream and emits a {@link FeatureWindow} per sensitive call. */
export class WindowExtractor implements FlowConsumer {
  readonly windows: FeatureWindow[] = [];
  private readonly kind = new Uint8Array(WINDOW);
  private readonly len = new Uint32Array(WINDOW);
  private readonly novel = new Uint8Array(WINDOW);
  private readonly target = new Float64Array(WINDOW);
  private readonly off = new Float64Array(WINDOW);
  private readonly hit = new Uint8Array(WINDOW);
  /** The packet counts before each transfer's offset (CUM each), and whose packets they count (per-CPU streams: the CPU's). */
  private readonly countsAt = new Float64Array(WINDOW * CUM);
  private readonly countsOf: (PacketCounts | null)[] = new Array<PacketCounts | null>(WINDOW).fill(null);
  /** Scratch for the counts at a window's end. */
  private readonly countsEnd = new Float64Array(2 * CUM);
  /** Next ring slot to write. */
  private head = 0;
  private count = 0;
  private transfers = 0;
  private lastRuleCount = 0;
  /** Return addresses pushed by calls seen so far (next instruction after a call). */
  private readonly returnSites = new Set<number>();
  private lastWasFarCall = false;
  private readonly sensitive: ReadonlyMap<number, string>;
  private readonly offset: () => number;
  private readonly packets: () => PacketCounts;
  private readonly thread: { pid: number; tid: number } | null;
  private readonly ruleCount: (() => number) | null;
  private readonly onWindow: ((w: FeatureWindow) => void) | null;
  /** Scratch for the entropy of indirect targets. */
  private readonly scratch = new Float64Array(WINDOW);

  constructor(options: ExtractorOptions = {}) {
    this.sensitive = options.sensitive ?? new Map();
    this.offset = options.offset ?? (() => 0);
    const packets = options.packets ?? NO_PACKETS;
    this.packets = typeof packets === 'function' ? packets : () => packets;
    this.thread = options.thread ?? null;
    this.ruleCount = options.ruleCount ?? null;
    this.onWindow = options.onWindow ?? null;
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, insnsBefore: number): void {
    const slot = this.head;
    this.kind[slot] = kind;
    this.len[slot] = insnsBefore;
    this.target[slot] = to;
    const off = this.offset();
    this.off[slot] = off;
    const counts = this.packets();
    counts.countBefore(off, this.countsAt, slot * CUM);
    this.countsOf[slot] = counts;
    this.novel[slot] = kind === TransferKind.Return && !Number.isNaN(to) && !this.returnSites.has(to) ? 1 : 0;
    let hit = 0;
    if (this.ruleCount !== null) {
      const n = this.ruleCount();
      if (n > this.lastRuleCount) hit = 1;
      this.lastRuleCount = n;
    }
    this.hit[slot] = hit;
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) this.returnSites.add(from + size);
    this.head = (slot + 1) % WINDOW;
    if (this.count < WINDOW) this.count++;
    const index = this.transfers++;
    this.lastWasFarCall = kind === TransferKind.FarCall;
    if (kind === TransferKind.FarCall) {
      this.emit(index, 'syscall', null, from, to);
    } else if (!Number.isNaN(to)) {
      const fn = this.sensitive.get(to);
      if (fn !== undefined && kind !== TransferKind.CondNotTaken) this.emit(index, 'function', fn, from, to);
    }
  }

  onGap(kind: GapKind): void {
    // A kernel entry the trace shows only as tracing being disabled.
    if (kind === GapKind.Disabled && !this.lastWasFarCall && this.count > 0) {
      const last = (this.head + WINDOW - 1) % WINDOW;
      this.emit(this.transfers - 1, 'gap', null, NaN, this.target[last]);
    }
    this.lastWasFarCall = false;
  }

  private emit(index: number, trigger: TriggerKind, fn: string | null, from: number, to: number): void {
    const n = this.count;
    const seq = new Float32Array(WINDOW * SEQ_CHANNELS);
    const summary = new Float32Array(SUMMARY_FEATURES);
    const targets = new Float64Array(n);
    let rets = 0;
    let indirect = 0;
    let cond = 0;
    let novel = 0;
    let logLen = 0;
    let le2 = 0;
    let le5 = 0;
    let run = 0;
    let bestRun = 0;
    let hits = 0;
    let nIndirect = 0;
    const first = (this.head + WINDOW - n) % WINDOW;
    for (let i = 0; i < n; i++) {
      const slot = (first + i) % WINDOW;
      const pos = WINDOW - n + i;
      const k = this.kind[slot];
      const len = this.len[slot];
      const base = pos * SEQ_CHANNELS;
      seq[base + k] = 1;
      const l = Math.min(1, Math.log2(1 + len) / 6);
      seq[base + CH_LENGTH] = l;
      seq[base + CH_NOVEL] = this.novel[slot];
      const isIndirect = k === TransferKind.Return || k === TransferKind.IndirectCall || k === TransferKind.IndirectJump;
      const shortIndirect = isIndirect && len <= 5 ? 1 : 0;
      seq[base + CH_SHORT_INDIRECT] = shortIndirect;
      seq[base + CH_PRESENT] = 1;
      targets[i] = this.target[slot];
      if (k === TransferKind.Return) rets++;
      if (k === TransferKind.IndirectCall || k === TransferKind.IndirectJump) indirect++;
      if (k === TransferKind.CondTaken || k === TransferKind.CondNotTaken) cond++;
      novel += this.novel[slot];
      logLen += l;
      if (len <= 2) le2++;
      if (len <= 5) le5++;
      run = shortIndirect ? run + 1 : 0;
      if (run > bestRun) bestRun = run;
      hits += this.hit[slot];
      if (isIndirect && !Number.isNaN(this.target[slot])) this.scratch[nIndirect++] = this.target[slot];
    }
    const d = Math.max(1, n);
    summary[0] = n / WINDOW;
    summary[1] = rets / d;
    summary[2] = indirect / d;
    summary[3] = cond / d;
    summary[4] = rets > 0 ? novel / rets : 0;
    summary[5] = novel / d;
    summary[6] = logLen / d;
    summary[7] = le2 / d;
    summary[8] = le5 / d;
    summary[9] = bestRun / WINDOW;
    const { entropy, distinct } = targetEntropy(this.scratch, nIndirect);
    summary[10] = entropy / Math.log2(WINDOW);
    summary[11] = distinct / WINDOW;
    const startOffset = n > 0 ? this.off[first] : this.offset();
    const offset = this.offset();
    // The packets at offsets in [startOffset, offset]: the counts before the window's end less those before its start.
    // A thread's window that began on another CPU counts the packets of this CPU's stretch only.
    const counts = this.packets();
    const ends = this.countsEnd;
    counts.countBefore(offset + 1, ends, 0);
    const before = CUM;
    if (n > 0 && this.countsOf[first] === counts && startOffset <= offset) {
      for (let g = 0; g < CUM; g++) ends[CUM + g] = this.countsAt[first * CUM + g]!;
    } else counts.countBefore(startOffset <= offset ? startOffset : offset, ends, CUM);
    for (let g = 0; g < GROUPS; g++) summary[12 + g] = ends[g]! - ends[before + g]!;
    const packets = ends[GROUPS]! - ends[before + GROUPS]!;
    if (packets > 0) for (let g = 12; g < 18; g++) summary[g] /= packets;
    summary[18] = Math.min(1, packets / d / 4);
    summary[19] = trigger === 'function' ? 1 : 0;
    const w: FeatureWindow = { transferIndex: index, trigger, functionName: fn, from, to, startOffset, offset, length: n, seq, summary, targets, ruleHits: hits, ...(this.thread ?? {}) };
    if (this.onWindow !== null) this.onWindow(w);
    else this.windows.push(w);
  }
}

/**
 * The windows of per-CPU streams, per thread: each thread life
 * (StreamTask.life) has its own extractor, with its process's sensitive
 * functions, over every CPU in the order its runs ran (walkCpuStreams), so
 * that a window never mixes two threads' transfers. Windows come per
 * thread in the order the threads first ran, each carrying its pid/tid.
 * With `sinks`, each extractor's windows go to its own sink as they are
 * made (in the same per-thread order of sinks) and none is kept.
 */
export function extractCpuWindows(inputs: readonly TraceInput[], sinks?: WindowSinks): { windows: FeatureWindow[]; flow: FlowStats } {
  let decoder: InsnDecoder | null = null;
  let running: TraceInput = inputs[0]!;
  const counters = new Map<TraceInput, PacketKindCounter>();
  const packets = (): PacketKindCounter => {
    let c = counters.get(running);
    if (c === undefined) counters.set(running, (c = new PacketKindCounter(running.stream.open())));
    return c;
  };
  const offset = (): number => decoder?.offset ?? 0;
  const initial = new WindowExtractor({ sensitive: sensitiveEntries(inputs[0]!.modules), offset, packets, onWindow: sinks?.() });
  const router = new TaskDetectors<WindowExtractor>([initial], (task) => {
    const t = task as StreamTask;
    return [new WindowExtractor({ sensitive: sensitiveEntries(modulesOf(t.life.space.mappings)), offset, packets, thread: { pid: t.pid, tid: t.tid }, onWindow: sinks?.() })];
  }, (task) => (task as StreamTask).life);
  try {
    const flow = walkCpuStreams(inputs, [router], (d, input) => {
      decoder = d;
      running = input;
    });
    return { windows: router.all.flatMap((x) => x.windows), flow };
  } finally {
    for (const c of counters.values()) c.close();
  }
}

/** Shannon entropy (bits) of the first `n` values and how many distinct values there are. */
export function targetEntropy(values: Float64Array, n: number): { entropy: number; distinct: number } {
  if (n === 0) return { entropy: 0, distinct: 0 };
  const sorted = values.slice(0, n).sort();
  let h = 0;
  let distinct = 0;
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && sorted[j] === sorted[i]) j++;
    const p = (j - i) / n;
    h -= p * Math.log2(p);
    distinct++;
    i = j;
  }
  return { entropy: h, distinct };
}

export interface ExtractResult {
  windows: FeatureWindow[];
  flow: FlowStats;
  /** Findings of the rule-based detectors (when asked for). */
  findings: Finding[];
}

/**
 * Decode a trace once and extract its windows. With `withRules`, the
 * default rule-based detectors ride the same walk (before the extractor),
 * so that each window knows whether a rule fired inside it. With `sinks`,
 * the windows go to the sink as they are made and none is kept.
 */
export function extractWindows(input: TraceInput, options: { withRules?: boolean; sinks?: WindowSinks } = {}): ExtractResult {
  if (input.stream.tasks !== undefined && options.withRules !== true) return { ...extractCpuWindows([input], options.sinks), findings: [] };
  const decoder = insnDecoderFor(input);
  const detectors = options.withRules ? createDetectors(input, {}, () => decoder.offset).filter((d) => !isStandalone(d)) : [];
  const packets = new PacketKindCounter(input.stream.open());
  try {
    const extractor = new WindowExtractor({
      sensitive: sensitiveEntries(input.modules),
      offset: () => decoder.offset,
      packets,
      ruleCount: detectors.length > 0 ? () => detectors.reduce((s, d) => s + d.findings().length, 0) : undefined,
      onWindow: options.sinks?.(),
    });
    const flow = new ControlFlowWalker(decoder, [...detectors, extractor]).run();
    return { windows: extractor.windows, flow, findings: detectors.flatMap((d) => d.findings()) };
  } finally {
    packets.close();
  }
}
