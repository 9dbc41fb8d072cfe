/**
 * What a job handler may use besides its data: the store, the attempt it
 * is on, progress and log sinks, and (for a flow's parent) its children's
 * results. The BullMQ processor fills it in; handlers know nothing of
 * BullMQ, so they read like the commands they mirror.
 */
import { InputError } from '../sources/import/safe-files.js';
import type { Store } from './store.js';

export interface JobContext {
  readonly store: Store;
  /** Which worker runs it (host:pid), for results and logs. */
  readonly worker: string;
  /** 1 on the first start; more when an earlier attempt failed or its worker died. */
  readonly attempt: number;
  /** Fraction done, 0 to 1. */
  progress(fraction: number): void;
  log(line: string): void;
  /** A flow parent's children's return values, by child job key. */
  childrenValues(): Promise<Record<string, unknown>>;
}

/** A job that cannot be done: the one line the command line would print. */
export class JobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobError';
    // One line for the user: no stack trace is stored with the failed job.
    this.stack = `JobError: ${message}`;
  }
}

/** The first line of an error's message (what the command line prints). */
export function firstLine(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0]! : String(e).split('\n')[0]!;
}

/**
 * Run `f`; any error becomes a JobError with its first line, as the
 * commands' `openInput`/`asInputError` turn errors into one-line CliErrors.
 */
export function asJobError<T>(f: () => T, prefix = ''): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof JobError) throw e;
    if (e instanceof InputError) throw new JobError(prefix + e.message);
    throw new JobError(prefix + firstLine(e));
  }
}

/** A context whose progress maps [0, 1] into [from, to] of `outer` (a job run inside another). */
export function subContext(outer: JobContext, from: number, to: number): JobContext {
  return {
    store: outer.store,
    worker: outer.worker,
    attempt: outer.attempt,
    progress: (f) => outer.progress(from + (to - from) * Math.min(1, Math.max(0, f))),
    log: (l) => outer.log(l),
    childrenValues: () => outer.childrenValues(),
  };
}
