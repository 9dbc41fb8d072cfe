/**
 * `ptscope worker`: take jobs from the fleet's queue and run them with the
 * commands' code (src/fleet/), until SIGINT or SIGTERM; then finish the
 * running jobs and stop.
 */
import { availableParallelism } from 'node:os';
import { redactRedisUrl } from '../fleet/redis-url.js';
import { defineCommand, integer, parseCommand } from './command.js';
import { FLEET_HELP, openStore, REDIS_ENV, redisTarget, withFleetOptions, type FleetCliOptions } from './fleet-options.js';
import type { LineWriter } from './output.js';

export function workerCommand() {
  return withFleetOptions(
    defineCommand('worker', "Run a fleet worker: take jobs from the queue in Redis (record, analyze, dormant, crash, classify, report, trace segments) and run them as the commands do, reading and writing only under the store. Each job runs in a worker thread; results go back to Redis as JSON, files into the store.")
      .option('--store <dir>', 'the storage root every machine of the fleet shares (jobs name files relative to it)')
      .option('--concurrency <n>', 'jobs run at once (default: one per core)', integer(1, 256))
      .option('--stall-timeout <sec>', "seconds after which a dead worker's job is run again elsewhere", integer(1, 3600), 30),
  ).addHelpText('after', `${FLEET_HELP}

Programs are always recorded under the emulated recorder inside the sandbox
(bubblewrap), whatever a job asks: no job field turns confinement off.

examples:
  ptscope worker --redis redis://127.0.0.1:6379 --store /srv/ptscope
  ${REDIS_ENV}=redis://:secret@queue.lan:6379 ptscope worker --store /mnt/ptscope --concurrency 2`);
}

interface WorkerCliOptions extends FleetCliOptions {
  store?: string;
  concurrency?: number;
  stallTimeout: number;
}

/** `ptscope worker`. */
export async function runWorkerCommand(args: string[], out: LineWriter): Promise<number> {
  const { help, opts: o } = parseCommand<WorkerCliOptions>(workerCommand(), args, out);
  if (help) return 0;
  const redis = redisTarget(o);
  const url = redactRedisUrl(o.redis ?? process.env[REDIS_ENV] ?? '');
  // Programs re-run by jobs (dormant, crash) inherit the environment: the password stays out of it.
  delete process.env[REDIS_ENV];
  const store = openStore(o.store);
  const concurrency = o.concurrency ?? availableParallelism();
  const log = (line: string) => {
    out.line(`${new Date().toISOString()} ${line}`);
    out.flush();
  };
  // BullMQ loads only for the fleet commands.
  const { startFleetWorker } = await import('../fleet/worker.js');
  const worker = startFleetWorker({ redis, queue: o.queue, store, concurrency, stallTimeoutSec: o.stallTimeout, log });
  log(`worker ${worker.name}: queue '${o.queue}' on ${url}, store ${store.root}, ${concurrency} at once`);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  log(`${signal}: finishing the running jobs, then stopping`);
  await worker.close();
  log('stopped');
  return 0;
}
