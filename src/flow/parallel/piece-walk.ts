/**
 * Decode one piece of a trace (from `range.from`, a PSB or 0) on its own
 * and record its control-flow stream (flow-log.ts). The decode reads on
 * past `range.to`, through the next PSB+ and a little further, as the
 * serial decoder does: a branch before a PSB may take its TNT bit from
 * after it, events are read ahead, and a decoder that passes a PSB+ does
 * not report it as one that synchronises there does. flow-stitch.ts finds
 * where this overlap agrees with the next piece's own decode and hands
 * over there.
 */
import type { DecoderConfig } from '../../packets/config.js';
import { PacketDecoder } from '../../packets/decoder.js';
import { ControlFlowWalker, type FlowStats, type WalkCarry } from '../control-flow.js';
import type { Image } from '../image.js';
import { InsnDecoder } from '../insn-decoder.js';
import { FlowLogRecorder } from './flow-log.js';
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

/** What one piece's walk gives (structured-clonable). */
export interface PieceResult extends SegmentRange {
  stats: FlowStats;
  log: Float64Array;
  /** The branch left open at the end (flushed with no target when this is the trace's end). */
  carry: WalkCarry;
  /** The decoder's whole-trace offset at the end. */
  endOffset: number;
}

/** Decode from `range.from` up to the overlap past `range.to` (at most to `limit`), recording the flow; `trace` starts at trace offset `origin`. */
export function walkPiece(trace: Uint8Array, range: SegmentRange, limit: number, config: DecoderConfig, image: Image, origin = 0): PieceResult {
  // `trace` holds the trace's bytes from offset `origin` on.
  const end = Math.max(range.to, Math.min(limit, origin + trace.length));
  const packets = new PacketDecoder(trace.subarray(range.from - origin, end - origin), { pebs: false, skd007: config.errata.skd007 });
  const decoder = new InsnDecoder(packets, config, image);
  let walker: ControlFlowWalker | null = null;
  const log = new FlowLogRecorder(() => decoder.offset, range.from, () => walker!.walked);
  walker = new ControlFlowWalker(decoder, [log]);
  const past = range.to - range.from + OVERLAP_BYTES;
  let after = 0;
  const stopAt = end > range.to ? () => decoder.offset > past && ++after >= OVERLAP_TRANSFERS : null;
  const stats = walker.runPiece('block', null, stopAt);
  return { ...range, stats, log: log.take(), carry: walker.carry(), endOffset: decoder.offset + range.from };
}
