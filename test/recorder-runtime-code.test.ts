/**
 * Code that exists only at run time: the emulated recorder captures what a
 * program wrote and ran (no file holds it) as run-time images, in both
 * recording modes, so that libipt's decode of the trace with the bundle's
 * images is exact (same instruction count and FNV-1a 64 as the recorder),
 * ptscope decodes and analyses it like any other code, and the report marks
 * it as generated at run time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { LineWriter } from '../src/cli/output.js';
import { buildBundleReport } from '../src/reports/report-model.js';
import { readBundleManifest } from '../src/sources/import/bundle-import.js';
import type { Manifest, ManifestImage } from '../src/sources/bundle/manifest.js';
import { rawImageArgs, type BundleImage } from '../src/sources/recorder/bundle.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { REPO_ROOT, runOracle } from './helpers/oracle.js';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-runtime-code-test-'));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function compileJit(name: string, flags: string[]): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-pthread', ...flags, '-o', out, join(REPO_ROOT, 'test', 'fixtures', 'runtime-code', 'jit.c')], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc: ${res.stderr}`);
  return out;
}

async function rec(argv: string[], name: string) {
  return record(withRecordDefaults({ argv, output: join(work, `${name}.ptscope`), timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'pipe', notice: () => {} }));
}

/** Each stream of the bundle: libipt decodes it with its images with no error, exactly as the recorder counted. */
function expectExact(bundle: string, m: Manifest): void {
  const streams = m.version === 1
    ? [{ file: m.trace!.file, images: m.images, instructions: m.instructions! }]
    : m.streams.map((s) => ({ file: s.file, images: s.images.map((i) => m.images[i]), instructions: s.instructions! }));
  for (const s of streams) {
    const raw = rawImageArgs(s.images as BundleImage[]);
    const text = runOracle(['insn', '--cpu', 'none', ...raw, s.file, '--hash'], bundle);
    const errors = runOracle(['insn', '--cpu', 'none', ...raw, s.file, '--ips'], bundle).split('\n').filter((l) => l.startsWith('error'));
    expect(errors, s.file).toEqual([]);
    expect({ insn: Number(/^insn (\d+)$/m.exec(text)![1]), hash: /^fnv1a64 ([0-9a-f]{16})$/m.exec(text)![1] }, s.file).toEqual({ insn: s.instructions.traced, hash: s.instructions.fnv1a64 });
  }
}

function analyzeSummary(bundle: string): { findings: number; decodeErrors: number } {
  const out = new LineWriter(null);
  expect(runAnalyzeCommand([bundle, '--json'], out)).toBe(0);
  out.flush();
  const summaries = out.text.trim().split('\n').map((l) => JSON.parse(l) as { type: string; findings: number; flow: { errors: number } }).filter((l) => l.type === 'summary');
  expect(summaries.length).toBeGreaterThan(0);
  return { findings: summaries.reduce((n, l) => n + l.findings, 0), decodeErrors: summaries.reduce((n, l) => n + l.flow.errors, 0) };
}

const runtimeImages = (m: Manifest): ManifestImage[] => m.images.filter((im) => im.runtime != null);

describe('recording code generated at run time', () => {
  for (const mode of [{ name: 'one log', flags: [], version: 1 }, { name: 'per-thread logs', flags: ['-DIN_THREAD'], version: 2 }]) {
    it(`a loop in RWX memory, a function in RW→RX memory rewritten in place (${mode.name}): run-time images, exact decode`, async () => {
      const name = `jit-v${mode.version}`;
      const res = await rec([compileJit(name, mode.flags)], name);
      expect(res.stdout).toBe('55 41 42\n');
      const m = readBundleManifest(res.bundle);
      expect(m.version).toBe(mode.version);
      // The loop (13 bytes), then the function's two versions at one address, in the order they first ran.
      const rt = runtimeImages(m);
      expect(rt.map((im) => im.size)).toEqual([13, 6, 6]);
      expect(rt[1].address).toBe(rt[2].address);
      const firsts = rt.map((im) => im.runtime!.firstExecuted!);
      expect([...firsts].sort((a, b) => a - b)).toEqual(firsts);
      expect(m.warnings!.some((w) => /no image maps/.test(w))).toBe(false);
      expect(m.warnings!.some((w) => /^3 run-time image\(s\).*1 block\(s\) rewritten/.test(w))).toBe(true);
      expectExact(res.bundle, m);
      expect(analyzeSummary(res.bundle)).toEqual({ findings: 0, decodeErrors: 0 });
      if (mode.version === 1) {
        const report = buildBundleReport(res.bundle);
        expect(report.modules.filter((x) => x.runtime !== null).map((x) => x.runtime)).toEqual(rt.map((im) => im.runtime));
        expect(report.modules.filter((x) => x.runtime === null).length).toBeGreaterThan(0);
      }
    }, 240_000);
  }

  it('grep -P (PCRE2 JIT): its compiled pattern is run-time code, the decode is exact', async () => {
    const input = join(work, 'grep-input.txt');
    writeFileSync(input, 'hello world\nfoo 123\nbar 4\n');
    const res = await rec(['/usr/bin/grep', '-P', '[a-z]+ \\d+$', input], 'grep-p');
    expect(res.stdout).toBe('foo 123\nbar 4\n');
    const m = readBundleManifest(res.bundle);
    expect(runtimeImages(m).length).toBeGreaterThan(0);
    expect(m.warnings!.some((w) => /no image maps/.test(w))).toBe(false);
    expectExact(res.bundle, m);
    expect(analyzeSummary(res.bundle)).toEqual({ findings: 0, decodeErrors: 0 });
  }, 240_000);
});
