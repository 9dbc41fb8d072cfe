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
import { PacketDecoder } from '../../packets/decoder.js';
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

/** Where the packets of a trace are: kinds and offsets, for per-window packet summaries. */
export class PacketKindIndex {
  private constructor(
    readonly kinds: Uint8Array,
    readonly offsets: Float64Array,
  ) {}

  /** Scan the whole trace (resyncing at the next PSB after an error). */
  static scan(trace: Uint8Array): PacketKindIndex {
    const dec = new PacketDecoder(trace);
    const pkt = new Packet();
    let kinds = new Uint8Array(1024);
    let offsets = new Float64Array(1024);
    let n = 0;
    let st = dec.syncForward();
    while (st >= 0) {
      const size = dec.next(pkt);
      if (size < 0) {
        st = dec.syncForward();
        continue;
      }
      if (n === kinds.length) {
        const k = new Uint8Array(n * 2);
        k.set(kinds);
        kinds = k;
        const o = new Float64Array(n * 2);
        o.set(offsets);
        offsets = o;
      }
      kinds[n] = pkt.type;
      offsets[n] = pkt.offset;
      n++;
    }
    return new PacketKindIndex(kinds.slice(0, n), offsets.slice(0, n));
  }

  static empty(): PacketKindIndex {
    return new PacketKindIndex(new Uint8Array(0), new Float64Array(0));
  }

  /** First packet index with offset ≥ `off`. */
  private lowerBound(off: number): number {
    const offsets = this.offsets;
    return partitionPoint(offsets.length, (i) => offsets[i] < off);
  }

  /**
   * Packets in [from, to] (trace offsets) by group into `out[0..5]` (TNT,
   * TIP, TIP.PGE, TIP.PGD, FUP, other; PAD not counted); returns the total.
   */
  countInto(from: number, to: number, out: Float32Array, at: number): number {
    let total = 0;
    for (let i = this.lowerBound(from); i < this.offsets.length && this.offsets[i] <= to; i++) {
      const k = this.kinds[i];
      let g: number;
      switch (k) {
        case PacketType.Pad:
          continue;
        case PacketType.Tnt8:
        case PacketType.Tnt64:
          g = 0;
          break;
        case PacketType.Tip:
          g = 1;
          break;
        case PacketType.TipPge:
          g = 2;
          break;
        case PacketType.TipPgd:
          g = 3;
          break;
        case PacketType.Fup:
          g = 4;
          break;
        default:
          g = 5;
      }
      out[at + g]++;
      total++;
    }
    return total;
  }
}

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
  packets?: PacketKindIndex | (() => PacketKindIndex);
  /** The thread whose flow this extractor hears (per-CPU streams). */
  thread?: { pid: number; tid: number };
  /** A monotone count of rule-based findings; a transfer at which it grew is a rule hit. */
  ruleCount?: () => number;
}

/** Consumes the control-flow stream and emits a {@link FeatureWindow} per sensitive call. */
export class WindowExtractor implements FlowConsumer {
  readonly windows: FeatureWindow[] = [];
  private readonly kind = new Uint8Array(WINDOW);
  private readonly len = new Uint32Array(WINDOW);
  private readonly novel = new Uint8Array(WINDOW);
  private readonly target = new Float64Array(WINDOW);
  private readonly off = new Float64Array(WINDOW);
  private readonly hit = new Uint8Array(WINDOW);
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
  private readonly packets: () => PacketKindIndex;
  private readonly thread: { pid: number; tid: number } | null;
  private readonly ruleCount: (() => number) | null;
  /** Scratch for the entropy of indirect targets. */
  private readonly scratch = new Float64Array(WINDOW);

  constructor(options: ExtractorOptions = {}) {
    this.sensitive = options.sensitive ?? new Map();
    this.offset = options.offset ?? (() => 0);
    const packets = options.packets ?? PacketKindIndex.empty();
    this.packets = typeof packets === 'function' ? packets : () => packets;
    this.thread = options.thread ?? null;
    this.ruleCount = options.ruleCount ?? null;
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, insnsBefore: number): void {
    const slot = this.head;
    this.kind[slot] = kind;
    this.len[slot] = insnsBefore;
    this.target[slot] = to;
    this.off[slot] = this.offset();
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
    // A thread's window that began on another CPU counts the packets of this CPU's stretch only.
    const packets = this.packets().countInto(startOffset <= offset ? startOffset : offset, offset, summary, 12);
    if (packets > 0) for (let g = 12; g < 18; g++) summary[g] /= packets;
    summary[18] = Math.min(1, packets / d / 4);
    summary[19] = trigger === 'function' ? 1 : 0;
    this.windows.push({ transferIndex: index, trigger, functionName: fn, from, to, startOffset, offset, length: n, seq, summary, targets, ruleHits: hits, ...(this.thread ?? {}) });
  }
}

/**
 * The windows of per-CPU streams, per thread: each thread life
 * (StreamTask.life) has its own extractor, with its process's sensitive
 * functions, over every CPU in the order its runs ran (walkCpuStreams), so
 * that a window never mixes two threads' transfers. Windows come per
 * thread in the order the threads first ran, each carrying its pid/tid.
 */
export function extractCpuWindows(inputs: readonly TraceInput[]): { windows: FeatureWindow[]; flow: FlowStats } {
  let decoder: InsnDecoder | null = null;
  let running: TraceInput = inputs[0]!;
  const indexes = new Map<TraceInput, PacketKindIndex>();
  const packets = (): PacketKindIndex => {
    let ix = indexes.get(running);
    if (ix === undefined) indexes.set(running, (ix = PacketKindIndex.scan(running.trace)));
    return ix;
  };
  const offset = (): number => decoder?.offset ?? 0;
  const initial = new WindowExtractor({ sensitive: sensitiveEntries(inputs[0]!.modules), offset, packets });
  const router = new TaskDetectors<WindowExtractor>([initial], (task) => {
    const t = task as StreamTask;
    return [new WindowExtractor({ sensitive: sensitiveEntries(modulesOf(t.life.space.mappings)), offset, packets, thread: { pid: t.pid, tid: t.tid } })];
  }, (task) => (task as StreamTask).life);
  const flow = walkCpuStreams(inputs, [router], (d, input) => {
    decoder = d;
    running = input;
  });
  return { windows: router.all.flatMap((x) => x.windows), flow };
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
 * so that each window knows whether a rule fired inside it.
 */
export function extractWindows(input: TraceInput, options: { withRules?: boolean } = {}): ExtractResult {
  if (input.stream.tasks !== undefined && options.withRules !== true) return { ...extractCpuWindows([input]), findings: [] };
  const decoder = insnDecoderFor(input);
  const detectors = options.withRules ? createDetectors(input, {}, () => decoder.offset).filter((d) => !isStandalone(d)) : [];
  const extractor = new WindowExtractor({
    sensitive: sensitiveEntries(input.modules),
    offset: () => decoder.offset,
    packets: PacketKindIndex.scan(input.trace),
    ruleCount: detectors.length > 0 ? () => detectors.reduce((s, d) => s + d.findings().length, 0) : undefined,
  });
  const flow = new ControlFlowWalker(decoder, [...detectors, extractor]).run();
  return { windows: extractor.windows, flow, findings: detectors.flatMap((d) => d.findings()) };
}
