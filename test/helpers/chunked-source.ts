import type { TraceSource } from '../../src/packets/trace-source.js';

/**
 * A trace source that hands out at most `chunk` bytes per read, as a file
 * read in pieces would: for tests of code that reads a trace through a window.
 */
export class ChunkedSource implements TraceSource {
  reads = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly chunk: number,
  ) {}
  get size(): number {
    return this.bytes.length;
  }
  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    this.reads++;
    const n = Math.max(0, Math.min(length, this.chunk, this.bytes.length - offset));
    dst.set(this.bytes.subarray(offset, offset + n), dstOffset);
    return n;
  }
  close(): void {}
}
