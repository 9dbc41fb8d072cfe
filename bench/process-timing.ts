/**
 * Timing whole processes, for the benchmark sections that compare what a
 * user waits for (process, startup, parallel-cli).
 */
import { spawnSync } from 'node:child_process';

/**
 * Run a command to completion; its wall time in seconds and its stdout.
 * A non-zero exit throws, named by `name` (default: the command line).
 */
export function timedRun(cmd: string, args: string[], options: { cwd?: string; name?: string } = {}): { seconds: number; stdout: string } {
  const t0 = process.hrtime.bigint();
  const res = spawnSync(cmd, args, { cwd: options.cwd, encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (res.status !== 0) throw new Error(`${options.name ?? `${cmd} ${args.join(' ')}`}: exit ${res.status}: ${res.stderr}`);
  return { seconds, stdout: res.stdout };
}

/** The median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
