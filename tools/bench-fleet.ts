/**
 * Fleet throughput on this machine: 1, 2 and 3 local `ptscope worker`
 * processes (one job at a time each) on a real redis-server, running the
 * same recorder+analyze job mix; prints jobs per minute and the speed-up
 * over one worker as a Markdown table (the README's "Running a fleet"
 * figures come from here).
 *
 *   npm run build && node dist/tools/bench-fleet.js [jobs per kind, default 8]
 *
 * The mix, per round: N `record` jobs (record /bin/true in the sandbox, then
 * analyze the new bundle, in one job) and N `analyze` jobs of the demo
 * bundles. Each round has fresh workers, so the time includes their start
 * and the first job's module loading, as a real deployment's would. Wall
 * time runs from the first submission to the last completion.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobBoard } from '../src/fleet/job-status.js';
import { parseRedisUrl } from '../src/fleet/redis-url.js';
import { Submitter, type JobRequest } from '../src/fleet/submit.js';
import { freePort, RedisServer } from './redis-server.js';

const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();
const BIN = join(ROOT, 'bin', 'ptscope.js');

function startWorker(url: string, store: string, queue: string): { proc: ChildProcess; ready: Promise<void> } {
  const proc = spawn(process.execPath, [BIN, 'worker', '--redis', url, '--store', store, '--queue', queue, '--concurrency', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (/worker \S+: queue/.test(out)) resolve();
      for (const line of d.split('\n')) if (/: failed: /.test(line)) process.stderr.write(`${line}\n`);
    });
    proc.on('exit', (code) => reject(new Error(`worker exited (${code}): ${out}`)));
  });
  return { proc, ready };
}

async function round(url: string, store: string, workers: number, perKind: number): Promise<{ jobs: number; seconds: number }> {
  const queue = `bench-${workers}-${Date.now()}`;
  const procs = Array.from({ length: workers }, () => startWorker(url, store, queue));
  const target = parseRedisUrl(url);
  const submitter = new Submitter(target, queue, { attempts: 1, backoffMs: 0 });
  const board = new JobBoard(target, queue);
  try {
    const requests: JobRequest[] = [];
    for (let i = 0; i < perKind; i++) {
      requests.push({ kind: 'record', data: { program: 'bin/true', output: `runs/${queue}-${i}.ptscope`, analyze: true } });
      requests.push({ kind: 'analyze', data: { input: i % 2 === 0 ? 'rop_stack.exploit' : 'rop_stack.benign' } });
    }
    const started = process.hrtime.bigint();
    const ids: string[] = [];
    for (const r of requests) ids.push((await submitter.add(r)).id);
    for (;;) {
      const all = await board.status(ids);
      const failed = all.filter((s) => s === null || s.state === 'failed');
      if (failed.length > 0) throw new Error(`jobs failed: ${failed.map((s) => s?.failedReason ?? 'removed').join('; ')}`);
      if (all.every((s) => s!.state === 'completed')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { jobs: ids.length, seconds };
  } finally {
    await submitter.close();
    await board.close();
    await Promise.all(
      procs.map(async ({ proc, ready }) => {
        await ready.catch(() => {});
        if (proc.exitCode !== null) return;
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }),
    );
  }
}

async function main(): Promise<void> {
  const perKind = Number(process.argv[2] ?? 8);
  if (!Number.isInteger(perKind) || perKind < 1) throw new Error('usage: bench-fleet [jobs per kind]');
  const work = mkdtempSync(join(tmpdir(), 'ptscope-bench-fleet-'));
  const store = join(work, 'store');
  mkdirSync(join(store, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'demo', 'rop_stack.exploit'), join(store, 'rop_stack.exploit'), { recursive: true });
  cpSync(join(ROOT, 'demo', 'rop_stack.benign'), join(store, 'rop_stack.benign'), { recursive: true });
  cpSync('/bin/true', join(store, 'bin', 'true'));
  mkdirSync(join(work, 'redis'));
  const redis = new RedisServer(join(work, 'redis'), await freePort());
  await redis.start();
  try {
    console.log(`fleet throughput: ${perKind} record+analyze and ${perKind} analyze jobs per round; ${availableParallelism()} cores, load ${loadavg()[0]!.toFixed(1)} at start`);
    console.log('');
    console.log('| local workers | jobs | wall time | jobs per minute | speed-up |');
    console.log('|---|---|---|---|---|');
    let base = 0;
    for (const workers of [1, 2, 3]) {
      const r = await round(redis.url, store, workers, perKind);
      const perMin = (r.jobs * 60) / r.seconds;
      if (workers === 1) base = perMin;
      console.log(`| ${workers} | ${r.jobs} | ${r.seconds.toFixed(1)} s | ${perMin.toFixed(1)} | ${(perMin / base).toFixed(2)}× |`);
    }
    console.log('');
    console.log(`load ${loadavg()[0]!.toFixed(1)} at the end`);
  } finally {
    await redis.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-fleet: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
