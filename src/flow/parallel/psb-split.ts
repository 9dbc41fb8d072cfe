/**
 * Where a trace can be cut for a parallel decode: at its PSB packets. A
 * PSB+ restarts IP compression (SDM "Packet Stream Boundary (PSB)") and
 * the processor flushes TNT before it, so a decoder synchronised there
 * needs nothing from before it; the stitching in zoned-stitch.ts checks the
 * remaining case (a compressed return whose call came before the PSB) and
 * decodes such a piece together with the one before it.
 *
 * A *segment* runs from one PSB to the next; a *group* is consecutive
 * segments up to a byte budget, the unit a worker decodes.
 */
import { PacketDecoder } from '../../packets/decoder.js';

/** Trace bytes [from, to) of one group; `from` is 0 or a PSB offset. */
export interface SegmentRange {
  index: number;
  from: number;
  to: number;
}

/** Offsets of every PSB `packets` finds from where it is, in order (the decoders' own sync search). */
export function psbOffsetsOf(packets: { syncForward(): number; readonly syncOffset: number }): number[] {
  const offsets: number[] = [];
  while (packets.syncForward() >= 0) offsets.push(packets.syncOffset);
  return offsets;
}

/** Offsets of every PSB of `trace`, in order. */
export function psbOffsets(trace: Uint8Array, skd007 = false): number[] {
  return psbOffsetsOf(new PacketDecoder(trace, { pebs: false, skd007 }));
}

/**
 * Cut `[0, size)` at PSBs into groups of at most `budget` bytes each (a
 * single segment larger than the budget is a group of its own). The first
 * group starts at 0 so that whatever precedes the first PSB is decoded as
 * serially (the decoder skips it when it synchronises).
 */
export function groupSegments(psbs: readonly number[], size: number, budget: number): SegmentRange[] {
  if (!(budget > 0)) throw new Error(`segment budget must be positive, got ${budget}`);
  return cutAtPsbs(psbs, size, () => budget);
}

/**
 * Cut `[0, size)` at PSBs into groups that shrink toward the end (guided
 * self-scheduling): each group takes about 1/(2 x workers) of the bytes
 * still to go, within [minBytes, maxBytes]. Large groups first keep the
 * per-group cost low; small ones last keep a worker from waiting on one
 * long last group while the others have nothing left to do.
 */
export function guidedSegments(psbs: readonly number[], size: number, workers: number, minBytes = 512 << 10, maxBytes = 8 << 20): SegmentRange[] {
  return cutAtPsbs(psbs, size, (from) => Math.min(maxBytes, Math.max(minBytes, Math.ceil((size - from) / (2 * Math.max(1, workers))))));
}

/** Cut `[0, size)` at the first PSB at least `budgetAt(from)` bytes past each group's start. */
function cutAtPsbs(psbs: readonly number[], size: number, budgetAt: (from: number) => number): SegmentRange[] {
  const ranges: SegmentRange[] = [];
  let from = 0;
  let budget = budgetAt(from);
  for (const p of psbs) {
    if (p <= from || p >= size) continue;
    if (p - from >= budget) {
      ranges.push({ index: ranges.length, from, to: p });
      from = p;
      budget = budgetAt(from);
    }
  }
  ranges.push({ index: ranges.length, from, to: size });
  return ranges;
}

/** One range per segment: a cut at every PSB (tests, and the finest plan). */
export function everySegment(psbs: readonly number[], size: number): SegmentRange[] {
  return groupSegments(psbs, size, 1);
}

/** The byte budget that gives each of `workers` workers about `perWorker` groups, within [minBytes, maxBytes]. */
export function groupBudget(size: number, workers: number, perWorker = 4, minBytes = 64 << 10, maxBytes = 8 << 20): number {
  return Math.min(maxBytes, Math.max(minBytes, Math.ceil(size / Math.max(1, workers * perWorker))));
}
