/**
 * Join pieces of a trace decoded apart (piece-walk.ts) into the serial
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
 * decoded as one: {@link stitchPieces} says which.
 *
 * Counts: every record carries the walk's running counts, so a piece adds
 * what it counted between its hand-over in and its hand-over out.
 */
import type { FlowStats } from '../control-flow.js';
import { COUNTS, LogTag, STRIDE } from './flow-log.js';
import type { PieceResult } from './piece-walk.js';

export interface StitchedFlow {
  stats: FlowStats;
  /** The pieces' parts of the serial stream, in order, and the final flush. */
  logs: Float64Array[];
}

/** Either the stitched flow, or the index of a piece that must be decoded together with the one before it. */
export type StitchResult = { ok: true; flow: StitchedFlow } | { ok: false; join: number };

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

/** Stitch pieces that tile the trace, in order; the last one ends the trace. */
export function stitchPieces(pieces: readonly PieceResult[]): StitchResult {
  const stats: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  const logs: Float64Array[] = [];
  let start = 0;
  let inCounts: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  for (let k = 0; k < pieces.length; k++) {
    const p = pieces[k]!;
    const next = pieces[k + 1];
    let end = p.log.length;
    let outCounts = p.stats;
    let nextStart = 0;
    let nextIn = inCounts;
    if (next !== undefined) {
      const at = handOver(p.log, start, next.log, next.from);
      if (at === null) return { ok: false, join: k + 1 };
      end = at[0];
      outCounts = countsAt(p.log, at[0]);
      nextStart = at[1];
      nextIn = countsAt(next.log, at[1]);
    }
    stats.instructions += outCounts.instructions - inCounts.instructions;
    stats.transfers += outCounts.transfers - inCounts.transfers;
    stats.errors += outCounts.errors - inCounts.errors;
    stats.gaps += outCounts.gaps - inCounts.gaps;
    logs.push(p.log.subarray(start, end));
    start = nextStart;
    inCounts = nextIn;
  }
  // The end of the trace: the open branch goes nowhere known (ControlFlowWalker.run).
  const last = pieces[pieces.length - 1]!;
  if (last.carry.pendingKind >= 0) {
    stats.transfers++;
    const tail = new Float64Array(STRIDE);
    const c = last.carry;
    tail.set([LogTag.Transfer, c.pendingKind, c.pendingIp, NaN, c.pendingSize, c.pendingCount, c.cr3, last.endOffset]);
    logs.push(tail);
  }
  return { ok: true, flow: { stats, logs } };
}
