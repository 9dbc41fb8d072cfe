/**
 * `ptscope dormant` as a command (bin/ptscope.js, the built CLI): text and
 * JSON reports of the iterative --rerun rounds on the three-check
 * sample with its checks kept as calls (gcc -O1), the round bound, and
 * one-line errors with exit status 2 on bad input.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DormantReport } from '../src/analyses/dormant/dormant.js';
import { buildByName, recordBuild, SAMPLES } from '../tools/eval-dormant-corpus.js';
import { REPO_ROOT } from './helpers/oracle.js';

const BIN = resolve(REPO_ROOT, 'bin', 'ptscope.js');
const OUT = join(REPO_ROOT, 'build', 'dormant', 'cli-test');
let bundle: string;
let work: string;

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'dormant', ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-dormant-cli-'));
  mkdirSync(OUT, { recursive: true });
  const sample = SAMPLES.find((s) => s.name === 'threeguard')!;
  bundle = (await recordBuild(sample, buildByName('O1-noinline'), OUT)).bundle;
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('ptscope dormant', () => {
  it('--rerun --json: rounds that each reach further, until the payload runs', () => {
    const r = cli(['--rerun', '--json', '--max-regions', '1', '--timeout', '60000', bundle]);
    expect(r.status, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as DormantReport;
    const region = rep.regions[0];
    expect(region.calls).toContain('payload');
    expect(region.status, region.reason ?? '').toBe('proven');
    // The checks are separate calls: the first round cannot see past the first one.
    expect(region.rounds.length).toBeGreaterThanOrEqual(2);
    expect(region.rounds.length).toBeLessThanOrEqual(8);
    const first = region.rounds[0];
    expect(first.reach).toBe('partial');
    expect(first.patched.some((p) => p.startsWith('getenv '))).toBe(true);
    expect(first.targetRan).toBe(false);
    expect(first.stoppedBy.length).toBeGreaterThan(0);
    for (const k of region.rounds) expect(k.newlyExecutedBlocks).toBeGreaterThan(0);
    const last = region.rounds[region.rounds.length - 1];
    expect(last.targetRan).toBe(true);
    expect(last.stoppedBy).toEqual([]);
    // A later round observed calls the first run never made.
    expect(region.rounds.flatMap((k) => k.newCalls).some((c) => c.startsWith('localtime@'))).toBe(true);
    expect(region.rules.some((x) => x.startsWith('getenv ') && x.includes('retstr=626561636f6e'))).toBe(true);
    expect(region.proof!.output).toContain('payload: wrote marker dormant-marker-threeguard');
  }, 300_000);

  it('text report of a bounded --rerun: each round, what it patched, what stopped it', () => {
    const r = cli(['--rerun', '--max-rounds', '1', '--max-regions', '1', '--timeout', '60000', bundle]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^region \d+ {2}main /m);
    expect(r.stdout).toMatch(/^ {2}round 1 {3}guard 0x[0-9a-f]+: solved part of the way/m);
    expect(r.stdout).toMatch(/^ {4}patched getenv [0-9a-f]+ retstr=/m);
    expect(r.stdout).toMatch(/^ {4}ran {5}\d+ new blocks.*target did not run$/m);
    expect(r.stdout).toMatch(/^ {4}stopped by 0x[0-9a-f]+/m);
    expect(r.stdout).toMatch(/^ {2}status {4}unsolved: the target did not run within 1 rounds$/m);
    expect(r.stdout).not.toContain('round 2');
    expect(r.stdout).toMatch(/^summary {4}0\/1 regions solved, 0 proven by a re-run$/m);
  }, 300_000);

  it('bad input: one line on stderr, exit status 2', () => {
    const notBundle = join(work, 'not-a-bundle');
    mkdirSync(notBundle);
    writeFileSync(join(notBundle, 'manifest.json'), '{"format": 1, "oops": [');
    for (const args of [
      [join(work, 'missing.ptscope')],
      [notBundle],
      ['--max-rounds', '0', bundle],
      ['--max-regions', 'many', bundle],
      ['--round-budget', '-5', bundle],
    ]) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout, args.join(' ')).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines.length, r.stderr).toBeLessThanOrEqual(2);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stderr).not.toContain('internal error');
    }
  }, 300_000);
});
