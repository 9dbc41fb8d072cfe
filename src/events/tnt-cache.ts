/**
 * Taken/not-taken bits not yet consumed (libipt's pt_tnt_cache).
 *
 * A TNT packet carries up to 47 conditional-branch outcomes, oldest first
 * (SDM "Taken/Not-taken (TNT) Packet"); conditional branches and compressed
 * returns consume them one at a time. The payload is kept as two int32
 * halves and a count, so a query is a shift and a mask: the decoders ask
 * once per conditional branch, which makes this the hottest query.
 */
import { ErrorCode } from '../packets/errors.js';

export class TntCache {
  /** Payload bits 46:32 and 31:0. */
  private hi = 0;
  private lo = 0;
  /** Bits left; the next one is bit `left - 1`. */
  private left = 0;

  reset(): void {
    this.hi = 0;
    this.lo = 0;
    this.left = 0;
  }

  isEmpty(): boolean {
    return this.left === 0;
  }

  /** Bits left to consume. */
  get size(): number {
    return this.left;
  }

  /** Replace the (empty) cache with `size` bits; -BadContext if bits remain. */
  add(bits: number, size: number): number {
    if (this.left !== 0) return -ErrorCode.BadContext;
    if (size <= 0) return 0;
    this.lo = bits | 0;
    this.hi = size > 32 ? Math.floor(bits / 4294967296) | 0 : 0;
    this.left = size;
    return 0;
  }

  /** The next bit: 1 taken, 0 not taken, or -BadQuery when empty. */
  query(): number {
    const n = this.left - 1;
    if (n < 0) return -ErrorCode.BadQuery;
    this.left = n;
    return n >= 32 ? (this.hi >>> (n - 32)) & 1 : (this.lo >>> n) & 1;
  }
}
