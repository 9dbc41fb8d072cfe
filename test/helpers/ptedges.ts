/**
 * Access to `ptedges` (test/oracle/ptedges.c): libipt 2.0.5's instruction
 * decoder turned into an AFL edge bitmap, the differential oracle of the
 * edge decoder. Built on first use; a failed build is an error, not a skip.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './oracle.js';

const SOURCE = join(REPO_ROOT, 'test', 'oracle', 'ptedges.c');
const BUILD_SCRIPT = join(REPO_ROOT, 'test', 'oracle', 'build-ptedges.sh');
const BINARY = join(REPO_ROOT, 'build', 'oracle', 'ptedges');

let built = false;

export function ensurePtedges(): string {
  if (!built && (!existsSync(BINARY) || statSync(BINARY).mtimeMs < statSync(SOURCE).mtimeMs)) {
    const res = spawnSync('bash', [BUILD_SCRIPT], { encoding: 'utf8' });
    if (res.error) throw new Error(`ptedges build could not start: ${res.error.message}`);
    if (res.status !== 0) throw new Error(`ptedges build failed (exit ${res.status}): ${(res.stderr || res.stdout).trim()}`);
  }
  built = true;
  return BINARY;
}

/** libipt's edge bitmap of a trace: edges taken, ids hit, FNV-1a 64 of the bitmap. */
export interface LibiptEdges {
  edges: number;
  distinct: number;
  hash: string;
}

/** Run `ptedges edges <args>` (in `cwd`, so relative image names work). */
export function libiptEdges(args: string[], cwd?: string): LibiptEdges {
  const res = spawnSync(ensurePtedges(), ['edges', ...args], { cwd, encoding: 'utf8' });
  if (res.error) throw new Error(`ptedges: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`ptedges ${args.join(' ')} exited with ${res.status}: ${res.stderr.trim()}`);
  const kv = new Map(res.stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
  return { edges: Number(kv.get('edges')), distinct: Number(kv.get('distinct')), hash: kv.get('bitmap_fnv1a64') ?? '' };
}
