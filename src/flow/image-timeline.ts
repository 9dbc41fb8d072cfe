/**
 * Which image decodes which part of one stream, for code rewritten while it
 * ran (a JIT reusing its buffer, an unpacker decrypting layer after layer
 * in place). One image holding every version can show each address only
 * one way, so the recorder starts a PSB+ where a thread first runs a new
 * version and names the image valid from that PSB on. The decoders switch
 * where they learn the trace position, before any instruction after it:
 * at a synchronisation and at the PSB+ status update (or the tracing
 * enable) that follows it.
 */
import type { Image } from './image.js';

export class ImageTimeline {
  /**
   * `offsets[k]`: the trace offset of the PSB from which `images[k]`
   * applies; increasing, the first 0.
   */
  constructor(
    readonly offsets: readonly number[],
    readonly images: readonly Image[],
  ) {
    if (offsets.length === 0 || offsets.length !== images.length || offsets[0] !== 0) throw new Error('image timeline: one image per offset, the first at 0');
    for (let k = 1; k < offsets.length; k++) if (!(offsets[k]! > offsets[k - 1]!)) throw new Error('image timeline: offsets must increase');
  }

  /** The index of the image valid at the PSB at `syncOffset` (the last one at or before it). */
  indexAt(syncOffset: number): number {
    const o = this.offsets;
    let lo = 0;
    let hi = o.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (o[mid]! <= syncOffset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
