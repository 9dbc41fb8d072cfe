/**
 * What `ptscope jobs` lists and `submit --wait` follows: each job's state,
 * progress, attempts and outcome, read from Redis.
 */
import { Job, Queue } from 'bullmq';
import { jobTarget } from './job-types.js';
import { printable } from './queue.js';
import { clientConnection, type RedisTarget } from './redis-url.js';

import { LISTED_STATES, type JobStateName } from './job-states.js';

export { LISTED_STATES, type JobStateName };

export interface JobStatus {
  id: string;
  kind: string;
  target: string;
  state: JobStateName;
  /** Percent done: the job's own, or for a flow parent waiting on its children, the share of them done. */
  progress: number;
  /** Attempts that failed (or completed). */
  attemptsMade: number;
  /** Times a worker started it (more than attemptsMade + 1 when a worker died running it). */
  attemptsStarted: number;
  attempts: number;
  /** The worker that ran it last (host:pid). */
  worker: string | null;
  failedReason: string | null;
  result: unknown;
  /** Enqueued, started and finished times (ms since the epoch). */
  timestamp: number;
  processedOn: number | null;
  finishedOn: number | null;
}

function percent(p: unknown): number {
  const n = typeof p === 'number' ? p : typeof p === 'object' && p !== null && typeof (p as { percent?: unknown }).percent === 'number' ? (p as { percent: number }).percent : 0;
  return Math.max(0, Math.min(100, Math.floor(n)));
}

async function statusOf(job: Job, known?: JobStateName): Promise<JobStatus> {
  const state = (known ?? ((await job.getState()) as JobStateName)) satisfies JobStateName;
  let progress = state === 'completed' ? 100 : percent(job.progress);
  if (state === 'waiting-children') {
    const d = await job.getDependenciesCount({ processed: true, unprocessed: true });
    const total = (d.processed ?? 0) + (d.unprocessed ?? 0);
    progress = total > 0 ? Math.floor((100 * (d.processed ?? 0)) / total) : 0;
  }
  return {
    id: String(job.id),
    kind: printable(job.name, 20),
    target: jobTarget(job.name, job.data),
    state,
    progress,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted,
    attempts: job.opts.attempts ?? 1,
    worker: job.processedBy ? printable(job.processedBy, 100) : null,
    failedReason: job.failedReason ? printable(job.failedReason, 1000) : null,
    result: job.returnvalue ?? null,
    timestamp: job.timestamp,
    processedOn: job.processedOn ?? null,
    finishedOn: job.finishedOn ?? null,
  };
}

/** Read access to a fleet's jobs; close it when done. */
export class JobBoard {
  readonly queue: Queue;

  constructor(redis: RedisTarget, queueName: string) {
    const c = clientConnection(redis);
    this.queue = new Queue(queueName, { connection: c.options });
    // Connection errors reach the caller as rejected commands.
    this.queue.on('error', c.onError);
  }

  /** The jobs with these ids, in order; a job that no longer exists is null. */
  async status(ids: readonly string[]): Promise<(JobStatus | null)[]> {
    return Promise.all(
      ids.map(async (id) => {
        // The state first: a job read after it shows 'completed' carries its result.
        const state = (await this.queue.getJobState(id)) as JobStateName;
        const job = await Job.fromId(this.queue, id);
        return job ? statusOf(job, state) : null;
      }),
    );
  }

  /** Up to `limit` jobs of each state, newest first within a state. */
  async list(states: readonly JobStateName[], limit: number): Promise<JobStatus[]> {
    const out: JobStatus[] = [];
    for (const state of states) {
      const jobs = (await this.queue.getJobs([state as never], 0, limit - 1, false)) as Job[];
      for (const job of jobs) if (job) out.push(await statusOf(job, state));
    }
    return out;
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts(...(LISTED_STATES.filter((s) => s !== 'unknown') as never[]));
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
