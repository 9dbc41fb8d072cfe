/**
 * Image files read and parsed once per distinct content: a trace's
 * manifest (or perf.data) may name the same library in thousands of
 * entries, or thousands of copies of one file, and each must not cost a
 * read, an ELF parse and a disassembly of its own.
 *
 * Files are keyed by the SHA-256 of their bytes; a path is re-hashed only
 * when its (device, inode, size, mtime) changes. The cache holds at most
 * {@link MAX_CACHED_BYTES} of file contents (least recently used files are
 * dropped first), and {@link MAX_IMAGE_ENTRIES} is the most image entries
 * one trace may list: importers refuse more, and the detectors' module
 * map ({@link ../../analyses/modules.ts}) does too.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync, constants } from 'node:fs';
import { ElfFile } from '../elf.js';
import { analyzeElf, type ModuleCfg } from './cfg.js';
import type { DisassemblyOptions } from './disassembly.js';

/** Most image entries (mappings) one trace may list. */
export const MAX_IMAGE_ENTRIES = 4096;
/** Most bytes of file contents kept in a cache. */
export const MAX_CACHED_BYTES = 1 << 30;
/** Largest image file read (a bigger one is refused: no executable is this large). */
export const MAX_IMAGE_FILE_BYTES = 1 << 30;

/** One distinct file content. */
export interface CachedImage {
  /** SHA-256 of the bytes, hex. */
  hash: string;
  bytes: Uint8Array;
  /** The parsed ELF, or null if the file is not one (a raw image). */
  elf: ElfFile | null;
  /** Why {@link elf} is null for a file that starts like an ELF. */
  elfError: string | null;
}

interface PathStamp {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  hash: string;
}

export class ImageCache {
  private readonly byHash = new Map<string, CachedImage>();
  private readonly byPath = new Map<string, PathStamp>();
  private readonly cfgs = new Map<string, ModuleCfg | Error>();
  private bytesHeld = 0;
  /** Files read from disk (for tests and statistics). */
  reads = 0;
  /** ELF files parsed. */
  parses = 0;
  /** Static models built. */
  analyses = 0;

  constructor(readonly maxBytes = MAX_CACHED_BYTES) {}

  /**
   * The content of regular file `path`, read and parsed once per distinct
   * content. Throws an Error with one line if it cannot be read.
   */
  load(path: string): CachedImage {
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      throw new Error(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!st.isFile()) throw new Error(`${path}: not a regular file`);
    const stamp = this.byPath.get(path);
    if (stamp !== undefined && stamp.dev === st.dev && stamp.ino === st.ino && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs) {
      const hit = this.byHash.get(stamp.hash);
      if (hit !== undefined) {
        this.touch(stamp.hash, hit);
        return hit;
      }
    }
    const bytes = readRegularFile(path);
    this.reads++;
    const hash = createHash('sha256').update(bytes).digest('hex');
    this.byPath.set(path, { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, hash });
    const known = this.byHash.get(hash);
    if (known !== undefined) {
      this.touch(hash, known);
      return known;
    }
    let elf: ElfFile | null = null;
    let elfError: string | null = null;
    if (bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46) {
      try {
        elf = ElfFile.parse(bytes, path);
        this.parses++;
      } catch (e) {
        elfError = (e as Error).message;
      }
    }
    const img: CachedImage = { hash, bytes, elf, elfError };
    this.byHash.set(hash, img);
    this.bytesHeld += bytes.length;
    this.evict();
    return img;
  }

  /** The static model of an image (built once per content). Throws the model's error, one line. */
  cfg(img: CachedImage, name: string, options?: DisassemblyOptions): ModuleCfg {
    const key = options === undefined ? img.hash : `${img.hash}:${JSON.stringify(options)}`;
    let c = this.cfgs.get(key);
    if (c === undefined) {
      if (img.elf === null) c = new Error(img.elfError ?? `${name}: not an ELF file`);
      else {
        try {
          c = analyzeElf(img.bytes, img.elf, name, options);
          this.analyses++;
        } catch (e) {
          c = new Error((e as Error).message);
        }
      }
      this.cfgs.set(key, c);
    }
    if (c instanceof Error) throw c;
    return c;
  }

  /** Files and bytes held. */
  get size(): { files: number; bytes: number } {
    return { files: this.byHash.size, bytes: this.bytesHeld };
  }

  clear(): void {
    this.byHash.clear();
    this.byPath.clear();
    this.cfgs.clear();
    this.bytesHeld = 0;
  }

  private touch(hash: string, img: CachedImage): void {
    // Map order is insertion order: re-insert to mark it recently used.
    this.byHash.delete(hash);
    this.byHash.set(hash, img);
  }

  private evict(): void {
    for (const [hash, img] of this.byHash) {
      if (this.bytesHeld <= this.maxBytes || this.byHash.size <= 1) break;
      this.byHash.delete(hash);
      this.bytesHeld -= img.bytes.length;
      for (const k of this.cfgs.keys()) if (k.startsWith(hash)) this.cfgs.delete(k);
    }
  }
}

/** Read a regular file whole, refusing anything else (a FIFO, a device) and anything over {@link MAX_IMAGE_FILE_BYTES}. */
function readRegularFile(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new Error(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path}: not a regular file`);
    if (st.size > MAX_IMAGE_FILE_BYTES) throw new Error(`${path}: ${st.size} bytes is larger than an image may be (${MAX_IMAGE_FILE_BYTES})`);
    const out = new Uint8Array(st.size);
    let n = 0;
    while (n < out.length) {
      const r = readSync(fd, out, n, out.length - n, n);
      if (r <= 0) break;
      n += r;
    }
    return n === out.length ? out : out.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The process-wide cache the analyses share (one process may analyse several traces of the same program). */
export const sharedImageCache = new ImageCache();
