/**
 * Which call each ret of a trace window returns to, and which calls enter a
 * library. A ret pairs with the innermost open call whose fall-through is
 * the ret's target; frames a longjmp abandoned are skipped over.
 */
import { Mnemonic } from '../../flow/iced.js';
import type { InsnFacts } from './instruction-facts.js';

/** rbx, rbp, r12..r15: what a SysV callee must give back unchanged. */
export const CALLEE_SAVED = [3, 5, 12, 13, 14, 15];

export class CallReturnPairs {
  /** For a ret at t whose target is the fall-through of the call at c: callOf[t] = c, else -1. */
  readonly callOf: Int32Array;

  constructor(
    private readonly facts: readonly (InsnFacts | null)[],
    /** True for code of a library: its calls are assumed to keep the callee-saved registers (SysV ABI). */
    private readonly isLibrary: (ip: number) => boolean,
  ) {
    const n = facts.length;
    this.callOf = new Int32Array(n).fill(-1);
    const calls: number[] = [];
    for (let t = 0; t < n; t++) {
      const f = facts[t];
      if (f?.isCall) calls.push(t);
      else if (f?.isRet && t + 1 < n && calls.length > 0) {
        const target = facts[t + 1]?.ip;
        let k = calls.length - 1;
        while (k >= 0 && facts[calls[k]]!.ip + facts[calls[k]]!.size !== target) k--;
        if (k >= 0) {
          this.callOf[t] = calls[k];
          calls.length = k;
        }
      }
    }
  }

  /** The call at c enters a library, directly or through a PLT stub (`jmp [got]`). */
  callsLibrary(c: number): boolean {
    const callee = this.facts[c + 1];
    if (!callee) return false;
    if (this.isLibrary(callee.ip)) return true;
    return callee.mnemonic === Mnemonic.Jmp && callee.mem !== null && callee.mem.base < 0 && callee.mem.index < 0;
  }
}
