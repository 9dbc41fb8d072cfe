/**
 * Integer arithmetic shared by time tracking ({@link ./time.ts}) and timing
 * calibration ({@link ./time-calibration.ts}): CTC deltas, CTC to TSC
 * conversion and the uint64 helpers they need.
 *
 * Number representation (a deliberate choice; time tracking runs on every
 * timing packet of the flow decoders, so it must not allocate):
 * - TSC-sized values (the estimated TSC, its MTC base, the last TSC seen by
 *   calibration) exceed 2^53 and are kept as uint32 `hi`/`lo` pairs, like the
 *   `Packet` struct; {@link addU64} and {@link subU64} do modulo-2^64 updates.
 * - Everything else (CTC values, the FastCounter, cycle counts, the
 *   calibration ratio) is a plain number. libipt holds them in uint64 too,
 *   but they are bounded by one MTC or TSC period (libipt itself fails
 *   rather than let the calibration products overflow), so they stay far
 *   below 2^53 in any real trace.
 * - Quantities libipt keeps in uint64 that hostile input can push past 2^53
 *   (CYC payloads, the FastCounter sum, cycle counts, the ratio) are
 *   {@link U64}: a number while below 2^53, else a bigint. Arithmetic on
 *   them ({@link u64Add}, {@link u64MulDiv}, ...) is exact modulo 2^64 and
 *   takes the number fast path whenever the result fits; BigInt, which
 *   allocates, only runs for such input.
 */
import { ErrorCode } from '../packets/errors.js';

/** Bits of CTC an MTC packet carries (SDM "Mini Time Counter (MTC) Packet"). */
export const MTC_CTC_BITS = 8;
export const MTC_CTC_MASK = 0xff;
/** Bits of CTC a TMA packet carries (SDM "TSC/MTC Alignment (TMA) Packet"). */
export const TMA_CTC_BITS = 16;
export const TMA_CTC_MASK = 0xffff;
/** Bits of TSC a TSC packet carries (SDM "Time Stamp Counter (TSC) Packet"). */
export const TSC_BITS = 56;
/**
 * Fixed-point shift of the FastCounter:cycles ratio (libipt's
 * `pt_tcal_fcr_shr`): an fcr of 256 means one TSC tick per core cycle.
 */
export const FCR_SHIFT = 8;
export const FCR_ONE = 1 << FCR_SHIFT;

const TWO_POW_32 = 4294967296;

/**
 * `1u << n` as libipt computes it on x86: a uint32 shift whose count is
 * taken modulo 32 (C leaves larger counts undefined; the hardware masks).
 */
export function shl1U32(n: number): number {
  return (1 << (n & 31)) >>> 0;
}

/**
 * CTC ticks from `lastCtc` to `ctc` (libipt's `pt_time_ctc_delta`). Both hold
 * the CTC bits that MTC packets provide (bits mtcFreq .. mtcFreq+7); one
 * wrap-around of those bits is corrected. Returns the delta (>= 0) or
 * `-ErrorCode.BadPacket` when even a wrap cannot explain a smaller value.
 */
export function ctcDelta(ctc: number, lastCtc: number, mtcFreq: number): number {
  if (ctc < lastCtc) {
    ctc = (ctc + shl1U32(mtcFreq + MTC_CTC_BITS)) >>> 0;
    if (ctc < lastCtc) return -ErrorCode.BadPacket;
  }
  return (ctc - lastCtc) >>> 0;
}

/** An unsigned 64-bit integer: a number while below 2^53, else a bigint. */
export type U64 = number | bigint;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** `v` modulo 2^64, as a number if it fits. */
function u64Of(v: bigint): U64 {
  const r = BigInt.asUintN(64, v);
  return r <= MAX_SAFE ? Number(r) : r;
}

/** Is the U64 zero? */
export function u64IsZero(a: U64): boolean {
  return a === 0 || a === 0n;
}

/** a + b modulo 2^64. */
export function u64Add(a: U64, b: U64): U64 {
  if (typeof a === 'number' && typeof b === 'number') {
    const s = a + b;
    if (s <= Number.MAX_SAFE_INTEGER) return s;
  }
  return u64Of(BigInt(a) + BigInt(b));
}

/** a - b modulo 2^64. */
export function u64Sub(a: U64, b: U64): U64 {
  if (typeof a === 'number' && typeof b === 'number' && a >= b) return a - b;
  return u64Of(BigInt(a) - BigInt(b));
}

/**
 * floor(((a * b) mod 2^64) / c) for c > 0: C's `(a * b) / c` on uint64
 * operands (and `(a * b) >> s` with c = 2^s, `(a << s) / c` with b = 2^s).
 */
export function u64MulDiv(a: U64, b: U64, c: U64): U64 {
  if (typeof a === 'number' && typeof b === 'number' && typeof c === 'number') {
    const p = a * b;
    // A double product at most 2^53 - 1 is exact, and flooring an exactly
    // rounded quotient of such integers is exact as well.
    if (p <= Number.MAX_SAFE_INTEGER) return Math.floor(p / c);
  }
  return u64Of(BigInt.asUintN(64, BigInt(a) * BigInt(b)) / BigInt(c));
}

/** The value of `hi:lo` (uint32 halves) as a U64. */
export function u64FromHiLo(hi: number, lo: number): U64 {
  if (hi < 0x200000) return hi * 4294967296 + lo;
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * Convert CTC ticks into TSC (FastCounter) ticks with the CPUID 0x15 ratio:
 * ctc * EBX / EAX, truncated (libipt's `pt_time_ctc_fc`). Returns the tick
 * count (>= 0) or `-ErrorCode.BadConfig` if either CPUID value is zero.
 */
export function ctcToFastCounter(ctc: number, cpuid15Eax: number, cpuid15Ebx: number): U64 {
  if (!cpuid15Eax || !cpuid15Ebx) return -ErrorCode.BadConfig;
  return u64MulDiv(ctc, cpuid15Ebx, cpuid15Eax);
}

/**
 * floor(((a * b) mod 2^64) / c) for non-negative integers below 2^53 whose
 * result is known to be below 2^53 (see {@link u64MulDiv} for U64 operands).
 */
export function mulDivU64(a: number, b: number, c: number): number {
  return Number(u64MulDiv(a, b, c));
}

/**
 * Add `n` to the uint64 `hi:lo` in `out` (index 0: hi, 1: lo), modulo 2^64.
 */
export function addU64(out: Uint32Array, n: U64): void {
  if (typeof n === 'bigint') {
    const v = BigInt.asUintN(64, ((BigInt(out[0]!) << 32n) | BigInt(out[1]!)) + n);
    out[0] = Number(v >> 32n);
    out[1] = Number(v & 0xffffffffn);
    return;
  }
  const nLo = n % TWO_POW_32;
  const lo = out[1]! + nLo;
  const carry = lo >= TWO_POW_32 ? 1 : 0;
  out[1] = lo; // the store into a Uint32Array reduces modulo 2^32
  out[0] = out[0]! + Math.floor(n / TWO_POW_32) + carry;
}

/** Subtract a non-negative number `n` from the uint64 `hi:lo` in `out`, modulo 2^64. */
export function subU64(out: Uint32Array, n: number): void {
  const nLo = n % TWO_POW_32;
  const lo = out[1]! - nLo;
  const borrow = lo < 0 ? 1 : 0;
  out[1] = lo;
  out[0] = out[0]! - Math.floor(n / TWO_POW_32) - borrow;
}

/** The uint64 `hi:lo` as a BigInt, for callers off the hot path (tests, JSON). */
export function u64ToBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Lower-case hex of `hi:lo` without leading zeros (`%llx`). */
export function u64Hex(hi: number, lo: number): string {
  return hi ? hi.toString(16) + lo.toString(16).padStart(8, '0') : lo.toString(16);
}
