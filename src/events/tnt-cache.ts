/**
 * Taken/not-taken bits not yet consumed (libipt's pt_tnt_cache).
 *
 * A TNT packet carries up to 47 conditional-branch outcomes, oldest first
 * (SDM "Taken/Not-taken (TNT) Packet"); conditional branches and compressed
 * returns consume them one at a time. Bits are held in a double (exact up
 * to 2^53), with `index` the value of the next bit to read.
 */
import { ErrorCode } from '../packets/errors.js';

export class TntCache {
  private bits = 0;
  /** 2^(bit position) of the next bit; 0 when empty. */
  private index = 0;

  reset(): void {
    this.bits = 0;
    this.index = 0;
  }

  isEmpty(): boolean {
    return this.index === 0;
  }

  /** Replace the (empty) cache with `size` bits; -BadContext if bits remain. */
  add(bits: number, size: number): number {
    if (this.index !== 0) return -ErrorCode.BadContext;
    if (size <= 0) return 0;
    this.bits = bits;
    this.index = 2 ** (size - 1);
    return 0;
  }

  /** The next bit: 1 taken, 0 not taken, or -BadQuery when empty. */
  query(): number {
    const index = this.index;
    if (index === 0) return -ErrorCode.BadQuery;
    const taken = Math.floor(this.bits / index) % 2;
    this.index = index === 1 ? 0 : index / 2;
    return taken;
  }
}
