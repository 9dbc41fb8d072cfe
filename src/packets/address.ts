/**
 * How the decoders represent 64-bit virtual addresses: as *signed* doubles.
 *
 * An instruction pointer is a plain `number` holding the address as a signed
 * 64-bit integer: user-space addresses are positive and canonical upper-half
 * (kernel) addresses such as 0xffffffff81000000 are negative (-0x7f000000).
 * A double holds every integer in [-2^53, 2^53) exactly, which covers every
 * canonical address with 48-bit linear addresses (SDM Vol. 3A, 4.5 "4-level
 * paging": bits 63:47 are copies of bit 47) and every LA57 address whose
 * sign-extended value is below 2^53 in magnitude (kernel text at
 * 0xffffffff8xxxxxxx always is). Arithmetic (`ip + size`, `ip + displacement`),
 * comparison and binary search then need no BigInt and no hi/lo pairs in the
 * hot loop.
 *
 * Packets carry 64-bit values as uint32 `hi`/`lo` halves; convert them with
 * {@link ipFromHiLo}. Print with {@link formatIp}, which shows the
 * two's-complement 64-bit value like ptxed's `%016" PRIx64`. Values that do
 * not fit (|ip| >= 2^53) are reported by {@link isExactIp}; images refuse to
 * map them, so reads there fail with `-ErrorCode.NoMap`.
 */
const TWO_32 = 4294967296;
const TWO_53 = 9007199254740992;

/** A 64-bit address given as uint32 halves, as a signed-double ip. */
export function ipFromHiLo(hi: number, lo: number): number {
  return (hi | 0) * TWO_32 + (lo >>> 0);
}

/** A 64-bit address given as a BigInt (either signedness), as a signed-double ip. */
export function ipFromBigInt(value: bigint): number {
  return Number(BigInt.asIntN(64, value));
}

/** A physical address or other unsigned 64-bit quantity (CR3, VMCS) as a number. */
export function unsignedFromHiLo(hi: number, lo: number): number {
  return (hi >>> 0) * TWO_32 + (lo >>> 0);
}

/** True if `ip` is an integer the double holds exactly. */
export function isExactIp(ip: number): boolean {
  return Number.isInteger(ip) && ip >= -TWO_53 && ip < TWO_53;
}

/** Upper 32 bits of the 64-bit two's-complement address, unsigned. */
export function ipHi(ip: number): number {
  return Math.floor(ip / TWO_32) >>> 0;
}

/** Lower 32 bits of the 64-bit two's-complement address, unsigned. */
export function ipLo(ip: number): number {
  return (ip - Math.floor(ip / TWO_32) * TWO_32) >>> 0;
}

/** The address as an unsigned 64-bit BigInt. */
export function ipToBigInt(ip: number): bigint {
  return BigInt.asUintN(64, BigInt(ip));
}

/** The address as 16 lower-case hex digits (ptxed's `%016" PRIx64`). */
export function formatIp(ip: number): string {
  return ipHi(ip).toString(16).padStart(8, '0') + ipLo(ip).toString(16).padStart(8, '0');
}

/**
 * A number as `0x` and its lower-case hex digits, as JavaScript prints it
 * (so a negative number keeps its minus sign): for the recorder's messages
 * and perf's command lines. ptxed's and ptdump's own text uses the formats
 * above.
 */
export function hex(v: number): string {
  return '0x' + v.toString(16);
}

/** The address in lower-case hex without leading zeros (`%" PRIx64`). */
export function formatIpShort(ip: number): string {
  const hi = ipHi(ip);
  const lo = ipLo(ip).toString(16);
  return hi === 0 ? lo : hi.toString(16) + lo.padStart(8, '0');
}
