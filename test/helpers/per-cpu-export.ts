/** Recordings for perf's per-CPU layout, and their export (`export-perf --per-cpu N`). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { RecordOptions, RecordResult } from '../../src/sources/recorder/record-options.js';
import { buildExploitCorpus, type RunJson } from '../../tools/corpus/build-exploits.js';
import { REPO_ROOT } from './oracle.js';
import { recordProbe } from './probe.js';
import { runExportPerfCommand } from '../../src/cli/export-perf.js';
import { LineWriter } from '../../src/cli/output.js';

/** A recording written in perf's per-CPU layout, beside the bundle. */
export function exportPerCpu(bundle: string, cpus: number): string {
  const file = `${bundle}.cpu${cpus}.data`;
  const out = new LineWriter(null);
  expect(runExportPerfCommand(['--per-cpu', String(cpus), bundle, '-o', file], out)).toBe(0);
  out.flush();
  return file;
}

/** Build test/fixtures/threads/`name`.c into `work`. */
export function buildThreadFixture(work: string, name: string): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-pthread', '-o', out, join(REPO_ROOT, 'test', 'fixtures', 'threads', `${name}.c`)], { encoding: 'utf8' });
  expect(res.status, res.stderr).toBe(0);
  return out;
}

/** Record for the per-CPU layout: with TSC and without return compression (export-perf refuses otherwise). */
export async function recordForPerCpu(work: string, argv: string[], extra: Partial<RecordOptions> = {}): Promise<RecordResult> {
  return recordProbe(work, argv, { timing: { tsc: true }, retCompression: false, ...extra });
}

/** The exploit corpus's thread_rop (its chain runs in a worker thread), recorded for the per-CPU layout. */
export async function recordThreadRop(work: string): Promise<{ bundle: string; run: RunJson }> {
  const c = buildExploitCorpus({}).cases.find((x) => x.name === 'thread_rop')!;
  const run = c.run;
  const r = await recordForPerCpu(work, [join(c.dir, run.program), ...run.argv], {
    timeoutSec: 120,
    stdin: join(c.dir, run.exploit.runners?.qemu?.stdin ?? run.exploit.stdin),
  });
  expect(r.stdout).toContain('PWNED');
  return { bundle: r.bundle, run };
}
