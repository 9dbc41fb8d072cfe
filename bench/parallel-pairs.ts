/**
 * `npm run bench -- parallel-cli`: `analyze` and `flow --quiet --stat` as
 * a user runs them, whole processes, `--jobs 1` against `--jobs 2`, on the
 * real mruby trace concatenated PTSCOPE_BENCH_PARALLEL_COPIES times
 * (default 100: 71 MB). The two runs of a pair follow each other, and the
 * pairs alternate PTSCOPE_BENCH_PAIRS times (default 3): on a VM whose
 * speed drifts between minutes, a pair's ratio is what can be compared,
 * and the median of the pairs is printed with every pair. Each pair's
 * outputs are checked equal.
 */
import { spawnSync } from 'node:child_process';
import { repeatedMruby } from './repeated-trace.js';
import { existsSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

export interface PairMeasurement {
  label: string;
  mbps: number;
  unit: string;
  detail?: string;
}

function run(cli: string, args: string[]): { seconds: number; stdout: string } {
  const t0 = process.hrtime.bigint();
  const res = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (res.status !== 0) throw new Error(`ptscope ${args.join(' ')}: exit ${res.status}: ${res.stderr}`);
  return { seconds, stdout: res.stdout };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function runParallelPairsBench(root: string, realDir: string, benchDir: string): PairMeasurement[] {
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
  for (const c of commands) {
    const ratios: number[] = [];
    for (let p = 0; p < pairs; p++) {
      const serial = run(cli, c.args);
      const parallel = run(cli, [...c.args, '--jobs', '2']);
      // The timing line differs; everything else must not.
      const strip = (s: string) => s.replace(/ in [0-9.]+ s \([0-9]+ instructions\/s\)/g, '');
      if (strip(serial.stdout) !== strip(parallel.stdout)) console.log(`  WARNING: ${c.name} --jobs 2 printed something else than --jobs 1`);
      const r = serial.seconds / parallel.seconds;
      ratios.push(r);
      console.log(`  ${c.name}: pair ${p + 1}: --jobs 1 ${serial.seconds.toFixed(2)} s, --jobs 2 ${parallel.seconds.toFixed(2)} s, ${r.toFixed(2)}x (load average ${loadavg()[0]!.toFixed(1)})`);
    }
    out.push({ label: `${c.name} --jobs 2 over --jobs 1, median of ${pairs}`, mbps: median(ratios), unit: 'x', detail: `pairs ${ratios.map((r) => r.toFixed(2)).join(', ')}; goal >= 1.8x` });
  }
  return out;
}
