/**
 * `npm run bench -- memory`: the peak resident set of each command that
 * reads a whole trace, as a user runs it (a process of the built CLI), over
 * the real mruby trace and over it concatenated PTSCOPE_BENCH_MEMORY_COPIES
 * times (default 100: 71 MB) and twice that. Each process reports its own
 * peak at exit, its worker threads included (test/helpers/report-peak-memory.mjs,
 * the memory tests' preload). The JS heap is capped at 160 MB, as in
 * test/memory-flat.test.ts, so that a peak shows what the process must
 * hold rather than how late the garbage collector ran: uncapped, V8 lets
 * the heap of a long run grow by tens of MB before it collects. Flat in
 * the trace's size means the peaks are close; the trace's size is printed
 * beside them. A parallel decode's pieces grow with the trace up to 8 MiB
 * (64 copies), so for `--jobs` the last two columns are the ones to
 * compare.
 */
import { spawnSync } from 'node:child_process';
import { repeatedMruby } from './repeated-trace.js';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MemoryMeasurement {
  label: string;
  mbps: number;
  unit: string;
  detail?: string;
}

/** Run the CLI with the peak-memory preload; its peak RSS in MB and its wall time. */
function peakOf(root: string, args: string[], scratch: string): { mb: number; seconds: number } {
  const file = join(scratch, 'peak.json');
  rmSync(file, { force: true });
  const t0 = process.hrtime.bigint();
  const res = spawnSync(process.execPath, ['--max-old-space-size=160', '--import', join(root, 'test', 'helpers', 'report-peak-memory.mjs'), join(root, 'bin', 'ptscope.js'), ...args], {
    env: { ...process.env, PTSCOPE_PEAK_MEMORY_FILE: file },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (res.status !== 0) throw new Error(`ptscope ${args.join(' ')}: exit ${res.status}: ${res.stderr}`);
  const peak = JSON.parse(readFileSync(file, 'utf8')) as { maxRssBytes: number };
  return { mb: peak.maxRssBytes / 1e6, seconds };
}

export function runMemoryBench(root: string, realDir: string, benchDir: string): MemoryMeasurement[] {
  const dir = join(realDir, 'mruby');
  if (!existsSync(join(dir, 'trace.pt'))) {
    console.log(`  (skipped: ${dir}/trace.pt not found)`);
    return [];
  }
  const copies = Math.max(2, Number(process.env.PTSCOPE_BENCH_MEMORY_COPIES ?? 100));
  const single = join(dir, 'trace.pt');
  const one = readFileSync(single);
  const repeated = (n: number): string => repeatedMruby(realDir, benchDir, n);
  const big = repeated(copies);
  const bigger = repeated(2 * copies);
  const image = ['--cpu', '6/158', '--raw', `${join(dir, 'seg_400000.bin')}:0x400000`];
  const commands: { name: string; args: (pt: string) => string[] }[] = [
    { name: 'flow --quiet --stat', args: (pt) => ['flow', '--quiet', '--stat', ...image, '--pt', pt] },
    { name: 'flow --jobs 2 --quiet --stat', args: (pt) => ['flow', '--jobs', '2', '--quiet', '--stat', ...image, '--pt', pt] },
    { name: 'dump --jobs 2', args: (pt) => ['dump', '--jobs', '2', '--quiet', pt] },
    { name: 'analyze', args: (pt) => ['analyze', ...image, pt] },
    { name: 'analyze --detect flowguard (untrained)', args: (pt) => ['analyze', '--detect', 'flowguard', ...image, pt] },
    { name: 'coverage', args: (pt) => ['coverage', ...image, pt] },
    { name: 'coverage --jobs 2', args: (pt) => ['coverage', '--jobs', '2', ...image, pt] },
    { name: 'coverage --edges', args: (pt) => ['coverage', '--edges', '--format', 'json', ...image, pt] },
    { name: 'classify', args: (pt) => ['classify', ...image, pt] },
  ];
  const mb = (n: number): string => `${((one.length * n) / 1e6).toFixed(1)} MB`;
  console.log(`  traces: mruby x1 (${mb(1)}), x${copies} (${mb(copies)}), x${2 * copies} (${mb(2 * copies)}); peak RSS of each process, JS heap capped at 160 MB`);
  const scratch = mkdtempSync(join(tmpdir(), 'ptscope-bench-memory-'));
  const out: MemoryMeasurement[] = [];
  try {
    for (const c of commands) {
      const a = peakOf(root, c.args(single), scratch);
      const b = peakOf(root, c.args(big), scratch);
      const d = peakOf(root, c.args(bigger), scratch);
      out.push({ label: `${c.name}: x${2 * copies}`, mbps: d.mb, unit: 'MB', detail: `x1 ${a.mb.toFixed(1)} MB, x${copies} ${b.mb.toFixed(1)} MB; ${d.seconds.toFixed(1)} s over x${2 * copies}` });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return out;
}
