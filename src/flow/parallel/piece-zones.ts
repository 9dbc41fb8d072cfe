/**
 * The three zones of a piece's control-flow stream when detectors run in
 * the worker (src/analyses/summaries):
 * - the *head*, from the piece's start until its stream has surely
 *   converged with the serial one (past {@link OVERLAP_BYTES} and then
 *   twice {@link OVERLAP_TRANSFERS} transfers): kept as records, because
 *   the hand-over from the piece before (zoned-stitch.ts) lands in it;
 * - the *body*: fed to the worker's detectors and summarised, not kept;
 * - the *tail*, from the first record at or past the piece's end: kept,
 *   because the hand-over to the next piece lands in it.
 * A piece too short for a body keeps everything. The zones depend only on
 * the records, so a decode that keeps every record (the fallback when a
 * summary cannot be applied) finds the same boundaries.
 */
import { OVERLAP_BYTES, OVERLAP_TRANSFERS } from './piece-walk.js';

export const enum Zone {
  Head = 0,
  Body = 1,
  Tail = 2,
}

/** Tracks the zone of each record of one piece, in order. */
export class PieceZones {
  zone: Zone = Zone.Head;
  /** Records seen in each zone so far. */
  headRecords = 0;
  bodyRecords = 0;
  private transfersPast = 0;
  private readonly past: number;

  constructor(
    from: number,
    private readonly to: number,
  ) {
    this.past = from + OVERLAP_BYTES;
  }

  /**
   * Whether the next record is in the body, known without its exact
   * offset: the body has begun and `bound`, at or past the record's
   * offset, is before the piece's end (counted as {@link next} would).
   */
  stillBody(bound: number): boolean {
    if (this.zone !== Zone.Body || bound >= this.to) return false;
    this.bodyRecords++;
    return true;
  }

  /** The zone of the next record, at whole-trace offset `offset`. */
  next(offset: number, isTransfer: boolean): Zone {
    if (this.zone !== Zone.Tail && offset >= this.to) this.zone = Zone.Tail;
    else if (this.zone === Zone.Head) {
      if (offset > this.past && isTransfer && ++this.transfersPast > 2 * OVERLAP_TRANSFERS) this.zone = Zone.Body;
    }
    if (this.zone === Zone.Head) this.headRecords++;
    else if (this.zone === Zone.Body) this.bodyRecords++;
    return this.zone;
  }
}
