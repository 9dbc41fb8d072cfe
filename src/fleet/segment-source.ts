/**
 * A segment of a trace stream as a stream of its own: the bytes [from, to)
 * of the original, read on demand through its {@link TraceSource}, with the
 * same configuration and memory image. A segment that starts at a PSB
 * decodes on its own (the PSB+ restarts every decoder state that return
 * compression and IP compression carry).
 */
import type { TraceSource } from '../packets/trace-source.js';
import type { TraceStream } from '../sources/model/recording.js';

/** The bytes [from, to) of another source, at offsets [0, to - from). */
export class TraceSubRange implements TraceSource {
  readonly size: number;

  constructor(
    private readonly source: TraceSource,
    private readonly from: number,
    to: number,
  ) {
    if (!(from >= 0 && from <= to && to <= source.size)) {
      source.close();
      throw new Error(`segment [${from}, ${to}) is outside the trace (${source.size} bytes)`);
    }
    this.size = to - from;
  }

  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    const n = Math.max(0, Math.min(length, this.size - offset));
    return n === 0 ? 0 : this.source.read(dst, dstOffset, this.from + offset, n);
  }

  close(): void {
    this.source.close();
  }
}

/** The stream restricted to bytes [from, to). */
export function streamSegment(stream: TraceStream, from: number, to: number): TraceStream {
  if (!(from >= 0 && from <= to && to <= stream.size)) throw new Error(`segment [${from}, ${to}) is outside the trace (${stream.size} bytes)`);
  return {
    index: stream.index,
    label: `${stream.label} [${from}, ${to})`,
    pid: stream.pid,
    tid: stream.tid,
    cpu: stream.cpu,
    size: to - from,
    open: () => new TraceSubRange(stream.open(), from, to),
    config: stream.config,
    image: stream.image,
    files: stream.files,
    mappings: stream.mappings,
    // The recorder's ground truth is for the whole stream.
    expected: null,
    notes: stream.notes,
  };
}
