import type { TraceSource } from '../../packets/trace-source.js';
import type { RandomAccessFile } from './file-access.js';
import { partitionPoint } from '../../flow/sorted-search.js';

/**
 * The Intel PT byte streams of a perf.data. perf record copies the AUX
 * area of each mmap (one per cpu with per-cpu mmaps, one per thread with
 * --per-thread) into AUXTRACE records; each record's data follows it in
 * the file. Concatenating the buffers of one mmap index, in file order,
 * gives that cpu's (or thread's) continuous trace, as perf's auxtrace
 * queues do.
 *
 * Streams are not copied: {@link AuxStreamSource} reads the fragments from
 * the file on demand. Snapshot-mode buffers overlap each other; they are
 * concatenated as they are (the decoder resynchronizes at the next PSB).
 */

/** One AUXTRACE buffer. */
export interface AuxFragment {
  /** File offset of the AUXTRACE record. */
  recordOffset: number;
  /** File offset of the trace bytes. */
  fileOffset: number;
  size: number;
  /** Offset of the buffer in the AUX area. */
  auxOffset: bigint;
  /** perf record's TSC when it copied the buffer (the decoder's reference for 7-byte TSCs). */
  reference: bigint;
  /** Offset of the first byte of this fragment in the stream. */
  streamOffset: number;
}

/** The trace of one mmap index. */
export class AuxStream {
  readonly fragments: AuxFragment[] = [];
  size = 0;

  constructor(
    /** AUXTRACE idx: the mmap/queue index. */
    readonly idx: number,
    /** -1 with per-thread mmaps. */
    readonly cpu: number,
    /** -1 with per-cpu mmaps. */
    readonly tid: number,
  ) {}

  add(f: Omit<AuxFragment, 'streamOffset'>): void {
    this.fragments.push({ ...f, streamOffset: this.size });
    this.size += f.size;
  }

  /** A TraceSource over the stream's bytes, read from `file` on demand. */
  source(file: RandomAccessFile): TraceSource {
    return new AuxStreamSource(file, this);
  }

  /** The fragment holding stream offset `offset`, or null past the end. */
  fragmentAt(offset: number): AuxFragment | null {
    const fr = this.fragments;
    const i = partitionPoint(fr.length, (k) => fr[k]!.streamOffset <= offset) - 1;
    return i >= 0 && offset < fr[i]!.streamOffset + fr[i]!.size ? fr[i]! : null;
  }

  /** A name for messages: `cpu 3` or `tid 1234`. */
  get label(): string {
    return this.cpu >= 0 ? `cpu ${this.cpu}` : this.tid >= 0 ? `tid ${this.tid}` : `queue ${this.idx}`;
  }
}

/** Reads a stream's fragments from the perf.data file. */
export class AuxStreamSource implements TraceSource {
  constructor(
    private readonly file: RandomAccessFile,
    private readonly stream: AuxStream,
  ) {}

  get size(): number {
    return this.stream.size;
  }

  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    let done = 0;
    let pos = offset;
    const end = Math.min(offset + length, this.stream.size);
    while (pos < end) {
      const f = this.stream.fragmentAt(pos);
      if (f === null) break;
      const within = pos - f.streamOffset;
      const n = Math.min(end - pos, f.size - within);
      const got = this.file.readInto(dst, dstOffset + done, f.fileOffset + within, n);
      done += got;
      pos += got;
      if (got < n) break;
    }
    return done;
  }

  /** The file stays open: the model that owns it closes it. */
  close(): void {}
}

/** Groups AUXTRACE records into streams by mmap index, keeping file order. */
export class AuxStreamCollector {
  private readonly byIdx = new Map<number, AuxStream>();

  add(idx: number, cpu: number, tid: number, f: Omit<AuxFragment, 'streamOffset'>): void {
    let s = this.byIdx.get(idx);
    if (!s) {
      s = new AuxStream(idx, cpu, tid);
      this.byIdx.set(idx, s);
    }
    s.add(f);
  }

  get count(): number {
    return this.byIdx.size;
  }

  /** Streams ordered by index. */
  streams(): AuxStream[] {
    return [...this.byIdx.values()].sort((a, b) => a.idx - b.idx);
  }
}
