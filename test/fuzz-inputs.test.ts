/**
 * A short CI run of the structure-aware input fuzzer (tools/fuzz-inputs.ts):
 * a few hundred mutants of every hostile input kind (bundle manifest, ELF,
 * perf.data, ELF core, policy, model and dormant-report files), each of
 * which must be refused with a one-line error or accepted, never crash,
 * hang or balloon. The long run is `node dist/tools/fuzz-inputs.js`
 * (150,000 per target by default, in watched child processes).
 */
import { describe, expect, it } from 'vitest';
import { inputRng, isCrash, mutateJson, runRange, TARGETS } from '../tools/fuzz-inputs.js';

const PER_TARGET = 200;
// Not the long run's default seed: CI covers other inputs than a local run.
const SEED = 20261204;

describe('hostile input fuzzing', () => {
  for (const target of TARGETS) {
    it(`${target.name}: ${PER_TARGET} mutants give a one-line error or a clean result`, () => {
      const peakMB = runRange(target.name, SEED, 0, PER_TARGET);
      // Bounded sizes: no mutant makes a parser allocate without limit.
      expect(peakMB).toBeLessThan(1536);
    }, 300_000);
  }

  // Found by the long run (seed 7): a note whose 32-bit size wrapped when aligned
  // (14524, 23643) and .init_array/.data addresses past 2^53, where adding a
  // step leaves the address unchanged and the scan never ended (the others).
  for (const index of [2136, 14524, 16642, 18873, 20928, 23643, 25380]) {
    it(`elf: long-run input ${index} of seed 7 is handled`, () => {
      runRange('elf', 7, index, 1);
    }, 60_000);
  }

  it('has a target for every hostile file kind', () => {
    expect(TARGETS.map((t) => t.name).sort()).toEqual(['core', 'dormant', 'elf', 'manifest', 'model', 'perf-data', 'policy']);
  });

  it('is deterministic for a seed, target and index', () => {
    const seed = { a: [1, 2, { b: 'c' }], d: 'e' };
    expect(mutateJson(inputRng(3, 1, 77), seed)).toBe(mutateJson(inputRng(3, 1, 77), seed));
  });

  it('counts programming errors as crashes and input errors as refusals', () => {
    expect(isCrash(new TypeError('x'))).toBe(true);
    expect(isCrash(new RangeError('Maximum call stack size exceeded'))).toBe(true);
    expect(isCrash('thrown string')).toBe(true);
    expect(isCrash(new Error('bundle: manifest.json: bad'))).toBe(false);
  });
});
