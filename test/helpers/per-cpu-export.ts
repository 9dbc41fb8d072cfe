/** A recording written in perf's per-CPU layout (`export-perf --per-cpu N`), beside the bundle. */
import { expect } from 'vitest';
import { runExportPerfCommand } from '../../src/cli/export-perf.js';
import { LineWriter } from '../../src/cli/output.js';

export function exportPerCpu(bundle: string, cpus: number): string {
  const file = `${bundle}.cpu${cpus}.data`;
  const out = new LineWriter(null);
  expect(runExportPerfCommand(['--per-cpu', String(cpus), bundle, '-o', file], out)).toBe(0);
  out.flush();
  return file;
}
