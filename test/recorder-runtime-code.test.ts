/**
 * Code that exists only at run time: the emulated recorder captures what a
 * program wrote and ran (no file holds it) as run-time images, in both
 * recording modes, so that libipt's decode of the trace with the bundle's
 * images is exact (same instruction count and FNV-1a 64 as the recorder),
 * ptscope decodes and analyses it like any other code, and the report marks
 * it as generated at run time.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { runExportPerfCommand } from '../src/cli/export-perf.js';
import { parseFlowArgs } from '../src/cli/flow-args.js';
import { runFlowCommand } from '../src/cli/flow.js';
import { runFlowInPieces } from '../src/cli/parallel/flow-pieces.js';
import { LineWriter } from '../src/cli/output.js';
import { buildBundleReport } from '../src/reports/report-model.js';
import type { Manifest, ManifestImage } from '../src/sources/bundle/manifest.js';
import { epochImageArgs, type BundleImage } from '../src/sources/recorder/bundle.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { REPO_ROOT, runOracle } from './helpers/oracle.js';
import { importBundle, readBundleManifest } from '../src/sources/import/bundle-import.js';
import { hashDecode, hashStream } from '../src/sources/model/stream-check.js';
import { openInsnDecoder } from '../src/sources/model/decoders.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { PacketDecoder } from '../src/packets/decoder.js';

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-runtime-code-test-'));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function compileJit(name: string, flags: string[], source = 'jit.c'): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-pthread', ...flags, '-o', out, join(REPO_ROOT, 'test', 'fixtures', 'runtime-code', source)], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc: ${res.stderr}`);
  return out;
}

async function rec(argv: string[], name: string) {
  return record(withRecordDefaults({ argv, output: join(work, `${name}.ptscope`), timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'pipe', notice: () => {} }));
}

interface BundleStreamView {
  file: string;
  images: ManifestImage[];
  epochs: { offset: number; runtime: number }[] | undefined;
  instructions: { traced: number; fnv1a64: string };
}

function streamsOf(m: Manifest): BundleStreamView[] {
  return m.version === 1
    ? [{ file: m.trace!.file, images: m.images, epochs: m.trace!.imageEpochs, instructions: m.instructions! }]
    : m.streams.map((s) => ({ file: s.file, images: s.images.map((i) => m.images[i]), epochs: s.imageEpochs, instructions: s.instructions! }));
}

/**
 * ptoracle's image options for a stream: its images, or with image epochs
 * (code rewritten while it ran) each epoch's images after --image-from.
 * `flat`: one image with every version, as a decoder without epochs sees it.
 */
function oracleImages(s: BundleStreamView, flat = false): string[] {
  return epochImageArgs(s.images as BundleImage[], flat ? undefined : s.epochs);
}

/** libipt's count and hash of one stream, and its errors. */
function oracleDecode(bundle: string, s: BundleStreamView, decoder: 'insn' | 'blk', flat = false): { insn: number; hash: string | null; errors: string[] } {
  const images = oracleImages(s, flat);
  const listing = runOracle([decoder, '--cpu', 'none', ...images, s.file, ...(decoder === 'insn' ? ['--ips'] : [])], bundle).split('\n');
  const errors = listing.filter((l) => l.startsWith('error'));
  if (decoder === 'blk') return { insn: listing.filter((l) => l.startsWith('block ')).reduce((n, l) => n + Number(l.split(' ')[3]), 0), hash: null, errors };
  const text = runOracle(['insn', '--cpu', 'none', ...images, s.file, '--hash'], bundle);
  return { insn: Number(/^insn (\d+)$/m.exec(text)![1]), hash: /^fnv1a64 ([0-9a-f]{16})$/m.exec(text)![1]!, errors };
}

/** ptscope's instruction decoder over each stream of the bundle: its count, hash and errors. */
function ptscopeDecode(bundle: string): { insn: number; hash: string; errors: number }[] {
  const r = importBundle(bundle);
  try {
    return r.streams.map((s) => {
      const c = hashStream(s);
      return { insn: c.instructions, hash: c.fnv1a64, errors: c.errors };
    });
  } finally {
    r.close();
  }
}

/** Each stream of the bundle: libipt decodes it with its images (and image epochs) with no error, exactly as the recorder counted; so does ptscope. */
function expectExact(bundle: string, m: Manifest): void {
  const streams = streamsOf(m);
  for (const s of streams) {
    const insn = oracleDecode(bundle, s, 'insn');
    expect(insn, s.file).toEqual({ insn: s.instructions.traced, hash: s.instructions.fnv1a64, errors: [] });
    expect(oracleDecode(bundle, s, 'blk'), s.file).toEqual({ insn: s.instructions.traced, hash: null, errors: [] });
  }
  expect(ptscopeDecode(bundle)).toEqual(streams.map((s) => ({ insn: s.instructions.traced, hash: s.instructions.fnv1a64, errors: 0 })));
}

/** `flow`'s text and errors, serial or in pieces cut at every PSB (in this thread). */
async function flowText(argv: string[], pieces: boolean): Promise<{ status: number; text: string; errors: string[] }> {
  const out = new LineWriter(null, 1 << 30);
  const errors: string[] = [];
  const status = pieces
    ? await runFlowInPieces(argv, parseFlowArgs(argv, out, (m) => errors.push(m))!, out, (m) => errors.push(m), { plan: { everyPsb: true }, inThread: true })
    : await runFlowCommand(argv, out, (m) => errors.push(m));
  out.flush();
  return { status, text: out.text, errors };
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

  for (const mode of [
    { name: 'one log, RW→RX', flags: [], version: 1 },
    { name: 'one log, RWX', flags: ['-DRWX'], version: 1 },
    { name: 'per-thread logs', flags: ['-DIN_THREAD'], version: 2 },
  ]) {
    it(`code rewritten in place with other instruction boundaries (${mode.name}): an image epoch per version, exact decode`, async () => {
      const name = `layers-${mode.flags.join('') || 'plain'}`;
      const res = await rec([compileJit(name, mode.flags, 'layers.c')], name);
      expect(res.stdout).toBe('15 8 42 6\n');
      const m = readBundleManifest(res.bundle);
      expect(m.version).toBe(mode.version);
      // Four functions at one address: the sum loop, two others, the sum loop again (its
      // ret, a TB of its own, was a nop before: a fifth version, one byte).
      const rt = runtimeImages(m);
      expect(rt.map((im) => im.size)).toEqual([9, 10, 4, 8, 1]);
      expect(new Set(rt.slice(0, 4).map((im) => im.address)).size).toBe(1);
      // The stream that ran them starts an epoch at each version it ran after another.
      const worker = streamsOf(m).find((s) => s.epochs !== undefined && s.epochs.length > 1)!;
      expect(worker.epochs!.map((e) => e.runtime)).toEqual([1, 2, 3, 4, 5]);
      expectExact(res.bundle, m);
      if (m.version === 1) {
        // A file listed after the run-time images (not as the recorder writes them): each part is built whole, the same decode.
        const moved = join(work, `${name}-moved.ptscope`);
        cpSync(res.bundle, moved, { recursive: true });
        const file = m.images.findIndex((im) => im.runtime == null);
        writeFileSync(join(moved, 'manifest.json'), JSON.stringify({ ...m, images: [...m.images.slice(0, file), ...m.images.slice(file + 1), m.images[file]] }));
        expect(ptscopeDecode(moved)).toEqual(ptscopeDecode(res.bundle));
        // The bundle's own ptoracle command line carries the epochs.
        const argv = (m.decode as { ptoracle: string[] }).ptoracle;
        expect(argv.filter((x) => x === '--image-from')).toHaveLength(4);
        expect(runOracle(argv, res.bundle)).toContain(`fnv1a64 ${worker.instructions.fnv1a64}`);
      }
      // One image with every version decodes the earlier runs as other instructions.
      const flat = oracleDecode(res.bundle, worker, 'insn', true);
      expect(flat.errors.length).toBeGreaterThan(0);
      expect(flat.hash).not.toBe(worker.instructions.fnv1a64);
      expect(analyzeSummary(res.bundle)).toEqual({ findings: 0, decodeErrors: 0 });
      // A piece decodes a slice of the stream from a PSB: told where the slice starts, it takes that PSB's image.
      const r = importBundle(res.bundle);
      try {
        const s = r.streams.find((x) => x.image.timeline !== null && x.image.timeline.offsets.length > 2)!;
        const bytes = readFileSync(join(res.bundle, streamsOf(m)[s.index]!.file));
        let wrong = 0;
        for (const from of s.image.timeline!.offsets.slice(1)) {
          const whole = openInsnDecoder(s);
          const synced = whole.syncSet(from);
          expect(synced).toBeGreaterThanOrEqual(0);
          const tail = hashDecode(whole, synced);
          const slice = (origin: boolean): InsnDecoder => {
            const d = new InsnDecoder(new PacketDecoder(bytes.subarray(from), { skd007: false }), s.config, s.image);
            if (origin) d.traceOrigin = from;
            return d;
          };
          expect(hashDecode(slice(true))).toEqual(tail);
          expect(tail.errors).toBe(0);
          if (hashDecode(slice(false)).errors > 0) wrong++;
        }
        expect(wrong).toBeGreaterThan(0);
      } finally {
        r.close();
      }
      // Decoded in pieces from every PSB (each piece starts with the image of its PSB): the serial text.
      expect(await flowText([res.bundle], true)).toEqual(await flowText([res.bundle], false));
      // perf.data cannot carry the epochs: the export says so.
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        expect(runExportPerfCommand([res.bundle, '-o', join(work, `${name}.data`)], new LineWriter(null))).toBe(0);
        expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(/ran code rewritten in place \(5 image epochs\): perf\.data maps every version at once/);
      } finally {
        stderr.mockRestore();
      }
    }, 240_000);
  }

  it('code one thread rewrites and another then runs: each thread starts an epoch where it first runs a new version', async () => {
    const res = await rec([compileJit('shared-rewrite', [], 'shared-rewrite.c')], 'shared-rewrite');
    expect(res.stdout).toBe('15 8 8 42 8\n');
    const m = readBundleManifest(res.bundle);
    expect(runtimeImages(m).map((im) => im.size)).toEqual([9, 10, 4]);
    // Each thread ran all three versions: one epoch each, whichever thread wrote or first ran it.
    const streams = streamsOf(m).filter((x) => x.instructions.traced > 0);
    expect(streams).toHaveLength(2);
    for (const x of streams) expect(x.epochs!.map((e) => e.runtime)).toEqual([1, 2, 3]);
    expectExact(res.bundle, m);
    for (const x of streams) expect(oracleDecode(res.bundle, x, 'insn', true).hash).not.toBe(x.instructions.fnv1a64);
  }, 240_000);

  it('code rewritten in place, traced through an address filter on its buffer: the epochs switch at the tracing enables, the decode is exact', async () => {
    const exe = compileJit('layers-filtered', [], 'layers.c');
    const first = readBundleManifest((await rec([exe], 'layers-unfiltered')).bundle);
    // The emulator maps the buffer at the same place in each run: trace only it.
    const at = Number(BigInt(runtimeImages(first)[0]!.address));
    const res = await record(withRecordDefaults({ argv: [exe], output: join(work, 'layers-filtered.ptscope'), timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'pipe', notice: () => {}, ranges: [{ from: at, to: at + 4096 }] }));
    const m = readBundleManifest(res.bundle);
    const s = streamsOf(m)[0]!;
    // The four runs, each between a TIP.PGE and a TIP.PGD: 17 + 4 + 2 + 11 instructions.
    expect(s.instructions.traced).toBe(34);
    expect(s.epochs!.map((e) => e.runtime)).toEqual([1, 2, 3, 4, 5]);
    expectExact(res.bundle, m);
    expect(oracleDecode(res.bundle, s, 'insn', true).hash).not.toBe(s.instructions.fnv1a64);
  }, 240_000);

  it('a snapshot of code rewritten in place: the epochs before the kept trace merge into its first, the decode is exact', async () => {
    const exe = compileJit('layers-snapshot', [], 'layers.c');
    const res = await record(withRecordDefaults({ argv: [exe], output: join(work, 'layers-snapshot.ptscope'), timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'pipe', notice: () => {}, snapshotBytes: 1024 }));
    const m = readBundleManifest(res.bundle);
    const s = streamsOf(m)[0]!;
    expect(m.version === 1 && m.trace!.snapshotStart).toBeGreaterThan(0);
    // The kept kilobyte holds the later versions' runs only: fewer epochs, the first at 0.
    expect(s.epochs![0]!.offset).toBe(0);
    expect(s.epochs!.length).toBeLessThan(5);
    expect(s.epochs!.at(-1)!.runtime).toBe(5);
    expectExact(res.bundle, m);
  }, 240_000);

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
