/**
 * The libipt the shared vectors were generated with (../shared/libipt-src),
 * built by test/oracle/build-libipt.sh: its ptdump, pttc and ptxed (over a
 * XED stand-in, so run it with --no-inst) and small table dumpers. These are
 * the reference where Debian's libipt 2.0.5 is older than the vectors.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './oracle.js';

let binDir: string | undefined;

/**
 * Build the tools if needed (once per process) and return their folder.
 * Throws if the build fails: CI installs cmake, gcc and yasm, so a missing
 * oracle is an error, not a skip.
 */
export function libiptHeadBin(): string {
  if (binDir !== undefined) return binDir;
  const res = spawnSync('bash', [join(REPO_ROOT, 'test', 'oracle', 'build-libipt.sh')], { encoding: 'utf8' });
  if (res.error) throw new Error(`build-libipt.sh could not start: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`build-libipt.sh failed (exit ${res.status}): ${(res.stderr || res.stdout).trim()}`);
  binDir = res.stdout.trim().split('\n').pop()!;
  return binDir;
}

/** Run one of the tools; returns stdout (and the exit status). */
export function runLibiptHead(tool: 'ptdump' | 'ptxed' | 'pttc' | 'errata-table', args: string[], cwd?: string): { stdout: string; status: number } {
  const res = spawnSync(join(libiptHeadBin(), tool), args, { cwd, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (res.error) throw new Error(`${tool} ${args.join(' ')}: ${res.error.message}`);
  return { stdout: res.stdout, status: res.status ?? -1 };
}
