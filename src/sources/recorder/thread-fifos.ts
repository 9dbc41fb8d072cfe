/**
 * One log FIFO per thread for qemu's `-d tid` (each thread of the emulator
 * opens `-D DIR/%d` with its tid when it first logs). The sandbox has its
 * own PID namespace, so tids are small and sequential: the directory holds a
 * FIFO for each of 1..{@link MAX_TASK_ID} and is shown read-only, so a tid
 * beyond that range cannot create a log (its thread is reported untraced)
 * and the program cannot add files there. The recorder reads every FIFO as
 * a non-blocking stream and holds a write end of each until the run has
 * ended, so a FIFO that no thread opened does not read as ended.
 *
 * Unlike the one-log mode (record.ts), the FIFOs are reachable by path
 * inside the sandbox: a program can open one and write to it. The parsers'
 * checks (qemu-log.ts, path-reconstruction.ts) still refuse what is not
 * consistent with the code; the bundle carries a warning.
 */
import { chmodSync, chownSync, closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/** The highest tid with a log (tasks beyond are reported untraced). */
export const MAX_TASK_ID = 256;
/** Where the sandbox shows the FIFOs. */
export const THREAD_LOG_DIR = '/run/ptscope-log';
const FIFO_OWNER = 65534;

export class ThreadFifos {
  private readonly sockets: Socket[] = [];
  private readonly holders: number[] = [];
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
      this.holders.push(openSync(p, constants.O_WRONLY | constants.O_NONBLOCK));
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
    for (const fd of this.holders.splice(0)) closeSync(fd);
  }

  /** Stop reading (a failure): close everything. */
  destroy(): void {
    this.release();
    for (const s of this.sockets) s.destroy();
  }
}
