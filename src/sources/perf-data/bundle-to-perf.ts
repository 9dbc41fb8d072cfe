import { resolve } from 'node:path';
import type { TraceSource } from '../../packets/trace-source.js';
import type { Recording } from '../model/recording.js';
import { firstPsbTsc, lastTsc } from './trace-start.js';
import { defaultIntelPtInfo, INTEL_PT_CONFIG, type IntelPtInfo } from './auxtrace-info.js';
import { exportFeatures } from './export-features.js';
import { type AuxBuffer, type PerfDataLayout, type SidebandEvent, writePerfData } from './writer.js';

/**
 * Export a recording (bundle, or raw trace with images) as a perf.data that
 * `perf script --itrace=...` decodes, laid out as perf's per-thread mode
 * (`perf record --per-thread`, one event and one AUX area per thread) lays
 * it out:
 *
 * - sideband per task, in the order the tasks started: the program's COMM
 *   (exec), FORK for every other thread and process (a forked process
 *   inherits its parent's mappings, as in the kernel and perf), COMM for a
 *   named thread, MMAP2 for each image of a process that it did not
 *   inherit (naming the bundle's copy of the file, so perf reads exactly the
 *   recorded code), ITRACE_START for each traced thread, and EXIT for every
 *   task once its trace is over (children first);
 * - one AUX queue per thread: its trace as AUXTRACE buffers carrying that
 *   thread's tid and cpu -1. A thread that ran several programs (exec
 *   starts a new stream) keeps one queue, with a COMM exec and the new
 *   program's MMAP2s before the next stream's buffer.
 *
 * Timing: with TSC packets on, sideband times are TSC values (identity
 * TIME_CONV): the start records just before the first TSC of any stream,
 * the EXITs after the last, and each AUXTRACE reference is its stream's
 * first TSC (perf ignores 7-byte TSC packets without a reference). Perf
 * 6.1 crashes on a timed trace whose first TSC follows code, so a
 * recording with a stream whose first PSB+ has no TSC is exported for
 * timeless decoding: perf then decodes each thread at its EXIT, with the
 * images its process has then.
 */

/**
 * The images each process has in the sideband written so far: its own
 * MMAP2s, what it inherited at fork, none after an exec. Gives the MMAP2s a
 * process still needs.
 */
export class ProcessMappings {
  private readonly mapped = new Map<number, Set<string>>();

  /** fork: a new process starts with its parent's mappings (a thread shares them). */
  inherit(pid: number, parentPid: number): void {
    if (parentPid !== pid) this.mapped.set(pid, new Set(this.mapped.get(parentPid) ?? []));
  }

  /** exec: the image set is replaced. */
  clear(pid: number): void {
    this.mapped.set(pid, new Set());
  }

  /** The MMAP2 records `pid` needs for `images` (those it has not mapped yet), at `time` on `cpu`. */
  mmaps(pid: number, images: readonly ExportImage[], time: () => bigint, cpu: number): SidebandEvent[] {
    const have = this.mapped.get(pid) ?? new Set<string>();
    this.mapped.set(pid, have);
    const out: SidebandEvent[] = [];
    for (const im of images) {
      const key = `${resolve(im.file)}:${im.offset}:${im.size}:${im.address}`;
      if (have.has(key)) continue;
      have.add(key);
      out.push({ kind: 'mmap2', time: time(), cpu, pid, tid: pid, addr: im.address, len: BigInt(im.size), pgoff: BigInt(im.offset), filename: resolve(im.file) });
    }
    return out;
  }
}

/** `size` bytes of `file` from `offset` mapped at `address`. */
export interface ExportImage {
  file: string;
  offset: number;
  size: number;
  address: bigint;
}

/** A thread or process that ran (traced or not). */
export interface ExportTask {
  pid: number;
  tid: number;
  /** The task that created it (FORK), or null for the program started and tasks whose creator was not recorded. */
  parent: { pid: number; tid: number } | null;
  /** COMM: a program name (exec, at most 15 characters are kept by perf) or a thread's name; null inherits the creator's. */
  comm: { name: string; exec: boolean } | null;
}

/** One PT stream: a thread's trace while it ran one program, and that program's images. */
export interface ExportStream {
  pid: number;
  tid: number;
  trace: TraceSource | Uint8Array;
  images: ExportImage[];
  /** The program it runs, when the stream starts at an exec in a thread that already had a stream. */
  execComm?: string;
  /** Image epochs of code rewritten while it ran (image-timeline.ts), which perf.data cannot carry; absent: none. */
  imageEpochs?: number;
}

/** What the exporter needs; {@link exportInputFrom} builds it from a recording. */
export interface ExportInput {
  /** Every task, in the order they started; tasks of streams missing here are added. */
  tasks: ExportTask[];
  /** The streams; several of one thread (exec) follow each other in its queue, in this order. */
  streams: ExportStream[];
  timing?: { tsc: boolean; mtc: boolean; cyc: boolean; mtcFreq: number; cpuid15?: { eax: number; ebx: number } };
  retCompression?: boolean;
  /** HEADER_CPUID; default a Skylake client ("GenuineIntel,6,158,9"). */
  cpuId?: string;
  cmdline?: string[];
}

export interface ExportResult extends PerfDataLayout {
  /** Whether the file decodes with timestamps (TSC on and a TSC in the first PSB+ of every stream). */
  timed: boolean;
  /** AUX queues written: one per traced thread. */
  queues: number;
  warnings: string[];
}

/** The pid of a stream that names none (a version-1 bundle, a raw trace). */
const DEFAULT_PID = 1000;

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

/**
 * The export input for a recording: every process and thread it holds,
 * every non-empty stream with its images, and the recorder's timing
 * settings. Opens each stream's trace: close them after the export
 * ({@link closeExportInput}).
 */
export function exportInputFrom(recording: Recording): ExportInput {
  const settings = recording.settings as { retCompression?: unknown; timing?: { tsc?: unknown; mtc?: unknown; cyc?: unknown } };
  const timing = settings.timing !== null && typeof settings.timing === 'object' ? settings.timing : undefined;
  const program = recording.program;
  const streams = recording.streams.filter((st) => st.size > 0);
  if (streams.length === 0) throw new Error(`${recording.name}: the recording has no trace to export`);
  // A per-CPU stream interleaves tasks: it has no place in a per-thread layout.
  const perCpu = streams.find((st) => st.cpu !== null);
  if (perCpu !== undefined) throw new Error(`${recording.name}: ${perCpu.label} is a per-CPU stream (a hardware recording, already a perf.data); export-perf writes per-thread streams`);
  const config = streams[0]!.config;

  // A process that execs has one stream per program: its program (the
  // last it ran) names the last, and the one it was forked as has no name
  // of its own (perf: the child inherits its parent's comm).
  const streamsOf = new Map<string, number>();
  for (const st of streams) if (st.pid !== null) streamsOf.set(`${st.pid}/${st.tid ?? st.pid}`, (streamsOf.get(`${st.pid}/${st.tid ?? st.pid}`) ?? 0) + 1);
  const pids = new Set(recording.processes.map((p) => p.pid));
  const programOf = new Map<number, string>();
  const tasks: ExportTask[] = [];
  recording.processes.forEach((p, i) => {
    const path = p.program?.path;
    const execs = (streamsOf.get(`${p.pid}/${p.pid}`) ?? 0) > 1;
    // The program started is named from the start; another process's program once it runs it.
    const started = i === 0 ? program?.path ?? path : undefined;
    if (path !== undefined && path !== started) programOf.set(p.pid, baseName(path));
    const first = started ?? (execs ? undefined : path);
    tasks.push({
      pid: p.pid,
      tid: p.pid,
      parent: p.ppid !== null && pids.has(p.ppid) && p.ppid !== p.pid ? { pid: p.ppid, tid: p.ppid } : null,
      comm: first !== undefined ? { name: baseName(first), exec: true } : null,
    });
    for (const t of recording.threads) {
      if (t.pid !== p.pid || t.tid === p.pid) continue;
      tasks.push({ pid: t.pid, tid: t.tid, parent: { pid: t.pid, tid: t.pid }, comm: t.name !== null ? { name: t.name, exec: false } : null });
    }
  });
  if (tasks.length === 0) {
    // No process list (a version-1 bundle, a raw trace): the program is the one task.
    const first = streams[0]!;
    const pid = first.pid ?? DEFAULT_PID;
    tasks.push({ pid, tid: first.tid ?? pid, parent: null, comm: { name: baseName(program?.path ?? 'program'), exec: true } });
  }

  const seen = new Map<string, number>();
  const out: ExportStream[] = streams.map((st) => {
    const pid = st.pid ?? tasks[0]!.pid;
    const tid = st.tid ?? pid;
    const key = `${pid}/${tid}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    const images = st.mappings.map((im) => ({ file: im.file, offset: im.offset, size: im.size, address: BigInt.asUintN(64, BigInt(im.address)) }));
    const epochs = st.image.timeline !== null ? { imageEpochs: st.image.timeline.offsets.length } : {};
    if (n === 1) return { pid, tid, trace: st.open(), images, ...epochs };
    // After an exec: the process's program if this is its last stream, else the first image's name.
    const last = n === streamsOf.get(key);
    const execComm = (last ? programOf.get(pid) : undefined) ?? st.mappings[0]?.displayName ?? 'program';
    return { pid, tid, trace: st.open(), images, execComm, ...epochs };
  });
  return {
    tasks,
    streams: out,
    timing: timing
      ? {
          tsc: timing.tsc === true,
          mtc: timing.mtc === true,
          cyc: timing.cyc === true,
          mtcFreq: config.mtcFreq,
          cpuid15: { eax: config.cpuid15Eax, ebx: config.cpuid15Ebx },
        }
      : undefined,
    retCompression: settings.retCompression !== false,
    cmdline: ['ptscope', 'record', ...(program?.argv ?? [])],
  };
}

/** Close the traces {@link exportInputFrom} opened. */
export function closeExportInput(input: ExportInput): void {
  for (const s of input.streams) if (!(s.trace instanceof Uint8Array)) s.trace.close();
}

/** The input's tasks, then any a stream names that they do not (a thread after its process's leader). Throws on a task listed twice. */
export function completeTasks(input: ExportInput): ExportTask[] {
  const tasks = [...input.tasks];
  const taskKey = (pid: number, tid: number): string => `${pid}/${tid}`;
  const known = new Set(tasks.map((k) => taskKey(k.pid, k.tid)));
  for (const s of input.streams) {
    if (known.has(taskKey(s.pid, s.tid))) continue;
    known.add(taskKey(s.pid, s.tid));
    tasks.push({ pid: s.pid, tid: s.tid, parent: s.tid !== s.pid && known.has(taskKey(s.pid, s.pid)) ? { pid: s.pid, tid: s.pid } : null, comm: null });
  }
  if (known.size !== tasks.length) throw new Error('a task is listed twice');
  return tasks;
}

/** Write `input` as the perf.data `path`. Throws an Error with one line for an input it cannot lay out. */
export function exportPerfData(path: string, input: ExportInput): ExportResult {
  const warnings: string[] = [];
  const t = input.timing ?? { tsc: false, mtc: false, cyc: false, mtcFreq: 0 };
  const streams = input.streams;
  if (streams.length === 0) throw new Error('no trace stream to export');
  if (streams.length > MAX_QUEUES) throw new Error(`${streams.length} trace streams: more than the ${MAX_QUEUES} this exporter writes`);

  const tasks = completeTasks(input);
  const taskKey = (pid: number, tid: number): string => `${pid}/${tid}`;
  for (const s of streams) {
    if (s.imageEpochs !== undefined && s.imageEpochs > 1) {
      warnings.push(`[${s.pid}/${s.tid}] ran code rewritten in place (${s.imageEpochs} image epochs): perf.data maps every version at once, so perf decodes each address with its last version`);
    }
  }

  // One queue per thread, in the order its first stream comes.
  const queueOf = new Map<string, number>();
  for (const s of streams) if (!queueOf.has(taskKey(s.pid, s.tid))) queueOf.set(taskKey(s.pid, s.tid), queueOf.size);
  const execs = new Set<string>();
  for (const s of streams) if (s.execComm !== undefined) execs.add(taskKey(s.pid, s.tid));

  let firstTscs: (bigint | null)[] = streams.map(() => null);
  if (t.tsc) {
    firstTscs = streams.map((s) => firstPsbTsc(s.trace));
    const missing = firstTscs.findIndex((v) => v === null || v < 1n << 16n);
    if (missing >= 0) {
      const s = streams[missing]!;
      warnings.push(`no TSC in the first PSB+ of [${s.pid}/${s.tid}]'s trace: exported for decoding without timestamps`);
      firstTscs = streams.map(() => null);
    }
  }
  const timed = t.tsc && firstTscs.every((v) => v !== null);
  if (!timed) {
    for (const k of execs) warnings.push(`[${k}] ran several programs (exec): without timestamps perf decodes the whole thread with the images it has at its exit`);
  }

  let config = INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch;
  if (timed) config |= INTEL_PT_CONFIG.tsc;
  if (t.mtc) config |= INTEL_PT_CONFIG.mtc | (BigInt(t.mtcFreq & 0xf) << INTEL_PT_CONFIG.mtcPeriodShift);
  if (t.cyc) config |= INTEL_PT_CONFIG.cyc;
  if (input.retCompression === false) config |= INTEL_PT_CONFIG.noretcomp;

  const info: IntelPtInfo = defaultIntelPtInfo(8);
  info.perCpuMmaps = false;
  if (t.cpuid15) {
    info.tscCtcN = t.cpuid15.ebx;
    info.tscCtcD = t.cpuid15.eax;
  }

  // The start sideband, in task order; times are filled in below.
  const cpu = -1;
  const start: SidebandEvent[] = [];
  const mapped = new ProcessMappings();
  const mmaps = (pid: number, images: readonly ExportImage[]): void => {
    start.push(...mapped.mmaps(pid, images, () => 0n, cpu));
  };
  const firstStream = new Map<string, ExportStream>();
  for (const s of streams) if (!firstStream.has(taskKey(s.pid, s.tid))) firstStream.set(taskKey(s.pid, s.tid), s);
  for (const k of tasks) {
    if (k.parent !== null) {
      start.push({ kind: 'fork', time: 0n, cpu, pid: k.pid, ppid: k.parent.pid, tid: k.tid, ptid: k.parent.tid });
      // A new process starts with its parent's mappings (a thread shares them).
      mapped.inherit(k.pid, k.parent.pid);
    }
    if (k.comm !== null) start.push({ kind: 'comm', time: 0n, cpu, pid: k.pid, tid: k.tid, comm: k.comm.name.slice(0, 15), exec: k.comm.exec });
    const s = firstStream.get(taskKey(k.pid, k.tid));
    if (s !== undefined) {
      mmaps(k.pid, s.images);
      start.push({ kind: 'itrace-start', time: 0n, cpu, pid: k.pid, tid: k.tid });
    }
  }

  // Times: identity TIME_CONV, so perf time = TSC. Timed: the start records
  // just before the earliest trace, each exec just before its stream.
  const earliest = timed ? firstTscs.reduce((a, b) => (b! < a! ? b : a))! : 0n;
  let clock = timed ? earliest - BigInt(start.length) - 1n : 1n;
  if (clock < 1n) throw new Error('the first TSC is too small to place the sideband before it');
  for (const e of start) e.time = clock++;
  const sideband: SidebandEvent[] = [...start];
  const lastTscs = timed ? streams.map((s) => lastTsc(s.trace)) : [];
  const previous = new Map<string, number>();
  streams.forEach((s, i) => {
    const key = taskKey(s.pid, s.tid);
    const before = previous.get(key);
    previous.set(key, i);
    if (s.execComm === undefined) return;
    // The exec just before the new program's first TSC, and never before the sideband already placed.
    let at = clock;
    if (timed) {
      const first = firstTscs[i]!;
      const last = before !== undefined ? lastTscs[before] ?? firstTscs[before]! : null;
      if (last !== null && first <= last) {
        warnings.push(`[${key}] ran several programs (exec), but the clock of its stream for ${s.execComm} restarts (first TSC 0x${first.toString(16)}, not after the last before the exec, 0x${last.toString(16)}): perf decodes the instructions before the exec with the new program's images`);
      }
      const wanted = first - BigInt(1 + s.images.length);
      if (wanted > at) at = wanted;
    }
    sideband.push({ kind: 'comm', time: at, cpu, pid: s.pid, tid: s.tid, comm: s.execComm.slice(0, 15), exec: true });
    // exec replaces the image set: map the new program's images again.
    mapped.clear(s.pid);
    const mark = start.length;
    mmaps(s.pid, s.images);
    start.splice(mark).forEach((e, j) => sideband.push({ ...e, time: at + 1n + BigInt(j) }));
    clock = at + 1n + BigInt(s.images.length);
  });
  // EXITs once every trace is over: children and threads first.
  let end = clock;
  for (const last of lastTscs) if (last !== null && last >= end) end = last + 1n;
  for (const k of [...tasks].reverse()) {
    const parent = k.parent ?? { pid: k.pid, tid: k.tid };
    sideband.push({ kind: 'exit', time: end++, cpu, pid: k.pid, ppid: parent.pid, tid: k.tid, ptid: parent.tid });
  }

  const aux: AuxBuffer[] = streams.map((s, i) => ({ idx: queueOf.get(taskKey(s.pid, s.tid))!, cpu, tid: s.tid, data: s.trace, reference: firstTscs[i] ?? 0n }));
  const layout = writePerfData(path, {
    info,
    ptConfig: config,
    sideband,
    aux,
    ...exportFeatures(input, streams, 1),
  });
  return { ...layout, timed, queues: queueOf.size, warnings };
}

/** AUX queues (threads) one export writes at most: perf opens two events per thread. */
export const MAX_QUEUES = 1 << 14;
