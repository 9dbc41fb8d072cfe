/**
 * The queue every worker and submitter of a fleet shares, and the options
 * a job is enqueued with.
 */
import type { JobsOptions } from 'bullmq';

/** The BullMQ queue name (`--queue`); fleets sharing one Redis use different names. */
export const DEFAULT_QUEUE = 'ptscope';

/** Finished jobs kept in Redis for `ptscope jobs` and `submit --wait`; older ones are dropped. */
const KEEP_FINISHED = 10_000;

export interface RetryPolicy {
  /** Attempts in all (a failure is retried until they are used up). */
  attempts: number;
  /** Delay before the first retry; each next one doubles. */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, backoffMs: 2000 };

export function jobOptions(retry: RetryPolicy): JobsOptions {
  return {
    attempts: retry.attempts,
    backoff: { type: 'exponential', delay: retry.backoffMs },
    removeOnComplete: { count: KEEP_FINISHED },
    removeOnFail: { count: KEEP_FINISHED },
  };
}

/** Printable one-line text of a job field: hostile data must not drive the terminal. */
export function printable(text: string, max = 200): string {
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}
