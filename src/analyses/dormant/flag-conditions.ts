/**
 * The flags of the last flag-setting instruction, kept as its operands and
 * result (cmp/sub, add, and/or/xor/test), and the condition codes of a jcc,
 * setcc or cmovcc computed from them: concretely and, when an operand is
 * symbolic, as a z3 expression.
 */
import { ConditionCode } from '../../flow/iced.js';
import type { BV, Val, Z3, Z3Bool } from './slice.js';
import { Unsolved } from './unsolved.js';

export type FlagKind = 'sub' | 'add' | 'logic' | 'unknown';
export interface Flags {
  kind: FlagKind;
  a: Val;
  b: Val;
  r: Val;
  bits: number;
  cfKnown: boolean;
}

/** A condition: concrete truth, expression, unknown-dependence. */
export interface Cond {
  c: boolean;
  e: Z3Bool | null;
  u: boolean;
}

function mask(bits: number): bigint {
  return (1n << BigInt(bits)) - 1n;
}

function signed(c: bigint, bits: number): bigint {
  return BigInt.asIntN(bits, c);
}

/** `v` as a bit-vector of `bits`: its expression, else its concrete value. */
export function asBitVec(z: Z3, v: Val, bits: number): BV {
  return v.e ?? (z.BitVec.val(v.c & mask(bits), bits) as BV);
}

/** The condition `cc` under flags `f`; `unknownFlags` names a fresh unknown when the flags are not known. */
export function conditionOf(z: Z3, f: Flags, cc: ConditionCode, unknownFlags: () => Z3Bool): Cond {
  const bits = f.bits;
  if (f.kind === 'unknown') return { c: false, e: unknownFlags(), u: true };
  const a = f.a;
  const b = f.b;
  const r = f.r;
  const sym = a.e !== null || b.e !== null || r.e !== null;
  const u = a.u || b.u || r.u;
  const A = (): BV => asBitVec(z, a, bits);
  const B = (): BV => asBitVec(z, b, bits);
  const R = (): BV => asBitVec(z, r, bits);
  const zero = (): BV => z.BitVec.val(0, bits) as BV;
  const rs = signed(r.c, bits);
  const pick = (c: boolean, e: () => Z3Bool): Cond => ({ c, e: sym ? e() : null, u });
  const as = signed(a.c, bits);
  const bs = signed(b.c, bits);
  const neg = (x: Cond): Cond => ({ c: !x.c, e: x.e === null ? null : x.e.not(), u: x.u });
  const cfNeeded = (): void => {
    if (!f.cfKnown) throw new Unsolved('a branch reads a carry flag that inc/dec left unchanged');
  };
  switch (f.kind) {
    case 'sub':
      switch (cc) {
        case ConditionCode.e: return pick(a.c === b.c, () => A().eq(B()));
        case ConditionCode.ne: return pick(a.c !== b.c, () => A().neq(B()));
        case ConditionCode.b: cfNeeded(); return pick(a.c < b.c, () => A().ult(B()));
        case ConditionCode.ae: cfNeeded(); return pick(a.c >= b.c, () => A().uge(B()));
        case ConditionCode.be: cfNeeded(); return pick(a.c <= b.c, () => A().ule(B()));
        case ConditionCode.a: cfNeeded(); return pick(a.c > b.c, () => A().ugt(B()));
        case ConditionCode.l: return pick(as < bs, () => A().slt(B()));
        case ConditionCode.ge: return pick(as >= bs, () => A().sge(B()));
        case ConditionCode.le: return pick(as <= bs, () => A().sle(B()));
        case ConditionCode.g: return pick(as > bs, () => A().sgt(B()));
        case ConditionCode.s: return pick(rs < 0n, () => R().slt(zero()));
        case ConditionCode.ns: return pick(rs >= 0n, () => R().sge(zero()));
        case ConditionCode.o: return overflowOf(z, a, b, r, bits, true);
        case ConditionCode.no: return neg(overflowOf(z, a, b, r, bits, true));
        default: break;
      }
      break;
    case 'add':
    case 'logic': {
      const isZero = pick(r.c === 0n, () => R().eq(zero()));
      const sf = pick(rs < 0n, () => R().slt(zero()));
      const of = f.kind === 'logic' ? { c: false, e: sym ? z.Bool.val(false) : null, u } : overflowOf(z, a, b, r, bits, false);
      const cf: Cond = f.kind === 'logic' ? { c: false, e: sym ? z.Bool.val(false) : null, u } : (cfNeeded(), pick(r.c < a.c, () => R().ult(A())));
      const or = (x: Cond, y: Cond): Cond => ({ c: x.c || y.c, e: x.e === null ? null : z.Or(x.e, y.e!), u: x.u || y.u });
      const xor = (x: Cond, y: Cond): Cond => ({ c: x.c !== y.c, e: x.e === null ? null : z.Xor(x.e, y.e!), u: x.u || y.u });
      switch (cc) {
        case ConditionCode.e: return isZero;
        case ConditionCode.ne: return neg(isZero);
        case ConditionCode.s: return sf;
        case ConditionCode.ns: return neg(sf);
        case ConditionCode.o: return of;
        case ConditionCode.no: return neg(of);
        case ConditionCode.b: return cf;
        case ConditionCode.ae: return neg(cf);
        case ConditionCode.be: return or(cf, isZero);
        case ConditionCode.a: return neg(or(cf, isZero));
        case ConditionCode.l: return xor(sf, of);
        case ConditionCode.ge: return neg(xor(sf, of));
        case ConditionCode.le: return or(isZero, xor(sf, of));
        case ConditionCode.g: return neg(or(isZero, xor(sf, of)));
        default: break;
      }
      break;
    }
  }
  throw new Unsolved(`condition ${ConditionCode[cc]} after ${f.kind} is not modelled`);
}

function overflowOf(z: Z3, a: Val, b: Val, r: Val, bits: number, sub: boolean): Cond {
  const top = 1n << BigInt(bits - 1);
  const c = sub ? ((a.c ^ b.c) & (a.c ^ r.c) & top) !== 0n : (~(a.c ^ b.c) & (a.c ^ r.c) & top) !== 0n;
  const sym = a.e !== null || b.e !== null || r.e !== null;
  if (!sym) return { c, e: null, u: a.u || b.u || r.u };
  const A = asBitVec(z, a, bits);
  const B = asBitVec(z, b, bits);
  const R = asBitVec(z, r, bits);
  const x = sub ? A.xor(B).and(A.xor(R)) : A.xor(B).not().and(A.xor(R));
  return { c, e: (x as BV).slt(z.BitVec.val(0, bits)), u: a.u || b.u || r.u };
}
