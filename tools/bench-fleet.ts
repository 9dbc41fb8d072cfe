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
 * bundles. Each round starts fresh workers and warms them up first (one
 * analyze job each, so that every worker thread has loaded its modules):
 * the figures are steady-state throughput. Wall time runs from the first
 * submission of the mix to its last completion. The CPU per job counts the
 * worker processes and their children (the sandbox, qemu) from /proc; the
 * ceiling is what the machine's cores would give if the workers had them
 * all (cores × 60 / CPU seconds per job): on a busy machine the gap
 * between it and the measured rate is other load.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobBoard, type JobStatus } from '../src/fleet/job-status.js';
import { parseRedisUrl } from '../src/fleet/redis-url.js';
import { Submitter, type JobRequest } from '../src/fleet/submit.js';
import { freePort, RedisServer } from './redis-server.js';

const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();
const BIN = join(ROOT, 'bin', 'ptscope.js');

/** Clock ticks per second of /proc/<pid>/stat. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds used by a process and its waited-for children (qemu, bwrap), from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3; utime..cstime are 14-17.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

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

/** Submit and wait until every job completed; any failure is an error. */
async function runAll(submitter: Submitter, board: JobBoard, requests: JobRequest[]): Promise<JobStatus[]> {
  const ids: string[] = [];
  for (const r of requests) ids.push((await submitter.add(r)).id);
  for (;;) {
    const all = await board.status(ids);
    const failed = all.filter((s) => s === null || s.state === 'failed');
    if (failed.length > 0) throw new Error(`jobs failed: ${failed.map((s) => s?.failedReason ?? 'removed').join('; ')}`);
    if (all.every((s) => s!.state === 'completed')) return all as JobStatus[];
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function round(url: string, store: string, workers: number, perKind: number): Promise<{ jobs: number; seconds: number; cpu: number; warmed: number }> {
  const queue = `bench-${workers}-${Date.now()}`;
  const procs = Array.from({ length: workers }, () => startWorker(url, store, queue));
  const target = parseRedisUrl(url);
  const submitter = new Submitter(target, queue, { attempts: 1, backoffMs: 0 });
  const board = new JobBoard(target, queue);
  try {
    await Promise.all(procs.map((p) => p.ready));
    // Redis hands jobs to blocked workers in turn: one warm-up job each.
    const warm = await runAll(submitter, board, Array.from({ length: workers }, () => ({ kind: 'analyze', data: { input: 'rop_stack.benign' } })));
    const warmed = new Set(warm.map((s) => s.worker)).size;
    const requests: JobRequest[] = [];
    for (let i = 0; i < perKind; i++) {
      requests.push({ kind: 'record', data: { program: 'bin/true', output: `runs/${queue}-${i}.ptscope`, analyze: true } });
      requests.push({ kind: 'analyze', data: { input: i % 2 === 0 ? 'rop_stack.exploit' : 'rop_stack.benign' } });
    }
    const cpu = () => procs.reduce((n, p) => n + cpuSeconds(p.proc.pid!), 0);
    const cpuBefore = cpu();
    const started = process.hrtime.bigint();
    await runAll(submitter, board, requests);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { jobs: requests.length, seconds, cpu: cpu() - cpuBefore, warmed };
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
    const cores = availableParallelism();
    console.log(`| local workers | jobs | wall time | jobs per minute | speed-up | worker CPU per job | CPU-bound ceiling on ${cores} idle cores |`);
    console.log('|---|---|---|---|---|---|---|');
    const notes: string[] = [];
    let base = 0;
    for (const workers of [1, 2, 3]) {
      const r = await round(redis.url, store, workers, perKind);
      const perMin = (r.jobs * 60) / r.seconds;
      if (workers === 1) base = perMin;
      console.log(`| ${workers} | ${r.jobs} | ${r.seconds.toFixed(1)} s | ${perMin.toFixed(1)} | ${(perMin / base).toFixed(2)}× | ${(r.cpu / r.jobs).toFixed(2)} s | ${((cores * 60 * r.jobs) / r.cpu).toFixed(0)} jobs per minute |`);
      if (r.warmed !== workers) notes.push(`${workers} workers: the warm-up reached ${r.warmed} of them`);
    }
    console.log('');
    for (const n of notes) console.log(`note: ${n}`);
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
