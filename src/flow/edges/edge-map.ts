/**
 * The AFL edge map: how an edge between two basic blocks becomes a byte of
 * a fuzzer's coverage bitmap, and how hit counts are bucketed.
 *
 * ## Edge ids (AFL's `prev_loc >> 1 ^ cur_loc`)
 * AFL's compile-time instrumentation gives every basic block a random
 * `cur_loc` below the map size and, on entering a block, bumps
 * `map[prev_loc ^ cur_loc]` and sets `prev_loc = cur_loc >> 1` (the shift
 * keeps A→B and B→A apart, and A→A from always hitting slot 0). A trace has
 * no compile-time ids, so a block's `loc` is a hash of its start address:
 *
 *     lo, hi = the address's low and high 32 bits (two's complement)
 *     h      = fmix32(lo ^ (hi * 0x9e3779b1 mod 2^32))   (MurmurHash3's finalizer)
 *     loc    = h & (mapSize - 1)
 *     id     = (loc(prev) >> 1) ^ loc(cur),   loc(none) = 0
 *
 * `prev` is the block entered before `cur`; there is none at the start of
 * the trace, after an overflow and after a decode error (see
 * edge-semantics in edge-coverage.ts).
 *
 * ## Hit counts
 * Each slot counts its hits in a byte that stops at 255 instead of
 * wrapping (AFL's counters wrap at 256, so an edge taken 256 times looks
 * untaken; AFL++'s NeverZero wraps to 1 instead). The bitmap gets AFL's
 * buckets (afl-fuzz's count_class_lookup8): 1, 2, 3, 4-7, 8-15, 16-31,
 * 32-127, 128+ → 1, 2, 4, 8, 16, 32, 64, 128, so stopping at 255 loses
 * nothing. afl-showmap prints the bucket's ordinal instead
 * (count_class_human: 1..8), as {@link showmapClass} does. Exact counts
 * per edge come with {@link EdgePairs} when asked for.
 *
 * Only the slots a run touched are visited when the bitmap is written, so a
 * short trace costs no 64 KiB sweep.
 */

/** AFL's default map size (MAP_SIZE, 64 KiB). */
export const AFL_MAP_SIZE = 1 << 16;

/** Smallest and largest map sizes accepted (powers of two). */
export const MIN_MAP_SIZE = 1 << 8;
export const MAX_MAP_SIZE = 1 << 24;

/** A 32-bit hash of a block address (before masking to the map size). */
export function blockHash(addr: number): number {
  const lo = addr >>> 0;
  const hi = Math.floor(addr / 4294967296) | 0;
  let h = (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The edge id of prev → cur given their locs (AFL's formula). */
export function edgeId(prevLoc: number, curLoc: number): number {
  return (prevLoc >>> 1) ^ curLoc;
}

/** AFL's bucket byte for an exact hit count (count_class_lookup8). */
export function aflBucket(count: number): number {
  if (count <= 3) return count === 3 ? 4 : count;
  if (count < 8) return 8;
  if (count < 16) return 16;
  if (count < 32) return 32;
  if (count < 128) return 64;
  return 128;
}

/** afl-showmap's class (count_class_human) for an exact hit count: 0..8. */
export function showmapClass(count: number): number {
  if (count <= 3) return count;
  if (count < 8) return 4;
  if (count < 16) return 5;
  if (count < 32) return 6;
  if (count < 128) return 7;
  return 8;
}

/** Check a map size: a power of two in [MIN_MAP_SIZE, MAX_MAP_SIZE]. */
export function isValidMapSize(size: number): boolean {
  return Number.isInteger(size) && size >= MIN_MAP_SIZE && size <= MAX_MAP_SIZE && (size & (size - 1)) === 0;
}

/**
 * Hit counts per edge id for one decode (saturating at 255), with the list
 * of ids touched (so clearing and writing the bitmap cost O(edges hit), not
 * O(map size)) and the number of edges taken.
 */
export class EdgeCounts {
  readonly mask: number;
  /** The counters: the counts' own array, or a bitmap they count into ({@link countInto}). */
  counts: Uint8Array;
  private readonly own: Uint8Array;
  /** Ids with a non-zero count, in first-hit order: `touched[0 .. used)`. */
  readonly touched: Int32Array;
  used = 0;
  /** Edges taken (hits, with repeats). */
  edges = 0;

  constructor(readonly size: number) {
    if (!isValidMapSize(size)) throw new RangeError(`edge map size must be a power of two in [${MIN_MAP_SIZE}, ${MAX_MAP_SIZE}], got ${size}`);
    this.mask = size - 1;
    this.counts = this.own = new Uint8Array(size);
    this.touched = new Int32Array(size);
  }

  /**
   * Count from now on straight into `array` (a zeroed bitmap of the map's
   * size, as AFL counts into trace_bits), or back into the own array
   * (null; it must hold no counts). Starts from no counts; what the
   * previous array holds stays there.
   */
  countInto(array: Uint8Array | null): void {
    if (array !== null && array.length !== this.size) throw new RangeError(`bitmap has ${array.length} bytes, the edge map ${this.size}`);
    this.counts = array ?? this.own;
    this.used = 0;
    this.edges = 0;
  }

  /** Turn the counts into AFL's buckets where they are (for a bitmap counted into). */
  bucketInPlace(): void {
    const counts = this.counts;
    const touched = this.touched;
    for (let i = 0; i < this.used; i++) {
      const id = touched[i];
      counts[id] = BUCKETS[counts[id]];
    }
  }

  /** Count one hit of edge `id`. */
  hit(id: number): void {
    const c = this.counts[id];
    if (c === 0) {
      this.counts[id] = 1;
      this.touched[this.used++] = id;
    } else if (c !== 255) {
      this.counts[id] = c + 1;
    }
    this.edges++;
  }

  /** Count `m` hits of edge `id`. */
  add(id: number, m: number): void {
    const c = this.counts[id];
    if (c === 0) this.touched[this.used++] = id;
    const sum = c + m;
    this.counts[id] = sum > 255 ? 255 : sum;
    this.edges += m;
  }

  /** Forget every count. */
  clear(): void {
    const counts = this.counts;
    const touched = this.touched;
    for (let i = 0; i < this.used; i++) counts[touched[i]] = 0;
    this.used = 0;
    this.edges = 0;
  }

  /**
   * Write AFL's bucketed bytes into `bitmap` (length = map size): the
   * touched slots get their bucket, every other slot 0.
   */
  writeBitmap(bitmap: Uint8Array): void {
    if (bitmap.length !== this.size) throw new RangeError(`bitmap has ${bitmap.length} bytes, the edge map ${this.size}`);
    bitmap.fill(0);
    const counts = this.counts;
    const touched = this.touched;
    for (let i = 0; i < this.used; i++) {
      const id = touched[i];
      bitmap[id] = BUCKETS[counts[id]];
    }
  }
}

/** {@link aflBucket} of 0..255. */
const BUCKETS = Uint8Array.from({ length: 256 }, (_, c) => aflBucket(c));

/**
 * FNV-1a 64 of a bitmap as 16 hex digits: a fingerprint to compare two
 * maps (test/oracle/ptedges.c prints the same for libipt's).
 */
export function bitmapFnv1a64(bitmap: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < bitmap.length; i++) h = BigInt.asUintN(64, (h ^ BigInt(bitmap[i])) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}
