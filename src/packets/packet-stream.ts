import { PacketDecoder, type PacketDecoderOptions } from './decoder.js';
import { ErrorCode } from './errors.js';
import type { Packet } from './packet.js';
import { BufferSource, type TraceSource } from './trace-source.js';

/** Bytes kept before the current position when sliding the window, for resync's look-back. */
const LOOK_BACK = 32;
/** Enough bytes for any one packet (the longest, PSB or a long CYC, is 16). */
const MAX_PACKET = 32;

/**
 * A packet decoder over a {@link TraceSource} of any size, in flat memory:
 * it decodes a window of the trace and slides it forward as needed. Offsets
 * are trace offsets; results are identical to decoding the whole trace in
 * one buffer (windows stay 8-byte aligned, like libipt's PSB search).
 */
export class PacketStream {
  readonly decoder: PacketDecoder;
  private window: Uint8Array;
  private windowStart = 0;
  private windowEnd = 0;

  constructor(
    readonly source: TraceSource,
    options: PacketDecoderOptions & { windowSize?: number } = {},
  ) {
    const size = Math.max(4096, options.windowSize ?? 32 << 20);
    if (source instanceof BufferSource) {
      this.window = source.bytes;
      this.windowEnd = source.size;
    } else {
      this.window = new Uint8Array(Math.min(size, Math.max(source.size, 64)));
      this.windowEnd = source.read(this.window, 0, 0, this.window.length);
    }
    this.decoder = new PacketDecoder(this.window.subarray(0, this.windowEnd), { ...options, baseOffset: 0 });
    this.decoder.final = this.atEnd;
  }

  get offset(): number {
    return this.decoder.offset;
  }

  get syncOffset(): number {
    return this.decoder.syncOffset;
  }

  get size(): number {
    return this.source.size;
  }

  private get atEnd(): boolean {
    return this.windowEnd >= this.source.size;
  }

  /** Slide the window so that it starts shortly before trace offset `from`. */
  private refill(from: number): boolean {
    if (this.atEnd) return false;
    let start = Math.max(0, from - LOOK_BACK);
    start -= start % 8;
    if (start <= this.windowStart) {
      // The window cannot slide: grow it (a sync scan spanning the window).
      const bigger = new Uint8Array(this.window.length * 2);
      bigger.set(this.window.subarray(0, this.windowEnd - this.windowStart));
      this.window = bigger;
    } else {
      this.window.copyWithin(0, start - this.windowStart, this.windowEnd - this.windowStart);
      this.windowStart = start;
    }
    const have = this.windowEnd - this.windowStart;
    const got = this.source.read(this.window, have, this.windowEnd, this.window.length - have);
    this.windowEnd += got;
    this.decoder.rebase(this.window.subarray(0, this.windowEnd - this.windowStart), this.windowStart);
    this.decoder.final = this.atEnd;
    return true;
  }

  syncForward(): number {
    const savedPos = this.decoder.offset;
    const savedSync = this.decoder.syncOffset;
    const from = savedPos < 0 ? 0 : savedPos;
    for (;;) {
      const err = this.decoder.syncForward();
      if (err === -ErrorCode.Eos) {
        if (this.atEnd) {
          this.decoder.restore(savedPos, savedSync);
          return err;
        }
        // Nothing complete up to the window end: resume just before it, so
        // the window slides instead of growing.
        const resume = Math.max(from, this.windowEnd - 2 * MAX_PACKET);
        this.decoder.restore(resume === from ? savedPos : resume, savedSync);
        this.refill(resume);
        continue;
      }
      if (err < 0) return err;
      // A run of PSBs may continue past the window: look again with more data.
      if (!this.atEnd && this.decoder.offset + 2 * MAX_PACKET > this.windowEnd) {
        this.decoder.restore(savedPos, savedSync);
        if (this.refill(from)) continue;
      }
      return 0;
    }
  }

  syncBackward(): number {
    // Backward sync is for in-memory use: it needs the bytes before the position.
    return this.decoder.syncBackward();
  }

  syncSet(offset: number): number {
    if (offset < 0 || offset > this.source.size) return -ErrorCode.Eos;
    if (offset < this.windowStart || offset > this.windowEnd) {
      this.windowStart = offset - (offset % 8);
      this.windowEnd = this.windowStart + this.source.read(this.window, 0, this.windowStart, this.window.length);
      this.decoder.rebase(this.window.subarray(0, this.windowEnd - this.windowStart), this.windowStart);
      this.decoder.final = this.atEnd;
    }
    return this.decoder.syncSet(offset);
  }

  next(pkt: Packet): number {
    // The decoder reports -Eos, without moving, for a packet cut by the
    // window end: only then slide the window and decode it again.
    const size = this.decoder.next(pkt);
    if (size !== -ErrorCode.Eos || this.atEnd) return size;
    const off = this.decoder.offset;
    if (off < 0 || !this.refill(off)) return size;
    this.decoder.final = this.atEnd;
    return this.decoder.next(pkt);
  }

  /** The bytes of the current window and its trace offset (for --raw printing). */
  get bytes(): Uint8Array {
    return this.decoder.buffer;
  }

  get bytesOffset(): number {
    return this.windowStart;
  }

  close(): void {
    this.source.close();
  }
}
