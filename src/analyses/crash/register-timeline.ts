/**
 * The general registers at every program point of a trace window: point t
 * is the register file before instruction t, point n the core's. A value,
 * once known, is kept; a second, different value for the same register and
 * point is counted as a conflict (a core that does not belong to the trace,
 * or a wrong inference), never overwritten.
 */
import { Mnemonic } from '../../flow/iced.js';
import { GPR_COUNT, RBP, RSP, type InsnFacts, type MemOperand, type RegRef } from './instruction-facts.js';

export const M64 = (1n << 64n) - 1n;
export const M32 = (1n << 32n) - 1n;

/**
 * Whether instruction f leaves register r with its upper 32 bits zero: a
 * write of its 32-bit part as the explicit destination zero-extends in
 * 64-bit mode (SDM Vol. 1, 3.4.1.1 "General-Purpose Registers in 64-Bit
 * Mode"; CMOVcc too, whether or not it moves). Left out: instructions that
 * may leave the destination unwritten (BSF/BSR on a zero source) or write
 * it together with another register (XCHG, XADD, CMPXCHG).
 */
function zeroExtends(f: InsnFacts, r: number): boolean {
  const d = f.ops[0];
  if (d?.kind !== 'reg' || d.ref.reg !== r || d.ref.size !== 4) return false;
  switch (f.mnemonic) {
    case Mnemonic.Bsf:
    case Mnemonic.Bsr:
    case Mnemonic.Xchg:
    case Mnemonic.Xadd:
    case Mnemonic.Cmpxchg:
      return false;
  }
  return f.regsWritten.length === 1;
}

/** The value mask of an operand of `size` bytes. */
export function mask(size: number): bigint {
  return size >= 8 ? M64 : (1n << BigInt(size * 8)) - 1n;
}

/** `v` of `size` bytes, sign-extended to 64 bits. */
export function sext(v: bigint, size: number): bigint {
  return BigInt.asUintN(64, BigInt.asIntN(size * 8, v));
}

export class RegisterTimeline {
  private readonly vals: BigUint64Array;
  private readonly known: Uint8Array;
  /** Per point and register: its upper 32 bits are zero, since the last instruction that wrote it wrote its 32-bit part ({@link markZeroExtended}). */
  private readonly upperZero: Uint8Array;
  conflicts = 0;
  /** First conflicts as t * 100 + register (diagnostics). */
  readonly conflictAt: number[] = [];
  /** Values learned since the counter was last reset (a pass that learns nothing ends the search). */
  changed = 0;

  constructor(
    /** Number of instructions: points run from 0 to n. */
    readonly n: number,
    /** The fs segment base, for fs-relative addresses. */
    readonly fsBase: bigint,
  ) {
    this.vals = new BigUint64Array((n + 1) * GPR_COUNT);
    this.known = new Uint8Array((n + 1) * GPR_COUNT);
    this.upperZero = new Uint8Array((n + 1) * GPR_COUNT);
  }

  /**
   * Learn from the instructions alone where a register's upper half is
   * zero (a 32-bit write), so that its low 32 bits, once known, give the
   * whole register ({@link setLow32}). An instruction without facts ends
   * what is known of every register.
   */
  markZeroExtended(facts: readonly (InsnFacts | null)[]): void {
    const cur = new Uint8Array(GPR_COUNT);
    for (let t = 0; t < this.n; t++) {
      const f = facts[t];
      if (f === null) cur.fill(0);
      else for (const r of f.regsWritten) if (r >= 0 && r < GPR_COUNT) cur[r] = zeroExtends(f, r) ? 1 : 0;
      this.upperZero.set(cur, (t + 1) * GPR_COUNT);
    }
  }

  /** The low 32 bits of register `r` at point t: the whole register where its upper half is known to be zero. */
  setLow32(t: number, r: number, v: bigint): void {
    if (r < 0 || r >= GPR_COUNT || !this.upperZero[t * GPR_COUNT + r]) return;
    this.set(t, r, v & M32);
  }

  /** Register `r` (0..15) at point t, or null. */
  reg(t: number, r: number): bigint | null {
    const k = t * GPR_COUNT + r;
    return this.known[k] ? this.vals[k] : null;
  }

  /** The value at flat slot k = t * 16 + r, or null (for passes over every slot). */
  slot(k: number): bigint | null {
    return this.known[k] ? this.vals[k] : null;
  }

  set(t: number, r: number, v: bigint): void {
    const k = t * GPR_COUNT + r;
    if (this.known[k]) {
      if (this.vals[k] !== v) {
        this.conflicts++;
        if (this.conflictAt.length < 20) this.conflictAt.push(t * 100 + r);
      }
      return;
    }
    this.known[k] = 1;
    this.vals[k] = v;
    this.changed++;
  }

  /** Registers that instruction f does not write keep their value from point `from` to point `to`. */
  carryUnwritten(f: InsnFacts, from: number, to: number): void {
    for (let r = 0; r < GPR_COUNT; r++) {
      if (f.regsWritten.includes(r)) continue;
      const v = this.reg(from, r);
      if (v !== null) this.set(to, r, v);
    }
  }

  /** The register part `ref` (al, ah, ax, eax, rax...) at point t. */
  readRef(t: number, ref: RegRef): bigint | null {
    if (ref.reg < 0 || ref.reg >= GPR_COUNT) return null;
    const full = this.reg(t, ref.reg);
    if (full === null) return null;
    return (full >> BigInt(ref.shift * 8)) & mask(ref.size);
  }

  /**
   * Write `v` into register part `ref` at point t (after an instruction).
   * A 32-bit write zeroes the upper half; an 8- or 16-bit one keeps the
   * rest of the register, which must be known at t - 1.
   */
  writeRef(t: number, ref: RegRef, v: bigint): void {
    if (ref.reg < 0 || ref.reg >= GPR_COUNT) return;
    v &= mask(ref.size);
    if (ref.size >= 4) this.set(t, ref.reg, v);
    else {
      const old = this.reg(t - 1, ref.reg);
      if (old === null) return;
      const sh = BigInt(ref.shift * 8);
      const m = mask(ref.size) << sh;
      this.set(t, ref.reg, (old & ~m & M64) | (v << sh));
    }
  }

  /** The effective address of `m` at point t, or null when a register it needs is unknown (gs is never known). */
  effectiveAddress(t: number, m: MemOperand): bigint | null {
    let a = m.disp;
    if (m.base >= 0) {
      const b = this.reg(t, m.base);
      if (b === null) return null;
      a += b;
    }
    if (m.index >= 0) {
      const x = this.reg(t, m.index);
      if (x === null) return null;
      a += x * BigInt(m.scale);
    }
    if (m.seg === 'fs') a += this.fsBase;
    else if (m.seg === 'gs') return null;
    return BigInt.asUintN(64, a);
  }

  /** The implicit stack slot of a push/call (rsp-8), pop/ret (rsp) or leave (rbp) at t, or NaN. */
  stackSlot(t: number, stack: 'push' | 'pop' | 'leave'): number {
    if (stack === 'leave') {
      const rbp = this.reg(t, RBP);
      return rbp === null ? NaN : Number(rbp);
    }
    const rsp = this.reg(t, RSP);
    return rsp === null ? NaN : Number(stack === 'push' ? rsp - 8n : rsp);
  }
}
