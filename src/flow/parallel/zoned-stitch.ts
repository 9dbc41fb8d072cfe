/**
 * Stitch zoned pieces (zoned-walk.ts) as flow-stitch.ts stitches whole
 * ones: the hand-over from a piece to the next is found between the first
 * piece's tail and the next piece's head, the only records kept of them
 * (the head is long enough to hold the whole overlap once the next piece
 * has converged; when it is not, the two pieces are decoded as one). The
 * result says, for each piece, which kept records belong to the serial
 * stream: the head's from its hand-in, then the body (summarised), then
 * the tail's up to its hand-over; or, for a piece that kept everything,
 * one stretch.
 */
import type { FlowStats } from '../control-flow.js';
import { LogTag, STRIDE } from './flow-log.js';
import { countsAt, handOver } from './flow-stitch.js';
import type { ZonedPiece } from './zoned-walk.js';

/** The kept records of a piece, as two arrays (one, twice, when it kept everything or had no body). */
export interface PieceParts {
  /** Every record is kept: `head` and `tail` are the same whole log. */
  whole: boolean;
  head: Float64Array;
  tail: Float64Array;
}

export function pieceParts(p: ZonedPiece): PieceParts {
  if (p.keptBody || p.bodyRecords === 0) return { whole: true, head: p.log, tail: p.log };
  const h = p.headRecords * STRIDE;
  return { whole: false, head: p.log.subarray(0, h), tail: p.log.subarray(h) };
}

/** Which records of a piece are the serial stream: head[start, head end) + body + tail[0, end), or log[start, end) when whole. */
export interface PieceSpan {
  start: number;
  end: number;
}

export type ZonedStitch = { ok: true; spans: PieceSpan[]; stats: FlowStats; flush: Float64Array | null } | { ok: false; join: number };

/** Stitch zoned pieces that tile the trace, in order; the last one ends the trace. */
export function stitchZoned(pieces: readonly ZonedPiece[]): ZonedStitch {
  const stats: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  const spans: PieceSpan[] = [];
  let start = 0;
  let inCounts: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  for (let k = 0; k < pieces.length; k++) {
    const p = pieceParts(pieces[k]!);
    const next = pieces[k + 1];
    let end = p.tail.length;
    let outCounts = pieces[k]!.stats;
    let nextStart = 0;
    let nextIn = inCounts;
    if (next !== undefined) {
      const n = pieceParts(next);
      const at = handOver(p.tail, p.whole ? start : 0, n.head, next.from);
      if (at === null) return { ok: false, join: k + 1 };
      end = at[0];
      outCounts = countsAt(p.tail, at[0]);
      nextStart = at[1];
      nextIn = countsAt(n.head, at[1]);
    }
    stats.instructions += outCounts.instructions - inCounts.instructions;
    stats.transfers += outCounts.transfers - inCounts.transfers;
    stats.errors += outCounts.errors - inCounts.errors;
    stats.gaps += outCounts.gaps - inCounts.gaps;
    spans.push({ start, end });
    start = nextStart;
    inCounts = nextIn;
  }
  // The end of the trace: the open branch goes nowhere known (ControlFlowWalker.run).
  const last = pieces[pieces.length - 1]!;
  let flush: Float64Array | null = null;
  if (last.carry.pendingKind >= 0) {
    stats.transfers++;
    const c = last.carry;
    flush = new Float64Array(STRIDE);
    flush.set([LogTag.Transfer, c.pendingKind, c.pendingIp, NaN, c.pendingSize, c.pendingCount, c.cr3, last.endOffset]);
  }
  return { ok: true, spans, stats, flush };
}
