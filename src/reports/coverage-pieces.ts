/**
 * `coverage --jobs N` and the fleet's segment jobs: the executed blocks of
 * a trace (drcov.ts's ExecutedBlocks) from pieces cut at PSBs, decoded on
 * a worker pool or by other machines with the
 * zoned walk (flow/parallel/zoned-walk.ts), instruction by instruction.
 * A block is closed by a transfer or a gap, which is a record of the
 * walk: blocks closed in a piece's body are sent as a set (in the order
 * they first ran), blocks closed at a kept record with that record's
 * index. Once the pieces are stitched (zoned-stitch.ts), a piece gives
 * the blocks closed after its hand-in record up to and including its
 * hand-over record (the block closed there began before the next piece's
 * decode had converged), so each block run is counted once, as in the
 * serial walk; merged in trace order, the blocks and their counts are
 * the serial ones, in the same order.
 */
import { overlapLimit } from '../flow/parallel/piece-walk.js';
import { Zone, type PieceZones } from '../flow/parallel/piece-zones.js';
import type { SegmentRange } from '../flow/parallel/psb-split.js';
import { stitchZoned, type ZonedStitch } from '../flow/parallel/zoned-stitch.js';
import { walkPieceZoned, type ZonedObserver, type ZonedPiece } from '../flow/parallel/zoned-walk.js';
import { STRIDE } from '../flow/parallel/flow-log.js';
import type { TraceInput } from '../analyses/trace-input.js';
import { BlockCloser, ExecutedBlocks } from './drcov.js';

/** What a worker gives for one piece (structured-clonable). */
export interface CoveragePiece {
  piece: ZonedPiece;
  limit: number;
  /** Blocks closed in the body, in the order they first ran: start, end, count. */
  body: Float64Array;
  /** Blocks closed at a kept record: the record's index in `piece.log`, start, end. */
  kept: Float64Array;
  /** The block still open at the end, [start, end] as the serial walk's end closes it, or empty. */
  open: Float64Array;
}

/** Collects a piece's blocks as ExecutedBlocks does, routed by the zone of the record that closes each. */
class PieceBlocks extends BlockCloser {
  readonly body = new ExecutedBlocks();
  readonly kept: number[] = [];

  constructor(
    private readonly zones: PieceZones,
    private readonly keptRecords: () => number,
  ) {
    super();
  }

  protected closed(start: number, end: number): void {
    if (this.zones.zone === Zone.Body) this.body.add(start, end, 1);
    else this.kept.push(this.keptRecords() - 1, start, end);
  }
}

/** What a zoned walk's coverage observer collected (see {@link coverageObserver}). */
export interface CoverageCollector {
  observer: ZonedObserver;
  /** The piece's blocks, once its walk is done. */
  take(piece: ZonedPiece, limit: number): CoveragePiece;
}

/** An observer for walkPieceZoned that collects the piece's blocks (instruction by instruction). */
function coverageObserver(): CoverageCollector {
  let blocks: PieceBlocks | null = null;
  return {
    observer: { mode: 'insn', create: (zones, kept) => (blocks = new PieceBlocks(zones, kept)) },
    take(piece: ZonedPiece, limit: number): CoveragePiece {
      const b = blocks!;
      const body: number[] = [];
      b.body.forEach((start, end, count) => body.push(start, end, count));
      // The serial walk's end: the open branch is flushed (closing the block after it), else the block ends with its last instruction.
      const c = piece.carry;
      const end = c.pendingKind >= 0 ? c.pendingIp + c.pendingSize : b.lastEnd;
      const open = b.current === b.current && end > b.current ? [b.current, end] : [];
      return { piece, limit, body: Float64Array.from(body), kept: Float64Array.from(b.kept), open: Float64Array.from(open) };
    },
  };
}

/** Decode one piece of `input` (`trace` holds its bytes from trace offset `origin`). */
export function coveragePiece(input: TraceInput, trace: Uint8Array, origin: number, range: SegmentRange, limit: number): CoveragePiece {
  const collect = coverageObserver();
  const piece = walkPieceZoned(trace, range, limit, input.config, input.image, origin, () => [], collect.observer);
  return collect.take(piece, limit);
}

/** Decodes pieces (a pool's runner, or in this thread). */
export type CoverageRunner = (range: SegmentRange, limit: number) => Promise<CoveragePiece>;

/**
 * Add the blocks of `pieces` (in trace order, tiling the trace of `size`
 * bytes) to `into`, in trace order: the serial walk's blocks and counts.
 * Two pieces whose decodes do not hand over are decoded again as one by
 * `redo`. Returns the instructions walked.
 */
export async function mergeCoveragePieces(pieces: CoveragePiece[], size: number, redo: CoverageRunner, into: ExecutedBlocks): Promise<number> {
  let stitch: ZonedStitch;
  for (;;) {
    stitch = stitchZoned(pieces.map((p) => p.piece));
    if (stitch.ok) break;
    const k = stitch.join;
    const joined: SegmentRange = { index: k - 1, from: pieces[k - 1]!.piece.from, to: pieces[k]!.piece.to };
    const again = await redo(joined, overlapLimit(joined, pieces[k + 1]?.piece.to ?? size, size));
    pieces = [...pieces.slice(0, k - 1), again, ...pieces.slice(k + 1)];
  }
  const last = pieces.length - 1;
  pieces.forEach((p, k) => {
    const span = stitch.ok ? stitch.spans[k]! : { start: 0, end: 0 };
    const whole = p.piece.bodyRecords === 0;
    const head = p.piece.headRecords;
    const inFrom = span.start / STRIDE;
    const outTo = span.end / STRIDE;
    // Kept records: head (and, for a whole piece, every record) then tail.
    const takes = (r: number): boolean => {
      const tailIndex = whole ? r : r - head;
      const afterIn = k === 0 || (whole ? r > inFrom : r >= head || r > inFrom);
      const beforeOut = k === last || (whole ? r <= outTo : r < head || tailIndex <= outTo);
      return afterIn && beforeOut;
    };
    const kept = p.kept;
    let i = 0;
    for (; i < kept.length && (whole || kept[i]! < head); i += 3) if (takes(kept[i]!)) into.add(kept[i + 1]!, kept[i + 2]!, 1);
    for (let b = 0; b < p.body.length; b += 3) into.add(p.body[b]!, p.body[b + 1]!, p.body[b + 2]!);
    for (; i < kept.length; i += 3) if (takes(kept[i]!)) into.add(kept[i + 1]!, kept[i + 2]!, 1);
    if (k === last && p.open.length === 2) into.add(p.open[0]!, p.open[1]!, 1);
  });
  return stitch.ok ? stitch.stats.instructions : 0;
}
