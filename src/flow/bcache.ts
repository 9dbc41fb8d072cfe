/**
 * The block cache of a section (libipt's pt_block_cache,
 * libipt/internal/include/pt_block_cache.h): per byte offset of a section,
 * how far the block decoder can get from there without trace, so that it
 * crosses straight-line code in one step.
 *
 * An entry, as libipt packs it (here in one int32, 0 = invalid):
 *
 *   bits  0-15  displacement to the next decision point (signed; for
 *               {@link Bq.Again} to the next entry to use)
 *   bits 16-23  instructions to that decision point, counting it
 *   bits 24-25  execution mode (ExecMode; Unknown = invalid entry)
 *   bits 26-28  qualifier of the decision point ({@link Bq})
 *   bits 29-31  size of the instruction at the decision point (0: too big, decode it)
 *
 * The block decoder fills it as libipt's does (pt_blk_proceed_no_event_fill_cache),
 * so a block ends where libipt's would: the cache decides that too, cold or warm.
 * Like libipt's, a cache belongs to a section and outlives the decoders
 * that use it; ptscope keeps one per section and `endOnJump` (libipt shares
 * one between decoders with different flags, which a later decoder with
 * `endOnJump` would notice as jumps it does not stop at).
 */
import type { Section } from './section.js';

/** libipt's enum pt_bcache_qualifier. */
export const enum Bq {
  /** Not a decision point: continue at the next entry (a trampoline). */
  Again = 0,
  /** A conditional branch. */
  Cond = 1,
  /** A near indirect call. */
  IndCall = 2,
  /** A near return. */
  Return = 3,
  /** An indirect jump, JMPABS or far branch. */
  Indirect = 4,
  /** Decode the instruction at the decision point to know what to do. */
  Decode = 5,
}

export function bceMake(displacement: number, ninsn: number, mode: number, qualifier: Bq, isize: number): number {
  return (displacement & 0xffff) | ((ninsn & 0xff) << 16) | ((mode & 3) << 24) | ((qualifier & 7) << 26) | ((isize & 7) << 29);
}

export function bceDisplacement(e: number): number {
  return (e << 16) >> 16;
}

export function bceNinsn(e: number): number {
  return (e >>> 16) & 0xff;
}

export function bceMode(e: number): number {
  return (e >>> 24) & 3;
}

export function bceQualifier(e: number): Bq {
  return (e >>> 26) & 7;
}

export function bceIsize(e: number): number {
  return (e >>> 29) & 7;
}

/** libipt's pt_bce_is_valid: the mode is known. */
export function bceIsValid(e: number): boolean {
  return (e & (3 << 24)) !== 0;
}

/**
 * Offsets per page: 64 Ki, so that a section of a few MiB takes a handful
 * of allocations. A section smaller than a page gets one page of its own size.
 */
const PAGE_BITS = 16;
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;

/**
 * Int32 slots per offset: the entry, then the displacement kept beside it
 * (see {@link SectionBlockCache}), side by side so that a look-up that
 * needs both touches one cache line: a block decoder looks up about one
 * entry per block, at offsets spread over the section, and waits on memory
 * for each. A decode stop's classification goes in pages of its own, which
 * only sections with decode stops need.
 */
const STRIDE = 2;
const SLOT_DISP = 1;

/** One section's entries, in pages allocated on first use. */
export class SectionBlockCache {
  /**
   * Per offset, {@link STRIDE} slots: the entry; ptscope's, not libipt's:
   * beside a {@link Bq.Cond} entry, the branch's displacement, so that a
   * taken branch needs no decode to find its target; beside a
   * {@link Bq.Decode} entry, the instruction's displacement, with its
   * classification ({@link packDecodeStop}) in {@link infoPages}, so that
   * a direct call needs no decode either. The side data are valid while
   * the entry at that offset is the one they were stored with
   * ({@link condDisplacement}, {@link decodeStopInfo} check).
   */
  private readonly pages: (Int32Array | undefined)[] = [];
  private readonly infoPages: (Int32Array | undefined)[] = [];
  /** Offsets per page: {@link PAGE_SIZE}, or the section's size if smaller. */
  private readonly pageLength: number;

  constructor(readonly size: number) {
    this.pageLength = Math.max(1, Math.min(PAGE_SIZE, size));
  }

  /** The entry at section offset `offset` (0 if none); `offset` lies in the section. */
  lookup(offset: number): number {
    const page = this.pages[offset >>> PAGE_BITS];
    return page === undefined ? 0 : page[(offset & PAGE_MASK) * STRIDE]!;
  }

  add(offset: number, entry: number): void {
    this.page(offset)[(offset & PAGE_MASK) * STRIDE] = entry;
  }

  /** Add the entry of a conditional branch at `offset` with its displacement. */
  addCond(offset: number, entry: number, displacement: number): void {
    const page = this.page(offset);
    const at = (offset & PAGE_MASK) * STRIDE;
    page[at] = entry;
    page[at + SLOT_DISP] = displacement;
  }

  /**
   * The displacement of the conditional branch at `offset` if its entry is
   * `entry` (as {@link addCond} stored it), else NaN: decode it.
   */
  condDisplacement(offset: number, entry: number): number {
    const page = this.pages[offset >>> PAGE_BITS];
    const at = (offset & PAGE_MASK) * STRIDE;
    if (page === undefined || page[at] !== entry) return NaN;
    return page[at + SLOT_DISP]!;
  }

  /** Add a decode stop at `offset` with its instruction ({@link packDecodeStop}) and displacement. */
  addDecodeStop(offset: number, entry: number, info: number, displacement: number): void {
    const page = this.page(offset);
    const at = (offset & PAGE_MASK) * STRIDE;
    page[at] = entry;
    page[at + SLOT_DISP] = displacement;
    let infos = this.infoPages[offset >>> PAGE_BITS];
    if (infos === undefined) {
      infos = new Int32Array(this.pageLength);
      this.infoPages[offset >>> PAGE_BITS] = infos;
    }
    infos[offset & PAGE_MASK] = info;
  }

  /**
   * The instruction of the decode stop at `offset` ({@link packDecodeStop})
   * if its entry is `entry` and it was stored for `mode`, else 0: decode it.
   * Its displacement is {@link stopDisplacement}.
   */
  decodeStopInfo(offset: number, entry: number, mode: number): number {
    const i = offset >>> PAGE_BITS;
    const page = this.pages[i];
    if (page === undefined || page[(offset & PAGE_MASK) * STRIDE] !== entry) return 0;
    const infos = this.infoPages[i];
    if (infos === undefined) return 0;
    const info = infos[offset & PAGE_MASK]!;
    return (info & DECODE_STOP_VALID) !== 0 && ((info >>> 17) & 3) === mode ? info : 0;
  }

  /** The displacement stored with a decode stop that {@link decodeStopInfo} answered. */
  stopDisplacement(offset: number): number {
    return this.pages[offset >>> PAGE_BITS]![(offset & PAGE_MASK) * STRIDE + SLOT_DISP]!;
  }

  /** The page that holds `offset`, allocated on first use. */
  private page(offset: number): Int32Array {
    let page = this.pages[offset >>> PAGE_BITS];
    if (page === undefined) {
      page = new Int32Array(this.pageLength * STRIDE);
      this.pages[offset >>> PAGE_BITS] = page;
    }
    return page;
  }
}

const DECODE_STOP_VALID = 1 << 20;

/**
 * An instruction's classification as a decode stop keeps it: size (bits
 * 0-3), class (4-7), kind (8-15), direct (16), mode (17-18), valid (20).
 */
export function packDecodeStop(size: number, iclass: number, kind: number, direct: boolean, mode: number): number {
  return (size & 15) | ((iclass & 15) << 4) | ((kind & 255) << 8) | (direct ? 1 << 16 : 0) | ((mode & 3) << 17) | DECODE_STOP_VALID;
}

const caches = new WeakMap<Section, (SectionBlockCache | undefined)[]>();

/** The block cache of `section` for decoders that do (or do not) end blocks at direct jumps. */
export function sectionBlockCache(section: Section, endOnJump: boolean): SectionBlockCache {
  let list = caches.get(section);
  if (list === undefined) {
    list = [];
    caches.set(section, list);
  }
  const i = endOnJump ? 1 : 0;
  let c = list[i];
  if (c === undefined) {
    c = new SectionBlockCache(section.size);
    list[i] = c;
  }
  return c;
}

/** The block cache of `section`, if a block decoder allocated it (see {@link sectionBlockCache}). */
export function existingSectionBlockCache(section: Section, endOnJump: boolean): SectionBlockCache | null {
  return caches.get(section)?.[endOnJump ? 1 : 0] ?? null;
}
