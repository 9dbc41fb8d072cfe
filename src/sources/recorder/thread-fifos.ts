/**
 * One log FIFO per thread for qemu's `-d tid` (each thread of the emulator
 * opens `-D TEMPLATE` with `%d` replaced by its tid when it first logs). The
 * sandbox has its own PID namespace, so tids are small and sequential: a
 * FIFO exists beforehand for each of 1..{@link MAX_TASK_ID}, and a tid
 * beyond that range cannot open a log (its thread is reported untraced).
 *
 * The FIFOs are handed in as descriptors, never shown by path: the FIFO of
 * tid t is descriptor {@link threadLogFd}(t) (the digit 1 followed by t's
 * digits, which is what `/proc/self/fd/1%d` names), so qemu's per-thread
 * open is a reopen of an inherited descriptor. Those numbers are known, so
 * a program that writes to, duplicates, re-flags or reopens one is refused
 * as tampered (log-channel.ts), as with the one-log mode's descriptors. The
 * descriptor each thread of qemu opens from it has a number the recorder
 * does not learn; a write there is caught only by the parsers' consistency
 * checks (qemu-log.ts, path-reconstruction.ts), and the bundle says so.
 *
 * The recorder reads every FIFO as a non-blocking stream and holds its
 * write end (the descriptor handed in) until the run has ended, so a FIFO
 * that no thread opened does not read as ended.
 */
import { chmodSync, chownSync, closeSync, constants, mkdirSync, openSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/** qemu's `-D` for per-thread logs: the reopen of each thread's inherited descriptor. */
export const THREAD_LOG_TEMPLATE = '/proc/self/fd/1%d';

/** The descriptor that carries tid's log into the sandbox (see THREAD_LOG_TEMPLATE). */
export function threadLogFd(tid: number): number {
  return Number(`1${tid}`);
}

/**
 * The soft limit on open files, which Node raised to the hard limit at
 * start-up and which the sandbox inherits (1024 if it cannot be read).
 */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m === null) return 1024;
    return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return 1024;
  }
}

/**
 * The highest tid with a log (tasks beyond are reported untraced). Every
 * fork of an emulated process takes two tids (qemu starts a helper thread
 * in the child), so 256 covered about 120 processes, fewer than a shell
 * script or a `make` runs. Three-digit tids (descriptors up to 1999 in the
 * sandbox, two descriptors per FIFO here) are used when the open-file limit
 * leaves room for them, with a margin for the recorder's other files.
 */
export const MAX_TASK_ID = taskIdBound(openFileLimit());

function taskIdBound(limit: number): number {
  return [999, 256, 99].find((n) => limit > Math.max(threadLogFd(n), 2 * n + 300)) ?? 99;
}

/** Every descriptor that carries a thread's log (for the tamper checks). */
export const THREAD_LOG_FDS: readonly number[] = Array.from({ length: MAX_TASK_ID }, (_, i) => threadLogFd(i + 1));
const FIFO_OWNER = 65534;

export class ThreadFifos {
  private readonly sockets: Socket[] = [];
  private readonly holders: number[] = [];
  /** Descriptor in the sandbox -> the recorder's write end it is a copy of. */
  readonly handedIn = new Map<number, number>();
  private open = 0;
  private ended: () => void = () => {};
  /** Resolves when every FIFO has been read to its end (after {@link release}). */
  readonly done: Promise<void>;

  constructor(
    /** A new, empty host directory. */
    readonly dir: string,
    onData: (tid: number, chunk: Buffer) => void,
    onError: (e: Error) => void,
  ) {
    this.done = new Promise((r) => (this.ended = r));
    mkdirSync(dir, { mode: 0o755 });
    const names = Array.from({ length: MAX_TASK_ID }, (_, i) => join(dir, String(i + 1)));
    execFileSync('mkfifo', ['-m', '600', ...names]);
    const root = process.geteuid?.() === 0;
    for (let tid = 1; tid <= MAX_TASK_ID; tid++) {
      const p = names[tid - 1];
      const rd = openSync(p, constants.O_RDONLY | constants.O_NONBLOCK);
      const w = openSync(p, constants.O_WRONLY | constants.O_NONBLOCK);
      this.holders.push(w);
      this.handedIn.set(threadLogFd(tid), w);
      if (root) {
        // Writable by the sandbox's uid through "other" only: not readable there.
        chownSync(p, FIFO_OWNER, FIFO_OWNER);
        chmodSync(p, 0o002);
      } else {
        chmodSync(p, 0o200);
      }
      const s = new Socket({ fd: rd, readable: true, writable: false });
      this.open++;
      s.on('data', (c: Buffer | string) => {
        if (typeof c !== 'string') onData(tid, c);
      });
      s.on('error', (e) => onError(e));
      s.on('close', () => {
        if (--this.open === 0) this.ended();
      });
      this.sockets.push(s);
    }
  }

  /** The run has ended: drop the recorder's write ends, so each FIFO ends once drained. */
  release(): void {
    this.handedIn.clear();
    for (const fd of this.holders.splice(0)) closeSync(fd);
  }

  /** Stop reading (a failure): close everything. */
  destroy(): void {
    this.release();
    for (const s of this.sockets) s.destroy();
  }
}
