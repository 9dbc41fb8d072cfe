import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/**
 * Random-access bytes of a trace: a file read on demand (flat memory for
 * any size) or an in-memory buffer.
 */
export interface TraceSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Copy up to `length` bytes from trace offset `offset` into `dst` at `dstOffset`; returns bytes copied. */
  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number;
  close(): void;
}

/** A trace held in memory. */
export class BufferSource implements TraceSource {
  constructor(readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    const n = Math.max(0, Math.min(length, this.bytes.length - offset));
    dst.set(this.bytes.subarray(offset, offset + n), dstOffset);
    return n;
  }
  close(): void {}
}

/** A trace file, optionally a byte range of it (ptdump's `file:from-to`). */
export class FileSource implements TraceSource {
  private fd: number;
  readonly size: number;
  private readonly start: number;

  constructor(path: string, from = 0, to?: number) {
    this.fd = openSync(path, 'r');
    try {
      const fileSize = fstatSync(this.fd).size;
      if (from < 0 || (fileSize > 0 && from >= fileSize) || (fileSize === 0 && from > 0)) {
        throw new Error(`bad offset 0x${from.toString(16)} into ${path}`);
      }
      const end = to ?? fileSize;
      if (end > fileSize) throw new Error(`bad range 0x${end.toString(16)} in ${path}`);
      this.start = from;
      this.size = end - from;
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    const n = Math.max(0, Math.min(length, this.size - offset));
    let done = 0;
    while (done < n) {
      const r = readSync(this.fd, dst, dstOffset + done, n - done, this.start + offset + done);
      if (r <= 0) break;
      done += r;
    }
    return done;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
