/**
 * The report model: everything a human-facing report of one trace shows,
 * as plain JSON-safe data. The HTML report (html-report.ts), `ptscope
 * report --json` and `ptscope demo` read only this model.
 *
 * It holds what was traced (program, exit, recorder, trace size), how much
 * ran (instructions, transfers, gaps), the modules, the detectors' findings
 * with their evidence, what could not be checked, coverage per module and
 * function (static CFG blocks that ran vs never ran), dormant-code triggers
 * when a dormant-code analysis provides them, and a timeline of calls.
 *
 * It also holds what the report's pictures draw: for each code-reuse
 * finding, its chain on the call graph (chain-graph.ts); a strip of trace
 * offsets with instructions, system calls, gaps and findings per slice
 * (trace-strip.ts); and per module, the functions as coverage tiles.
 *
 * Every list is capped ({@link ReportLimits}) and carries its full count,
 * so a trace of billions of instructions still gives a report of a few MB.
 *
 * Building decodes a thread's trace twice: once inside analyzeTrace (the
 * detectors) and once here for coverage, calls and the trace strip.
 * Per-CPU streams give one model per thread life, from one walk of all
 * CPUs that feeds both ({@link buildCpuReportModels}).
 */
import { analyzeCpuThreads, analyzeTrace, defaultDetectors, type AnalyzeResult } from '../analyses/analyze.js';
import { insnDecoderFor, modulesOf, traceInputs, walkerFor, type TraceInput } from '../analyses/trace-input.js';
import type { ModuleMap } from '../analyses/modules.js';
import type { Finding, UncheckedNote } from '../analyses/finding.js';
import { hexAddress } from '../analyses/finding.js';
import type { FlowConsumer, FlowStats } from '../flow/control-flow.js';
import type { ExitInfo, ImageMapping, Recording, StreamTask, TaskLife } from '../sources/model/recording.js';
import { importBundle } from '../sources/import/bundle-import.js';
import type { InsnDecoder } from '../flow/insn-decoder.js';
import { buildChainGraph, StaticBlocksRan, type ChainGraph } from './chain-graph.js';
import { CallTimeline } from './chrome-trace.js';
import { TraceStrip, type TraceStripData } from './trace-strip.js';
import { LifeTrace } from './life-trace.js';
import { ExecutedBlocks, functionCoverage, type FunctionCoverage, type ModuleCoverage } from './drcov.js';

export const REPORT_FORMAT = 'ptscope-report';
export const REPORT_VERSION = 1;

/** Caps on every list of the model. */
export interface ReportLimits {
  findings: number;
  /** Gadgets shown per chain. */
  chainGadgets: number;
  unchecked: number;
  /** Functions listed per module, executed ones first. */
  functionsPerModule: number;
  /** Never-ran function names listed per module. */
  neverRanPerModule: number;
  /** Calls in the timeline list. */
  calls: number;
  dormantTriggers: number;
  /** Findings that get a chain picture (those with a gadget chain, in order). */
  chainGraphs: number;
  /** Slices of the trace strip. */
  stripBins: number;
  /** Function tiles per module in the coverage picture (the rest is one tile). */
  coverageTiles: number;
}

export const DEFAULT_LIMITS: ReportLimits = {
  findings: 200,
  chainGadgets: 64,
  unchecked: 100,
  functionsPerModule: 1500,
  neverRanPerModule: 3000,
  calls: 2000,
  dormantTriggers: 200,
  chainGraphs: 16,
  stripBins: 240,
  coverageTiles: 300,
};

/** A capped list: `items` are the first ones kept, `total` how many there were. */
export interface Capped<T> {
  items: T[];
  total: number;
}

function cap<T>(list: readonly T[], n: number): Capped<T> {
  return { items: list.slice(0, Math.max(0, n)), total: list.length };
}

/**
 * A finding as shown: its chain capped, `chainTotal` the full chain length,
 * and for a code-reuse chain, the chain on the call graph (null: none, or
 * beyond {@link ReportLimits.chainGraphs}).
 */
export type ReportFinding = Finding & { chainTotal: number; graph: ChainGraph | null };

/**
 * A dormant-code trigger: code that did not run in this trace, and the
 * input or condition that would make it run (from `ptscope dormant`).
 */
export interface DormantTrigger {
  /** `module!function` of the dormant code. */
  function: string;
  /** Run-time address of the dormant block or function entry. */
  address: string;
  /** The branch that guards it, `module!function+0xoff`, or null. */
  guard: string | null;
  /** The condition in words (e.g. `input[3] == 0x41 && argc > 2`). */
  condition: string;
  /** A concrete input that reaches it, shown escaped (hex or text), or null. */
  input: string | null;
  /** Was the input replayed and the code seen to run? null: not tried. */
  confirmed: boolean | null;
  notes: string[];
}

/** Dormant-code results attached to a report (absent: not analysed). */
export interface DormantSection {
  /** What produced them (tool and version). */
  source: string;
  triggers: Capped<DormantTrigger>;
  notes: string[];
}

export interface ReportModule {
  name: string;
  /** The file read (bundle copy) or null for a raw image without a file. */
  file: string | null;
  /** Where the program loaded it from (bundle manifest), when known. */
  originalPath: string | null;
  start: string;
  end: string;
  symbols: number;
  hasCfg: boolean;
  /**
   * Code generated at run time (a JIT, unpacked or injected code), captured
   * by the recorder: a signal for the analyst, not a finding. `firstExecuted`:
   * instructions the recording ran before it (null if unknown). Null for files.
   */
  runtime: { firstExecuted: number | null } | null;
}

/** One function of the coverage picture: its size and how much of it ran. */
export interface CoverageTile {
  name: string;
  address: string;
  blocks: number;
  blocksRan: number;
}

/** Coverage of one module as shown: the module's counts, its function lists capped. */
export interface ReportCoverage extends Omit<ModuleCoverage, 'path' | 'list'> {
  /** Functions that ran (most blocks ran first). */
  ran: Capped<FunctionCoverage>;
  /** Functions that never ran, by address. */
  neverRan: Capped<{ name: string; address: string }>;
  /**
   * The coverage picture: functions that ran (most blocks first), then the
   * largest that never ran, up to {@link ReportLimits.coverageTiles}; `rest`
   * sums the functions left out.
   */
  tiles: CoverageTile[];
  rest: { functions: number; blocks: number; blocksRan: number };
}

export interface ReportCall {
  /** Instructions executed before the call. */
  at: number;
  depth: number;
  site: string;
  siteSymbol: string | null;
  target: string;
  targetSymbol: string | null;
}

export interface ReportModel {
  format: typeof REPORT_FORMAT;
  version: number;
  title: string;
  /** The bundle directory or trace file. */
  source: string;
  /**
   * The thread this stream traces (a recording of several threads gives one
   * model per thread, per-CPU streams one per thread life), its name when
   * the recorder saw one; null when the trace is not one thread's (a raw
   * trace, per-CPU runs before any task is known).
   */
  thread: { pid: number; tid: number; name: string | null } | null;
  program: { argv: string[]; path: string; outcome: string } | null;
  recorder: string | null;
  trace: {
    bytes: number;
    instructions: number;
    transfers: number;
    gaps: number;
    decodeErrors: number;
    /** Wall time of the detector pass. */
    analyzeSeconds: number;
  };
  modules: ReportModule[];
  detectors: { name: string; findings: number; stats: Record<string, number> }[];
  findings: Capped<ReportFinding>;
  severityCounts: { high: number; medium: number; low: number };
  unchecked: Capped<UncheckedNote>;
  coverage: ReportCoverage[];
  timeline: {
    calls: Capped<ReportCall>;
    returns: number;
    unmatchedReturns: number;
    maxDepth: number;
  };
  /** Where instructions, system calls, gaps and findings fall along the trace. */
  strip: TraceStripData;
  /** null: no dormant-code analysis was attached. */
  dormant: DormantSection | null;
  /** Notes about the input and the recording (warnings, unloadable images). */
  notes: string[];
}

/** Phases of a long build, for progress bars. */
export interface ProgressSink {
  /** A phase starts; `total` is its size in trace bytes (0: unknown). */
  phase(name: string, total: number): void;
  /** Bytes of the trace done in the current phase. */
  update(done: number): void;
  done(): void;
}

export interface ReportOptions {
  detectors?: string[];
  params?: Record<string, Record<string, string>>;
  policyFile?: string | null;
  limits?: Partial<ReportLimits>;
  title?: string;
  dormant?: DormantSection | null;
  progress?: ProgressSink;
}

/**
 * Decode a trace once and feed `consumers` (coverage, timeline). With a
 * progress sink, the decoder's trace offset is reported every few thousand
 * transfers.
 */
export function walkTrace(input: TraceInput, consumers: FlowConsumer[], progress?: ProgressSink, phase = 'decode', decoder: InsnDecoder = insnDecoderFor(input)): FlowStats {
  const all = [...consumers];
  const size = input.stream.size;
  if (progress) {
    progress.phase(phase, size);
    let n = 0;
    all.push({
      onTransfer() {
        if ((++n & 0x3fff) === 0) progress.update(decoder.offset);
      },
      onEnd() {
        progress.update(size);
      },
    });
  }
  const stats = walkerFor(input, all, decoder).run();
  progress?.done();
  return stats;
}

/** The coverage picture's tiles: functions that ran first, then the largest that never ran. */
function coverageTiles(c: ModuleCoverage, max: number): { tiles: CoverageTile[]; rest: ReportCoverage['rest'] } {
  const ran = c.list.filter((f) => f.blocksRan > 0).sort((a, b) => b.blocks - a.blocks);
  const never = c.list.filter((f) => f.blocksRan === 0).sort((a, b) => b.blocks - a.blocks);
  const all = [...ran, ...never].filter((f) => f.blocks > 0);
  const kept = all.slice(0, Math.max(0, max));
  const rest = { functions: 0, blocks: 0, blocksRan: 0 };
  for (const f of all.slice(kept.length)) {
    rest.functions++;
    rest.blocks += f.blocks;
    rest.blocksRan += f.blocksRan;
  }
  return { tiles: kept.map((f) => ({ name: f.name, address: f.address, blocks: f.blocks, blocksRan: f.blocksRan })), rest };
}

function outcome(exit: ExitInfo | null): string {
  if (exit === null) return 'unknown';
  if (exit.stopped) return `stopped by the recorder (${exit.stopped})`;
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exit status ${exit.status}`;
}

/**
 * The models of one analysis group (analysisGroups): a thread's stream
 * gives one, the per-CPU streams of a recording one per thread life.
 */
export function buildReportModels(group: readonly TraceInput[], options: ReportOptions = {}): ReportModel[] {
  return group[0]!.stream.tasks !== undefined ? buildCpuReportModels(group, options) : group.map((input) => buildReportModel(input, options));
}

/** Build the model of one thread's trace input (per-CPU streams: {@link buildCpuReportModels}). */
export function buildReportModel(input: TraceInput, options: ReportOptions = {}): ReportModel {
  if (input.stream.tasks !== undefined) throw new Error(`${input.name}: a per-CPU stream gives one report per thread: build them with its recording's other CPUs (buildReportModels)`);
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const progress = options.progress;
  progress?.phase('analyze', 0);
  const result: AnalyzeResult = analyzeTrace(input, { detectors: options.detectors ?? defaultDetectors(), params: options.params, policyFile: options.policyFile });
  progress?.done();
  const blocks = new ExecutedBlocks();
  // Begin and end events both count against the cap: room for `calls` calls.
  const timeline = new CallTimeline(limits.calls * 2 + 64);
  const decoder = insnDecoderFor(input);
  const strip = new TraceStrip(decoder, input.stream.size, limits.stripBins);
  const walked = walkTrace(input, [blocks, timeline, strip], progress, 'coverage', decoder);
  strip.addFindings(result.findings);
  const { pid, tid } = input.stream;
  const recording = input.recording;
  const thread = pid !== null && tid !== null ? { pid, tid, name: recording.threads.find((t) => t.tid === tid && t.pid === pid)?.name ?? null } : null;
  // FlowGuard alone does not walk the flow: the report's own walk counts it.
  const flow = result.walked ? result.flow : walked;
  return assembleModel(recording, { name: input.name, thread, bytes: input.stream.size, result, flow, modules: input.modules, mappings: input.stream.mappings, blocks, timeline, strip: strip.data(), notes: input.notes }, options);
}

/** What one model is made of: one stream's walks, or one thread life's of per-CPU streams. */
interface ModelParts {
  name: string;
  thread: ReportModel['thread'];
  bytes: number;
  result: AnalyzeResult;
  flow: FlowStats;
  modules: ModuleMap;
  mappings: readonly ImageMapping[];
  blocks: ExecutedBlocks;
  timeline: CallTimeline;
  strip: TraceStripData;
  notes: readonly string[];
}

/**
 * The models of per-CPU streams, one per thread life (StreamTask.life: a
 * thread from its start to its exit or exec), as its thread's own stream
 * would give it: its detectors' findings and statistics, its coverage and
 * calls with its process's modules, over its runs on every CPU in the
 * order they ran. One walk of all CPUs (analyzeCpuThreads) feeds the
 * detectors and the report's consumers of each life. A life's trace is its
 * runs end to end: its byte count and strip span them, and its findings
 * come in its order (a finding names no CPU: it is placed in the run its
 * detector made it in, LifeTrace.placeFindings). Runs before any task is
 * known form a model of their own.
 */
export function buildCpuReportModels(inputs: readonly TraceInput[], options: ReportOptions = {}): ReportModel[] {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const recording = inputs[0]!.recording;
  const progress = options.progress;
  progress?.phase('analyze', 0);
  interface LifeParts {
    trace: LifeTrace;
    blocks: ExecutedBlocks;
    timeline: CallTimeline;
    strip: TraceStrip;
  }
  const parts = new Map<TaskLife | null, LifeParts>();
  const partsOf = (task: StreamTask | null): LifeParts => {
    const key = task?.life ?? null;
    let p = parts.get(key);
    if (p === undefined) {
      const trace = new LifeTrace();
      parts.set(key, (p = { trace, blocks: new ExecutedBlocks(), timeline: new CallTimeline(limits.calls * 2 + 64), strip: TraceStrip.growing(trace, limits.stripBins) }));
    }
    return p;
  };
  // The run being walked: one at a time, a step of the walk is one task's run.
  let open: LifeTrace | null = null;
  let cpu: InsnDecoder | null = null;
  const started = new Set<TraceInput>();
  const lives = analyzeCpuThreads(inputs, { detectors: options.detectors ?? defaultDetectors(), params: options.params, policyFile: options.policyFile }, {
    consumers: (task) => {
      const p = partsOf(task);
      return [p.blocks, p.timeline, p.strip];
    },
    running: (decoder, input, found) => {
      // The previous step paused at a task switch (or the end of its stream): its run ends there.
      if (open !== null) open.close(cpu!.offset);
      cpu = decoder;
      open = null;
      if (!started.has(input)) {
        started.add(input);
        open = partsOf(null).trace.open(decoder, 0, found);
      }
    },
    switched: (task, found) => {
      const at = cpu!.offset;
      open?.close(at);
      open = partsOf(task).trace.open(cpu!, at, found);
    },
  });
  if (open !== null) (open as LifeTrace).close(cpu!.offset);
  progress?.done();
  return lives.map(({ task, result: unordered, made }) => {
    const p = partsOf(task);
    // In the order of the thread's own trace (stream offsets of different CPUs do not compare: each finding is placed in the run it was made in).
    const at = p.trace.placeFindings(made, unordered.findings);
    const result = { ...unordered, findings: [...unordered.findings].sort((a, b) => at.get(a)! - at.get(b)!) };
    p.strip.close(p.trace.bytes);
    p.strip.addFindings(result.findings, (f) => at.get(f)!);
    const space = task?.life.space ?? null;
    const mappings = space?.mappings ?? inputs[0]!.stream.mappings;
    const thread = task === null ? null : { pid: task.pid, tid: task.tid, name: recording.threads.find((t) => t.tid === task.tid && t.pid === task.pid)?.name ?? task.name };
    const notes = inputs.flatMap((i) => i.notes);
    return assembleModel(recording, { name: result.input, thread, bytes: p.trace.bytes, result, flow: result.flow, modules: space !== null ? modulesOf(mappings) : inputs[0]!.modules, mappings, blocks: p.blocks, timeline: p.timeline, strip: p.strip.data(), notes }, options);
  });
}

/** The model from its parts. */
function assembleModel(recording: Recording, parts: ModelParts, options: ReportOptions): ReportModel {
  const program = recording.program;
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const { result, blocks, timeline, modules: moduleMap } = parts;

  const originals = new Map<string, string>();
  // Run-time code has no file of its own to name it: matched by address, versions in order.
  const runtimes = new Map<number, { firstExecuted: number | null }[]>();
  for (const m of parts.mappings) {
    originals.set(m.file, m.originalPath);
    if (m.runtime === null) continue;
    const at = runtimes.get(m.address) ?? [];
    at.push(m.runtime);
    runtimes.set(m.address, at);
  }
  const modules: ReportModule[] = moduleMap.modules.map((m) => ({
    name: m.name,
    file: m.path,
    originalPath: m.path === null ? null : originals.get(m.path) ?? null,
    start: hexAddress(m.start),
    end: hexAddress(m.end),
    symbols: m.elf?.symbols.length ?? 0,
    hasCfg: m.cfg() !== null,
    runtime: m.elf === null ? runtimes.get(m.start)?.shift() ?? null : null,
  }));

  const coverage = functionCoverage(blocks, moduleMap).map((c: ModuleCoverage): ReportCoverage => {
    const ran = c.list.filter((f) => f.blocksRan > 0);
    const never = c.list.filter((f) => f.blocksRan === 0).map((f) => ({ name: f.name, address: f.address }));
    return {
      module: c.module,
      unavailable: c.unavailable,
      functions: c.functions,
      functionsRan: c.functionsRan,
      blocks: c.blocks,
      blocksRan: c.blocksRan,
      blocksOutsideCfg: c.blocksOutsideCfg,
      ran: cap(ran, limits.functionsPerModule),
      neverRan: cap(never, limits.neverRanPerModule),
      ...coverageTiles(c, limits.coverageTiles),
    };
  });

  const sym = (ip: number): string | null => moduleMap.symbolize(ip);
  const calls: ReportCall[] = timeline.firstCalls(limits.calls).map((c) => ({
    at: c.at,
    depth: c.depth,
    site: hexAddress(c.site),
    siteSymbol: sym(c.site),
    target: hexAddress(c.target),
    targetSymbol: sym(c.target),
  }));

  const staticRan = new StaticBlocksRan(blocks, moduleMap);
  let graphs = 0;
  const findings: ReportFinding[] = result.findings.slice(0, limits.findings).map((f) => {
    const chain = f.chain === null ? null : f.chain.slice(0, limits.chainGadgets);
    const graph = chain !== null && chain.length > 0 && graphs < limits.chainGraphs ? buildChainGraph({ ...f, chain }, moduleMap, staticRan) : null;
    if (graph !== null) graphs++;
    return { ...f, chain, chainTotal: f.chain?.length ?? 0, graph };
  });
  const severityCounts = { high: 0, medium: 0, low: 0 };
  for (const f of result.findings) severityCounts[f.severity]++;

  const notes = [...parts.notes];
  for (const w of recording.warnings) notes.push(`recorder: ${w}`);

  const dormant = options.dormant ?? null;
  return {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    title: options.title ?? (program ? program.argv.map((a) => a.replace(/.*\//, '')).join(' ') : parts.name),
    source: parts.name,
    thread: parts.thread,
    program: program ? { argv: program.argv, path: program.path, outcome: outcome(recording.exit) } : null,
    recorder: recording.recorder,
    trace: {
      bytes: parts.bytes,
      instructions: parts.flow.instructions,
      transfers: parts.flow.transfers,
      gaps: parts.flow.gaps,
      decodeErrors: parts.flow.errors,
      analyzeSeconds: result.seconds,
    },
    modules,
    detectors: result.detectors.map((d) => ({ name: d.name, findings: result.findings.filter((f) => f.detector === d.name).length, stats: d.stats })),
    findings: { items: findings, total: result.findings.length },
    severityCounts,
    unchecked: cap(result.unchecked, limits.unchecked),
    coverage,
    timeline: {
      calls: { items: calls, total: timeline.calls },
      returns: timeline.returns,
      unmatchedReturns: timeline.unmatchedReturns,
      maxDepth: timeline.maxDepth,
    },
    strip: parts.strip,
    dormant: dormant === null ? null : { ...dormant, triggers: { items: dormant.triggers.items.slice(0, limits.dormantTriggers), total: dormant.triggers.total } },
    notes,
  };
}

/** Load a recorder bundle directory and build the model of its first stream. Throws an Error with one line of explanation. */
export function buildBundleReport(dir: string, options: ReportOptions = {}): ReportModel {
  const recording = importBundle(dir);
  try {
    return buildReportModel(traceInputs(recording)[0]!, options);
  } finally {
    recording.close();
  }
}

/** One line saying what the report found (for terminals and the HTML headline). */
export function verdict(m: ReportModel): string {
  const n = m.findings.total;
  if (n === 0) {
    const names = m.detectors.map((d) => d.name).join(', ');
    return `No findings: none of the detectors (${names}) reported anything in ${m.trace.instructions.toLocaleString('en-US')} instructions.`;
  }
  const parts = (['high', 'medium', 'low'] as const).filter((s) => m.severityCounts[s] > 0).map((s) => `${m.severityCounts[s]} ${s}`);
  return `${n} finding${n === 1 ? '' : 's'} (${parts.join(', ')}) in ${m.trace.instructions.toLocaleString('en-US')} instructions.`;
}

/** The longest code-reuse chain among the findings, or null. */
export function longestChain(m: ReportModel): ReportFinding | null {
  let best: ReportFinding | null = null;
  for (const f of m.findings.items) if (f.chain !== null && (best === null || f.chainTotal > best.chainTotal)) best = f;
  return best;
}
