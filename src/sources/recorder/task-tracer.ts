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
 * translations. An exec ends the thread's trace: qemu-user does not follow
 * it (the new program runs natively), so the process is marked untraced from
 * there, and the bundle says so.
 */
import { join } from 'node:path';
import type { MemoryMap } from './memory-map.js';
import { newPathStats, PathReconstruction, TranslationCache, type PathStats, type StopReason } from './path-reconstruction.js';
import { PtEncoderSession, type EncoderSettings } from './pt-encoder-session.js';
import { QemuLogParser, RecordingTampered, type QemuLogSink, type TranslatedBlock } from './qemu-log.js';
import { TraceOutput } from './trace-output.js';

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
}

export interface TracedThread {
  tid: number;
  pid: number;
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

  private add(ev: HeldEvent): void {
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
          if (!this.tracer.firstMemory.placeLoadedElves()) throw new Error('qemu log: no load layout (start_code/entry) before the first instruction');
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

/** A new task from a clone/fork result line (without the pid), or null. */
export function newTask(line: string): { tid: number; thread: boolean } | null {
  const m = /^(clone|clone3|fork|vfork)\(.*\) = (\d+)$/s.exec(line);
  if (m === null || m[2] === '0') return null;
  const tid = Number(m[2]);
  if (!Number.isSafeInteger(tid) || tid <= 0) return null;
  return { tid, thread: (m[1] === 'clone' || m[1] === 'clone3') && /CLONE_THREAD/.test(line) };
}

export class TaskTracer {
  readonly processes = new Map<number, TracedProcess>();
  readonly threads = new Map<number, TracedThread>();
  readonly stats: PathStats = newPathStats();
  private readonly sinks = new Map<number, ThreadSink>();
  /** Logs of threads not known yet (their clone has not been read). */
  private readonly waiting = new Map<number, Buffer[]>();
  private waitingBytes = 0;
  /** Tasks announced by a clone whose log has not started. */
  private readonly announced = new Map<number, { pid: number; fork: boolean }>();
  private draining = false;
  /** Why the whole recording stopped (a limit), or null. */
  stopReason: StopReason | null = null;
  readonly warnings: string[] = [];

  constructor(private readonly opts: TaskTracerOptions) {}

  get firstMemory(): MemoryMap {
    return this.opts.memory;
  }

  /** A chunk of thread `tid`'s log. */
  feed(tid: number, chunk: Buffer): void {
    let sink = this.sinks.get(tid);
    if (sink === undefined) {
      if (this.threads.size === 0) {
        this.processes.set(tid, { pid: tid, ppid: null, memory: this.opts.memory, cache: new TranslationCache(), untraced: null });
        sink = this.start(tid, tid, true, false);
      } else if (this.announced.has(tid)) {
        const a = this.announced.get(tid)!;
        this.announced.delete(tid);
        sink = this.start(tid, a.pid, false, a.fork);
      } else {
        this.waitingBytes += chunk.length;
        if (this.waitingBytes > MAX_WAITING_BYTES) throw new RecordingTampered(`a log for thread ${tid}, which no clone or fork in the program's logs created`);
        const w = this.waiting.get(tid) ?? [];
        w.push(Buffer.from(chunk));
        this.waiting.set(tid, w);
        return;
      }
    }
    try {
      sink.thread.parser.feed(chunk);
    } catch (e) {
      if (e instanceof Error) e.message = `[${sink.thread.pid}/${tid}] ${e.message}`;
      throw e;
    }
  }

  private start(tid: number, pid: number, first: boolean, fork: boolean): ThreadSink {
    const proc = this.processes.get(pid)!;
    const file = first ? this.opts.firstFile : `trace-${tid}.pt`;
    const out = new TraceOutput(join(this.opts.dir, file), this.opts.snapshotBytes);
    const session = new PtEncoderSession(out, this.opts.settings);
    const thread = { tid, pid, file, out, session } as TracedThread;
    const path = new PathReconstruction(session, proc.memory, {
      maxInsns: this.opts.maxInsns,
      maxBlockBytes: this.opts.maxBlockBytes,
      overLimit: () => this.stopReason ?? this.opts.overLimit(out),
      onStop: (reason) => this.pathStopped(thread, reason),
      perThreadLogs: true,
      followForks: this.opts.followForks,
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
      const proc = this.processes.get(thread.pid)!;
      proc.untraced ??= `${thread.path.stopDetail ?? 'it executed another program'}: the new program ran natively, untraced`;
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
    if (t === null) return;
    if (this.threads.has(t.tid) || this.announced.has(t.tid)) throw new RecordingTampered(`thread ${t.tid} is created twice in the program's logs`);
    if (!t.thread) {
      const parent = this.processes.get(thread.pid)!;
      this.processes.set(t.tid, { pid: t.tid, ppid: parent.pid, memory: parent.memory.fork(), cache: new TranslationCache(parent.cache), untraced: null });
    }
    this.announced.set(t.tid, { pid: t.thread ? thread.pid : t.tid, fork: !t.thread });
    const w = this.waiting.get(t.tid);
    if (w !== undefined) {
      this.waiting.delete(t.tid);
      for (const c of w) this.waitingBytes -= c.length;
      // Parsing the child now may run its events, which is safe: its parent's clone is done.
      for (const c of w) this.feed(t.tid, c);
    }
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
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * All logs ended: parse what is left, then finish every thread's path and
   * stream. `crashIp` is the RIP of qemu's core (the thread that faulted
   * uses it); `killed`: the recorder killed the run.
   */
  finish(crashIp: number | null, killed: boolean): void {
    for (const t of this.threads.values()) t.parser.end();
    this.translationsChanged();
    for (const s of this.sinks.values()) {
      // What still waits names a translation no log holds: run it to get the error.
      for (const ev of s.held) ev.run();
      s.held.length = 0;
    }
    for (const [tid] of this.waiting) this.warnings.push(`a log for thread ${tid} that no clone or fork in the logs created was ignored`);
    for (const t of this.threads.values()) {
      t.path.finish(crashIp, killed);
      const unfinished = t.parser.unfinishedSyscall;
      if (unfinished !== null && !['exit', 'exit_group', 'execve', 'execveat'].includes(unfinished) && !killed && this.stopReason === null) {
        this.warnings.push(`[${t.pid}/${t.tid}]: the log ended inside the syscall ${unfinished}: what the thread did after it is not recorded`);
      }
    }
    for (const [tid, a] of this.announced) {
      this.warnings.push(`[${a.pid}/${tid}]: created by ${a.fork ? 'fork' : 'clone'}, but no log of it arrived: not traced`);
      if (a.fork) this.processes.get(tid)!.untraced ??= 'no log of the process arrived (it may have been killed before it ran)';
    }
  }
}
