/**
 * Register relations that hold whatever the values are: "register r at
 * point t = symbol + offset", from moves, push/pop pairs on the same stack
 * slot, add/sub/lea with constants, and call/ret pairs (rsp; the
 * callee-saved registers for library callees). One known value of a symbol
 * gives all its points: this is what carries the frame pointer and the
 * stack pointer across frames whose registers the plain passes cannot undo
 * (leave, and rbp saved and restored by a callee).
 */
import { Mnemonic } from '../../flow/iced.js';
import { CALLEE_SAVED, type CallReturnPairs } from './call-return-pairs.js';
import { GPR_COUNT, RBP, RSP, type InsnFacts } from './instruction-facts.js';
import { M64, type RegisterTimeline } from './register-timeline.js';

export class RegisterRelations {
  /** Symbol and offset of every slot t * 16 + r. */
  private readonly sym: Int32Array;
  private readonly off: BigInt64Array;
  /** Symbols that were given two values: some relation does not hold here; they are not used again. */
  private readonly conflicting = new Set<number>();

  constructor(facts: readonly (InsnFacts | null)[], pairs: CallReturnPairs) {
    const n = facts.length;
    const sym = (this.sym = new Int32Array((n + 1) * GPR_COUNT));
    const off = (this.off = new BigInt64Array((n + 1) * GPR_COUNT));
    let next = 0;
    for (let r = 0; r < GPR_COUNT; r++) sym[r] = next++;
    const slots = new Map<string, [number, bigint]>();
    const key = (k: number, d: bigint): string => `${sym[k]}:${off[k] + d}`;
    for (let t = 0; t < n; t++) {
      const f = facts[t];
      const a = t * GPR_COUNT;
      const b = (t + 1) * GPR_COUNT;
      for (let r = 0; r < GPR_COUNT; r++) {
        sym[b + r] = sym[a + r];
        off[b + r] = off[a + r];
      }
      if (f === null) {
        for (let r = 0; r < GPR_COUNT; r++) sym[b + r] = next++;
        continue;
      }
      const fresh = new Set(f.regsWritten.filter((r) => r < GPR_COUNT));
      const keep = (r: number, from: number, d: bigint): void => {
        sym[b + r] = sym[from];
        off[b + r] = off[from] + d;
        fresh.delete(r);
      };
      const restore = (r: number, saved: [number, bigint] | undefined): void => {
        if (saved === undefined) return;
        sym[b + r] = saved[0];
        off[b + r] = saved[1];
        fresh.delete(r);
      };
      const d = f.ops[0];
      const s = f.ops[1];
      switch (f.mnemonic) {
        case Mnemonic.Push:
        case Mnemonic.Call:
          keep(RSP, a + RSP, -8n);
          if (f.mnemonic === Mnemonic.Push && d?.kind === 'reg' && d.ref.size === 8) slots.set(key(a + RSP, -8n), [sym[a + d.ref.reg], off[a + d.ref.reg]]);
          else slots.delete(key(a + RSP, -8n));
          break;
        case Mnemonic.Pop:
          if (d?.kind === 'reg' && d.ref.reg !== RSP) {
            keep(RSP, a + RSP, 8n);
            if (d.ref.size === 8) restore(d.ref.reg, slots.get(key(a + RSP, 0n)));
          }
          break;
        case Mnemonic.Ret: {
          const c = pairs.callOf[t];
          if (c >= 0) {
            keep(RSP, c * GPR_COUNT + RSP, 0n);
            if (pairs.callsLibrary(c)) for (const r of CALLEE_SAVED) keep(r, c * GPR_COUNT + r, 0n);
          }
          break;
        }
        case Mnemonic.Leave:
          keep(RSP, a + RBP, 8n);
          restore(RBP, slots.get(key(a + RBP, 0n)));
          break;
        case Mnemonic.Mov:
          if (d?.kind === 'reg' && d.ref.size === 8 && s?.kind === 'reg' && s.ref.size === 8 && s.ref.reg < GPR_COUNT) keep(d.ref.reg, a + s.ref.reg, 0n);
          break;
        case Mnemonic.Add:
        case Mnemonic.Sub:
          if (d?.kind === 'reg' && d.ref.size === 8 && s?.kind === 'imm') keep(d.ref.reg, a + d.ref.reg, f.mnemonic === Mnemonic.Add ? BigInt.asIntN(64, s.value) : -BigInt.asIntN(64, s.value));
          break;
        case Mnemonic.Lea:
          if (d?.kind === 'reg' && d.ref.size === 8 && f.mem !== null && f.mem.base >= 0 && f.mem.index < 0) keep(d.ref.reg, a + f.mem.base, f.mem.disp);
          break;
      }
      for (const r of fresh) sym[b + r] = next++;
    }
  }

  /** Give every slot of a symbol with one known value its value; a symbol with two values counts one conflict and is dropped. */
  resolve(regs: RegisterTimeline): void {
    const value = new Map<number, bigint>();
    const total = this.sym.length;
    for (let k = 0; k < total; k++) {
      const v = regs.slot(k);
      if (v === null) continue;
      const base = (v - BigInt.asUintN(64, this.off[k])) & M64;
      const have = value.get(this.sym[k]);
      if (have === undefined) value.set(this.sym[k], base);
      else if (have !== base && !this.conflicting.has(this.sym[k])) {
        this.conflicting.add(this.sym[k]);
        regs.conflicts++;
      }
    }
    for (let k = 0; k < total; k++) {
      if (regs.slot(k) !== null) continue;
      const base = value.get(this.sym[k]);
      if (base === undefined || this.conflicting.has(this.sym[k])) continue;
      regs.set(Math.floor(k / GPR_COUNT), k % GPR_COUNT, (base + BigInt.asUintN(64, this.off[k])) & M64);
    }
  }
}
