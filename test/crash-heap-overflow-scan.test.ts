/**
 * When glibc's allocator aborts on a corrupted chunk, the first write that
 * ran past the end of the heap object it was written through is named.
 */
import { describe, expect, it } from 'vitest';
import { firstHeapOverflow, type HeapWrite } from '../src/analyses/crash/heap-overflow-scan.js';
import type { HeapChunk } from '../src/analyses/crash/heap-chunks.js';

const chunks: HeapChunk[] = [
  { start: 0x1000, end: 0x1018, allocatedAt: 10, freedAt: -1 },
  { start: 0x1020, end: 0x1038, allocatedAt: 20, freedAt: 40 },
];
const w = (t: number, pointer: number, dst: number, n: number): HeapWrite => ({ t, pointer, dst, n, label: `w${t}` });

describe('heap overflow scan', () => {
  it('names the first write past its object, before the abort only', () => {
    const writes = [w(30, 0x1000, 0x1000, 8), w(35, 0x1000, 0x1006, 49), w(50, 0x1000, 0x1010, 16)];
    expect(firstHeapOverflow(writes, chunks, 100)?.write.t).toBe(35);
    expect(firstHeapOverflow(writes, chunks, 100)?.past).toBe(0x1006 + 49 - 0x1018);
    expect(firstHeapOverflow(writes, chunks, 35)).toBeNull();
  });

  it('ignores writes within bounds, through no heap object, or into an object not yet allocated or already freed', () => {
    expect(firstHeapOverflow([w(30, 0x1000, 0x1000, 24)], chunks, 100)).toBeNull();
    expect(firstHeapOverflow([w(30, 0x5000, 0x5000, 100)], chunks, 100)).toBeNull();
    expect(firstHeapOverflow([w(15, 0x1020, 0x1020, 100)], chunks, 100)).toBeNull();
    expect(firstHeapOverflow([w(45, 0x1020, 0x1020, 100)], chunks, 100)).toBeNull();
    expect(firstHeapOverflow([w(25, 0x1020, 0x1020, 100)], chunks, 100)?.chunk.start).toBe(0x1020);
  });
});
