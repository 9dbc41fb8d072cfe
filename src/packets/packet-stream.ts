import type { DecoderConfig } from './config.js';
import { PacketDecoder, type PacketDecoderOptions } from './decoder.js';
import { ErrorCode } from './errors.js';
import type { Packet } from './packet.js';
import { PSB_SIZE } from './sync.js';
import { BufferSource, type TraceSource } from './trace-source.js';

/** Bytes kept before the current position when sliding the window, for resync's look-back. */
const LOOK_BACK = 32;
/** Enough bytes for any one packet (the longest, PSB or a long CYC, is 16). */
const MAX_PACKET = 32;
/** Bytes a backward search keeps after its start, so that a PSB run found there is seen to its end. */
const BACK_MARGIN = 256;
/** Default window for file sources: a few reads per megabytes of trace, memory flat in trace size. */
const DEFAULT_WINDOW = 4 << 20;

/**
 * A packet decoder over a {@link TraceSource} of any size, in flat memory:
 * it decodes a window of the trace and slides it forward as needed. Offsets
 * are trace offsets; results are identical to decoding the whole trace in
 * one buffer (windows stay 8-byte aligned, like libipt's PSB search). An
 * in-memory trace ({@link BufferSource}) is its own window: nothing is copied.
 *
 * Besides libipt's packet decoder calls it can {@link restore} a position
 * saved from {@link offset} and {@link syncOffset}, anywhere in the trace:
 * the layers above read ahead and come back (libipt copies its decoder
 * struct for that).
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
    const size = Math.max(4096, options.windowSize ?? DEFAULT_WINDOW);
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

  /** The whole trace is in the window (an in-memory trace, or a small file). */
  private get whole(): boolean {
    return this.windowStart === 0 && this.atEnd;
  }

  /** Load the window so that it starts at `start` (8-byte aligned), and rebase the decoder. */
  private load(start: number): void {
    this.windowStart = start;
    this.windowEnd = start + this.source.read(this.window, 0, start, this.window.length);
    this.decoder.rebase(this.window.subarray(0, this.windowEnd - this.windowStart), start);
    this.decoder.final = this.atEnd;
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

  /**
   * Slide the window so that it starts shortly before trace offset `from`
   * (at or past the current window's start) and reaches as far as it can:
   * for callers that read {@link bytes} directly. False if the window
   * already reaches the end of the trace.
   */
  slideTo(from: number): boolean {
    return this.refill(from);
  }

  syncForward(): number {
    const savedPos = this.decoder.offset;
    const savedSync = this.decoder.syncOffset;
    const from = savedPos < 0 ? 0 : savedPos;
    if (from < this.windowStart) this.restore(savedPos, savedSync);
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

  /**
   * Move to the closest PSB before the current position (or before the end
   * of the trace when not synchronized), as libipt's pt_pkt_sync_backward.
   * Over a file the search reads windows backwards from there.
   */
  syncBackward(): number {
    if (this.whole) return this.decoder.syncBackward();
    const pos = this.decoder.offset;
    let end = pos < 0 ? this.source.size : pos;
    for (;;) {
      // A window that ends a little after `end`, so that a run of PSBs
      // found just before it is seen to its end.
      const span = this.window.length;
      let start = Math.max(0, end + BACK_MARGIN - span);
      start -= start % 8;
      this.load(start);
      this.decoder.restore(end, -1);
      const err = this.decoder.syncBackward();
      if (err >= 0) return 0;
      if (err !== -ErrorCode.Eos || start === 0) {
        this.restore(pos, this.decoder.syncOffset);
        return err;
      }
      // The words before `start` are still to be searched; PSB_SIZE of
      // overlap covers a PSB that straddles the boundary.
      end = start + PSB_SIZE;
      end -= end % 8;
    }
  }

  syncSet(offset: number): number {
    if (offset < 0 || offset > this.source.size) return -ErrorCode.Eos;
    if (offset < this.windowStart || offset > this.windowEnd) this.load(offset - (offset % 8));
    return this.decoder.syncSet(offset);
  }

  /**
   * Go back (or forward) to a position saved from {@link offset} and
   * {@link syncOffset} (negative: none), re-reading the window if it has
   * moved on since.
   */
  restore(offset: number, syncOffset: number): void {
    if (offset >= 0 && (offset < this.windowStart || offset > this.windowEnd)) {
      let start = Math.max(0, offset - LOOK_BACK);
      start -= start % 8;
      this.load(start);
    }
    this.decoder.restore(offset, syncOffset);
  }

  next(pkt: Packet): number {
    // The decoder reports -Eos, without moving, for a packet cut by the
    // window end: only then slide the window and decode it again.
    const size = this.decoder.next(pkt);
    if (size !== -ErrorCode.Eos || this.atEnd) return size;
    const off = this.decoder.offset;
    if (off < 0 || !this.refill(off)) return size;
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

/**
 * Packet decoder options for a trace recorded under `config`: the errata the
 * packet decoder works around (SKD007, SKZ84), and no PEBS-via-PT blocks
 * (libipt does not know them).
 */
export function packetOptionsFor(config: DecoderConfig): PacketDecoderOptions {
  return { pebs: false, skd007: config.errata.skd007, skz84: config.errata.skz84 };
}

/** What a decoder can be built on: a trace source, bytes, or a packet decoder or stream over them. */
export type TraceInput = TraceSource | Uint8Array | PacketDecoder | PacketStream;

/**
 * The packet stream that decoders of a trace recorded under `config` read.
 * A source or bytes get a stream with {@link packetOptionsFor}; a
 * {@link PacketDecoder} is read from its buffer with those options too (its
 * own options are those of whoever made it); a stream is used as it is.
 */
export function packetStreamFor(input: TraceInput, config: DecoderConfig): PacketStream {
  if (input instanceof PacketStream) return input;
  const options = packetOptionsFor(config);
  if (input instanceof PacketDecoder) {
    if (input.baseOffset !== 0) throw new RangeError('packetStreamFor: a PacketDecoder over a window of a trace');
    return new PacketStream(new BufferSource(input.buffer), options);
  }
  if (input instanceof Uint8Array) return new PacketStream(new BufferSource(input), options);
  return new PacketStream(input, options);
}
