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

/** Fill `bytes` from trace offset `from` of `source` as far as it goes (a source may hand out less per read); returns the bytes read. */
export function readAt(source: TraceSource, bytes: Uint8Array, from: number): number {
  let done = 0;
  while (done < bytes.length) {
    const n = source.read(bytes, done, from + done, bytes.length - done);
    if (n <= 0) break;
    done += n;
  }
  return done;
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

/**
 * A trace file, optionally a byte range of it (ptdump's `file:from-to`).
 * The file is opened for each read and closed again, so a source that its
 * user never closes (an analysis that stops early, a decoder dropped on an
 * error) holds no descriptor; a decoder reads a window (megabytes) per
 * call, so the extra open costs nothing. Each open checks that the path
 * still names the file first opened (device, inode, size): a trace that is
 * replaced or cut while being decoded is an error, not other bytes.
 */
export class FileSource implements TraceSource {
  readonly size: number;
  private readonly start: number;
  private readonly dev: number;
  private readonly ino: number;
  private readonly fileSize: number;
  private closed = false;

  constructor(readonly path: string, from = 0, to?: number) {
    const fd = openSync(path, 'r');
    try {
      const st = fstatSync(fd);
      const fileSize = st.size;
      if (from < 0 || (fileSize > 0 && from >= fileSize) || (fileSize === 0 && from > 0)) {
        throw new Error(`bad offset 0x${from.toString(16)} into ${path}`);
      }
      const end = to ?? fileSize;
      if (end > fileSize) throw new Error(`bad range 0x${end.toString(16)} in ${path}`);
      this.start = from;
      this.size = end - from;
      this.dev = st.dev;
      this.ino = st.ino;
      this.fileSize = fileSize;
    } finally {
      closeSync(fd);
    }
  }

  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    if (this.closed) throw new Error(`${this.path}: read after close`);
    const n = Math.max(0, Math.min(length, this.size - offset));
    if (n === 0) return 0;
    const fd = openSync(this.path, 'r');
    try {
      const st = fstatSync(fd);
      if (st.dev !== this.dev || st.ino !== this.ino || st.size !== this.fileSize) {
        throw new Error(`${this.path}: the trace file changed while it was read`);
      }
      let done = 0;
      while (done < n) {
        const r = readSync(fd, dst, dstOffset + done, n - done, this.start + offset + done);
        if (r <= 0) break;
        done += r;
      }
      return done;
    } finally {
      closeSync(fd);
    }
  }

  close(): void {
    this.closed = true;
  }
}

/**
 * A trace read once, front to back, from a pipe or standard input: each
 * byte is read when the decoder's window first reaches it, so memory stays
 * flat however long the stream runs. Its size is unknown (the largest safe
 * integer) until the end of the stream is read. Reading behind what was
 * read already is not possible: a packet dump, which only goes forward, can
 * use it; the flow decoders, which read ahead and come back, cannot.
 */
export class StreamSource implements TraceSource {
  private total = 0;
  private eof = false;
  private fd: number;

  /** Read from `fd` (closed by {@link close} unless it is standard input). */
  constructor(fd: number, private readonly owned = fd !== 0) {
    this.fd = fd;
  }

  get size(): number {
    return this.eof ? this.total : Number.MAX_SAFE_INTEGER;
  }

  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    if (offset !== this.total) throw new RangeError(`a stream is read front to back (asked for 0x${offset.toString(16)}, at 0x${this.total.toString(16)})`);
    let done = 0;
    while (done < length && !this.eof) {
      let n: number;
      try {
        n = readSync(this.fd, dst, dstOffset + done, length - done, null);
      } catch (e) {
        // A non-blocking descriptor without data yet: wait a moment.
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
          Atomics.wait(PAUSE, 0, 0, 1);
          continue;
        }
        if ((e as NodeJS.ErrnoException).code === 'EOF') n = 0;
        else throw e;
      }
      if (n === 0) {
        this.eof = true;
        break;
      }
      done += n;
      this.total += n;
    }
    return done;
  }

  close(): void {
    if (this.owned && this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * Bytes [start, end) of another source, at offsets from 0: a stretch of a
 * trace decoded on its own (a FlowGuard window from its PSB), read in the
 * decoder's windows rather than copied whole. Closing it leaves the
 * source open.
 */
export class SliceSource implements TraceSource {
  readonly size: number;

  constructor(
    private readonly source: TraceSource,
    private readonly start: number,
    end: number,
  ) {
    if (!(start >= 0 && start <= end && end <= source.size)) throw new RangeError(`SliceSource: [${start}, ${end}) is not inside a source of ${source.size} bytes`);
    this.size = end - start;
  }

  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    const n = Math.max(0, Math.min(length, this.size - offset));
    return n === 0 ? 0 : this.source.read(dst, dstOffset, this.start + offset, n);
  }

  close(): void {}
}
