/**
 * The call stack used for return compression (libipt's pt_retstack).
 *
 * With return compression (SDM "Return Compression"), a near RET whose
 * target is the address after the matching CALL is reported as one taken
 * TNT bit instead of a TIP. The decoder pushes the return address of every
 * CALL and pops it on a compressed RET. Like the hardware, the stack has a
 * fixed depth (64) and overwrites its oldest entry when full.
 */
import { ErrorCode } from '../packets/errors.js';

export const RETSTACK_DEPTH = 64;

export class ReturnStack {
  private readonly stack = new Float64Array(RETSTACK_DEPTH + 1);
  private top = 0;
  private bottom = 0;
  /** The address of the last {@link pop}. */
  ip = 0;

  reset(): void {
    this.top = 0;
    this.bottom = 0;
  }

  isEmpty(): boolean {
    return this.top === this.bottom;
  }

  push(ip: number): void {
    const top = this.top;
    this.stack[top] = ip;
    const next = top === RETSTACK_DEPTH ? 0 : top + 1;
    if (next === this.bottom) this.bottom = this.bottom === RETSTACK_DEPTH ? 0 : this.bottom + 1;
    this.top = next;
  }

  /** Pop into {@link ip}: 0, or -RetstackEmpty. */
  pop(): number {
    if (this.top === this.bottom) return -ErrorCode.RetstackEmpty;
    const top = this.top === 0 ? RETSTACK_DEPTH : this.top - 1;
    this.ip = this.stack[top]!;
    this.top = top;
    return 0;
  }
}
