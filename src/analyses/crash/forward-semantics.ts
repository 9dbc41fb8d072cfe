/**
 * What the common integer instructions compute, from the registers before
 * them and the memory operand they read: the forward half of reverse
 * execution. Anything not modelled, or with an unknown input, is null.
 */
import { Mnemonic } from '../../flow/iced.js';
import type { InsnFacts, Operand } from './instruction-facts.js';
import { M64, mask, sext, type RegisterTimeline } from './register-timeline.js';

/** The operand's value before instruction t; `memIn` is what its memory operand read. */
function operandValue(regs: RegisterTimeline, t: number, o: Operand | undefined, memIn: bigint | null): bigint | null {
  if (o === undefined) return null;
  if (o.kind === 'reg') return regs.readRef(t, o.ref);
  if (o.kind === 'imm') return o.value & M64;
  if (o.kind === 'mem') return memIn;
  return null;
}

function operandSize(o: Operand | undefined): number {
  return o?.kind === 'reg' ? o.ref.size : o?.kind === 'mem' ? o.size : 0;
}

/** The value instruction t writes to operand 0, or null if unknown or not modelled. */
export function resultOf(regs: RegisterTimeline, t: number, f: InsnFacts, memIn: bigint | null): bigint | null {
  const d = f.ops[0];
  const size = operandSize(d);
  if (size === 0 || size > 8) return null;
  const mk = mask(size);
  const val = (o: Operand | undefined): bigint | null => operandValue(regs, t, o, memIn);
  const s = f.ops[1];
  switch (f.mnemonic) {
    case Mnemonic.Mov: {
      const v = val(s);
      return v === null ? null : v & mk;
    }
    case Mnemonic.Movzx:
      return val(s);
    case Mnemonic.Movsx:
    case Mnemonic.Movsxd: {
      const v = val(s);
      const ss = operandSize(s);
      return v === null || ss === 0 ? null : sext(v, ss) & mk;
    }
    case Mnemonic.Lea: {
      const a = regs.effectiveAddress(t, f.mem!);
      return a === null ? null : a & mk;
    }
    case Mnemonic.Xor:
    case Mnemonic.Sub:
      if (d!.kind === 'reg' && s?.kind === 'reg' && s.ref.reg === d!.ref.reg && s.ref.shift === d!.ref.shift) return 0n;
      break;
    case Mnemonic.And:
      if (s?.kind === 'imm' && (s.value & mk) === 0n) return 0n;
      break;
    case Mnemonic.Or:
      if (s?.kind === 'imm' && (s.value & mk) === mk) return mk;
      break;
  }
  const x = val(d);
  if (x === null) return null;
  const y = val(s);
  const bits = size * 8;
  const shift = size === 8 ? 63n : 31n;
  switch (f.mnemonic) {
    case Mnemonic.Add:
      return y === null ? null : (x + y) & mk;
    case Mnemonic.Sub:
      return y === null ? null : (x - y) & mk;
    case Mnemonic.And:
      return y === null ? null : x & y & mk;
    case Mnemonic.Or:
      return y === null ? null : (x | y) & mk;
    case Mnemonic.Xor:
      return y === null ? null : (x ^ y) & mk;
    case Mnemonic.Inc:
      return (x + 1n) & mk;
    case Mnemonic.Dec:
      return (x - 1n) & mk;
    case Mnemonic.Neg:
      return -x & mk;
    case Mnemonic.Not:
      return ~x & mk;
    case Mnemonic.Shl:
    case Mnemonic.Sal:
      return y === null ? null : (x << (y & shift)) & mk;
    case Mnemonic.Shr:
      return y === null ? null : (x >> (y & shift)) & mk;
    case Mnemonic.Sar:
      return y === null ? null : BigInt.asUintN(bits, BigInt.asIntN(bits, x) >> (y & shift));
    case Mnemonic.Imul: {
      if (f.ops.length === 3) {
        const z = val(f.ops[2]);
        return y === null || z === null ? null : BigInt.asUintN(bits, BigInt.asIntN(bits, y) * BigInt.asIntN(bits, z));
      }
      if (f.ops.length === 2) return y === null ? null : BigInt.asUintN(bits, BigInt.asIntN(bits, x) * BigInt.asIntN(bits, y));
      return null;
    }
    default:
      return null;
  }
}

/** Implicit register results of the sign extensions through rax (cdqe, cwde, cdq, cqo), written at point t + 1. */
export function implicitResults(regs: RegisterTimeline, t: number, f: InsnFacts): void {
  const b = t + 1;
  const rax = regs.reg(t, 0);
  if (rax === null) return;
  switch (f.mnemonic) {
    case Mnemonic.Cdqe:
      regs.set(b, 0, sext(rax & 0xffffffffn, 4));
      return;
    case Mnemonic.Cwde:
      regs.set(b, 0, sext(rax & 0xffffn, 2) & 0xffffffffn);
      return;
    case Mnemonic.Cdq:
      regs.set(b, 2, (rax & 0x80000000n) !== 0n ? 0xffffffffn : 0n);
      return;
    case Mnemonic.Cqo:
      regs.set(b, 2, (rax & (1n << 63n)) !== 0n ? M64 : 0n);
      return;
  }
}

/**
 * True if the arithmetic at t overflowed its operand size (signed), with
 * every operand known; false if it did not; null if that is not known.
 */
export function signedOverflow(regs: RegisterTimeline, t: number, f: InsnFacts, memIn: bigint | null): boolean | null {
  const d = f.ops[0];
  const size = operandSize(d);
  if (size === 0 || size > 8) return null;
  const val = (o: Operand | undefined): bigint | null => operandValue(regs, t, o, memIn);
  const bits = size * 8;
  const signed = (v: bigint): bigint => BigInt.asIntN(bits, v);
  const threeOperand = f.mnemonic === Mnemonic.Imul && f.ops.length === 3;
  const x = val(threeOperand ? f.ops[1] : d);
  const y = val(threeOperand ? f.ops[2] : f.ops[1]);
  if (x === null || y === null) return null;
  let exact: bigint;
  switch (f.mnemonic) {
    case Mnemonic.Add:
      exact = signed(x) + signed(y);
      break;
    case Mnemonic.Sub:
      exact = signed(x) - signed(y);
      break;
    case Mnemonic.Imul:
      exact = signed(x) * signed(y);
      break;
    case Mnemonic.Shl:
    case Mnemonic.Sal:
      exact = signed(x) * (1n << (y & 63n));
      break;
    default:
      return null;
  }
  return exact !== BigInt.asIntN(bits, exact);
}
