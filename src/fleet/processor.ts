/**
 * The BullMQ sandboxed processor: each job runs in a worker thread of the
 * worker process (BullMQ's `useWorkerThreads`), so that a long synchronous
 * decode never blocks the main thread that renews the job's lock in Redis,
 * and a job that dies takes only its thread down. A SIGKILL of the process
 * ends every thread with it; the job's lock then lapses and another worker
 * takes it up (BullMQ's stalled-job handling).
 *
 * `workerData` carries the store root and the worker's name.
 */
import { workerData } from 'node:worker_threads';
import type { SandboxedJob } from 'bullmq';
import type { JobContext } from './job-context.js';
import { runJob } from './run-job.js';
import { Store } from './store.js';

export interface ProcessorData {
  store: string;
  worker: string;
}

let store: Store | null = null;

export default async function processJob(job: SandboxedJob): Promise<unknown> {
  const data = workerData as ProcessorData;
  store ??= new Store(data.store);
  let last = -1;
  const ctx: JobContext = {
    store,
    worker: data.worker,
    attempt: Math.max(1, job.attemptsStarted),
    progress(fraction) {
      const p = Math.floor(Math.min(1, Math.max(0, fraction)) * 100);
      if (p <= last) return;
      last = p;
      void job.updateProgress(p).catch(() => {});
    },
    log(line) {
      void Promise.resolve(job.log(line)).catch(() => {});
    },
    childrenValues: () => job.getChildrenValues(),
  };
  return runJob(job.name, job.data, ctx);
}
