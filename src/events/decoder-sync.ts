/**
 * Synchronization of a decoder that reads its trace through the event
 * decoder: the query decoder (libipt's pt_qry_sync_*) and the block decoder
 * (pt_blk_sync_*) find a PSB the same way and differ only in what they
 * drop before it ({@link reset}) and read after it ({@link start}).
 */
import { ErrorCode } from '../packets/errors.js';
import type { EventDecoder } from './event-decoder.js';

export abstract class EventSyncedDecoder {
  constructor(readonly events: EventDecoder) {}

  /** Drop the state of the trace read so far. */
  protected abstract reset(): void;
  /** Read the events at the new sync point: status flags or a negative ErrorCode. */
  protected abstract start(): number;

  /** Synchronize at the next PSB: status flags or a negative ErrorCode (-Eos at the end). */
  syncForward(): number {
    this.reset();
    const err = this.events.syncForward();
    if (err < 0) return err;
    return this.start();
  }

  /**
   * Synchronize at the last PSB before the current position (before the end
   * of the trace if not synchronized) where decoding can start. 0 or a
   * negative ErrorCode: as libipt's, it does not return status flags; a
   * pending event is indicated by the next call.
   */
  syncBackward(): number {
    const events = this.events;
    let start = events.position;
    if (start < 0) start = events.packets.size;
    let sync = start;
    for (;;) {
      this.reset();
      let pos: number;
      do {
        const err = events.syncBackward();
        if (err < 0) return err;
        pos = events.position;
      } while (sync <= pos);
      sync = pos;
      const status = this.start();
      if (status < 0) {
        // A segment at the end without a full PSB+ is skipped.
        if (status !== -ErrorCode.Eos) return status;
        continue;
      }
      // Starting inside or right after PSB+ may lead to the same PSB again.
      if (events.position < start) return 0;
    }
  }

  /** Synchronize at the PSB at `offset`: status flags or a negative ErrorCode. */
  syncSet(offset: number): number {
    this.reset();
    const err = this.events.syncSet(offset);
    if (err < 0) return err;
    return this.start();
  }
}
