/**
 * For a crash the allocator itself reports (glibc aborts on a corrupted
 * chunk: "malloc(): corrupted top size", "free(): invalid next size"): the
 * corruption happened earlier, by a write past the end of a heap object
 * into the next chunk's header. The taint has nothing to follow (the abort
 * is the allocator's own decision), so the writes of the window are checked
 * against the heap objects they were written through, forward, and the
 * first write that ran past its object is named.
 */
import type { HeapChunk } from './heap-chunks.js';

/** One write of the program: a store, or a summarised library call's block. */
export interface HeapWrite {
  /** Window index. */
  t: number;
  /** The pointer the write went through (its object decides the bounds). */
  pointer: number;
  dst: number;
  n: number;
  label: string;
}

export interface HeapOverflow {
  write: HeapWrite;
  chunk: HeapChunk;
  /** Bytes written past the object's end. */
  past: number;
}

/** The heap object live at t that holds `addr`, or null. */
function liveChunk(chunks: readonly HeapChunk[], addr: number, t: number): HeapChunk | null {
  let best: HeapChunk | null = null;
  for (const c of chunks) {
    if (addr < c.start || addr >= c.end || c.allocatedAt > t || (c.freedAt >= 0 && c.freedAt < t)) continue;
    if (best === null || c.allocatedAt > best.allocatedAt) best = c;
  }
  return best;
}

/** The first write before `limit` that ran past the end of the heap object its pointer pointed into, or null. */
export function firstHeapOverflow(writes: readonly HeapWrite[], chunks: readonly HeapChunk[], limit: number): HeapOverflow | null {
  let first: HeapOverflow | null = null;
  for (const w of writes) {
    if (w.t >= limit || (first !== null && w.t >= first.write.t)) continue;
    const c = liveChunk(chunks, w.pointer, w.t);
    if (c === null || w.dst + w.n <= c.end || w.dst < c.start) continue;
    first = { write: w, chunk: c, past: w.dst + w.n - c.end };
  }
  return first;
}
