/**
 * Hostile traces: a few hundred mutants (bytes flipped, replaced, dropped,
 * inserted, the trace cut short) of real and recorded traces. On every one
 * the edge decoder must give exactly the exact decoder's edges — by its
 * fast path when that still applies, else by falling back — and must not
 * throw or hang.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openTraceInput } from '../src/analyses/trace-input.js';
import type { DecoderConfig } from '../src/packets/config.js';
import { EdgeCoverage } from '../src/flow/edges/edge-coverage.js';
import { EdgePairs } from '../src/flow/edges/edge-pairs.js';
import type { Image } from '../src/flow/image.js';
import { buildTarget, recordRun, SAMPLE_INPUTS } from '../tools/fuzz-demo-target.js';
import { REAL_TRACES } from './helpers/vectors.js';
import { xorshift32 as prng } from '../bench/synthetic-trace.js';

/** Mutants per trace (PTSCOPE_EDGE_MUTANTS for a longer run). */
const MUTANTS_PER_TRACE = Number(process.env.PTSCOPE_EDGE_MUTANTS ?? 150);

/** One to four random edits of `trace`. */
function mutant(trace: Uint8Array, rand: () => number): Uint8Array {
  let bytes = Array.from(trace);
  const edits = 1 + (rand() % 4);
  for (let e = 0; e < edits; e++) {
    const at = rand() % bytes.length;
    switch (rand() % 6) {
      case 0:
        bytes[at] ^= 1 << (rand() % 8);
        break;
      case 1:
        bytes[at] = rand() & 0xff;
        break;
      case 2:
        bytes.splice(at, 1 + (rand() % 3));
        break;
      case 3:
        bytes.splice(at, 0, rand() & 0xff);
        break;
      case 4:
        // A TNT-8 byte with other outcomes (or a PAD), where a TNT-8 was.
        if ((bytes[at]! & 1) === 0 && bytes[at] !== 2) bytes[at] = (rand() & 0xfe) | 0x04;
        break;
      default:
        bytes = bytes.slice(0, Math.max(16, at));
        break;
    }
  }
  return Uint8Array.from(bytes);
}

/** Mutate `trace` and compare the decoder with the exact decoder on each mutant; the share the fast path took. */
function checkMutants(label: string, trace: Uint8Array, image: Image, config: DecoderConfig, seed: number): number {
  const rand = prng(seed);
  const exact = new EdgeCoverage(image, config, { exactOnly: true });
  const cov = new EdgeCoverage(image, config);
  const want = new EdgePairs();
  const got = new EdgePairs();
  const map = new Uint8Array(cov.mapSize);
  const wantMap = new Uint8Array(cov.mapSize);
  let fast = 0;
  for (let i = 0; i < MUTANTS_PER_TRACE; i++) {
    const m = mutant(trace, rand);
    exact.count(m, want);
    exact.counts.writeBitmap(wantMap);
    if (cov.count(m, got) === 'fast') fast++;
    if (!got.equals(want)) {
      expect(got.list(), `${label} mutant ${i}: edges`).toEqual(want.list());
    }
    cov.decode(m, map);
    expect(Buffer.from(map).equals(Buffer.from(wantMap)), `${label} mutant ${i}: bitmap`).toBe(true);
  }
  console.log(`edges mutants ${label}: ${MUTANTS_PER_TRACE} mutants equal to the exact decoder, ${fast} by the fast path`);
  return fast;
}

describe('edge decoder on mutated traces', () => {
  const work = mkdtempSync(join(tmpdir(), 'ptscope-edges-mutants-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('unzip (its first 5 KiB: 32 PSBs and its TNT-heavy part)', () => {
    const dir = join(REAL_TRACES, 'unzip');
    const input = openTraceInput(join(dir, 'trace.pt'), { raw: [`${join(dir, 'seg_400000.bin')}:0x400000`], cpu: '6/158' });
    const fast = checkMutants('unzip', input.trace.subarray(0, 0x1500), input.image, input.config, 11);
    expect(fast).toBeGreaterThan(MUTANTS_PER_TRACE / 10);
  });

  it('mruby around its overflow (OVF, then a PSB+: SKD010 on its CPU)', () => {
    const dir = join(REAL_TRACES, 'mruby');
    const input = openTraceInput(join(dir, 'trace.pt'), { raw: [`${join(dir, 'seg_400000.bin')}:0x400000`], cpu: '6/158' });
    // From the PSB at 0x76990 to the one at 0x78010: the OVF is at 0x774f0.
    const fast = checkMutants('mruby', input.trace.subarray(0x76990, 0x78010), input.image, input.config, 13);
    expect(fast).toBeGreaterThan(MUTANTS_PER_TRACE / 10);
  });

  it('the fuzzing target, recorded', async () => {
    const target = buildTarget(join(work, 'target'));
    const run = await recordRun(target, Buffer.from(SAMPLE_INPUTS[0]!), join(work, 'run'));
    writeFileSync(join(work, 'json.pt'), run.trace);
    const fast = checkMutants('json_check', run.trace, target.image, target.config, 12);
    expect(fast).toBeGreaterThan(MUTANTS_PER_TRACE / 10);
  });
});
