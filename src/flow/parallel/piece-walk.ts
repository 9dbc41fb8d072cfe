/**
 * How far a piece of a trace (from `range.from`, a PSB or 0) is decoded on
 * past its end (`range.to`): through the next PSB+ and a little further,
 * as the serial decoder does: a branch before a PSB may take its TNT bit
 * from after it, events are read ahead, and a decoder that passes a PSB+
 * does not report it as one that synchronises there does. zoned-stitch.ts
 * finds where this overlap agrees with the next piece's own decode and
 * hands over there.
 */
import type { SegmentRange } from './psb-split.js';

/** Transfers decoded past a piece's end before it stops (the overlap with the next piece). */
export const OVERLAP_TRANSFERS = 64;
/** Bytes past a piece's end the overlap covers at least (a PSB+ and what follows it). */
export const OVERLAP_BYTES = 512;

/** How far past its end a piece's decode may read, at least, to find its overlap (unless the next piece ends further on). */
export const OVERLAP_LIMIT = 256 << 10;

/** The limit of a piece's decode: its overlap, and at least the next piece's end. */
export function overlapLimit(range: SegmentRange, nextEnd: number, size: number): number {
  return Math.min(size, Math.max(nextEnd, range.to + OVERLAP_LIMIT));
}
