/**
 * Which image decodes which part of one stream, for code rewritten while it
 * ran (a JIT reusing its buffer, an unpacker decrypting layer after layer
 * in place). One image holding every version can show each address only
 * one way, so the recorder starts a PSB+ where a thread first runs a new
 * version and names the image valid from that PSB on. The decoders switch
 * where they learn the trace position, before any instruction after it:
 * at a synchronisation and at the PSB+ status update (or the tracing
 * enable) that follows it.
 *
 * Part k's image is the stream's images with the first `layers[k]` of its
 * layers (run-time images, in order). A JIT rewrites thousands of times, so
 * the images are not built up front: each decoder holds a
 * {@link TimelineCursor} that maps the layers a later part adds into its
 * own working image, and builds one anew only when it goes back.
 */
/**
 * Builds the images of a timeline (the source that knows the files does).
 * Generic in the image type so that this file needs no import of image.ts,
 * which holds a timeline.
 */
export interface TimelineLayers<I> {
  /** A new image with the first `n` layers. */
  build(n: number): I;
  /** `image` (holding the first `from` layers) with layers [from, to) added: the same image, or a new one. */
  extend(image: I, from: number, to: number): I;
}

export class ImageTimeline<I> {
  /**
   * `offsets[k]`: the trace offset of the PSB from which part k applies
   * (increasing, the first 0); `layers[k]`: how many layers it maps.
   */
  constructor(
    readonly offsets: readonly number[],
    readonly layers: readonly number[],
    readonly source: TimelineLayers<I>,
  ) {
    if (offsets.length === 0 || offsets.length !== layers.length || offsets[0] !== 0) throw new Error('image timeline: one layer count per offset, the first at 0');
    for (let k = 1; k < offsets.length; k++) if (!(offsets[k]! > offsets[k - 1]!)) throw new Error('image timeline: offsets must increase');
  }

  /** The index of the part valid at the PSB at `syncOffset` (the last one at or before it). */
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

  /** A decoder's own working image over this timeline. */
  cursor(): TimelineCursor<I> {
    return new TimelineCursor(this);
  }
}

export class TimelineCursor<I> {
  private image: I | null = null;
  private mapped = 0;

  constructor(private readonly timeline: ImageTimeline<I>) {}

  /** The image of part `k`: the working image, extended (or built anew when `k` maps fewer layers). */
  imageFor(k: number): I {
    const n = this.timeline.layers[k]!;
    const src = this.timeline.source;
    if (this.image === null || n < this.mapped) this.image = src.build(n);
    else if (n > this.mapped) this.image = src.extend(this.image, this.mapped, n);
    this.mapped = n;
    return this.image;
  }
}
