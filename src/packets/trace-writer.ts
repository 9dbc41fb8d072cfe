import { closeSync, openSync, writeSync } from 'node:fs';
import { encodePacket, MAX_ENCODED_SIZE } from './encoder.js';
import { PtError } from './errors.js';
import type { Packet } from './packet.js';

/**
 * Builds an Intel PT trace from packets: in memory (a growable buffer), or
 * streamed to a file in chunks so that traces of any size take flat memory.
 *
 * Encoding errors throw a {@link PtError} carrying the trace offset: a
 * writer is for producing traces (tests, synthetic benchmarks, the
 * recorder), where an unencodable packet is a bug in the caller.
 */
export class TraceWriter {
  private buf: Uint8Array;
  private used = 0;
  /** Bytes already flushed to the file. */
  private flushed = 0;
  private fd: number | null;

  /**
   * @param path write to this file (created or truncated) instead of memory
   * @param chunkSize initial buffer size; the flush threshold for files
   */
  constructor(path?: string, chunkSize = 1 << 16) {
    this.buf = new Uint8Array(Math.max(chunkSize, 4 * MAX_ENCODED_SIZE));
    this.fd = path === undefined ? null : openSync(path, 'w');
  }

  /** Trace offset of the next byte written. */
  get offset(): number {
    return this.flushed + this.used;
  }

  /** Make room for `n` more bytes: flush to the file, or grow the buffer. */
  private reserve(n: number): void {
    if (this.used + n <= this.buf.length) return;
    if (this.fd !== null) {
      this.flush();
      if (n <= this.buf.length) return;
    }
    let size = this.buf.length * 2;
    while (size < this.used + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buf.subarray(0, this.used));
    this.buf = bigger;
  }

  /** Append one packet; returns `this` for chaining. */
  packet(pkt: Packet): this {
    this.reserve(MAX_ENCODED_SIZE);
    const n = encodePacket(pkt, this.buf, this.used);
    if (n < 0) throw new PtError(-n, this.offset);
    this.used += n;
    return this;
  }

  /** Append packets in order. */
  packets(pkts: Iterable<Packet>): this {
    for (const p of pkts) this.packet(p);
    return this;
  }

  /** Append raw bytes (garbage, hand-made packets, another trace). */
  raw(bytes: ArrayLike<number>): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
    return this;
  }

  private flush(): void {
    if (this.fd === null || this.used === 0) return;
    let done = 0;
    while (done < this.used) done += writeSync(this.fd, this.buf, done, this.used - done);
    this.flushed += this.used;
    this.used = 0;
  }

  /**
   * Finish the trace. In memory: returns the bytes (a copy, so the writer
   * may be reused). For a file: flushes, closes it and returns an empty array.
   */
  finish(): Uint8Array {
    if (this.fd === null) return this.buf.slice(0, this.used);
    this.flush();
    closeSync(this.fd);
    this.fd = null;
    return new Uint8Array(0);
  }
}

/** Encode `pkts` into one in-memory trace. */
export function encodeTrace(pkts: Iterable<Packet>): Uint8Array {
  return new TraceWriter().packets(pkts).finish();
}
