/** The one binary search: against a linear scan, on sorted arrays with repeats, empty arrays and values outside. */
import { describe, expect, it } from 'vitest';
import { lastAtOrBelow, partitionPoint } from '../src/flow/sorted-search.js';

function linearLastAtOrBelow(keys: readonly number[], x: number): number {
  let i = -1;
  for (let k = 0; k < keys.length; k++) if (keys[k]! <= x) i = k;
  return i;
}

describe('sorted search', () => {
  it('lastAtOrBelow agrees with a linear scan, typed arrays and plain ones', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const keys = Array.from({ length: rand(12) }, () => rand(20)).sort((a, b) => a - b);
      const typed = Float64Array.from(keys);
      for (let x = -2; x <= 22; x++) {
        const want = linearLastAtOrBelow(keys, x);
        expect(lastAtOrBelow(keys, x)).toBe(want);
        expect(lastAtOrBelow(typed, x)).toBe(want);
        expect(partitionPoint(keys.length, (i) => keys[i]! <= x) - 1).toBe(want);
      }
    }
  });

  it('partitionPoint: the prefix length where the predicate holds', () => {
    expect(partitionPoint(0, () => true)).toBe(0);
    expect(partitionPoint(5, () => true)).toBe(5);
    expect(partitionPoint(5, () => false)).toBe(0);
    expect(partitionPoint(5, (i) => i < 3)).toBe(3);
    // First section that ends after 10: [0,4) [4,10) [10,12) -> index 2.
    const ends = [4, 10, 12];
    expect(partitionPoint(ends.length, (i) => ends[i]! <= 10)).toBe(2);
  });
});
