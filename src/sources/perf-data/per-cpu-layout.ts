import type { TraceSource } from '../../packets/trace-source.js';
import { defaultIntelPtInfo, INTEL_PT_CONFIG } from './auxtrace-info.js';
import {
  completeTasks,
  type ExportImage,
  type ExportInput,
  type ExportResult,
  type ExportStream,
  type ExportTask,
  ProcessMappings,
} from './bundle-to-perf.js';
import { CpuTraceBuilder } from './cpu-trace-builder.js';
import { exportFeatures } from './export-features.js';
import { seededRandom } from '../seeded-random.js';
import { cutRuns, type TraceRun } from './thread-runs.js';
import { type AuxBuffer, type SidebandEvent, writePerfData } from './writer.js';

/**
 * Export a recording's per-thread traces as perf's default per-CPU layout
 * (`perf record -e intel_pt//u -- prog`: one AUX area per CPU, on which the
 * traced tasks run one after another), for tests of per-CPU importers and
 * decoders on data no hardware here can produce.
 *
 * Each thread's trace is cut into its runs (./thread-runs.ts) and the runs
 * are scheduled onto `cpus` virtual CPUs: each thread's runs in its own
 * order, one CPU at a time, a child's after the run of its creator that
 * ended in the clone (the first run whose resumption IP is the child's
 * first IP; else its creator's first run), an exec'd program's once every
 * other thread of its process is done (exec ends them). Which ready thread a CPU runs next is drawn
 * from a seeded generator, so threads interleave as on a real machine and
 * the same seed gives the same file. The machine has one clock (perf's time
 * is the TSC): the CPUs run in parallel, a CPU that becomes free takes a
 * ready thread, and a thread is ready only once its previous run has ended,
 * on whatever CPU, plus the kernel time of its syscall (and any wait), so a
 * thread's runs on all CPUs are disjoint and in its own order while threads
 * migrate. A thread placed on another CPU than its last was switched out of
 * that one (to the idle task) when its last run ended; placements are made
 * in time order, so a task switched out by a later one is never already
 * running elsewhere. Each CPU's trace is one packet stream
 * (./cpu-trace-builder.ts): each run's TSCs are moved to the time it runs.
 *
 * Sideband, as the kernel writes it for perf with per-CPU mmaps: the
 * program's COMM and MMAP2s at the start; a child's FORK (and COMM, and the
 * MMAP2s it did not inherit) and a thread's EXIT just after the run that
 * ended in that syscall (a process's EXIT once all its threads are done),
 * an exec's COMM and MMAP2s just before the new program's first run; per CPU an ITRACE_START for its first task
 * (the kernel logs one per CPU event); and at each task change
 * SWITCH_CPU_WIDE out (the previous task, naming the next) and in (the next,
 * naming the previous), between the previous run's TIP.PGD and the next
 * run's TIP.PGE, with the CPU's idle task (pid 0) before the first and after
 * the last. Every record carries its CPU.
 *
 * Return compression is refused: a compressed RET refers to the calls at
 * the top of the CPU's return stack, which another task's run has replaced.
 * MTC/CYC timing is refused (their counters are per CPU; moving a run would
 * need them recomputed), and TSC is required (perf orders the switches and
 * the trace by it).
 */

export interface PerCpuOptions {
  /** Virtual CPUs (1 to {@link MAX_CPUS}). */
  cpus: number;
  /** Seed of the scheduling choices (default 1). */
  seed?: number;
  /** Bytes of a CPU's trace after which a PSB+ is inserted between runs (default 4096, the hardware's default). */
  psbPeriod?: number;
}

export interface PerCpuResult extends ExportResult {
  /** Per CPU: the threads ("pid/tid") of its runs, in order (consecutive runs of one thread appear once). */
  schedule: string[][];
}

export const MAX_CPUS = 256;
/** Traces one per-CPU export holds in memory at most (the CPU traces built from them take as much again). */
export const MAX_PER_CPU_TRACE_BYTES = 1 << 29;
/** Runs times threads a schedule may weigh (each placement looks at every thread). */
const MAX_SCHEDULE_WORK = 1 << 28;
/** The recorder's first TSC: the layout's clock starts there too. */
const CLOCK_START = 1 << 24;

/** Why a recording cannot be laid out per CPU, as one line naming the `record` option that fixes it; null if it can. */
export function perCpuRefusal(input: ExportInput): string | null {
  const t = input.timing;
  if (input.retCompression !== false) return 'a per-CPU layout needs a recording without return compression (a compressed RET refers to the calls of the task that ran before it on the CPU): record with ptscope record --noretcomp --timing tsc';
  if (t === undefined || !t.tsc) return 'a per-CPU layout needs TSC packets (perf orders the tasks on each CPU by time): record with ptscope record --timing tsc --noretcomp';
  if (t.mtc || t.cyc) return 'a per-CPU layout cannot move MTC/CYC timing between CPUs: record with ptscope record --timing tsc --noretcomp (TSC only)';
  return null;
}

function readAll(trace: TraceSource | Uint8Array): Uint8Array {
  if (trace instanceof Uint8Array) return trace;
  const out = new Uint8Array(trace.size);
  for (let pos = 0; pos < out.length; ) {
    const n = trace.read(out, pos, pos, out.length - pos);
    if (n <= 0) throw new Error(`trace source ended at 0x${pos.toString(16)} of 0x${out.length.toString(16)}`);
    pos += n;
  }
  return out;
}

/** A run and what it takes along. */
interface RunRef {
  run: TraceRun;
  trace: Uint8Array;
  label: string;
  /** Clock ticks from its start to its end (at least to its last TSC; to the thread's next run when there is one). */
  duration: number;
  /** Tasks whose creation (clone) ended this run. */
  creates: ExportTask[];
  /** The first run of a program an exec started: that stream (its COMM and MMAP2s precede the run). */
  execs: ExportStream | null;
}

interface ThreadState {
  key: string;
  pid: number;
  tid: number;
  runs: RunRef[];
  next: number;
  /** The clock from which it may run again (Infinity: not created yet). */
  readyAt: number;
  /** The CPU it was last switched in on and not yet out of (its last run ended there), or null. */
  on: Cpu | null;
}

interface Cpu {
  index: number;
  builder: CpuTraceBuilder;
  /** Its clock: the time of the last thing on it. */
  free: number;
  /** The task switched in (null: the idle task). */
  current: ThreadState | null;
  /** A task ran on it (its ITRACE_START is written). */
  started: boolean;
  schedule: string[];
}

/** Write `input` as a per-CPU perf.data at `path`. Throws an Error with one line for an input it cannot lay out. */
export function exportPerfDataPerCpu(path: string, input: ExportInput, options: PerCpuOptions): PerCpuResult {
  const refusal = perCpuRefusal(input);
  if (refusal !== null) throw new Error(refusal);
  const nCpus = options.cpus;
  if (!Number.isInteger(nCpus) || nCpus < 1 || nCpus > MAX_CPUS) throw new Error(`--per-cpu: expected 1 to ${MAX_CPUS} CPUs, got ${nCpus}`);
  const rng = seededRandom(options.seed ?? 1);
  const psbPeriod = options.psbPeriod ?? 4096;
  const streams = input.streams;
  if (streams.length === 0) throw new Error('no trace stream to export');
  const tasks = completeTasks(input);
  const warnings: string[] = [];
  const key = (pid: number, tid: number): string => `${pid}/${tid}`;

  // Each thread's runs, over its streams in order.
  let bytes = 0;
  const threads = new Map<string, ThreadState>();
  for (const s of streams) {
    const size = s.trace instanceof Uint8Array ? s.trace.length : s.trace.size;
    bytes += size;
    if (bytes > MAX_PER_CPU_TRACE_BYTES) throw new Error(`the traces exceed the ${MAX_PER_CPU_TRACE_BYTES >> 20} MiB a per-CPU export holds in memory`);
    const k = key(s.pid, s.tid);
    const label = `[${k}]`;
    const trace = readAll(s.trace);
    let th = threads.get(k);
    if (!th) threads.set(k, (th = { key: k, pid: s.pid, tid: s.tid, runs: [], next: 0, readyAt: Infinity, on: null }));
    const runs = cutRuns(trace, label);
    if (runs.length === 0) {
      if (s.execComm !== undefined) warnings.push(`${label}: the trace of ${s.execComm} has no run: its exec is not in the sideband`);
      continue;
    }
    const refs = runs.map((run) => ({ run, trace, label, duration: 0, creates: [], execs: null }) as RunRef);
    if (s.execComm !== undefined) refs[0]!.execs = s;
    th.runs.push(...refs);
  }
  const totalRuns = [...threads.values()].reduce((a, th) => a + th.runs.length, 0);
  if (totalRuns * threads.size > MAX_SCHEDULE_WORK) throw new Error(`${totalRuns} runs of ${threads.size} threads: too many to schedule (at most ${MAX_SCHEDULE_WORK} runs times threads)`);
  for (const th of threads.values()) {
    th.runs.forEach((r, i) => {
      const next = th.runs[i + 1];
      r.duration = Math.max(r.run.lastTsc - r.run.startTsc, next !== undefined ? next.run.startTsc - r.run.startTsc - 1 : 0);
    });
  }
  // An unfinished run (the trace ends with tracing on) can only be the last of its thread.
  for (const th of threads.values()) {
    const open = th.runs.findIndex((r) => !r.run.disabled);
    if (open >= 0 && open !== th.runs.length - 1) throw new Error(`[${th.key}]: tracing stays on at the end of a trace that is followed by another`);
  }

  // Which run of its creator ended in each task's creation.
  const claimed = new Set<RunRef>();
  const createdBy = new Map<string, RunRef | null>();
  for (const t of tasks) {
    if (t.parent === null) continue;
    // A clone ends a run with a TIP.PGD: only such runs create tasks.
    const parentRuns = threads.get(key(t.parent.pid, t.parent.tid))?.runs ?? [];
    if (parentRuns.length === 0 || !parentRuns[0]!.run.disabled) continue;
    const first = threads.get(key(t.pid, t.tid))?.runs[0];
    let by = parentRuns[0]!;
    if (first !== undefined) {
      // clone returns in both tasks at the instruction after it.
      const k = parentRuns.findIndex((r, i) => i > 0 && r.run.enableIp === first.run.enableIp && !claimed.has(parentRuns[i - 1]!));
      if (k > 0) by = parentRuns[k - 1]!;
    }
    claimed.add(by);
    by.creates.push(t);
    createdBy.set(key(t.pid, t.tid), by);
  }

  // Sideband helpers: images each process has (own MMAP2s and what it inherited).
  const sideband: SidebandEvent[] = [];
  const mapped = new ProcessMappings();
  const mmaps = (pid: number, images: readonly ExportImage[], cpu: number, clock: () => number): void => {
    sideband.push(...mapped.mmaps(pid, images, () => BigInt(clock()), cpu));
  };
  const firstStream = new Map<string, ExportStream>();
  for (const s of streams) if (!firstStream.has(key(s.pid, s.tid))) firstStream.set(key(s.pid, s.tid), s);
  /** A task's creation: FORK (a new process inherits its parent's images), COMM, the images of its first stream. */
  const create = (t: ExportTask, cpu: number, clock: () => number): void => {
    if (t.parent !== null) {
      sideband.push({ kind: 'fork', time: BigInt(clock()), cpu, pid: t.pid, ppid: t.parent.pid, tid: t.tid, ptid: t.parent.tid });
      mapped.inherit(t.pid, t.parent.pid);
    }
    if (t.comm !== null) sideband.push({ kind: 'comm', time: BigInt(clock()), cpu, pid: t.pid, tid: t.tid, comm: t.comm.name.slice(0, 15), exec: t.comm.exec });
    const s = firstStream.get(key(t.pid, t.tid));
    if (s !== undefined) mmaps(t.pid, s.images, cpu, clock);
  };

  let now = CLOCK_START;
  const tick = (): number => now++;
  // Tasks not created by a traced run exist from the start.
  for (const t of tasks) {
    if (createdBy.has(key(t.pid, t.tid))) continue;
    create(t, 0, tick);
    const th = threads.get(key(t.pid, t.tid));
    if (th) th.readyAt = now;
  }

  const cpus: Cpu[] = Array.from({ length: nCpus }, (_, index) => ({ index, builder: new CpuTraceBuilder(psbPeriod), free: now, current: null, started: false, schedule: [] }));
  const idle = { pid: 0, tid: 0 };
  const threadsOf = new Map<number, ThreadState[]>();
  for (const th of threads.values()) threadsOf.set(th.pid, [...(threadsOf.get(th.pid) ?? []), th]);
  const exited = new Set<string>();
  const exit = (t: { pid: number; tid: number }, cpu: number, clock: () => number): void => {
    const task = tasks.find((x) => x.pid === t.pid && x.tid === t.tid);
    const parent = task?.parent ?? { pid: t.pid, tid: t.tid };
    exited.add(key(t.pid, t.tid));
    sideband.push({ kind: 'exit', time: BigInt(clock()), cpu, pid: t.pid, ppid: parent.pid, tid: t.tid, ptid: parent.tid });
  };
  const done = (th: ThreadState): boolean => th.next >= th.runs.length;

  /** The time after the last placement's switch records. */
  let switched = now;
  const place = (cpu: Cpu, th: ThreadState): void => {
    const ref = th.runs[th.next]!;
    // A thread that migrates blocked at the end of its last run: its old CPU switched to idle then.
    const from = th.on;
    if (from !== null && from !== cpu) {
      let u = from.free;
      sideband.push({ kind: 'switch', time: BigInt(u++), cpu: from.index, pid: th.pid, tid: th.tid, out: true, nextPrev: idle });
      sideband.push({ kind: 'switch', time: BigInt(u++), cpu: from.index, pid: 0, tid: 0, out: false, nextPrev: { pid: th.pid, tid: th.tid } });
      from.free = u;
      from.current = null;
      th.on = null;
    }
    // One machine, one clock: every placement starts after the previous one's switch, so a task
    // switched out of a CPU by a later placement is never already running on another.
    let t = Math.max(cpu.free, th.readyAt, switched) + 16 + Math.floor(rng() * 256); // kernel time: the syscall, the scheduler
    const clock = (): number => t++;
    const prev = cpu.current ?? idle;
    if (cpu.current !== th) {
      sideband.push({ kind: 'switch', time: BigInt(clock()), cpu: cpu.index, pid: prev.pid, tid: prev.tid, out: true, nextPrev: { pid: th.pid, tid: th.tid } });
      if (!cpu.started) sideband.push({ kind: 'itrace-start', time: BigInt(clock()), cpu: cpu.index, pid: th.pid, tid: th.tid });
      sideband.push({ kind: 'switch', time: BigInt(clock()), cpu: cpu.index, pid: th.pid, tid: th.tid, out: false, nextPrev: { pid: prev.pid, tid: prev.tid } });
      cpu.schedule.push(th.key);
      if (cpu.current !== null) cpu.current.on = null;
      cpu.started = true;
    }
    switched = t;
    if (ref.execs !== null) {
      // The exec, on the CPU that runs the new program: its COMM, and its images replacing the old.
      const s = ref.execs;
      sideband.push({ kind: 'comm', time: BigInt(clock()), cpu: cpu.index, pid: s.pid, tid: s.tid, comm: (s.execComm ?? 'program').slice(0, 15), exec: true });
      mapped.clear(s.pid);
      mmaps(s.pid, s.images, cpu.index, clock);
    }
    cpu.builder.psbIfDue(clock());
    const start = clock();
    cpu.builder.appendRun(ref.trace, ref.run, start - ref.run.startTsc, ref.label);
    t = start + ref.duration + 1;
    // What the syscall that ended the run did: clone, exec, exit.
    for (const child of ref.creates) {
      create(child, cpu.index, clock);
      const c = threads.get(key(child.pid, child.tid));
      if (c) c.readyAt = t;
    }
    th.next++;
    if (done(th)) {
      if (th.tid !== th.pid) exit(th, cpu.index, clock);
      // A process's leader exits with its last thread.
      const all = threadsOf.get(th.pid) ?? [];
      if (all.every(done)) {
        for (const o of all) if (!exited.has(o.key)) exit(o, cpu.index, clock);
        if (!exited.has(key(th.pid, th.pid))) exit({ pid: th.pid, tid: th.pid }, cpu.index, clock);
      }
    }
    // The syscall that ended the run may block (a wait, a futex): others run meanwhile.
    th.readyAt = t + Math.floor(rng() * 4096);
    cpu.free = t;
    cpu.current = th;
    th.on = cpu;
  };

  // Runs that end with tracing off, interleaved; then the unfinished ones, each last on a CPU.
  // exec ends every other thread of the process: the new program runs once they are done.
  const execWaits = (th: ThreadState): boolean => th.runs[th.next]!.execs !== null && (threadsOf.get(th.pid) ?? []).some((o) => o !== th && !done(o));
  const ready = (th: ThreadState): boolean => !done(th) && th.runs[th.next]!.run.disabled && th.readyAt !== Infinity && !execWaits(th);
  for (;;) {
    const waiting = [...threads.values()].filter(ready);
    if (waiting.length === 0) break;
    // The first moment a CPU is free and a thread ready; any CPU free then may take it.
    const at = Math.max(Math.min(...cpus.map((c) => c.free)), Math.min(...waiting.map((th) => th.readyAt)));
    const idleCpus = cpus.filter((c) => c.free <= at);
    const cpu = idleCpus[Math.floor(rng() * idleCpus.length)]!;
    cpu.free = at;
    const runnable = waiting.filter((th) => th.readyAt <= at);
    place(cpu, runnable[Math.floor(rng() * runnable.length)]!);
  }
  const open = [...threads.values()].filter((th) => !done(th));
  if (open.some((th) => th.next !== th.runs.length - 1 || th.readyAt === Infinity)) throw new Error('the runs cannot be ordered after the sideband that creates their tasks');
  if (open.length > nCpus) throw new Error(`${open.length} threads' traces end with tracing on and each must be last on a CPU: export with --per-cpu ${open.length} or more`);
  const free = [...cpus].sort((a, b) => a.free - b.free);
  open.forEach((th, i) => place(free[i]!, th));

  // The end: each CPU goes idle; tasks still alive (untraced ones) exit.
  let end = Math.max(...cpus.map((c) => c.free));
  for (const cpu of cpus) {
    if (cpu.current === null) continue;
    let t = cpu.free + 1;
    sideband.push({ kind: 'switch', time: BigInt(t++), cpu: cpu.index, pid: cpu.current.pid, tid: cpu.current.tid, out: true, nextPrev: idle });
    sideband.push({ kind: 'switch', time: BigInt(t++), cpu: cpu.index, pid: 0, tid: 0, out: false, nextPrev: { pid: cpu.current.pid, tid: cpu.current.tid } });
    end = Math.max(end, t);
  }
  for (const t of [...tasks].reverse()) if (!exited.has(key(t.pid, t.tid))) exit(t, 0, () => end++);

  const config = INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch | INTEL_PT_CONFIG.tsc | INTEL_PT_CONFIG.noretcomp;
  const info = defaultIntelPtInfo(8);
  info.perCpuMmaps = true;
  info.haveSchedSwitch = 3; // the cpu-wide context_switch event perf adds for a task target
  const t = input.timing!;
  if (t.cpuid15) {
    info.tscCtcN = t.cpuid15.ebx;
    info.tscCtcD = t.cpuid15.eax;
  }
  const aux: AuxBuffer[] = [];
  for (const cpu of cpus) {
    if (!cpu.started) continue;
    const data = cpu.builder.finish();
    aux.push({ idx: cpu.index, cpu: cpu.index, tid: -1, data });
  }
  const layout = writePerfData(path, {
    info,
    ptConfig: config,
    sideband,
    aux,
    // perf opens the events on every cpu, traced or not.
    queues: cpus.map((c) => c.index),
    ...exportFeatures(input, streams, nCpus),
  });
  return { ...layout, timed: true, queues: aux.length, warnings, schedule: cpus.map((c) => c.schedule) };
}
