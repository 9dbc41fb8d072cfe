/**
 * `analyze`: run a chosen set of detectors over one stream of a recording
 * (any input format: see src/sources/model/recording.ts and
 * trace-input.ts).
 *
 * {@link analyzeTrace} decodes the trace once (ControlFlowWalker over an
 * InsnDecoder) and feeds every selected detector; FlowGuard runs its own
 * packet-level pass first (see flowguard.ts).
 */
import type { FlowStats } from '../flow/control-flow.js';
import { ControlFlowWalker } from '../flow/control-flow.js';
import { formatIpShort } from '../flow/address-space.js';
import { CodeFacts } from './code-facts.js';
import type { Detector, DetectorContext } from './detector-base.js';
import { DETECTORS, detectorInfo } from './detector.js';
import { EvidenceBuilder } from './evidence.js';
import type { Finding, ThreadRef, UncheckedNote } from './finding.js';
import { insnDecoderFor, modulesOf, traceInputs, walkerFor, type TraceInput } from './trace-input.js';
import type { Recording, StreamTask } from '../sources/model/recording.js';
import { TaskDetectors } from './task-detectors.js';

export type { TraceInput } from './trace-input.js';

export interface AnalyzeOptions {
  /** Detector names; empty or undefined: the default set. */
  detectors?: string[];
  /** Parameters by detector name, then key. */
  params?: Record<string, Record<string, string>>;
  policyFile?: string | null;
  monitor?: string[];
}

export interface AnalyzeResult {
  input: string;
  /** The thread the stream traces (every finding carries it too). */
  pid: number | null;
  tid: number | null;
  detectors: { name: string; parameters: Readonly<Record<string, number | string | boolean>>; stats: Record<string, number> }[];
  findings: Finding[];
  unchecked: UncheckedNote[];
  notes: string[];
  flow: FlowStats;
  /** False when only packet-level detectors ran (FlowGuard alone): the instruction flow was not walked, so `flow` counts nothing. */
  walked: boolean;
  seconds: number;
  instructionsPerSecond: number;
}

/** The default detector names. */
export function defaultDetectors(): string[] {
  return DETECTORS.filter((d) => d.byDefault).map((d) => d.name);
}

/**
 * Create the detectors for an input (exported for tests that drive them
 * directly), or for one task of a per-CPU stream: that thread, with its
 * process's image and modules.
 */
export function createDetectors(input: TraceInput, options: AnalyzeOptions, offset: () => number, task?: StreamTask): Detector[] {
  const names = options.detectors && options.detectors.length > 0 ? options.detectors : defaultDetectors();
  const image = task?.image ?? input.image;
  const modules = task !== undefined ? modulesOf(task.mappings) : input.modules;
  const facts = new CodeFacts(image);
  const evidence = new EvidenceBuilder(facts, modules);
  const thread: ThreadRef = task !== undefined ? { pid: task.pid, tid: task.tid } : { pid: input.stream.pid, tid: input.stream.tid };
  return names.map((name) => {
    const info = detectorInfo(name);
    if (!info) throw new Error(`unknown detector '${name}' (known: ${DETECTORS.map((d) => d.name).join(', ')})`);
    const ctx: DetectorContext = {
      image,
      modules,
      facts,
      evidence,
      thread,
      offset,
      params: options.params?.[name] ?? {},
      policyFile: options.policyFile ?? null,
      monitor: options.monitor ?? [],
      get trace() {
        return input.trace;
      },
      config: input.config,
    };
    return info.create(ctx);
  });
}

/**
 * Decode the trace once and run the detectors. Findings are sorted by trace
 * offset. The detectors are created for this stream alone: a recording of
 * several threads is analysed stream by stream, each thread with its own
 * state, and its findings carry the stream's pid/tid.
 */
export function analyzeTrace(input: TraceInput, options: AnalyzeOptions = {}): AnalyzeResult {
  const started = process.hrtime.bigint();
  const decoder = insnDecoderFor(input);
  const detectors = createDetectors(input, options, () => decoder.offset);
  // FlowGuard reads packets itself; everything else consumes the control-flow stream.
  const standalone = detectors.filter((d) => (d as { standalone?: boolean }).standalone === true);
  const streaming = detectors.filter((d) => !standalone.includes(d));
  for (const d of standalone) (d as unknown as { runStandalone(): void }).runStandalone();
  const walked = streaming.length > 0 || standalone.length === 0;
  const tasks = input.stream.tasks;
  if (tasks !== undefined && streaming.length > 0) {
    // A per-CPU stream: each thread that ran on the CPU gets its own detectors.
    const perTask = new TaskDetectors(streaming, (task) => {
      const set = createDetectors(input, options, () => decoder.offset, task as StreamTask);
      return set.filter((d) => (d as { standalone?: boolean }).standalone !== true);
    });
    const flow = walkerFor(input, [perTask], decoder).run();
    return analyzeResult(input, [...standalone, ...perTask.all], flow, started, walked);
  }
  const walker = new ControlFlowWalker(decoder, streaming);
  const flow = walked ? walker.run() : { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  return analyzeResult(input, detectors, flow, started, walked);
}

/**
 * The result of a walk (serial, or the parallel one stitched back
 * together): the detectors' findings in trace order, what they could not
 * check, and decode errors as unchecked stretches. `started` is the
 * walk's hrtime at its start.
 */
export function analyzeResult(input: TraceInput, detectors: readonly Detector[], flow: FlowStats, started: bigint, walked = true): AnalyzeResult {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const findings = detectors.flatMap((d) => d.findings()).sort((a, b) => a.offset - b.offset);
  const unchecked = mergeUnchecked(detectors.flatMap((d) => d.unchecked()));
  if (flow.errors > 0) {
    unchecked.push({ detector: 'analyze', reason: `decode errors: ${flow.errors} stretches of the trace could not be decoded`, count: flow.errors, firstOffset: 0 });
  }
  return {
    input: input.name,
    pid: input.stream.pid,
    tid: input.stream.tid,
    detectors: mergeDetectorStats(detectors),
    findings,
    unchecked,
    notes: input.notes,
    flow,
    walked,
    seconds,
    instructionsPerSecond: seconds > 0 ? flow.instructions / seconds : 0,
  };
}

/**
 * One entry per detector name: a per-CPU stream has a set of detectors per
 * thread, whose counts add up (and whose maxima, `max*`, are the largest).
 */
function mergeDetectorStats(detectors: readonly Detector[]): AnalyzeResult['detectors'] {
  const byName = new Map<string, AnalyzeResult['detectors'][number]>();
  for (const d of detectors) {
    const stats = d.stats?.() ?? {};
    const seen = byName.get(d.name);
    if (seen === undefined) {
      byName.set(d.name, { name: d.name, parameters: d.parameters, stats: { ...stats } });
      continue;
    }
    for (const [k, v] of Object.entries(stats)) seen.stats[k] = k.startsWith('max') ? Math.max(seen.stats[k] ?? 0, v) : (seen.stats[k] ?? 0) + v;
  }
  return [...byName.values()];
}

/** Notes with the same detector and reason are one note (per-CPU streams have several detector sets). */
function mergeUnchecked(notes: UncheckedNote[]): UncheckedNote[] {
  const byKey = new Map<string, UncheckedNote>();
  for (const n of notes) {
    const key = `${n.detector}\0${n.reason}`;
    const seen = byKey.get(key);
    if (seen === undefined) byKey.set(key, { ...n });
    else {
      seen.count += n.count;
      seen.firstOffset = Math.min(seen.firstOffset, n.firstOffset);
    }
  }
  return [...byKey.values()];
}

/**
 * Every stream of a recording (one per thread for the emulated recorder),
 * each with its own detectors: one result per stream, in stream order.
 */
export function analyzeRecording(recording: Recording, options: AnalyzeOptions = {}): AnalyzeResult[] {
  return traceInputs(recording).map((input) => analyzeTrace(input, options));
}

/**
 * A decode that yielded no instruction is an input error, not a clean
 * result: the one line that commands and fleet jobs fail with, or null when
 * something was decoded.
 */
export function nothingDecodedError(name: string, instructions: number, errors: number): string | null {
  if (instructions > 0) return null;
  return `${name}: no instruction could be decoded${errors > 0 ? ` (${errors} decode errors)` : ''}: not an Intel PT trace of this code, or its images are missing.`;
}

/**
 * For `npm run bench`: one full analyze pass (decode + the given detectors,
 * the default set if none) over an input; instructions per second.
 */
export function benchAnalyze(input: TraceInput, detectors?: string[]): { instructions: number; seconds: number; instructionsPerSecond: number; findings: number } {
  const r = analyzeTrace(input, { detectors });
  return { instructions: r.flow.instructions, seconds: r.seconds, instructionsPerSecond: r.instructionsPerSecond, findings: r.findings.length };
}

export { formatIpShort };
