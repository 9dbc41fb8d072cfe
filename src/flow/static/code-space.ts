/**
 * The executable bytes of a module as a few dense regions, so that per-byte
 * tables (disassembly.ts) cost memory for code only, never for the gaps
 * between code sections. A hostile header that moves `.fini` to 1 GiB past
 * `.text` adds one small region, not a gigabyte of zeros.
 *
 * Sections closer than {@link REGION_GAP} bytes share a region (the usual
 * .init/.plt/.text/.fini run is one region, so {@link CodeSpace.toOffset}
 * is a subtraction). Offsets are positions in the concatenation of the
 * regions; addresses are link-time addresses.
 */
import { lastAtOrBelow } from '../sorted-search.js';

/** Largest gap between two executable sections that is still stored densely. */
export const REGION_GAP = 1 << 16;

/** Most bytes of executable code modelled per module (larger sections are cut). */
export const MAX_CODE_BYTES = 1 << 30;

export class CodeSpace {
  /** Link-time start of each region, ascending. */
  readonly regionAddress: Float64Array;
  /** Offset of each region's first byte. */
  readonly regionOffset: Float64Array;
  /** Bytes in each region. */
  readonly regionLength: Float64Array;
  /** Total bytes (the length of the per-byte tables). */
  readonly size: number;
  private last = 0;

  /** `ranges`: [address, length] of each executable section, in any order. */
  constructor(ranges: readonly (readonly [number, number])[]) {
    const sorted = ranges.filter((r) => r[1] > 0).map((r) => [r[0], r[0] + r[1]]).sort((a, b) => a[0] - b[0]);
    const merged: number[][] = [];
    for (const [s, e] of sorted) {
      const top = merged[merged.length - 1];
      if (top !== undefined && s <= top[1] + REGION_GAP) top[1] = Math.max(top[1], e);
      else merged.push([s, e]);
    }
    let total = 0;
    const kept: number[][] = [];
    for (const [s, e] of merged) {
      const len = Math.min(e - s, MAX_CODE_BYTES - total);
      if (len <= 0) break;
      kept.push([s, total, len]);
      total += len;
    }
    this.regionAddress = Float64Array.from(kept, (r) => r[0]);
    this.regionOffset = Float64Array.from(kept, (r) => r[1]);
    this.regionLength = Float64Array.from(kept, (r) => r[2]);
    this.size = total;
  }

  get regionCount(): number {
    return this.regionAddress.length;
  }

  /** Lowest address, or 0 without code. */
  get start(): number {
    return this.regionAddress.length > 0 ? this.regionAddress[0] : 0;
  }

  /** Offset of link-time `addr`, or -1 outside every region. */
  toOffset(addr: number): number {
    const a = this.regionAddress;
    let i = this.last;
    if (!(i < a.length && addr >= a[i] && addr - a[i] < this.regionLength[i])) {
      i = lastAtOrBelow(a, addr);
      if (i < 0 || addr - a[i] >= this.regionLength[i]) return -1;
      this.last = i;
    }
    return this.regionOffset[i] + (addr - a[i]);
  }

  /** Link-time address of offset `off` (0 <= off < size). */
  toAddress(off: number): number {
    const o = this.regionOffset;
    let i = this.last;
    if (!(i < o.length && off >= o[i] && off - o[i] < this.regionLength[i])) {
      i = Math.max(0, lastAtOrBelow(o, off));
      this.last = i;
    }
    return this.regionAddress[i] + (off - o[i]);
  }

  /** First offset after the region that holds `off`: instructions must not run across it. */
  regionEnd(off: number): number {
    const o = this.regionOffset;
    const i = lastAtOrBelow(o, off);
    return i < 0 ? 0 : o[i] + this.regionLength[i];
  }
}
