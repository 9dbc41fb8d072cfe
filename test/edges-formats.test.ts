/**
 * The edge decoder's parts and outputs: AFL's id formula and buckets, the
 * hit counters, the TNT bit buffer and the call stack against simple
 * models, the library API (a reused bitmap), and `ptscope coverage
 * --edges` in each format (afl, showmap, json, drcov) with its usage errors.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTraceInput } from '../src/analyses/trace-input.js';
import { runCoverageCommand } from '../src/cli/coverage.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { CALL_STACK_DEPTH, CallStack } from '../src/flow/edges/call-stack.js';
import { EdgeCoverage } from '../src/flow/edges/edge-coverage.js';
import { aflBucket, bitmapFnv1a64, blockHash, EdgeCounts, edgeId, showmapClass } from '../src/flow/edges/edge-map.js';
import { EdgePairs } from '../src/flow/edges/edge-pairs.js';
import { DRCOV_MAX_REPEAT } from '../src/flow/edges/drcov-counts.js';
import { TntBits } from '../src/flow/edges/tnt-bits.js';
import { ReturnStack } from '../src/flow/return-stack.js';
import { readDrcov } from '../src/reports/drcov.js';
import { REAL_TRACES } from './helpers/vectors.js';
import { xorshift32 as rng } from '../bench/synthetic-trace.js';

describe('AFL edge ids and buckets', () => {
  it("edge id is AFL's prev_loc >> 1 ^ cur_loc", () => {
    expect(edgeId(0, 0x1234)).toBe(0x1234);
    expect(edgeId(0x1234, 0x00ff)).toBe((0x1234 >> 1) ^ 0x00ff);
    // A → B and B → A differ; A → A is not always 0.
    const a = blockHash(0x401000) & 0xffff;
    const b = blockHash(0x401020) & 0xffff;
    expect(edgeId(a, b)).not.toBe(edgeId(b, a));
    expect(edgeId(a, a)).not.toBe(0);
  });

  it('block hashes spread nearby addresses over the map', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 4096; i++) seen.add(blockHash(0x400000 + i * 4) & 0xffff);
    expect(seen.size).toBeGreaterThan(3900);
    // Kernel (negative) addresses hash by their 64-bit two's complement.
    expect(blockHash(-0x7f000000)).not.toBe(blockHash(0x81000000));
  });

  it("buckets counts as afl-fuzz and classes them as afl-showmap", () => {
    const want = [0, 1, 2, 4, 8, 8, 8, 8, 16];
    for (let c = 0; c <= 8; c++) expect(aflBucket(c)).toBe(want[c]);
    expect([15, 16, 31, 32, 127, 128, 255, 1000].map(aflBucket)).toEqual([16, 32, 32, 64, 64, 128, 128, 128]);
    expect([0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 127, 128, 255].map(showmapClass)).toEqual([0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]);
  });

  it('counters stop at 255, and the bitmap holds buckets only where edges were hit', () => {
    const counts = new EdgeCounts(256);
    for (let i = 0; i < 300; i++) counts.hit(7);
    counts.add(9, 3);
    counts.hit(9);
    expect(counts.counts[7]).toBe(255);
    expect(counts.edges).toBe(304);
    const map = new Uint8Array(256).fill(0xaa);
    counts.writeBitmap(map);
    expect(map[7]).toBe(128);
    expect(map[9]).toBe(8);
    expect(map.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0)).toBe(2);
    counts.clear();
    expect(counts.used).toBe(0);
    expect(counts.counts[7]).toBe(0);
    expect(() => new EdgeCounts(1000)).toThrow(RangeError);
  });
});

describe('TNT bit buffer', () => {
  it('reads back what was appended, across words and refills', () => {
    const bits = new TntBits();
    const model: number[] = [];
    const next = rng(42);
    for (let round = 0; round < 2000; round++) {
      if (model.length < 40 || next() % 3 !== 0) {
        const n = 1 + (next() % 47);
        const hi = n > 32 ? next() & ((1 << (n - 32)) - 1) : 0;
        const lo = n >= 32 ? next() : next() & ((1 << n) - 1);
        bits.appendPayload(hi * 4294967296 + (lo >>> 0), n);
        for (let i = n - 1; i >= 0; i--) model.push(i >= 32 ? (hi >>> (i - 32)) & 1 : (lo >>> i) & 1);
      }
      expect(bits.size).toBe(model.length);
      const k = 1 + (next() % Math.min(16, model.length));
      let want = 0;
      for (let i = 0; i < k; i++) want = (want << 1) | model[i]!;
      expect(bits.peek(k)).toBe(want);
      if (next() & 1) {
        expect(bits.take()).toBe(model.shift());
      } else {
        bits.skip(k);
        model.splice(0, k);
      }
    }
  });
});

describe('call stack', () => {
  it("behaves as libipt's return stack, overwriting the oldest entry when full", () => {
    const mine = new CallStack();
    const ref = new ReturnStack();
    const next = rng(7);
    for (let i = 0; i < 20000; i++) {
      if (next() % 5 < 3) {
        const ip = next();
        mine.push(ip);
        ref.push(ip);
      } else {
        const ok = mine.pop();
        expect(ok).toBe(ref.pop() === 0);
        if (ok) expect(mine.ip).toBe(ref.ip);
      }
    }
  });

  it('keep(n) drops the oldest entries, as deep pushes would', () => {
    const s = new CallStack();
    for (let i = 0; i < CALL_STACK_DEPTH; i++) s.push(i);
    // A step that went 3 deep on its own, then returned twice, kept one.
    s.keep(CALL_STACK_DEPTH - 3);
    s.push(100);
    const ref = new ReturnStack();
    for (let i = 0; i < CALL_STACK_DEPTH; i++) ref.push(i);
    ref.push(100);
    ref.push(101);
    ref.push(102);
    ref.pop();
    ref.pop();
    for (;;) {
      const ok = s.pop();
      expect(ok).toBe(ref.pop() === 0);
      if (!ok) break;
      expect(s.ip).toBe(ref.ip);
    }
  });
});

describe('edge coverage API and `ptscope coverage --edges`', () => {
  const dir = join(REAL_TRACES, 'unzip');
  const trace = join(dir, 'trace.pt');
  const raw = `${join(dir, 'seg_400000.bin')}:0x400000`;
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ptscope-edges-cli-'));
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function reference(mapSize = 65536): { map: Uint8Array; pairs: EdgePairs; edges: number } {
    const input = openTraceInput(trace, { raw: [raw], cpu: '6/158' });
    const cov = new EdgeCoverage(input.image, input.config, { mapSize });
    const map = new Uint8Array(mapSize).fill(0xff);
    const edges = cov.decode(input.trace, map);
    const pairs = new EdgePairs();
    cov.count(input.trace, pairs);
    return { map, pairs, edges };
  }

  function run(args: string[]): { code: number; text: string } {
    const out = new LineWriter(null);
    try {
      const code = runCoverageCommand(args, out) as number;
      out.flush();
      return { code, text: out.text };
    } catch (e) {
      if (e instanceof CliError) return { code: e.exitCode, text: e.message };
      throw e;
    }
  }

  it('decode() overwrites the whole reused bitmap and returns the edges taken', () => {
    const { map, pairs, edges } = reference();
    expect(edges).toBe(pairs.total);
    const counts = new EdgeCounts(65536);
    pairs.countInto(counts);
    const want = new Uint8Array(65536);
    counts.writeBitmap(want);
    expect(Buffer.from(map).equals(Buffer.from(want))).toBe(true);
  });

  it('afl: the bitmap file', () => {
    const file = join(work, 'map.bin');
    const r = run(['--edges', '--format', 'afl', '-o', file, trace, '--raw', raw, '--cpu', '6/158']);
    expect(r.code).toBe(0);
    expect(r.text).toMatch(/AFL bitmap, 65536 bytes, \d+ edges taken/);
    expect(Buffer.from(readFileSync(file)).equals(Buffer.from(reference().map))).toBe(true);
    // Another map size.
    const small = join(work, 'map4k.bin');
    expect(run(['--edges', '--format', 'afl', '--map-size', '4096', '-o', small, trace, '--raw', raw, '--cpu', '6/158']).code).toBe(0);
    expect(statSync(small).size).toBe(4096);
    expect(Buffer.from(readFileSync(small)).equals(Buffer.from(reference(4096).map))).toBe(true);
  });

  it("showmap: afl-showmap's id:class lines (the default format)", () => {
    const r = run(['--edges', trace, '--raw', raw, '--cpu', '6/158']);
    expect(r.code).toBe(0);
    const lines = r.text.trim().split('\n');
    const map = reference().map;
    const want = [...map].flatMap((v, id) => (v === 0 ? [] : [`${String(id).padStart(6, '0')}:${Math.log2(v) + 1}`]));
    expect(lines).toEqual(want);
  });

  it('json: every edge by address, with counts, ids and the bitmap fingerprint', () => {
    const r = run(['--edges', '--json', trace, '--raw', raw, '--cpu', '6/158']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.text);
    const ref = reference();
    expect(doc.format).toBe('ptscope-edges');
    expect(doc.fastPath).toBe(1);
    expect(doc.edgesTaken).toBe(ref.pairs.total);
    expect(doc.distinctEdges).toBe(ref.pairs.size);
    expect(doc.bitmapFnv1a64).toBe(bitmapFnv1a64(ref.map));
    expect(doc.edges.length).toBe(ref.pairs.size);
    expect(doc.edges.reduce((n: number, e: { count: number }) => n + e.count, 0)).toBe(ref.pairs.total);
    const first = doc.edges[0];
    expect(first.from).toBeNull();
    expect(first.id).toBe(blockHash(Number(first.to)) & 0xffff);
  });

  it('drcov: each block once per entry, readable as drcov', () => {
    const file = join(work, 'edges.drcov');
    const r = run(['--edges', '--format', 'drcov', '-o', file, trace, '--raw', raw, '--cpu', '6/158']);
    expect(r.code).toBe(0);
    const log = readDrcov(new Uint8Array(readFileSync(file)));
    const ref = reference();
    let want = 0;
    for (const c of ref.pairs.blockCounts().values()) want += Math.min(c, DRCOV_MAX_REPEAT);
    expect(log.blocks.length).toBe(want);
    expect(log.modules.length).toBe(1);
    expect(log.blocks.every((b) => b.size > 0 && b.module === 0)).toBe(true);
  });

  it('a bundle works too, and usage errors exit with status 2', () => {
    const demo = resolve('demo', 'rop_stack.benign');
    const r = run(['--edges', '--json', demo]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.text).edgesTaken).toBeGreaterThan(0);
    expect(run(['--edges', '--format', 'afl', demo]).code).toBe(2);
    expect(run(['--edges', '--format', 'text', demo]).code).toBe(2);
    expect(run(['--format', 'showmap', demo]).code).toBe(2);
    expect(run(['--edges', '--map-size', '1000', demo]).code).toBe(2);
    expect(run(['--edges', join(work, 'missing.pt'), '--raw', raw]).code).toBe(2);
  });
});
