/**
 * Sections: a range of bytes from a file or from memory (libipt's
 * `pt_section`), before it is mapped at an address (see image.ts).
 *
 * A file's content is read at most once, on the first access, into one
 * buffer that every section of that file shares (the role mmap plays in
 * libipt's pt_section_posix.c). Sections hand out `Uint8Array` views into
 * that buffer; nothing is copied on the read path.
 *
 * Buffers are treated as immutable once a section refers to them: the
 * instruction decoder caches decoded instructions per buffer. To change code
 * (self-modifying or unpacked code), add a new memory section over it.
 */
import { readFileSync, statSync } from 'node:fs';
import { ErrorCode, PtError } from '../packets/errors.js';

/** The bytes behind one or more sections: a file, read lazily, or a memory buffer. */
export class ByteSource {
  private data: Uint8Array | null;
  private loadError: string | null = null;

  private constructor(
    /** File name, or a caller-chosen name for memory buffers. */
    readonly name: string,
    /** Size in bytes, known before the content is read. */
    readonly size: number,
    private readonly loader: (() => Uint8Array) | null,
    data: Uint8Array | null,
    /** True for a file on disk, false for a memory buffer. */
    readonly isFile: boolean,
  ) {
    this.data = data;
  }

  /** A file; only its size is read now, the content on first use. Throws PtError. */
  static fromFile(path: string): ByteSource {
    let size: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new Error('not a regular file');
      size = st.size;
    } catch (e) {
      throw new PtError(ErrorCode.BadFile, 0, `${path}: ${(e as Error).message}`);
    }
    return new ByteSource(path, size, () => readFileSync(path), null, true);
  }

  /** A buffer already in memory, such as code dumped from a process. */
  static fromMemory(name: string, bytes: Uint8Array): ByteSource {
    return new ByteSource(name, bytes.length, null, bytes, false);
  }

  /** The content; read from disk on the first call. Empty if reading failed (see {@link error}). */
  get bytes(): Uint8Array {
    if (this.data === null) this.load();
    return this.data as Uint8Array;
  }

  /** True once the content is in memory. */
  get isLoaded(): boolean {
    return this.data !== null;
  }

  /** Why the content could not be read, or null. */
  get error(): string | null {
    return this.loadError;
  }

  private load(): void {
    try {
      this.data = (this.loader as () => Uint8Array)();
    } catch (e) {
      this.loadError = (e as Error).message;
      this.data = new Uint8Array(0);
    }
  }
}

/**
 * Shares one {@link ByteSource} per file name, like libipt's image section
 * cache shares mapped files between images.
 */
export class ByteSourceCache {
  private readonly files = new Map<string, ByteSource>();

  /** The source for `path`, created on first request. Throws PtError for a missing file. */
  file(path: string): ByteSource {
    let src = this.files.get(path);
    if (!src) {
      src = ByteSource.fromFile(path);
      this.files.set(path, src);
    }
    return src;
  }

  /** Forget all files (their buffers are freed once no section refers to them). */
  clear(): void {
    this.files.clear();
  }
}

let nextSectionId = 1;

/**
 * A contiguous range `[offset, offset + size)` of a {@link ByteSource}
 * (libipt's `pt_section`). Immutable.
 */
export class Section {
  /** Unique per section; usable as a cache key. */
  readonly id: number = nextSectionId++;

  constructor(
    readonly source: ByteSource,
    /** Offset of the first byte in the source. */
    readonly offset: number,
    /** Number of bytes. */
    readonly size: number,
  ) {}

  /** The name of the file or memory buffer. */
  get filename(): string {
    return this.source.name;
  }

  /**
   * A section for `size` bytes of `source` from `offset`, truncated at the
   * end of the source, as libipt's `pt_mk_section` does. `size` may be
   * `Infinity` for "to the end". Throws PtError(Invalid) if `offset` lies at
   * or beyond the end.
   */
  static create(source: ByteSource, offset = 0, size = Infinity): Section {
    if (!(offset >= 0) || !Number.isSafeInteger(offset) || offset >= source.size) {
      throw new PtError(
        ErrorCode.Invalid,
        0,
        `${source.name}: offset 0x${offset.toString(16)} beyond the end (size 0x${source.size.toString(16)})`,
      );
    }
    if (!(size >= 0)) throw new PtError(ErrorCode.Invalid, 0, `${source.name}: bad size ${size}`);
    const room = source.size - offset;
    return new Section(source, offset, size < room ? size : room);
  }

  /** A section over a memory buffer: an overlay for code that differs from the file on disk. */
  static fromMemory(name: string, bytes: Uint8Array): Section {
    return new Section(ByteSource.fromMemory(name, bytes), 0, bytes.length);
  }
}
