/**
 * Where the recorder's packets go: straight to `trace.pt`, or, in snapshot
 * mode, into an in-memory ring of PSB segments (like perf's AUX snapshot
 * mode over a hardware ring buffer): only the newest segments whose total
 * size fits the snapshot size are kept, so a trace always starts at a PSB
 * and decodes on its own. The newest segment is kept even if it alone is
 * larger.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { encodePacket, MAX_ENCODED_SIZE } from '../../packets/encoder.js';
import { PtError } from '../../packets/errors.js';
import type { Packet } from '../../packets/packet.js';

const CHUNK = 1 << 16;

/** One PSB segment held in snapshot mode. */
interface Segment {
  /** Trace offset (of the full, unsnapshotted stream) of its PSB. */
  readonly start: number;
  readonly chunks: Uint8Array[];
  size: number;
}

export class TraceOutput {
  private buf = new Uint8Array(CHUNK);
  private used = 0;
  /** Bytes of the full stream before {@link buf}. */
  private before = 0;
  private fd: number | null;
  private readonly segments: Segment[] = [];
  private retained = 0;

  /**
   * @param path the trace file
   * @param snapshotBytes 0 to keep everything, else the ring size in bytes
   */
  constructor(
    private readonly path: string,
    private readonly snapshotBytes = 0,
  ) {
    this.fd = snapshotBytes > 0 ? null : openSync(path, 'w');
  }

  /** Offset in the full stream of the next byte. */
  get offset(): number {
    return this.before + this.used;
  }

  packet(pkt: Packet): void {
    if (this.used + MAX_ENCODED_SIZE > this.buf.length) this.flush();
    const n = encodePacket(pkt, this.buf, this.used);
    if (n < 0) throw new PtError(-n, this.offset, `recorder: cannot encode packet type ${pkt.type}`);
    this.used += n;
  }

  /** A PSB is about to be written: in snapshot mode it opens a new segment. */
  beginSegment(): void {
    if (this.snapshotBytes === 0) return;
    this.flush();
    this.segments.push({ start: this.offset, chunks: [], size: 0 });
    this.trim();
  }

  /** Drop the oldest segments that no longer fit the ring (never the newest). */
  private trim(): void {
    while (this.segments.length > 1 && this.retained > this.snapshotBytes) {
      this.retained -= this.segments.shift()!.size;
    }
  }

  private flush(): void {
    if (this.used === 0) return;
    if (this.fd !== null) {
      let done = 0;
      while (done < this.used) done += writeSync(this.fd, this.buf, done, this.used - done);
    } else {
      const seg = this.segments[this.segments.length - 1];
      if (seg !== undefined) {
        seg.chunks.push(this.buf.slice(0, this.used));
        seg.size += this.used;
        this.retained += this.used;
        this.trim();
      }
      // Bytes before the first PSB have no segment and are dropped.
    }
    this.before += this.used;
    this.used = 0;
  }

  /**
   * Write out and close. Returns the full-stream offset where the written
   * trace starts (0 unless a snapshot dropped older segments) and its size.
   */
  finish(): { start: number; size: number; fullSize: number } {
    this.flush();
    const fullSize = this.before;
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
      return { start: 0, size: fullSize, fullSize };
    }
    this.trim();
    const fd = openSync(this.path, 'w');
    try {
      for (const seg of this.segments) {
        for (const c of seg.chunks) {
          let done = 0;
          while (done < c.length) done += writeSync(fd, c, done, c.length - done);
        }
      }
    } finally {
      closeSync(fd);
    }
    const start = this.segments.length > 0 ? this.segments[0].start : fullSize;
    return { start, size: this.retained, fullSize };
  }
}
