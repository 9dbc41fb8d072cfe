/**
 * Code that exists only at run time (a JIT's output, unpacked or injected
 * code): the bytes of every translated block that no file maps, or whose
 * bytes differ from the file mapped there, as qemu logged them when it
 * translated the block (qemu-log.ts).
 *
 * Each captured range is one run-time image (blocks close together share
 * one). Code rewritten at the same
 * address (a JIT reusing its buffer) is a new version: an image of its own,
 * later in {@link images}' order, with the position where it first ran.
 * Mapped in that order, later images replace the overlapped bytes of earlier
 * ones (libipt's and ptscope's image rule), so a static decode sees each
 * address's last version; `firstExecuted` tells where each version started.
 *
 * Bounded: at most {@link MAX_RUNTIME_IMAGES} images per address space and
 * {@link MAX_RUNTIME_BYTES} bytes in all (forks share the bound); beyond, code is not captured (a warning,
 * and the decoder reports those addresses as unmapped).
 */

/** One run-time image: bytes at an address, and when they first ran. */
export interface RuntimeImage {
  address: number;
  /** The captured bytes; between captured blocks (never executed), zero. */
  bytes: Uint8Array;
  /** Instructions the recording had executed (all threads) before this code first ran. */
  firstExecuted: number;
}

/** A run-time image and which of its bytes were captured. */
interface Captured extends RuntimeImage {
  known: Uint8Array;
}

export const MAX_RUNTIME_IMAGES = 2048;
const MAX_RUNTIME_BYTES = 64 << 20;
/**
 * Blocks this close to an image join it (the gap, never executed, is zero):
 * a JIT's functions lie close together, and one image per function would
 * be thousands of files.
 */
const JOIN_GAP = 256;

export class RuntimeCode {
  private readonly list: Captured[] = [];
  /** Bytes held by this address space and every one forked from it or it from (one bound for the recording). */
  private readonly held: { bytes: number };
  /** Blocks not captured (a bound was reached). */
  dropped = 0;
  /** Blocks at an address whose earlier bytes differ (new versions). */
  rewritten = 0;
  /** The index of each image a rewrite started, increasing. */
  private readonly rewrites: number[] = [];
  /** Set by {@link compare}: the last image whose captured bytes the block compared equal with (-1: none). */
  private lastMatched = -1;

  constructor(held: { bytes: number } = { bytes: 0 }) {
    this.held = held;
  }

  /** A copy for a forked child (its address space starts as the parent's). */
  fork(): RuntimeCode {
    const c = new RuntimeCode(this.held);
    for (const im of this.list) {
      if (!c.reserve(im.bytes.length)) break;
      c.list.push({ ...im, bytes: im.bytes.slice(), known: im.known.slice() });
    }
    for (const r of this.rewrites) if (r < c.list.length) c.rewrites.push(r);
    return c;
  }

  /** The images in the order to map them (a later one replaces what it overlaps). */
  get images(): readonly RuntimeImage[] {
    return this.list;
  }

  /**
   * The first image at index `from` or later that a rewrite started
   * (Infinity if none): images before it show the code as it was when
   * image `from` was about to be made, wherever it had run.
   */
  firstRewriteFrom(from: number): number {
    const r = this.rewrites;
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid]! < from) lo = mid + 1;
      else hi = mid;
    }
    return lo < r.length ? r[lo]! : Infinity;
  }

  /**
   * A block of run-time code `bytes` at `address` first runs at position
   * `at`. Bytes equal to the current ones join the last image near them; a
   * difference starts a new version. Returns the block's version: the
   * highest index of the images that hold its bytes (mapped in order, they
   * show the block as it ran), or -1 if a bound left it out.
   */
  add(address: number, bytes: Uint8Array, at: number): number {
    const end = address + bytes.length;
    const state = this.compare(address, bytes);
    const matched = this.lastMatched;
    if (state === 'same') return matched;
    if (state === 'consistent') {
      // Join the last image near the block (a later one would hide the joined bytes).
      for (let k = this.list.length - 1; k >= 0; k--) {
        const im = this.list[k];
        const imEnd = im.address + im.bytes.length;
        if (im.address > end + JOIN_GAP || imEnd + JOIN_GAP < address) continue;
        if (!this.joinable(k, address, end)) break;
        const start = Math.min(im.address, address);
        const size = Math.max(imEnd, end) - start;
        if (!this.reserve(size - im.bytes.length)) return -1;
        const grown = new Uint8Array(size);
        const known = new Uint8Array(size);
        grown.set(im.bytes, im.address - start);
        known.set(im.known, im.address - start);
        grown.set(bytes, address - start);
        known.fill(1, address - start, end - start);
        im.address = start;
        im.bytes = grown;
        im.known = known;
        return Math.max(k, matched);
      }
    }
    if (this.list.length >= MAX_RUNTIME_IMAGES || !this.reserve(bytes.length)) {
      this.dropped++;
      return -1;
    }
    if (state === 'differs') {
      this.rewritten++;
      this.rewrites.push(this.list.length);
    }
    this.list.push({ address, bytes: bytes.slice(), known: new Uint8Array(bytes.length).fill(1), firstExecuted: at });
    return this.list.length - 1;
  }

  /**
   * Growing image `k` over a block at [address, end) must not cover captured
   * bytes of an earlier image with the gap's zeros (mapped later, they would
   * hide them).
   */
  private joinable(k: number, address: number, end: number): boolean {
    const im = this.list[k];
    const imEnd = im.address + im.bytes.length;
    const gap = end < im.address ? [end, im.address] : [imEnd, address];
    if (!(gap[1] > gap[0])) return true;
    for (let j = 0; j < k; j++) {
      const o = this.list[j];
      const from = Math.max(gap[0], o.address);
      const to = Math.min(gap[1], o.address + o.bytes.length);
      for (let a = from; a < to; a++) if (o.known[a - o.address] !== 0) return false;
    }
    return true;
  }

  private reserve(n: number): boolean {
    if (this.held.bytes + n > MAX_RUNTIME_BYTES) {
      this.dropped++;
      return false;
    }
    this.held.bytes += n;
    return true;
  }

  /**
   * How `bytes` at `address` compare with the current bytes there (each
   * address's last captured byte): all captured and equal ('same'), equal
   * where captured ('consistent'), or different somewhere ('differs').
   */
  private compare(address: number, bytes: Uint8Array): 'same' | 'consistent' | 'differs' {
    const n = bytes.length;
    const seen = new Uint8Array(n);
    let left = n;
    this.lastMatched = -1;
    for (let k = this.list.length - 1; k >= 0 && left > 0; k--) {
      const im = this.list[k];
      const from = Math.max(address, im.address);
      const to = Math.min(address + n, im.address + im.bytes.length);
      for (let a = from; a < to; a++) {
        const i = a - address;
        if (seen[i] !== 0 || im.known[a - im.address] === 0) continue;
        if (im.bytes[a - im.address] !== bytes[i]) return 'differs';
        seen[i] = 1;
        left--;
        if (this.lastMatched < 0) this.lastMatched = k;
      }
    }
    return left === 0 ? 'same' : 'consistent';
  }
}
