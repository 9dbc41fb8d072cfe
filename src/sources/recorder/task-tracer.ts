/**
 * Follows every thread and process of a recorded program from qemu's
 * per-thread logs (`-d ...,tid`: each thread writes its own log, named by
 * its tid; thread-fifos.ts hands them in). Each thread gets its own parser,
 * its own path (path-reconstruction.ts) and its own PT stream, the way
 * perf's per-thread mode lays out one AUX stream per thread.
 *
 * The logs are read as they arrive, so the threads' events interleave only
 * approximately; what must be ordered is ordered by dependency:
 * - a thread's log is read once the clone (or fork) that made it shows in
 *   its parent's log (the first log is the program's first thread);
 * - the threads of a process share qemu's translations: a thread that
 *   executes a TB translated by another waits (its later events are held)
 *   until that translation has been read from the other's log.
 * A forked child starts with a copy of its parent's memory map and
 * translations. An exec ends the thread's trace. When the exec follower
 * runs (exec-follow.ts), the new program runs under a new emulator whose log
 * comes after a marker in the same FIFO: the process starts again with a
 * new memory map, new translations and a new stream; a program it could not
 * follow is marked untraced. Without the follower the new program runs
 * natively, and the process is marked untraced from the exec.
 */
import { join } from 'node:path';
import type { MemoryMap } from './memory-map.js';
import { newPathStats, PathReconstruction, TranslationCache, type PathStats, type StopReason } from './path-reconstruction.js';
import { PtEncoderSession, type EncoderSettings } from './pt-encoder-session.js';
import { QemuLogParser, RecordingTampered, type QemuLogSink, type TranslatedBlock } from './qemu-log.js';
import { TraceOutput } from './trace-output.js';
import { MAX_MARKER_BYTES, parseExecMarker } from './exec-follow.js';
import { MAX_TASK_ID } from './thread-fifos.js';

/** Bytes of logs held for threads whose clone has not been read yet. */
const MAX_WAITING_BYTES = 64 << 20;
/** Events held for threads that wait for another thread's translation. */
const MAX_HELD_EVENTS = 1 << 21;

export interface TracedProcess {
  pid: number;
  ppid: number | null;
  memory: MemoryMap;
  cache: TranslationCache;
  /** Why the process is not traced from some point (an exec), or null. */
  untraced: string | null;
  /** The program an exec started in this process (followed), or null for the recorded one and forks. */
  program: { path: string; argv: string[] } | null;
  /** The status its exit_group asked for (its log ended inside that call), or null. */
  exitStatus?: number | null;
}

export interface TracedThread {
  tid: number;
  pid: number;
  /** The process (and program: an exec starts a new one) this stream ran in. */
  proc: TracedProcess;
  /** Where the stream sorts: the order tasks were created in (read from their creators' logs), an exec's stream after its thread's earlier one. */
  order: number;
  /** The stream's file name in the bundle. */
  file: string;
  path: PathReconstruction;
  session: PtEncoderSession;
  out: TraceOutput;
  parser: QemuLogParser;
}

export interface TaskTracerOptions {
  /** Where the streams are written. */
  dir: string;
  /** The first stream's file name (the others are `trace-<tid>.pt`). */
  firstFile: string;
  settings: EncoderSettings;
  snapshotBytes: number;
  /** The first process's memory map. */
  memory: MemoryMap;
  maxInsns: number;
  maxBlockBytes: number;
  /** A stream's trace grew past the limit: the reason to stop, or null. */
  overLimit: (out: TraceOutput) => StopReason | null;
  /** The recording must stop (the target is killed). */
  onStop: (reason: StopReason) => void;
  /** A forked child writes its own log (the log shim is loaded), so forks are followed. */
  followForks?: boolean;
  /** The exec follower runs: an exec's new program logs after a marker (exec-follow.ts). */
  followExecs?: boolean;
  /** A memory map for a program an exec started (followExecs); `copy`: the follower's copy of a program with no readable path, or ''. */
  newMemory?: (path: string, copy: string) => MemoryMap;
}

interface HeldEvent {
  ready: () => boolean;
  run: () => void;
}

class ThreadSink implements QemuLogSink {
  readonly held: HeldEvent[] = [];

  constructor(
    private readonly tracer: TaskTracer,
    readonly thread: TracedThread,
    private readonly first: boolean,
  ) {}

  private placed = false;
  /** The thread's program could not be traced: the rest of its log is ignored. */
  private gaveUp = false;

  private add(ev: HeldEvent): void {
    if (this.gaveUp) return;
    if (this.held.length === 0 && ev.ready()) {
      ev.run();
      this.afterRun();
      return;
    }
    if (this.held.length >= MAX_HELD_EVENTS) {
      throw new RecordingTampered(`thread ${this.thread.tid} executes code whose translation never shows in any thread's log`);
    }
    this.held.push(ev);
  }

  /** Run held events that can run now; true if any ran. */
  drain(): boolean {
    let ran = 0;
    while (ran < this.held.length && this.held[ran].ready()) {
      this.held[ran++].run();
      this.afterRun();
    }
    if (ran > 0) this.held.splice(0, ran);
    return ran > 0;
  }

  /** Once the thread's path stopped (an exec, a fork, a limit), the rest of its log is not read. */
  private afterRun(): void {
    if (this.thread.path.stopped) {
      this.thread.parser.halt();
      this.held.length = 0;
    }
  }

  translated(tb: TranslatedBlock): void {
    this.add({ ready: always, run: () => this.thread.path.translated(tb) });
  }

  executed(cpu: number, ptr: number, pc: number): void {
    const path = this.thread.path;
    this.add({
      ready: () => path.canExecute(ptr, pc),
      run: () => {
        if (this.first && !this.placed) {
          this.placed = true;
          if (!this.thread.proc.memory.placeLoadedElves()) {
            const program = this.thread.proc.program;
            if (program === null) throw new Error('qemu log: no load layout (start_code/entry) before the first instruction');
            // A program an exec started whose file the recorder cannot read: untraced, not a failed recording.
            this.thread.proc.untraced ??= `${program.path} (started by exec) is not traced: its file could not be read`;
            this.thread.parser.halt();
            this.held.length = 0;
            this.gaveUp = true;
            return;
          }
        }
        path.executed(cpu, ptr, pc);
        this.tracer.translationsChanged();
      },
    });
  }

  notExecuted(ptr: number, pc: number): void {
    this.add({ ready: always, run: () => this.thread.path.notExecuted(ptr, pc) });
  }

  syscallEntry(name: string, text: string): void {
    this.add({ ready: always, run: () => this.thread.path.syscallEntry(name, text) });
  }

  syscall(line: string): void {
    this.add({
      ready: always,
      run: () => {
        this.thread.path.syscall(line);
        this.tracer.syscallDone(this.thread, line);
      },
    });
  }

  signal(name: string, code: number, addr: number | null): void {
    this.add({ ready: always, run: () => this.thread.path.signal(name, code, addr) });
  }

  layout(name: string, value: number): void {
    this.add({ ready: always, run: () => this.thread.path.layout(name, value) });
  }
}

function always(): boolean {
  return true;
}



/** Whether a syscall's text (its entry, or its whole line) creates a task, and whether that task is a thread of its creator's process; null if it creates none. */
function taskCreation(text: string): { thread: boolean } | null {
  const m = /^(clone|clone3|fork|vfork)\(/.exec(text);
  return m === null ? null : { thread: (m[1] === 'clone' || m[1] === 'clone3') && /CLONE_THREAD/.test(text) };
}

/** A new task from a clone/fork result line (without the pid), or null. */
export function newTask(line: string): { tid: number; thread: boolean } | null {
  const c = taskCreation(line);
  const m = /\) = (\d+)$/.exec(line);
  if (c === null || m === null || m[1] === '0') return null;
  const tid = Number(m[1]);
  if (!Number.isSafeInteger(tid) || tid <= 0) return null;
  return { tid, thread: c.thread };
}

export class TaskTracer {
  /** Each process as it is now (an exec replaces its entry; see {@link allProcesses}). */
  readonly processes = new Map<number, TracedProcess>();
  /** Each thread's current stream (an exec starts a new one; see {@link allThreads}). */
  readonly threads = new Map<number, TracedThread>();
  readonly stats: PathStats = newPathStats();
  private readonly sinks = new Map<number, ThreadSink>();
  /** Streams and processes an exec ended, in order. */
  private readonly retiredThreads: TracedThread[] = [];
  private readonly retiredProcesses: TracedProcess[] = [];
  private readonly retiredSinks: ThreadSink[] = [];
  /** Threads an exec in their process killed wherever they were: their last TB may not have run to its end. */
  private readonly killedByExec = new Set<TracedThread>();
  /** Logs of threads not known yet (their clone has not been read). */
  private readonly waiting = new Map<number, Buffer[]>();
  private waitingBytes = 0;
  /** Tasks announced by a clone whose log has not started (`proc`: the process a new thread joins; `order`: where its stream sorts). */
  private readonly announced = new Map<number, { pid: number; fork: boolean; proc?: TracedProcess; order: number }>();
  /** An exec marker being read, per thread (followExecs). */
  private readonly markers = new Map<number, Buffer>();
  /** Threads whose program ran natively after an exec: their log must end there. */
  private readonly nativeAfterExec = new Set<number>();
  private draining = false;
  private streamCount = 0;
  /**
   * Where the next stream sorts. A task takes its place when its creation is
   * read (the clone or fork in its creator's log), not when its own log first
   * arrives, so causally ordered streams sort the same on every run.
   */
  private nextOrder = 0;
  /** Why the whole recording stopped (a limit), or null. */
  stopReason: StopReason | null = null;
  readonly warnings: string[] = [];

  constructor(private readonly opts: TaskTracerOptions) {}

  get firstMemory(): MemoryMap {
    return this.opts.memory;
  }

  /** Every stream, in the order its task was created (an exec'd program's after its process's earlier ones). */
  allThreads(): TracedThread[] {
    return [...this.retiredThreads, ...this.threads.values()].sort((x, y) => x.order - y.order);
  }

  /** Every process image set: each process, and each program an exec started in one. */
  allProcesses(): TracedProcess[] {
    return [...this.retiredProcesses, ...this.processes.values()];
  }

  /** A chunk of thread `tid`'s log. */
  feed(tid: number, chunk: Buffer): void {
    if (!this.sinks.has(tid) && this.streamCount > 0 && !this.announced.has(tid) && !this.nativeAfterExec.has(tid)) {
      this.waitingBytes += chunk.length;
      if (this.waitingBytes > MAX_WAITING_BYTES) throw new RecordingTampered(`a log for thread ${tid}, which no clone or fork in the program's logs created`);
      const w = this.waiting.get(tid) ?? [];
      w.push(Buffer.from(chunk));
      this.waiting.set(tid, w);
      return;
    }
    if (this.opts.followExecs !== true) return this.feedLog(tid, chunk);
    let rest = chunk;
    while (rest.length > 0) {
      const partial = this.markers.get(tid);
      if (partial !== undefined) {
        const nl = rest.indexOf(0x0a);
        const part = nl < 0 ? rest : rest.subarray(0, nl);
        if (partial.length + part.length > MAX_MARKER_BYTES) throw new RecordingTampered(`thread ${tid}'s log holds an exec marker that does not end`);
        const whole = Buffer.concat([partial, part]);
        if (nl < 0) {
          this.markers.set(tid, whole);
          return;
        }
        this.markers.delete(tid);
        this.execMarker(tid, whole.toString('latin1'));
        rest = rest.subarray(nl + 1);
        continue;
      }
      const z = rest.indexOf(0);
      if (z < 0) return this.feedLog(tid, rest);
      if (z > 0) this.feedLog(tid, rest.subarray(0, z));
      this.markers.set(tid, Buffer.alloc(0));
      rest = rest.subarray(z + 1);
    }
  }

  private feedLog(tid: number, chunk: Buffer): void {
    if (this.nativeAfterExec.has(tid)) throw new RecordingTampered(`thread ${tid}'s log goes on after its program was left to run natively`);
    let sink = this.sinks.get(tid);
    if (sink === undefined) {
      if (this.streamCount === 0) {
        this.processes.set(tid, { pid: tid, ppid: null, memory: this.opts.memory, cache: new TranslationCache(), untraced: null, program: null });
        sink = this.start(tid, tid, true, false);
      } else {
        const a = this.announced.get(tid)!;
        this.announced.delete(tid);
        sink = this.start(tid, a.pid, false, a.fork, undefined, a.proc, a.order);
      }
    }
    try {
      sink.thread.parser.feed(chunk);
    } catch (e) {
      if (e instanceof Error) e.message = `[${sink.thread.pid}/${tid}] ${e.message}`;
      throw e;
    }
  }

  /**
   * The exec follower's marker in thread `tid`'s log: the old program's log
   * ended before it (inside its execve). A followed program starts again as
   * a fresh emulator's first thread; one left native is untraced.
   */
  private execMarker(tid: number, text: string): void {
    const m = parseExecMarker(text);
    if (m === null) throw new RecordingTampered(`thread ${tid}'s log holds a malformed exec marker`);
    const sink = this.sinks.get(tid);
    if (sink === undefined) throw new RecordingTampered(`an exec marker in the log of thread ${tid}, which has not run`);
    const old = sink.thread;
    const unfinished = this.endStream(sink);
    // A thread other than the leader may have called execve: the new program
    // then has the leader's id, and the leader's log ends wherever exec killed it.
    if (unfinished !== 'execve' && unfinished !== 'execveat') {
      this.killedByExec.add(old);
      old.path.abandon();
      const where = unfinished !== null ? `inside the syscall ${unfinished}` : 'between syscalls';
      this.warnings.push(`[${old.pid}/${tid}]: the log ended ${where} before the process executed a program (another thread's exec, or the log was lost): what the thread did in between is not recorded`);
    }
    const proc = this.processes.get(old.pid)!;
    if (m.kind === 'untraced') {
      proc.untraced ??= `${m.path || 'a program'} (started by exec) ran natively, untraced: ${m.reason}`;
      this.nativeAfterExec.add(tid);
      return;
    }
    if (this.opts.newMemory === undefined) throw new Error('task tracer: execs are followed without a memory map for them');
    // A copied program is named apart: two memfds may share a name.
    const program = { path: m.copy !== '' ? `${m.path} [${m.copy}]` : m.path, argv: m.omitted > 0 ? [...m.argv, `(${m.omitted} more arguments)`] : m.argv };
    const next: TracedProcess = { pid: old.pid, ppid: proc.ppid, memory: this.opts.newMemory(program.path, m.copy), cache: new TranslationCache(), untraced: null, program };
    // The exec killed the process's other threads, wherever they were.
    for (const t of this.threads.values()) if (t.pid === old.pid && t.tid !== tid) this.killedByExec.add(t);
    this.retiredProcesses.push(proc);
    this.processes.set(old.pid, next);
    // After exec the thread is its process's only one, with the process's id.
    // Its clock goes on from the old program's, so time orders the two streams (perf's sideband too).
    this.start(tid, old.pid, true, false, old.session.clock + 1);
  }

  /**
   * A stream whose log ended here (an exec): parse what is left and set it
   * aside. Its held events still wait for other threads' translations, and
   * its path is finished with the others. Returns the syscall it ended in.
   */
  private endStream(sink: ThreadSink): string | null {
    const t = sink.thread;
    t.parser.end();
    const unfinished = t.parser.unfinishedSyscall;
    this.sinks.delete(t.tid);
    this.retiredSinks.push(sink);
    this.threads.delete(t.tid);
    this.retiredThreads.push(t);
    this.translationsChanged();
    return unfinished;
  }

  private start(tid: number, pid: number, first: boolean, fork: boolean, tscBase?: number, joins?: TracedProcess, order?: number): ThreadSink {
    const proc = joins ?? this.processes.get(pid)!;
    const n = this.streamCount++;
    const file = n === 0 ? this.opts.firstFile : this.threads.has(tid) || this.retiredThreads.some((t) => t.tid === tid) ? `trace-${tid}-${n}.pt` : `trace-${tid}.pt`;
    const out = new TraceOutput(join(this.opts.dir, file), this.opts.snapshotBytes);
    const settings = tscBase === undefined ? this.opts.settings : { ...this.opts.settings, timing: { ...this.opts.settings.timing, tscBase } };
    const session = new PtEncoderSession(out, settings);
    const thread = { tid, pid, proc, order: order ?? this.nextOrder++, file, out, session } as TracedThread;
    const path = new PathReconstruction(session, proc.memory, {
      maxInsns: this.opts.maxInsns,
      maxBlockBytes: this.opts.maxBlockBytes,
      overLimit: () => this.stopReason ?? this.opts.overLimit(out),
      onStop: (reason) => this.pathStopped(thread, reason),
      perThreadLogs: true,
      followForks: this.opts.followForks,
      followExecs: this.opts.followExecs,
    }, proc.cache, this.stats);
    thread.path = path;
    const sink = new ThreadSink(this, thread, first);
    thread.parser = new QemuLogParser(sink, first ? undefined : { pid, inSyscall: fork ? 'fork' : undefined });
    this.threads.set(tid, thread);
    this.sinks.set(tid, sink);
    return sink;
  }

  private pathStopped(thread: TracedThread, reason: StopReason): void {
    if (reason === 'exec') {
      thread.proc.untraced ??= `${thread.path.stopDetail ?? 'it executed another program'}: the new program ran natively, untraced`;
      return;
    }
    if (this.stopReason === null) {
      this.stopReason = reason;
      this.opts.onStop(reason);
    }
  }

  /** A syscall of `thread` completed: a clone or fork announces a new task. */
  syscallDone(thread: TracedThread, line: string): void {
    const t = newTask(line);
    if (t !== null) this.announce(thread, t.tid, t.thread, this.nextOrder++);
  }

  /** Task `tid` was created by `thread` (a new thread of its process, or a forked process): read its log. */
  private announce(thread: TracedThread, tid: number, isThread: boolean, order: number): void {
    if (this.threads.has(tid) || this.announced.has(tid)) throw new RecordingTampered(`thread ${tid} is created twice in the program's logs`);
    const parent = thread.proc;
    if (!isThread) {
      this.processes.set(tid, { pid: tid, ppid: parent.pid, memory: parent.memory.fork(), cache: new TranslationCache(parent.cache), untraced: null, program: null });
    }
    // A thread joins the process its creator ran in, which may have executed another program since.
    this.announced.set(tid, isThread ? { pid: thread.pid, fork: false, proc: parent, order } : { pid: tid, fork: true, order });
    const w = this.waiting.get(tid);
    if (w !== undefined) {
      this.waiting.delete(tid);
      for (const c of w) this.waitingBytes -= c.length;
      // Parsing the child now may run its events, which is safe: its parent's clone is done.
      for (const c of w) this.feed(tid, c);
    }
  }

  /**
   * A task whose creator's log ended inside the clone or fork: the creator was
   * killed (another thread's exec or exit_group) after the kernel made the
   * task and before the emulator logged the result, so the task's id is in no
   * log. With one such creator and one log no clone named, that log is the
   * task's (the logs of any other unnamed task stay ignored, with a warning).
   */
  private adoptUnnamedTask(): void {
    if (this.waiting.size !== 1) return;
    const creators = [...this.retiredThreads, ...this.threads.values()].filter((t) => taskCreation(t.parser.unfinishedSyscallText ?? '') !== null);
    if (creators.length !== 1) return;
    const creator = creators[0];
    const [tid] = this.waiting.keys();
    const isThread = taskCreation(creator.parser.unfinishedSyscallText!)!.thread;
    this.warnings.push(`[${creator.pid}/${creator.tid}]: the log ended inside ${creator.parser.unfinishedSyscall}, before its result: thread ${tid}, whose log no clone named, is taken as the task it created`);
    // The task started right after its creator's last stream position, before any stream the recorder saw later.
    this.announce(creator, tid, isThread, creator.order + 0.5);
    const t = this.threads.get(tid);
    // A thread of a process that executed another program since was killed by that exec, wherever it was.
    if (t !== undefined && isThread && this.processes.get(t.pid) !== t.proc) this.killedByExec.add(t);
  }

  /** A translation may have been bound: threads waiting for one may go on. */
  translationsChanged(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      let progress = true;
      while (progress) {
        progress = false;
        for (const s of this.sinks.values()) if (s.held.length > 0 && s.drain()) progress = true;
        for (const s of this.retiredSinks) if (s.held.length > 0 && s.drain()) progress = true;
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * All logs ended: parse what is left, then finish every thread's path and
   * stream. `crashIps`: the faulting RIP of each thread qemu wrote a core
   * for, by tid (a thread whose log ends in a fault ends there); `killed`:
   * the recorder killed the run.
   */
  finish(crashIps: ReadonlyMap<number, number>, killed: boolean): void {
    this.adoptUnnamedTask();
    for (const t of this.threads.values()) {
      t.parser.end();
      if (this.killedByExec.has(t)) t.path.abandon();
    }
    this.translationsChanged();
    for (const s of [...this.retiredSinks, ...this.sinks.values()]) {
      // What still waits names a translation no log holds: run it to get the error.
      for (const ev of s.held) ev.run();
      s.held.length = 0;
    }
    // Streams an exec ended: their logs ended there, not at the recording's end.
    for (const s of this.retiredSinks) s.thread.path.finish(null, this.killedByExec.has(s.thread));
    for (const [tid] of this.waiting) this.warnings.push(`a log for thread ${tid} that no clone or fork in the logs created was ignored`);
    for (const t of this.threads.values()) {
      t.path.finish(crashIps.get(t.tid) ?? null, killed || this.killedByExec.has(t));
      const unfinished = t.parser.unfinishedSyscall;
      if (unfinished !== null && !['exit', 'exit_group', 'execve', 'execveat'].includes(unfinished) && !killed && this.stopReason === null) {
        this.warnings.push(`[${t.pid}/${t.tid}]: the log ended inside the syscall ${unfinished}: what the thread did after it is not recorded`);
      }
    }
    if (this.opts.followExecs === true && !killed && this.stopReason === null) {
      for (const t of this.threads.values()) {
        // A log that ends inside execve, in a process no exec marker replaced:
        // the exec succeeded unseen by the follower, so its program may have run natively.
        const unfinished = t.parser.unfinishedSyscall;
        if ((unfinished === 'execve' || unfinished === 'execveat') && this.processes.get(t.pid) === t.proc) {
          t.proc.untraced ??= `thread ${t.tid}'s log ended inside ${unfinished} with no word from the exec follower: the program it executed may have run natively, untraced`;
        }
      }
    }
    for (const t of this.threads.values()) {
      // A followed exec whose emulator never logged (it could not open its log): nothing of it is traced.
      if (t.proc.program !== null && t.parser.bytesParsed === 0) t.proc.untraced ??= `${t.proc.program.path} (started by exec) is not traced: its emulator wrote no log`;
    }
    // A log that ends inside exit_group(N): the process exited with status N (the kernel keeps its low byte).
    for (const t of [...this.threads.values(), ...this.retiredSinks.map((x) => x.thread)]) {
      const m = /^exit_group\((-?\d+|0x[0-9a-f]+)/.exec(t.parser.unfinishedSyscallText ?? '');
      if (m !== null) t.proc.exitStatus = Number(BigInt(m[1]) & 0xffn);
    }
    for (const [tid, a] of this.announced) {
      // Logs exist for task ids 1..MAX_TASK_ID of the sandbox's pid namespace only.
      const why = tid > MAX_TASK_ID ? `: task ids above ${MAX_TASK_ID} in the sandbox have no log` : '';
      this.warnings.push(`[${a.pid}/${tid}]: created by ${a.fork ? 'fork' : 'clone'}, but no log of it arrived: not traced${why}`);
      if (a.fork) this.processes.get(tid)!.untraced ??= 'no log of the process arrived (it may have been killed before it ran)';
    }
  }
}
