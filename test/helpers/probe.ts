/**
 * The hostile probe (test/fixtures/sandbox/probe.c), built with gcc once per
 * test file, and a way to record it with small, fast limits.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { record, type RecordOptions, type RecordResult } from '../../src/sources/recorder/record.js';
import { withRecordDefaults } from '../../src/sources/recorder/record-options.js';
import { REPO_ROOT } from './oracle.js';

/** Compile the probe into `dir`; throws with gcc's message (gcc is a test dependency). */
export function buildProbe(dir: string): string {
  const out = join(dir, 'probe');
  const res = spawnSync('gcc', ['-O1', '-o', out, join(REPO_ROOT, 'test', 'fixtures', 'sandbox', 'probe.c')], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc probe.c: ${res.error?.message ?? res.stderr}`);
  return out;
}

let seq = 0;

/** Record `argv` confined, with its output captured, into a fresh bundle under `dir`. */
export function recordProbe(dir: string, argv: string[], extra: Partial<RecordOptions> = {}): Promise<RecordResult> {
  return record(withRecordDefaults({
    argv,
    output: join(dir, `probe-${process.pid}-${seq++}.ptscope`),
    maxInsns: 100_000_000,
    hardware: false,
    stdio: 'pipe',
    notice: () => {},
    ...extra,
  }));
}

/** The probe's result line for a command (`read /etc/shadow ok`, `... failed: why`). */
export function line(stdout: string, prefix: string): string {
  return stdout.split('\n').find((l) => l.startsWith(prefix)) ?? `(no line for '${prefix}')`;
}
