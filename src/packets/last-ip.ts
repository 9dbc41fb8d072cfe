import { ErrorCode } from './errors.js';
import { IpCompression } from './packet-type.js';
import type { Packet } from './packet.js';

/**
 * The last-IP state that compressed IP packets update (SDM "IP
 * Compression"): update-16/32/48 replace the low bits of the last IP,
 * sext-48 sign-extends bit 47, full replaces all 64 bits, suppressed leaves
 * the IP unchanged but marks it unavailable.
 *
 * The IP is kept as two unsigned 32-bit halves.
 */
export class LastIp {
  hi = 0;
  lo = 0;
  /** An IP has been seen since the last reset. */
  haveIp = false;
  /** The last IP packet suppressed its IP. */
  suppressed = false;

  reset(): void {
    this.hi = 0;
    this.lo = 0;
    this.haveIp = false;
    this.suppressed = false;
  }

  copyFrom(other: LastIp): void {
    this.hi = other.hi;
    this.lo = other.lo;
    this.haveIp = other.haveIp;
    this.suppressed = other.suppressed;
  }

  /** Apply an IP packet (FUP, TIP, TIP.PGE, TIP.PGD); 0 or a negated ErrorCode. */
  update(pkt: Packet): number {
    switch (pkt.ipc) {
      case IpCompression.Suppressed:
        this.suppressed = true;
        return 0;
      case IpCompression.Update16:
        this.lo = ((this.lo & 0xffff0000) | (pkt.lo & 0xffff)) >>> 0;
        break;
      case IpCompression.Update32:
        this.lo = pkt.lo >>> 0;
        break;
      case IpCompression.Sext48:
        this.lo = pkt.lo >>> 0;
        this.hi = pkt.hi & 0x8000 ? (pkt.hi | 0xffff0000) >>> 0 : pkt.hi & 0xffff;
        break;
      case IpCompression.Update48:
        this.lo = pkt.lo >>> 0;
        this.hi = ((this.hi & 0xffff0000) | (pkt.hi & 0xffff)) >>> 0;
        break;
      case IpCompression.Full:
        this.lo = pkt.lo >>> 0;
        this.hi = pkt.hi >>> 0;
        break;
      default:
        return -ErrorCode.BadPacket;
    }
    this.haveIp = true;
    this.suppressed = false;
    return 0;
  }

  /**
   * Encode the IP (`hi`, `lo`: unsigned halves) into `pkt` with the
   * shortest compression the processor would use against this last IP (SDM
   * "IP Compression": update-16/32/48 when the high bits match, sext-48 for
   * a canonical IP, else full), then make it the last IP.
   */
  compress(pkt: Packet, hi: number, lo: number): void {
    const have = this.haveIp;
    if (have && hi === this.hi && lo >>> 16 === this.lo >>> 16) {
      pkt.ipc = IpCompression.Update16;
      pkt.hi = 0;
      pkt.lo = lo & 0xffff;
    } else if (have && hi === this.hi) {
      pkt.ipc = IpCompression.Update32;
      pkt.hi = 0;
      pkt.lo = lo;
    } else if (have && hi >>> 16 === this.hi >>> 16) {
      pkt.ipc = IpCompression.Update48;
      pkt.hi = hi & 0xffff;
      pkt.lo = lo;
    } else if ((hi & 0xffff8000) === 0 || (hi & 0xffff8000) >>> 0 === 0xffff8000) {
      // Canonical: bits 63:47 all equal, so 48 bits sign-extend to the IP.
      pkt.ipc = IpCompression.Sext48;
      pkt.hi = hi & 0xffff;
      pkt.lo = lo;
    } else {
      pkt.ipc = IpCompression.Full;
      pkt.hi = hi;
      pkt.lo = lo;
    }
    this.hi = hi;
    this.lo = lo;
    this.haveIp = true;
    this.suppressed = false;
  }

  /** 0 if the IP is available, else -NoIp or -IpSuppressed (libipt order). */
  status(): number {
    if (!this.haveIp) return -ErrorCode.NoIp;
    if (this.suppressed) return -ErrorCode.IpSuppressed;
    return 0;
  }

  /** The IP as a number; exact for user-space and any address below 2^53. */
  get ip(): number {
    return this.hi * 4294967296 + this.lo;
  }
}
