/**
 * `npm run bench -- parallel-cli`: `analyze` and `flow --quiet --stat` as
 * a user runs them, whole processes, `--jobs 1` against `--jobs 2`, on the
 * real mruby trace concatenated PTSCOPE_BENCH_PARALLEL_COPIES times
 * (default 100: 71 MB). The two runs of a pair follow each other, and the
 * pairs alternate PTSCOPE_BENCH_PAIRS times (default 3): on a VM whose
 * speed drifts between minutes, a pair's ratio is what can be compared,
 * and the median of the pairs is printed with every pair. Each pair's
 * outputs are checked equal.
 *
 * Each pair also measures what the machine gives two threads at that
 * time: two `--jobs 1` runs at once, against the pair's `--jobs 1` run
 * alone. Their throughput, 2 x alone / (the slower of the two), is the
 * ceiling of any 2-thread speed-up of this work here, whatever the
 * decoder does: on this VM two CPU-bound processes often run no faster
 * together than one after the other (the host gives its two vCPUs less
 * than two cores, and the guest counts the time taken from it as user
 * time). The efficiency printed is the speed-up over that ceiling.
 */
import { spawn } from 'node:child_process';
import { repeatedMruby } from './repeated-trace.js';
import { median, timedRun } from './process-timing.js';
import { existsSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

export interface PairMeasurement {
  label: string;
  mbps: number;
  unit: string;
  detail?: string;
}

/** One ptscope process: its wall time and stdout. */
function run(cli: string, args: string[]): { seconds: number; stdout: string } {
  return timedRun(process.execPath, [cli, ...args], { name: `ptscope ${args.join(' ')}` });
}

/** Run two copies of `args` at once; the seconds each took, and their outputs. */
async function runTwoAtOnce(cli: string, args: string[]): Promise<{ seconds: number; stdout: string }[]> {
  const one = (): Promise<{ seconds: number; stdout: string }> =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      child.on('close', (code) => {
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        if (code !== 0) reject(new Error(`ptscope ${args.join(' ')}: exit ${code}: ${Buffer.concat(err).toString()}`));
        else resolve({ seconds, stdout: Buffer.concat(out).toString() });
      });
    });
  return Promise.all([one(), one()]);
}

export async function runParallelPairsBench(root: string, realDir: string, benchDir: string): Promise<PairMeasurement[]> {
  const dir = join(realDir, 'mruby');
  if (!existsSync(join(dir, 'trace.pt'))) {
    console.log(`  (skipped: ${dir}/trace.pt not found)`);
    return [];
  }
  const copies = Math.max(1, Number(process.env.PTSCOPE_BENCH_PARALLEL_COPIES ?? 100));
  const pairs = Math.max(1, Number(process.env.PTSCOPE_BENCH_PAIRS ?? 3));
  const trace = repeatedMruby(realDir, benchDir, copies);
  const cli = join(root, 'bin', 'ptscope.js');
  const input = ['--cpu', '6/158', '--raw', `${join(dir, 'seg_400000.bin')}:0x400000`];
  const commands: { name: string; args: string[] }[] = [
    { name: 'analyze', args: ['analyze', trace, ...input] },
    { name: 'flow --quiet --stat', args: ['flow', '--quiet', '--stat', ...input, '--pt', trace] },
  ];
  console.log(`  trace: mruby x${copies}, ${(statSync(trace).size / 1e6).toFixed(1)} MB; ${pairs} pairs per command; load average ${loadavg()[0]!.toFixed(1)} at start`);
  const out: PairMeasurement[] = [];
  // The timing line differs; everything else must not.
  const strip = (s: string) => s.replace(/ in [0-9.]+ s \([0-9]+ instructions\/s\)/g, '');
  for (const c of commands) {
    const ratios: number[] = [];
    const ceilings: number[] = [];
    for (let p = 0; p < pairs; p++) {
      const serial = run(cli, c.args);
      const parallel = run(cli, [...c.args, '--jobs', '2']);
      const both = await runTwoAtOnce(cli, c.args);
      if (strip(serial.stdout) !== strip(parallel.stdout)) console.log(`  WARNING: ${c.name} --jobs 2 printed something else than --jobs 1`);
      if (both.some((b) => strip(b.stdout) !== strip(serial.stdout))) console.log(`  WARNING: ${c.name} run twice at once printed something else than alone`);
      const r = serial.seconds / parallel.seconds;
      const slower = Math.max(both[0]!.seconds, both[1]!.seconds);
      const ceiling = (2 * serial.seconds) / slower;
      ratios.push(r);
      ceilings.push(ceiling);
      console.log(
        `  ${c.name}: pair ${p + 1}: --jobs 1 ${serial.seconds.toFixed(2)} s, --jobs 2 ${parallel.seconds.toFixed(2)} s, ${r.toFixed(2)}x; ` +
          `two --jobs 1 at once ${both[0]!.seconds.toFixed(2)} s and ${both[1]!.seconds.toFixed(2)} s: ceiling ${ceiling.toFixed(2)}x, ` +
          `efficiency ${(r / ceiling).toFixed(2)} (load average ${loadavg()[0]!.toFixed(1)})`,
      );
    }
    const efficiency = ratios.map((r, i) => r / ceilings[i]!);
    out.push({ label: `${c.name} --jobs 2 over --jobs 1, median of ${pairs}`, mbps: median(ratios), unit: 'x', detail: `pairs ${ratios.map((r) => r.toFixed(2)).join(', ')}; goal >= 1.8x` });
    out.push({
      label: `${c.name}: this machine's 2-process ceiling, median`,
      mbps: median(ceilings),
      unit: 'x',
      detail: `pairs ${ceilings.map((r) => r.toFixed(2)).join(', ')}; speed-up / ceiling: ${efficiency.map((e) => e.toFixed(2)).join(', ')}`,
    });
  }
  return out;
}
