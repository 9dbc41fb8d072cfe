/**
 * The one model every input becomes (speedscope's shape: one importer per
 * format, one model out). A recorder bundle, a perf.data file and a raw
 * trace with ptxed-style images all turn into a {@link Recording}; every
 * command and analysis reads only this model, never a manifest or a file
 * format.
 *
 * A recording is:
 * - the processes and threads that ran (pid, tid, program, exit);
 * - their PT streams: one per thread (the emulated recorder, perf's
 *   per-thread mode) or one per CPU (perf's per-CPU mode), each with the
 *   bytes handed out on demand ({@link TraceStream.open}, flat memory) and
 *   the memory image to decode it with;
 * - the images over time: each stream names the mappings valid while it
 *   ran (a process's image set; exec starts a new stream);
 * - the program, its argv and its exit, and a core dump if there is one.
 */
import type { DecoderConfig } from '../../packets/config.js';
import type { TraceSource } from '../../packets/trace-source.js';
import type { Image } from '../../flow/image.js';
import type { ByteSourceCache } from '../../flow/section.js';
import type { TaskContext, TaskSwitcher } from '../../flow/task-switch.js';

export type RecordingFormat = 'bundle' | 'perf-data' | 'raw';

export interface ProgramInfo {
  /** The executable that ran (absolute, as on the recording machine). */
  path: string;
  argv: string[];
  /** Working directory, when known. */
  cwd: string | null;
}

export interface ExitInfo {
  /** Exit code, or null when it died of a signal or was stopped. */
  status: number | null;
  /** `SIGSEGV`, ... when a signal ended it. */
  signal: string | null;
  /** Why the recorder stopped it (`budget`, `timeout`, `trace-size`, ...), or null. */
  stopped: string | null;
}

/** A file (or run-time code) mapped into a traced address space. */
export interface ImageMapping {
  /** The file holding the bytes, on this machine (inside the bundle, or under --sysroot). */
  file: string;
  /** Where the program had it mapped from (the original path), for names in reports. */
  originalPath: string;
  /** Offset of the mapping in {@link file}. */
  offset: number;
  size: number;
  /** Run-time address of the first byte. */
  address: number;
  /** A short name for reports (the original path's base name). */
  displayName: string;
  /**
   * Code that exists only at run time (JIT, unpacked or injected code): the
   * bytes were captured from memory while the program ran. Null for files.
   */
  runtime: { firstExecuted: number | null } | null;
}

export interface RecordedProcess {
  pid: number;
  ppid: number | null;
  program: ProgramInfo | null;
  exit: ExitInfo | null;
  /** Why this process was not traced, if it was not (nothing escapes silently). */
  untraced: string | null;
}

export interface RecordedThread {
  tid: number;
  pid: number;
  name: string | null;
}

/** One PT stream: the bytes of one thread's (or one CPU's) trace and how to decode it. */
export interface TraceStream {
  /** Index in {@link Recording.streams}. */
  readonly index: number;
  /** For messages and section headers: `tid 1234`, `cpu 0`, the trace file. */
  readonly label: string;
  /** The process and thread traced on it (null: unknown, or a per-CPU stream). */
  readonly pid: number | null;
  readonly tid: number | null;
  /** The CPU of a per-CPU stream, else null. */
  readonly cpu: number | null;
  /** The program's name when an exec started this stream (its process's earlier streams ran another). */
  readonly program?: string;
  /** Trace size in bytes. */
  readonly size: number;
  /** The trace bytes, read on demand: close the source when done. */
  open(): TraceSource;
  readonly config: DecoderConfig;
  /** The memory image the stream decodes against, and the files behind it. */
  readonly image: Image;
  readonly files: ByteSourceCache;
  readonly mappings: readonly ImageMapping[];
  /** The recorder's ground truth for this stream (emulated recordings), if any. */
  readonly expected: { instructions: number; fnv1a64: string } | null;
  /** What could not be imported for this stream (an image that did not map, ...). */
  readonly notes: readonly string[];
  /**
   * A per-CPU stream's tasks: a fresh tracker for each decode of the
   * stream, which says where the task (and with it the image) changes.
   * Absent for one thread's stream.
   */
  readonly tasks?: () => TaskSwitcher<StreamTask>;
}

/** A task of a per-CPU stream: its thread, and its process's image and mappings at the time. */
export interface StreamTask extends TaskContext {
  readonly mappings: readonly ImageMapping[];
  /** The thread's name (comm), when known. */
  readonly name: string | null;
  /**
   * The life of the thread this task is a run of: from its start to its
   * exit or exec (a tid reused after an EXIT, or a thread that exec'd, is
   * another life). Every run of one life, on any CPU, has the same object:
   * per-thread state (a shadow stack) is kept per life.
   */
  readonly life: TaskLife;
}

/** One life of a thread (see {@link StreamTask.life}), in one address space. */
export interface TaskLife {
  readonly pid: number;
  readonly tid: number;
  readonly space: AddressSpaceLife;
  /**
   * True for a forked child's first life before any exec: it continues its
   * parent's stack (a longjmp to a setjmp made before the fork), a history
   * its runs do not hold.
   */
  readonly inheritsHistory: boolean;
}

/**
 * One life of a process's address space: from its fork (or the recording's
 * start) to its exec or exit. Its image and mappings are those at the end of
 * that life (everything it loaded), as a per-thread stream's are.
 */
export interface AddressSpaceLife {
  readonly pid: number;
  readonly image: Image;
  readonly mappings: readonly ImageMapping[];
  /** The program's name (the comm of the process leader), when known. */
  readonly name: string | null;
}

export interface Recording {
  /** What to call it in output: the bundle directory, the perf.data path, the trace file. */
  readonly name: string;
  readonly format: RecordingFormat;
  /** The bundle directory (for bundles), else null. */
  readonly root: string | null;
  /** How it was recorded: the emulator, perf with hardware PT, or unknown (raw). */
  readonly recorder: 'qemu' | 'perf' | null;
  /** The program started (the first process), when known. */
  readonly program: ProgramInfo | null;
  readonly exit: ExitInfo | null;
  readonly processes: readonly RecordedProcess[];
  readonly threads: readonly RecordedThread[];
  readonly streams: readonly TraceStream[];
  /** An ELF core of the process that crashed, when there is one. */
  readonly core: string | null;
  /** Every core the recording keeps, by process (`core` among them): one per crashed process. */
  readonly cores: readonly { path: string; pid: number }[];
  /** Recorder settings as recorded (informational only: never decides what runs). */
  readonly settings: Readonly<Record<string, unknown>>;
  /** The recorder's warnings and the importer's notes. */
  readonly warnings: readonly string[];
  /** Release open files (perf.data). */
  close(): void;
}

/** The stream to use when a command wants "the" trace: the first non-empty one. */
export function primaryStream(r: Recording): TraceStream {
  const s = r.streams.find((x) => x.size > 0) ?? r.streams[0];
  if (s === undefined) throw new Error(`${r.name}: the recording has no trace stream`);
  return s;
}

/** `[pid/tid]` as perf script prints it, or the stream's label. */
export function streamTitle(s: TraceStream): string {
  if (s.pid !== null && s.tid !== null) return s.program !== undefined ? `[${s.pid}/${s.tid}] ${s.program}` : `[${s.pid}/${s.tid}]`;
  return s.label;
}

/** `[pid/tid] comm` for a task of a per-CPU stream, as perf script heads a thread. */
export function taskTitle(t: StreamTask): string {
  return t.name !== null ? `[${t.pid}/${t.tid}] ${t.name}` : `[${t.pid}/${t.tid}]`;
}
