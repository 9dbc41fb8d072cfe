/**
 * FNV-1a 64 over a sequence of instruction addresses, each fed as 8
 * little-endian bytes: the fingerprint the recorder writes into a bundle's
 * manifest and that test/oracle/ptoracle.c (`insn --hash`) prints for
 * libipt's decode, so that the two can be compared without listing
 * millions of addresses.
 *
 * 64-bit arithmetic on two uint32 halves: the FNV prime is 2^40 + 0x1b3, so
 * h * prime = h * 0x1b3 + (h << 40), and only the low 64 bits are kept.
 */
import { ipHi, ipLo } from '../../flow/address-space.js';

const PRIME_LO = 0x1b3;
const TWO_32 = 4294967296;

export class IpSequenceHash {
  /** The FNV-1a 64 offset basis 0xcbf29ce484222325. */
  hi = 0xcbf29ce4;
  lo = 0x84222325;
  count = 0;

  add(ip: number): void {
    let hi = this.hi;
    let lo = this.lo;
    let bLo = ipLo(ip);
    let bHi = ipHi(ip);
    for (let i = 0; i < 8; i++) {
      const byte = i < 4 ? bLo & 0xff : bHi & 0xff;
      if (i < 4) bLo >>>= 8;
      else bHi >>>= 8;
      lo = (lo ^ byte) >>> 0;
      const wide = lo * PRIME_LO;
      const carry = Math.floor(wide / TWO_32);
      hi = (Math.imul(hi, PRIME_LO) + carry + (lo << 8)) >>> 0;
      lo = wide >>> 0;
    }
    this.hi = hi;
    this.lo = lo;
    this.count++;
  }

  /** The hash as 16 lower-case hex digits (ptoracle's `fnv1a64` line). */
  hex(): string {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}
