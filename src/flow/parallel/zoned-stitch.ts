/**
 * Join pieces of a trace decoded apart (zoned-walk.ts) into the serial
 * control-flow stream, exactly.
 *
 * Each piece but the last decodes on past its end, as the serial decoder
 * does, so its overlap with the next piece is the serial stream there. The
 * next piece, synchronised at its PSB, may begin differently (a decoder
 * that synchronises reports the PSB+ otherwise than one passing it, and
 * does not see TNT bits or blocks begun before it); it agrees with the
 * serial stream once it has converged. The hand-over is at the first
 * record of the next piece from which the whole overlap agrees, record for
 * record (kind, addresses, counts since the last transfer, CR3, offset).
 * Where no such record exists (the next piece has a decode error the
 * serial decoder may not have, say a compressed return whose call came
 * before the PSB, or too little flow to compare), the two pieces must be
 * decoded as one: {@link stitchZoned} says which.
 *
 * Counts: every record carries the walk's running counts, so a piece adds
 * what it counted between its hand-over in and its hand-over out.
 *
 * The hand-over is found between the first piece's tail and the next
 * piece's head, the only records kept of them (the head is long enough to
 * hold the whole overlap once the next piece has converged). The
 * result says, for each piece, which kept records belong to the serial
 * stream: the head's from its hand-in, then the body (summarised), then
 * the tail's up to its hand-over; or, for a piece that kept everything,
 * one stretch.
 */
import type { FlowStats } from '../control-flow.js';
import { COUNTS, LogTag, STRIDE } from './flow-log.js';
import type { ZonedPiece } from './zoned-walk.js';

function sameRecord(a: Float64Array, i: number, b: Float64Array, j: number): boolean {
  for (let f = 0; f < COUNTS; f++) if (!Object.is(a[i + f], b[j + f])) return false;
  return true;
}

/** A transfer record counts since the last transfer, which only the serial walk knows at a piece's start. */
function isTransfer(log: Float64Array, i: number): boolean {
  return log[i] === LogTag.Transfer;
}

/**
 * Where `b` (the next piece) takes over from `a`: [i in a, j in b], record
 * indices times STRIDE, with a[i..] equal to b[j..] to the end of a, and
 * j past b's first transfer. Null when there is none.
 */
export function handOver(a: Float64Array, aStart: number, b: Float64Array, bFrom: number): [number, number] | null {
  // The overlap: a's records at or past b's first byte.
  let first = aStart;
  while (first < a.length && a[first + 7]! < bFrom) first += STRIDE;
  let seenTransfer = false;
  for (let j = 0; j < b.length; j += STRIDE) {
    if (!isTransfer(b, j)) continue;
    if (!seenTransfer) {
      seenTransfer = true;
      continue;
    }
    for (let i = first; i < a.length; i += STRIDE) {
      if (!sameRecord(a, i, b, j)) continue;
      const n = a.length - i;
      if (j + n > b.length) continue;
      let all = true;
      for (let k = 0; k < n && all; k += STRIDE) all = sameRecord(a, i + k, b, j + k);
      if (all) return [i, j];
    }
  }
  return null;
}

export function countsAt(log: Float64Array, i: number): FlowStats {
  return { instructions: log[i + COUNTS]!, transfers: log[i + COUNTS + 1]!, errors: log[i + COUNTS + 2]!, gaps: log[i + COUNTS + 3]! };
}


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
