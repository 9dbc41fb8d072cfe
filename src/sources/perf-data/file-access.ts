import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ErrorCode, PtError } from '../../packets/errors.js';

/**
 * Errors of the perf.data importer: one line, naming the file offset.
 * `kind` tells a malformed file from a valid perf.data that simply holds
 * no Intel PT data, which callers usually report differently.
 */
export class PerfDataError extends PtError {
  constructor(
    readonly kind: 'format' | 'no-pt' | 'io',
    offset: number,
    detail: string,
    readonly file = '',
  ) {
    super(
      kind === 'no-pt' ? ErrorCode.NoSync : ErrorCode.BadFile,
      offset,
      `${file ? file + ': ' : ''}${detail}${kind === 'no-pt' ? '' : ` at offset 0x${offset.toString(16)}`}`,
    );
    this.name = 'PerfDataError';
  }
}

/** The message of a perf.data without AUXTRACE records. */
export const NO_PT_DATA = 'no Intel PT data (no AUXTRACE records)';

/**
 * Random access to the bytes of a perf.data: a file read on demand, so the
 * importer's memory does not grow with the file, or a buffer (tests).
 * Reads outside the file throw a {@link PerfDataError} naming the offset.
 */
export class RandomAccessFile {
  private fd: number;
  readonly size: number;
  private readonly bytes: Uint8Array | null;

  private constructor(
    readonly name: string,
    fd: number,
    size: number,
    bytes: Uint8Array | null,
  ) {
    this.fd = fd;
    this.size = size;
    this.bytes = bytes;
  }

  static open(path: string): RandomAccessFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new PerfDataError('io', 0, `cannot open: ${(e as Error).message}`, path);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new Error('not a regular file');
      return new RandomAccessFile(path, fd, st.size, null);
    } catch (e) {
      closeSync(fd);
      throw new PerfDataError('io', 0, (e as Error).message, path);
    }
  }

  static fromBytes(name: string, bytes: Uint8Array): RandomAccessFile {
    return new RandomAccessFile(name, -1, bytes.length, bytes);
  }

  /** Copy up to `length` bytes at `offset` into `dst`; returns the count copied (short at EOF). */
  readInto(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    const n = Math.max(0, Math.min(length, this.size - offset));
    if (this.bytes !== null) {
      dst.set(this.bytes.subarray(offset, offset + n), dstOffset);
      return n;
    }
    let done = 0;
    while (done < n) {
      const r = readSync(this.fd, dst, dstOffset + done, n - done, offset + done);
      if (r <= 0) break;
      done += r;
    }
    return done;
  }

  /** Exactly `length` bytes at `offset`, or a PerfDataError naming `what`. */
  read(offset: number, length: number, what: string): Uint8Array {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw this.error(offset, `${what}: bad range`);
    }
    if (offset + length > this.size) {
      throw this.error(offset, `${what} (0x${length.toString(16)} bytes) runs past the end of the file (size 0x${this.size.toString(16)})`);
    }
    const out = new Uint8Array(length);
    const got = this.readInto(out, 0, offset, length);
    if (got !== length) throw this.error(offset + got, `${what}: short read`);
    return out;
  }

  error(offset: number, detail: string): PerfDataError {
    return new PerfDataError('format', offset, detail, this.name);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** A u64 field as a safe number, or a PerfDataError: offsets and sizes above 2^53 are corrupt. */
export function u64AsNumber(view: DataView, pos: number, file: RandomAccessFile, fileOffset: number, what: string): number {
  const v = view.getBigUint64(pos, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw file.error(fileOffset, `${what} 0x${v.toString(16)} is not a valid file position`);
  return Number(v);
}
