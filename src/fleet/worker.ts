/**
 * A fleet worker: a BullMQ Worker on the shared queue that runs each job in
 * a worker thread (processor.ts), with the store root as its working
 * directory. It logs one line per job event; job fields are printed only
 * through {@link printable}, and the Redis URL only without its password.
 *
 * Failure semantics (BullMQ's, configured here):
 * - a job whose worker dies (SIGKILL, power loss) keeps its lock only for
 *   `stallTimeoutSec`; any live worker's stalled-job check then puts it
 *   back in the wait list, and another worker runs it again from the start
 *   (up to {@link MAX_STALLS} times);
 * - a job that throws is retried with exponential backoff until its
 *   attempts are used up, then lands in the failed set with its one-line
 *   reason; the worker goes on with the next job.
 */
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, type Job } from 'bullmq';
import { jobTarget } from './job-types.js';
import type { ProcessorData } from './processor.js';
import { printable } from './queue.js';
import { connectionOptions, type RedisTarget } from './redis-url.js';
import type { Store } from './store.js';

/** Times a job may lose its worker before it is failed rather than run again. */
export const MAX_STALLS = 3;

export interface FleetWorkerOptions {
  redis: RedisTarget;
  queue: string;
  store: Store;
  /** Jobs run at once (worker threads). */
  concurrency: number;
  /** How long a job's lock outlives its worker, and how often stalled jobs are looked for. */
  stallTimeoutSec: number;
  log(line: string): void;
}

export interface FleetWorker {
  readonly name: string;
  /** Finish the running jobs, take no new ones, disconnect. */
  close(): Promise<void>;
}

/** The processor's compiled file, beside this one. */
const PROCESSOR_FILE = fileURLToPath(new URL('./processor.js', import.meta.url));

/** A message repeated (Redis unreachable, every reconnect) is logged at most this often. */
const REPEAT_MS = 10_000;

function describe(job: Job): string {
  return `job ${printable(String(job.id))} ${printable(job.name, 20)} ${jobTarget(job.name, job.data)}`;
}

/** Start a worker. The process's working directory becomes the store root. */
export function startFleetWorker(o: FleetWorkerOptions): FleetWorker {
  process.chdir(o.store.root);
  const name = `${hostname()}:${process.pid}`;
  const processorData: ProcessorData = { store: o.store.root, worker: name };
  const worker = new Worker(o.queue, PROCESSOR_FILE, {
    connection: connectionOptions(o.redis),
    concurrency: o.concurrency,
    useWorkerThreads: true,
    workerThreadsOptions: { workerData: processorData },
    lockDuration: o.stallTimeoutSec * 1000,
    stalledInterval: o.stallTimeoutSec * 1000,
    maxStalledCount: MAX_STALLS,
    name,
  });
  const lastSaid = new Map<string, number>();
  const say = (line: string, repeatable = false) => {
    if (repeatable) {
      const now = Date.now();
      if (now - (lastSaid.get(line) ?? 0) < REPEAT_MS) return;
      lastSaid.set(line, now);
    }
    o.log(line);
  };
  worker.on('active', (job) => say(`${describe(job)}: started (attempt ${job.attemptsStarted})`));
  worker.on('completed', (job) => {
    const secs = job.finishedOn !== undefined && job.processedOn !== undefined ? ` in ${((job.finishedOn - job.processedOn) / 1000).toFixed(1)} s` : '';
    say(`${describe(job)}: completed${secs}`);
  });
  worker.on('failed', (job, err) => {
    if (job === undefined) return say(`a job failed: ${printable(err.message)}`);
    const final = job.attemptsMade >= (job.opts.attempts ?? 1);
    say(`${describe(job)}: ${final ? 'failed' : `attempt ${job.attemptsMade} failed, will retry`}: ${printable(err.message, 400)}`);
  });
  worker.on('stalled', (id) => say(`job ${printable(id)}: its worker stopped answering; queued again`));
  // ioredis's messages name host and port, never the password.
  worker.on('error', (err) => say(`worker: ${printable(err.message)}`, true));
  return {
    name,
    close: () => worker.close(),
  };
}
