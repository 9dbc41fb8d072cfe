/**
 * `analyze`: run a chosen set of detectors over one stream of a recording
 * (any input format: see src/sources/model/recording.ts and
 * trace-input.ts).
 *
 * {@link analyzeTrace} decodes the trace once (ControlFlowWalker over an
 * InsnDecoder) and feeds every selected detector; FlowGuard runs its own
 * packet-level pass first (see flowguard.ts).
 */
import type { FlowConsumer, FlowStats } from '../flow/control-flow.js';
import { ControlFlowWalker } from '../flow/control-flow.js';
import { formatIpShort } from '../flow/address-space.js';
import { CodeFacts } from './code-facts.js';
import type { Detector, DetectorContext } from './detector-base.js';
import { DETECTORS, detectorInfo, isStandaloneName } from './detector.js';
import { EvidenceBuilder } from './evidence.js';
import type { Finding, ThreadRef, UncheckedNote } from './finding.js';
import { inheritsHistory, insnDecoderFor, modulesOf, traceInputs, type TraceInput } from './trace-input.js';
import type { InsnDecoder } from '../flow/insn-decoder.js';
import { taskTitle, type Recording, type StreamTask, type TaskLife } from '../sources/model/recording.js';
import { TaskDetectors } from './task-detectors.js';
import { walkCpuStreams } from './cpu-walk.js';
import { runFlowGuardPerTask } from './flowguard-tasks.js';
import type { FlowGuardDetector } from './flowguard.js';

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
  /** On per-CPU streams each note names the thread it is about (pid/tid; null before any task is known). */
  unchecked: (UncheckedNote & Partial<ThreadRef>)[];
  notes: string[];
  flow: FlowStats;
  /** False when only packet-level detectors ran (FlowGuard alone): the instruction flow was not walked, so `flow` counts nothing. */
  walked: boolean;
  seconds: number;
  instructionsPerSecond: number;
}

/** The counts of a run whose detectors all read packets themselves (FlowGuard alone): no walk. */
export const NOT_WALKED: Readonly<FlowStats> = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };

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
  // A thread's detectors see its process's image as its life ends (everything it loaded), as a thread's stream does.
  const image = task?.life.space.image ?? input.image;
  const modules = task !== undefined ? modulesOf(task.life.space.mappings) : input.modules;
  const facts = new CodeFacts(image);
  facts.position = offset;
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
      openTrace: () => input.stream.open(),
      config: input.config,
      // A forked child's switches may have been prepared before the fork, in its parent's stream.
      historyUnseen: task === undefined ? inheritsHistory(input) : task.life.inheritsHistory,
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
  if (input.stream.tasks !== undefined) return analyzeCpuStreams([input], options);
  const started = process.hrtime.bigint();
  const decoder = insnDecoderFor(input);
  const detectors = createDetectors(input, options, () => decoder.offset);
  const streaming = runStandalonePasses(detectors);
  const walked = streaming.length > 0 || streaming.length === detectors.length;
  const walker = new ControlFlowWalker(decoder, streaming);
  const flow = walked ? walker.run() : { ...NOT_WALKED };
  return analyzeResult(input, detectors, flow, started, walked);
}

/** A detector that reads the raw trace in a pass of its own (FlowGuard; detector.ts marks it). */
export function isStandalone(d: Detector): boolean {
  return isStandaloneName(d.name);
}

/**
 * Run the standalone detectors' own passes over the trace (FlowGuard reads
 * packets itself) and return the others, which consume the control-flow stream.
 */
export function runStandalonePasses(detectors: readonly Detector[]): Detector[] {
  for (const d of detectors) if (isStandalone(d)) (d as unknown as { runStandalone(): void }).runStandalone();
  return detectors.filter((d) => !isStandalone(d));
}

/**
 * The per-CPU streams of a recording, analysed together: each thread gets
 * its own detectors, with its process's image, and every CPU's runs of it
 * reach them in the order they ran (walkCpuStreams). Detectors are kept per
 * thread life: a thread that exec'd, or a tid reused after an EXIT, starts
 * new ones (a new shadow stack). FlowGuard, which reads packets, runs per
 * thread on the runs of each (flowguard-tasks.ts).
 */
export function analyzeCpuStreams(inputs: readonly TraceInput[], options: AnalyzeOptions = {}): AnalyzeResult {
  const w = walkCpuLives(inputs, options, null);
  const first = inputs[0]!;
  const name = inputs.length === 1 ? first.name : `${first.recording.name} cpu ${inputs.map((i) => i.stream.cpu).join(',')}`;
  const subject = { name, notes: inputs.flatMap((i) => i.notes), stream: { pid: null, tid: null } };
  const threads = new Map<Detector, ThreadRef>();
  for (const l of w.lives) for (const d of [...l.standalone, ...l.streaming]) threads.set(d, { pid: l.task!.pid, tid: l.task!.tid });
  const threadOf = (d: Detector): ThreadRef => threads.get(d) ?? { pid: null, tid: null };
  return analyzeResult(subject, [...w.standalone, ...w.unknown.streaming, ...w.lives.flatMap((l) => l.streaming)], w.flow, w.started, w.walked, threadOf);
}

/** One thread life's share of {@link analyzeCpuThreads}. */
export interface ThreadLifeAnalysis<C extends FlowConsumer> {
  /** The life's first run (its pid/tid, name and address space); null: runs before the sideband named any task. */
  task: StreamTask | null;
  /** Its detectors' findings, notes and statistics, and the flow of its runs alone. */
  result: AnalyzeResult;
  /** The caller's consumers of this life. */
  consumers: C[];
  /** The findings of each of its detectors that rode the walk, in the order it made them (`result.findings` is in offset order). */
  made: (readonly Finding[])[];
}

/** What a caller of {@link analyzeCpuThreads} walks beside the detectors. */
export interface ThreadLifeHooks<C extends FlowConsumer> {
  /** The caller's consumers of a life (null: before any task is known), fed with its detectors. */
  consumers(task: StreamTask | null): C[];
  /**
   * Which CPU's stream runs from now on (before its step); `found`: the
   * findings the detectors of the runs before any task is known have made
   * so far, by detector.
   */
  running?(decoder: InsnDecoder, input: TraceInput, found: ReadonlyMap<string, number>): void;
  /** A task switch, before the new task's consumers hear anything; `found`: the findings its life's detectors have made so far, by detector. */
  switched?(task: StreamTask, found: ReadonlyMap<string, number>): void;
}

/** How many findings each detector has made so far. */
function foundSoFar(detectors: readonly Detector[]): Map<string, number> {
  return new Map(detectors.map((d) => [d.name, d.findings().length]));
}

/**
 * {@link analyzeCpuStreams} kept apart per thread life: one result per life
 * that decoded or found anything (the runs before any task is known first,
 * then the lives in the order they first ran), each as its thread's stream
 * would give alone. The caller's consumers of each life ride the same
 * walk. Counting each life's instructions takes the instruction-wise walk.
 */
export function analyzeCpuThreads<C extends FlowConsumer>(inputs: readonly TraceInput[], options: AnalyzeOptions, hooks: ThreadLifeHooks<C>): ThreadLifeAnalysis<C>[] {
  const w = walkCpuLives(inputs, options, hooks);
  const first = inputs[0]!;
  const notes = inputs.flatMap((i) => i.notes);
  // A life whose runs decoded nothing and found nothing has nothing to say; if none has, the first says that nothing was decoded.
  const held = (l: CpuLife<C>): boolean => l.counter!.flow.instructions + l.counter!.flow.errors > 0 || [...l.standalone, ...l.streaming].some((d) => d.findings().length > 0);
  const kept = [w.unknown, ...w.lives].filter(held);
  return (kept.length > 0 ? kept : [w.unknown]).map((l) => {
    const name = l.task !== null ? `${first.recording.name} ${taskTitle(l.task)}` : `${first.recording.name}: before any task is known`;
    const subject = { name, notes, stream: { pid: l.task?.pid ?? null, tid: l.task?.tid ?? null } };
    return { task: l.task, result: analyzeResult(subject, [...l.standalone, ...l.streaming], l.counter!.flow, w.started), consumers: l.consumers, made: l.streaming.map((d) => d.findings()) };
  });
}

/** Counts the flow of one thread life (the walker's counts are per CPU). */
class LifeFlow implements FlowConsumer {
  readonly flow: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  onInstruction(): void {
    this.flow.instructions++;
  }
  onTransfer(): void {
    this.flow.transfers++;
  }
  onGap(): void {
    this.flow.gaps++;
  }
  onError(): void {
    this.flow.errors++;
  }
}

/** One thread life of a per-CPU walk: its detectors, and with hooks, the caller's consumers and its flow counts. */
interface CpuLife<C extends FlowConsumer> {
  task: StreamTask | null;
  standalone: Detector[];
  streaming: Detector[];
  consumers: C[];
  counter: LifeFlow | null;
  /** When it first ran in the walk (Infinity: never). */
  order: number;
}

/**
 * The one walk of per-CPU streams behind {@link analyzeCpuStreams} and
 * {@link analyzeCpuThreads}: detectors per thread life (FlowGuard per
 * thread on its runs first), every CPU's runs in the order they ran
 * (walkCpuStreams). `hooks` adds the caller's consumers and a flow count
 * per life. Returns the lives before any task is known, the lives in the
 * order they first ran, and the FlowGuards in the order they were made.
 */
function walkCpuLives<C extends FlowConsumer>(
  inputs: readonly TraceInput[],
  options: AnalyzeOptions,
  hooks: ThreadLifeHooks<C> | null,
): { unknown: CpuLife<C>; lives: CpuLife<C>[]; standalone: Detector[]; flow: FlowStats; walked: boolean; started: bigint } {
  const started = process.hrtime.bigint();
  const first = inputs[0]!;
  let current: InsnDecoder | null = null;
  const offset = (): number => current?.offset ?? 0;
  const open = (task: StreamTask | null, streaming: Detector[], order: number): CpuLife<C> => ({ task, standalone: [], streaming, consumers: hooks?.consumers(task) ?? [], counter: hooks !== null ? new LifeFlow() : null, order });
  const byLife = new Map<TaskLife, CpuLife<C>>();
  const lifeOf = (task: StreamTask): CpuLife<C> => {
    let life = byLife.get(task.life);
    if (life === undefined) byLife.set(task.life, (life = open(task, [], Infinity)));
    return life;
  };
  const made = createDetectors(first, options, offset);
  const unknown = open(null, made.filter((d) => !isStandalone(d)), -1);
  // FlowGuard (the one standalone detector) reads packets: per thread on the runs of each (flowguard-tasks.ts).
  const standalone = made.some(isStandalone)
    ? runFlowGuardPerTask(inputs, (input, task) => {
        const d = createDetectors(input, options, offset, task).find(isStandalone) as FlowGuardDetector;
        lifeOf(task).standalone.push(d);
        return d;
      })
    : [];
  let runs = 0;
  const setOf = (life: CpuLife<C>): FlowConsumer[] => [...life.streaming, ...life.consumers, ...(life.counter !== null ? [life.counter] : [])];
  const perTask = new TaskDetectors<FlowConsumer>(
    setOf(unknown),
    (t) => {
      const task = t as StreamTask;
      const life = lifeOf(task);
      life.order = runs++;
      life.streaming = createDetectors(first, options, offset, task).filter((d) => !isStandalone(d));
      return setOf(life);
    },
    (task) => (task as StreamTask).life,
  );
  const consumers: FlowConsumer[] =
    hooks?.switched !== undefined ? [{ onTask: (task) => hooks.switched!(task as StreamTask, foundSoFar(byLife.get((task as StreamTask).life)?.streaming ?? [])) }, perTask] : [perTask];
  const walked = hooks !== null || unknown.streaming.length > 0 || standalone.length === 0;
  const flow: FlowStats = walked
    ? walkCpuStreams(inputs, consumers, (d, input) => {
        current = d;
        hooks?.running?.(d, input, foundSoFar(unknown.streaming));
      })
    : { ...NOT_WALKED };
  const lives = [...byLife.values()].sort((a, b) => a.order - b.order);
  return { unknown, lives, standalone, flow, walked, started };
}

/** What a result is about: an input, or several CPUs' streams analysed together. */
interface ResultSubject {
  readonly name: string;
  readonly notes: readonly string[];
  readonly stream: { readonly pid: number | null; readonly tid: number | null };
}

/**
 * What {@link analyzeGroup} takes at once: the per-CPU streams of a
 * recording together (a thread's runs cross CPUs), every other stream alone.
 */
export function analysisGroups(inputs: readonly TraceInput[]): TraceInput[][] {
  const groups: TraceInput[][] = [];
  let cpus: TraceInput[] | null = null;
  for (const input of inputs) {
    if (input.stream.tasks === undefined) groups.push([input]);
    else if (cpus === null) groups.push((cpus = [input]));
    else cpus.push(input);
  }
  return groups;
}

/** Analyse one group of {@link analysisGroups}. */
export function analyzeGroup(group: readonly TraceInput[], options: AnalyzeOptions = {}): AnalyzeResult {
  return group.length === 1 && group[0]!.stream.tasks === undefined ? analyzeTrace(group[0]!, options) : analyzeCpuStreams(group, options);
}

/**
 * The result of a walk (serial, or the parallel one stitched back
 * together): the detectors' findings in trace order, what they could not
 * check, and decode errors as unchecked stretches. `started` is the
 * walk's hrtime at its start.
 */
export function analyzeResult(input: ResultSubject, detectors: readonly Detector[], flow: FlowStats, started: bigint, walked = true, threadOf?: (d: Detector) => ThreadRef): AnalyzeResult {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const findings = detectors.flatMap((d) => d.findings()).sort((a, b) => a.offset - b.offset);
  const unchecked = mergeUnchecked(detectors.flatMap((d) => (threadOf === undefined ? d.unchecked() : d.unchecked().map((n) => ({ ...n, ...threadOf(d) })))));
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
    notes: [...input.notes],
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
    d.deriveStats?.(seen.stats);
  }
  return [...byName.values()];
}

/** Notes with the same detector, reason and thread are one note (per-CPU streams have several detector sets per thread). */
function mergeUnchecked(notes: (UncheckedNote & Partial<ThreadRef>)[]): (UncheckedNote & Partial<ThreadRef>)[] {
  const byKey = new Map<string, UncheckedNote & Partial<ThreadRef>>();
  for (const n of notes) {
    const key = `${n.detector}\0${n.reason}\0${n.pid}\0${n.tid}`;
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
  return analysisGroups(traceInputs(recording)).map((group) => analyzeGroup(group, options));
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
