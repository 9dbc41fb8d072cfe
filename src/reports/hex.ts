/** Hex formatting for 64-bit values kept as two uint32 halves. */

const ZEROS = '0000000000000000';

/** `hi:lo` as lower-case hex without leading zeros (like printf "%llx"). */
export function hex64(hi: number, lo: number): string {
  if (hi === 0) return (lo >>> 0).toString(16);
  const l = (lo >>> 0).toString(16);
  return (hi >>> 0).toString(16) + ZEROS.slice(0, 8 - l.length) + l;
}

/** `hi:lo` as lower-case hex zero-padded to `width` digits (like "%016llx"). */
export function hex64Pad(hi: number, lo: number, width = 16): string {
  const s = hex64(hi, lo);
  return s.length >= width ? s : ZEROS.slice(0, width - s.length) + s;
}

/** A non-negative number as zero-padded hex. */
export function hexPad(value: number, width: number): string {
  const s = value.toString(16);
  return s.length >= width ? s : '0'.repeat(width - s.length) + s;
}

/** The value of `hi:lo` as a BigInt (for code off the hot path). */
export function toBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
