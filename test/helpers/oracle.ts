/**
 * Access to `ptoracle`, our small C program over Debian's libipt 2.0.5 that
 * prints libipt's packets and instruction flow in a neutral text format
 * (see test/oracle/ptoracle.c). Tests compare ptscope with it line by line.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Repository root (this file is test/helpers/oracle.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const SOURCE = join(REPO_ROOT, 'test', 'oracle', 'ptoracle.c');
const BUILD_SCRIPT = join(REPO_ROOT, 'test', 'oracle', 'build.sh');
const BINARY = join(REPO_ROOT, 'build', 'oracle', 'ptoracle');

/** Large enough for a full instruction listing of the real traces. */
const MAX_OUTPUT = 1 << 30;

let built: string | undefined;

function isStale(): boolean {
  if (!existsSync(BINARY)) return true;
  return statSync(BINARY).mtimeMs < statSync(SOURCE).mtimeMs;
}

/**
 * Build the oracle if it is missing or older than its source (at most once
 * per process) and return the path of the binary. Throws if the build
 * fails: CI installs libipt-dev, so a missing oracle is an error, not a skip.
 */
export function ensureOracle(): string {
  if (built !== undefined) return built;
  if (isStale()) {
    const res = spawnSync('bash', [BUILD_SCRIPT], { encoding: 'utf8' });
    if (res.error) throw new Error(`ptoracle build could not start: ${res.error.message}`);
    if (res.status !== 0) {
      throw new Error(
        `ptoracle build failed (exit ${res.status}): ${(res.stderr || res.stdout).trim()}`,
      );
    }
  }
  built = BINARY;
  return built;
}

/**
 * Run the oracle with `args` (in `cwd` if given, so that relative image and
 * trace names from the manifests work) and return its stdout. Throws with
 * the oracle's stderr on a non-zero exit.
 */
export function runOracle(args: string[], cwd?: string): string {
  const bin = ensureOracle();
  const res = spawnSync(bin, args, { cwd, encoding: 'utf8', maxBuffer: MAX_OUTPUT });
  if (res.error) throw new Error(`ptoracle ${args.join(' ')}: ${res.error.message}`);
  if (res.status !== 0) {
    throw new Error(
      `ptoracle ${args.join(' ')} exited with ${res.status}: ${res.stderr.trim()}`,
    );
  }
  return res.stdout;
}
