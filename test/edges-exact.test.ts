/**
 * The edge decoder is exact: on every trace, the multiset of edges (by
 * block address, with counts) and the bitmap equal what the exact block
 * decoder yields (src/flow/edges/exact-edges.ts), and the bitmap equals the
 * one libipt 2.0.5's instruction decoder gives (test/oracle/ptedges.c).
 *
 * Checked on the real-CPU traces (whole, and cut short), on libipt's vectors that have flow
 * expectations (with their --cpu and address filter), and on emulated
 * recorder traces made here: the fuzzing target with and without return
 * compression, with timing packets, TNT-64 and short PSB periods, a crash
 * and a stopped loop (asynchronous disables), signals, and a whole dynamic
 * program (system calls).
 *
 * For each trace three results are compared with the exact one: the fast
 * path alone when it handles the trace (edge pairs, and separately the
 * bitmap it builds without pairs, where it defers counting per cache
 * entry), and the full decoder with its fallback.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTraceInput, type TraceInput } from '../src/analyses/trace-input.js';
import { AddrCfg } from '../src/packets/config.js';
import { EdgeCoverage } from '../src/flow/edges/edge-coverage.js';
import { bitmapFnv1a64 } from '../src/flow/edges/edge-map.js';
import { EdgePairs } from '../src/flow/edges/edge-pairs.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { Packet } from '../src/packets/packet.js';
import { rawImageArgs, readManifest } from '../src/sources/recorder/bundle.js';
import { record, type RecordOptions } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { buildTarget, SAMPLE_INPUTS } from '../tools/fuzz-demo-target.js';
import { REPO_ROOT } from './helpers/oracle.js';
import { libiptEdges } from './helpers/ptedges.js';
import { loadManifest, REAL_TRACES, VECTORS } from './helpers/vectors.js';

interface Outcome {
  /** The fast path handled the trace alone. */
  fast: boolean;
  bailReason: string;
  /** The full decoder's path. */
  path: string;
  edges: number;
  distinct: number;
  bitmapHash: string;
}

/** Compare every way of decoding `input` with the exact decoder; returns what happened. */
function checkExact(input: Pick<TraceInput, 'trace' | 'image' | 'config'>, label: string): Outcome {
  const exact = new EdgeCoverage(input.image, input.config, { exactOnly: true });
  const want = new EdgePairs();
  exact.count(input.trace, want);
  const wantMap = new Uint8Array(exact.mapSize);
  exact.counts.writeBitmap(wantMap);
  const wantEdges = exact.counts.edges;

  const cov = new EdgeCoverage(input.image, input.config);
  const got = new EdgePairs();
  const fast = cov.countFastOnly(input.trace, got);
  const bailReason = cov.lastBailReason;
  const map = new Uint8Array(cov.mapSize);
  if (fast) {
    expect(got.list(), `${label}: fast path edge pairs`).toEqual(want.list());
    // Without pairs the fast path defers counting per cache entry: same bitmap.
    expect(cov.countFastOnly(input.trace, null), `${label}: fast path again`).toBe(true);
    cov.counts.writeBitmap(map);
    expect(cov.counts.edges, `${label}: fast path edge total`).toBe(wantEdges);
    expect(Buffer.from(map).equals(Buffer.from(wantMap)), `${label}: fast path bitmap`).toBe(true);
  }
  // The full decoder (fast path or fallback), twice: warm caches give the same.
  for (let round = 0; round < 2; round++) {
    const path = cov.count(input.trace, got);
    expect(got.list(), `${label}: decoder edge pairs (${path})`).toEqual(want.list());
    expect(cov.decode(input.trace, map), `${label}: decoder edge total`).toBe(wantEdges);
    expect(Buffer.from(map).equals(Buffer.from(wantMap)), `${label}: decoder bitmap`).toBe(true);
  }
  expect(want.total).toBe(wantEdges);
  return { fast, bailReason, path: cov.lastPath, edges: wantEdges, distinct: exact.counts.used, bitmapHash: bitmapFnv1a64(wantMap) };
}

describe('edge decoder on the real-CPU traces', () => {
  const manifest = JSON.parse(readFileSync(join(REAL_TRACES, 'MANIFEST.json'), 'utf8')) as {
    name: string;
    pt: string;
    images: { file: string; address: string }[];
    ptxed: { argv: string[] };
  }[];

  it('has the three traces', () => {
    expect(manifest.map((t) => t.name).sort()).toEqual(['dyn_test', 'mruby', 'unzip']);
  });

  for (const t of manifest) {
    it(`${t.name}: equal to the exact decoder and to libipt`, () => {
      const dir = join(REAL_TRACES, t.name);
      const raw = t.images.map((im) => `${join(dir, im.file)}:${im.address}`);
      const cpuAt = t.ptxed.argv.indexOf('--cpu');
      const cpu = cpuAt >= 0 ? t.ptxed.argv[cpuAt + 1] : undefined;
      const input = openTraceInput(join(dir, t.pt), { raw, cpu });
      const out = checkExact(input, t.name);
      // The fuzzing traces need nothing the fast path leaves to the exact decoder.
      if (t.name !== 'dyn_test') expect(out.fast, `${t.name}: ${out.bailReason}`).toBe(true);
      const lib = libiptEdges([...(cpu ? ['--cpu', cpu] : []), ...raw.flatMap((r) => ['--raw', r]), join(dir, t.pt)]);
      expect(lib.edges, `${t.name}: edges taken, libipt`).toBe(out.edges);
      expect(lib.distinct, `${t.name}: edge ids hit, libipt`).toBe(out.distinct);
      expect(lib.hash, `${t.name}: bitmap, libipt`).toBe(out.bitmapHash);
      console.log(`edges ${t.name}: ${out.edges} edges, ${out.distinct} ids; fast path ${out.fast ? 'yes' : `no (${out.bailReason})`}; = exact decoder = libipt`);
    });
  }
});

describe('edge decoder on real traces cut short', () => {
  // A trace that stops mid-flow (a snapshot, a full buffer): the flow ends
  // where the trace does, at the last branch it has an outcome for. Cut at
  // packet boundaries: cut inside a packet, libipt 2.0.5 goes on past the
  // last outcome until an instruction needs trace (it only checks that a
  // next opcode byte exists), where libipt at the vectors' commit, which the
  // block decoder follows, already reports the end of the trace.
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ptscope-edges-cut-'));
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const name of ['unzip', 'mruby']) {
    it(`${name}, cut after 8 packets spread over it`, () => {
      const dir = join(REAL_TRACES, name);
      const raw = [`${join(dir, 'seg_400000.bin')}:0x400000`];
      const full = openTraceInput(join(dir, 'trace.pt'), { raw, cpu: '6/158' });
      const offsets: number[] = [];
      const pd = new PacketDecoder(full.trace);
      const pkt = new Packet();
      expect(pd.syncForward()).toBeGreaterThanOrEqual(0);
      for (let at = pd.offset; pd.next(pkt) >= 0; at = pd.offset) offsets.push(at);
      for (let k = 1; k <= 8; k++) {
        const end = offsets[Math.floor((offsets.length * k) / 9)];
        const cut = join(work, `${name}-${end}.pt`);
        writeFileSync(cut, full.trace.subarray(0, end));
        const out = checkExact(openTraceInput(cut, { raw, cpu: '6/158' }), `${name} cut at ${end}`);
        const lib = libiptEdges(['--cpu', '6/158', '--raw', raw[0], cut]);
        expect(lib.edges, `${name} cut at ${end}: edges taken, libipt`).toBe(out.edges);
        expect(lib.hash, `${name} cut at ${end}: bitmap, libipt`).toBe(out.bitmapHash);
      }
    });
  }
});

describe('edge decoder on the libipt vectors with flow expectations', () => {
  const cases = loadManifest().filter((c) => c.ptxed);
  let fast = 0;
  const bails = new Map<string, number>();

  it('has every ptxed case', () => {
    expect(cases.length).toBe(354);
  });

  for (const c of cases) {
    it(c.name, () => {
      const argv = c.ptxed!.argv;
      const dir = join(VECTORS, c.name);
      const raw: string[] = [];
      let cpu: string | undefined;
      let pt = '';
      const filter = new Map<string, string>();
      for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--raw') raw.push(join(dir, argv[++i]));
        else if (a === '--cpu') cpu = argv[++i];
        else if (a === '--pt') pt = argv[++i];
        else if (a.startsWith('--filter:')) filter.set(a, argv[++i]);
        // Sideband, tick/iflags events and output options: both sides decode
        // the same trace and image without them.
      }
      const input = openTraceInput(join(dir, pt), { raw, cpu });
      for (let n = 0; n < 4; n++) {
        const cfg = filter.get(`--filter:addr${n}_cfg`);
        if (cfg === undefined) continue;
        const r = input.config.addrFilter.ranges[n];
        r.cfg = Number(cfg) as AddrCfg;
        r.a = BigInt(filter.get(`--filter:addr${n}_a`) ?? '0');
        r.b = BigInt(filter.get(`--filter:addr${n}_b`) ?? '0');
      }
      const out = checkExact(input, c.name);
      if (out.fast) fast++;
      else bails.set(out.bailReason, (bails.get(out.bailReason) ?? 0) + 1);
    });
  }

  it('runs the fast path on most of them', () => {
    console.log(`edges on libipt vectors: fast path on ${fast}/${cases.length}; exact decoder for the rest: ` +
      [...bails].map(([r, n]) => `${r} ${n}`).join(', '));
    expect(fast).toBeGreaterThanOrEqual(150);
  });
});

describe('edge decoder on emulated-recorder traces', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ptscope-edges-test-'));
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  let seq = 0;
  async function rec(argv: string[], extra: Partial<RecordOptions>): Promise<string> {
    const output = join(work, `b${seq++}.ptscope`);
    await record(withRecordDefaults({ argv, output, hardware: false, timeoutSec: 120, maxInsns: 50_000_000, stdio: 'pipe', notice: () => {}, ...extra }));
    return output;
  }

  /** Check a bundle against the exact decoder and libipt. */
  function checkBundle(bundle: string, label: string, expectFast: boolean): Outcome {
    const input = openTraceInput(bundle);
    const out = checkExact(input, label);
    if (expectFast) expect(out.fast, `${label}: ${out.bailReason}`).toBe(true);
    const m = readManifest(bundle);
    const lib = libiptEdges([...rawImageArgs(m.images), m.trace!.file], bundle);
    expect(lib.edges, `${label}: edges taken, libipt`).toBe(out.edges);
    expect(lib.hash, `${label}: bitmap, libipt`).toBe(out.bitmapHash);
    console.log(`edges ${label}: ${out.edges} edges, ${out.distinct} ids; fast path ${out.fast ? 'yes' : `no (${out.bailReason})`}; = exact decoder = libipt`);
    return out;
  }

  it('the fuzzing target under an IP filter, with each recorder setting', async () => {
    const target = buildTarget(join(work, 'target'));
    const ranges = [{ from: target.textFrom, to: target.textTo }];
    const input = join(work, 'input.json');
    const settings: [string, Partial<RecordOptions>][] = [
      ['json_check', {}],
      ['json_check --noretcomp', { retCompression: false }],
      ['json_check --long-tnt --psb-period 64', { longTnt: true, psbPeriod: 64 }],
      ['json_check --timing tsc,mtc,cyc', { timing: { tsc: true, mtc: true, cyc: true } }],
    ];
    for (const [i, [label, extra]] of settings.entries()) {
      writeFileSync(input, SAMPLE_INPUTS[i % SAMPLE_INPUTS.length]);
      const bundle = await rec([target.binary], { ranges, stdin: input, ...extra });
      checkBundle(bundle, label, true);
    }
  });

  function compile(name: string): string {
    const bin = join(work, name);
    const res = spawnSync('gcc', ['-O1', '-o', bin, join(REPO_ROOT, 'test', 'fixtures', 'recorder', `${name}.c`)], { encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(0);
    return bin;
  }

  it('asynchronous disables: a crash and a stopped busy loop', async () => {
    checkBundle(await rec([compile('crash')], {}), 'crash (FUP + TIP.PGD at the fault)', true);
    checkBundle(await rec([compile('spin')], { maxInsns: 300_000 }), 'spin (FUP + TIP.PGD where the budget stops it)', true);
  });

  it('signals', async () => {
    // Timer signals land at run-dependent places; the recorder's trace of
    // them does not always decode without error (libipt agrees), so the
    // fast path may leave it to the exact decoder.
    checkBundle(await rec([compile('signals')], {}), 'signals', false);
  });

  it('a whole dynamic program (system calls, the loader, libc)', async () => {
    checkBundle(await rec([compile('workload')], { psbPeriod: 1024 }), 'workload (dynamic)', true);
  });
});
