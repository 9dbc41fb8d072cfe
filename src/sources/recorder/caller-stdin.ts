/**
 * The recorded program's standard input when the analyst gives no
 * `--stdin`: the caller's own, as `perf record -- prog < input` does.
 * record() may run the program twice (a first run that stops at its first
 * thread or fork, then one with a log per thread), so both runs must read
 * the same bytes:
 * - a regular file or a device is reopened (from its start) for each run;
 * - a pipe or socket is passed through as the program reads it, and what
 *   was passed is kept (up to a bound) to give the next run first
 *   ({@link StdinReplay}); nothing is read that no run asked for, so an
 *   open pipe nobody writes to does not block the recording;
 * - a terminal is not handed to the program (the recording is not
 *   interactive, and a second run would ask the user again): it reads
 *   nothing, and a notice says so.
 */
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { isatty } from 'node:tty';
import type { Writable } from 'node:stream';
import { RecordError } from './record-error.js';

export interface CallerStdin {
  /** What the program reads: a file, the replayed pipe, or nothing (undefined). */
  stdin: string | StdinReplay | undefined;
  /** Why the program reads nothing, when it does not. */
  notice: string | null;
}

/** What the caller's standard input (`fd`) becomes for the recorded program; `maxCopy` bounds the replay copy. */
export function callerStdin(maxCopy: number, fd = 0): CallerStdin {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return { stdin: undefined, notice: null }; // closed: nothing to read
  }
  if (isatty(fd)) return { stdin: undefined, notice: 'standard input is a terminal: the program reads nothing from it (redirect it, or use --stdin FILE)' };
  if (st.isFile() || st.isCharacterDevice()) return { stdin: `/proc/${process.pid}/fd/${fd}`, notice: null };
  if (st.isFIFO() || st.isSocket()) return { stdin: new StdinReplay(fd, maxCopy), notice: null };
  return { stdin: undefined, notice: 'standard input is neither a file nor a pipe: the program reads nothing from it' };
}

/**
 * A pipe given to each run in turn: a run first gets every byte the runs
 * before it were given, then what arrives, as fast as it reads it.
 */
export class StdinReplay {
  private readonly copy: Buffer[] = [];
  private copied = 0;
  private overflow = false;
  private ended = false;
  private source: Socket | null = null;
  private target: Writable | null = null;

  constructor(
    /** The caller's descriptor (a pipe or socket). */
    readonly fd: number,
    private readonly maxCopy: number,
  ) {}

  /** A run starts: `to` is its standard input. */
  feed(to: Writable): void {
    if (this.overflow) throw new RecordError(`record: the program read over ${this.maxCopy >> 20} MiB of standard input, too much to give it again for the second recording: use --stdin FILE`);
    this.target = to;
    // The program may stop reading (EPIPE) or end: that is not an error of the recording.
    to.on('error', () => this.pause());
    for (const c of this.copy) to.write(c);
    if (this.ended) {
      to.end();
      return;
    }
    if (this.source === null) {
      const s = new Socket({ fd: this.fd, readable: true, writable: false });
      this.source = s;
      s.on('data', (c: Buffer) => this.pass(c));
      s.on('end', () => this.finish());
      s.on('error', () => this.finish());
    }
    this.source.resume();
  }

  /** The run ended: stop reading for it. */
  detach(): void {
    this.target = null;
    this.pause();
  }

  /** The recording is over. */
  close(): void {
    this.target = null;
    this.source?.destroy();
    this.source = null;
  }

  private pass(c: Buffer): void {
    if (!this.overflow) {
      if (this.copied + c.length > this.maxCopy) {
        this.overflow = true;
        this.copy.length = 0;
      } else {
        this.copy.push(c);
        this.copied += c.length;
      }
    }
    const t = this.target;
    if (t !== null && !t.write(c)) {
      this.pause();
      t.once('drain', () => {
        if (this.target === t) this.source?.resume();
      });
    }
  }

  private pause(): void {
    this.source?.pause();
  }

  private finish(): void {
    this.ended = true;
    this.target?.end();
  }
}
