/**
 * A short CI run of the packet fuzzer (tools/fuzz-packets.ts): 20,000
 * mutated traces through the decoder's resync loop (progress, re-encoding,
 * backward sync) and a sample through `ptscope dump`'s formatter. The long
 * run is `node dist/tools/fuzz-packets.js --count 1000000`.
 */
import { describe, expect, it } from 'vitest';
import { checkDecode, fuzzCase, runFuzz } from '../tools/fuzz-packets.js';

describe('packet fuzzing', () => {
  it('survives 20,000 mutated traces without exception, hang or memory growth', () => {
    const stats = runFuzz({ count: 20_000, seed: 20240601, dumpEvery: 50 });
    expect(stats.traces).toBe(20_000);
    expect(stats.dumps).toBe(400);
    // Mutated traces still decode: the fuzz reaches deep into the decoder.
    expect(stats.packets).toBeGreaterThan(20_000 * 5);
    // Flat memory: nothing accumulates per trace (loose bound: GC timing varies).
    expect(stats.heapEndMB - stats.heapStartMB).toBeLessThan(64);
  });

  it('is deterministic for a seed and index', () => {
    const a = fuzzCase(7, 123);
    const b = fuzzCase(7, 123);
    expect(Buffer.from(a.trace).equals(Buffer.from(b.trace))).toBe(true);
    expect(a.options).toEqual(b.options);
    expect(checkDecode(a.trace, a.options)).toBe(checkDecode(b.trace, b.options));
  });

  it('syncs to the last PSB of a run, as libipt does, and stops', () => {
    // Four back-to-back PSBs: the forward sync lands on the last one, so
    // exactly one PSB decodes before the end of the trace.
    const psbs = new Uint8Array(64);
    for (let i = 0; i < 64; i += 2) psbs.set([0x02, 0x82], i);
    expect(checkDecode(psbs, {})).toBe(1);
  });
});
