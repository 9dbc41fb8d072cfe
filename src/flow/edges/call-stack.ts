/**
 * The return-compression call stack of the edge decoder: libipt's
 * pt_retstack (src/flow/return-stack.ts), 64 entries that overwrite the
 * oldest when full, plus {@link keep}, which lets the step cache apply a
 * whole step's calls and returns at once.
 *
 * A step that pushes and pops return addresses of its own (a call and its
 * compressed return inside one cached step) leaves the stack as if its
 * surviving pushes were made in one go — except that, while it was
 * deepest, full-stack pushes evicted old entries. Calling `keep(64 - peak)`
 * (peak: the step's greatest depth of its own entries) before pushing the
 * survivors evicts exactly those.
 */
import { RETSTACK_DEPTH } from '../return-stack.js';

export const CALL_STACK_DEPTH = RETSTACK_DEPTH;
const MASK = CALL_STACK_DEPTH - 1;

export class CallStack {
  private readonly ring = new Float64Array(CALL_STACK_DEPTH);
  private start = 0;
  private count = 0;
  /** The address of the last {@link pop}. */
  ip = 0;

  reset(): void {
    this.start = 0;
    this.count = 0;
  }

  get size(): number {
    return this.count;
  }

  push(ip: number): void {
    this.ring[(this.start + this.count) & MASK] = ip;
    if (this.count < CALL_STACK_DEPTH) this.count++;
    else this.start = (this.start + 1) & MASK;
  }

  /** Pop into {@link ip}; false if empty. */
  pop(): boolean {
    if (this.count === 0) return false;
    this.count--;
    this.ip = this.ring[(this.start + this.count) & MASK];
    return true;
  }

  /** Drop the oldest entries so that at most `n` remain. */
  keep(n: number): void {
    if (this.count > n) {
      this.start = (this.start + this.count - n) & MASK;
      this.count = n;
    }
  }
}
