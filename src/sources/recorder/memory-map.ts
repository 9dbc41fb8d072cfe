/**
 * The recorded program's executable mappings, so that every executed IP maps
 * to a file and offset (the raw images a decoder needs).
 *
 * The paths come from the program (hostile): every file is read through
 * {@link GuestFiles}, as the program saw it, never by the host path of the
 * same name; mappings and open descriptors are bounded in number.
 *
 * Sources, all from qemu's log:
 * - The main binary and its ELF interpreter (ld.so) are loaded by qemu
 *   itself, not by syscalls. The post-load layout dump (`-d page`) gives
 *   `start_code` (lowest address of the main binary's executable segments)
 *   and `entry` (the interpreter's entry point when there is one, else the
 *   program's); with the ELF program headers they give both load biases.
 * - Everything else (shared libraries, dlopen) is mapped by the guest:
 *   `-strace` shows `openat(...) = fd` and `mmap(addr,len,prot,flags,fd,off)
 *   = result`. Executable file mappings are kept; `close` forgets an fd.
 *
 * Code no file holds is captured from the translations ({@link runtime}).
 *
 * A later mapping replaces the parts of earlier ones it overlaps, as mmap
 * does. Mappings are never dropped on munmap: the image describes every
 * address that executed during the recording.
 */
import { isAbsolute, resolve } from 'node:path';
import { ElfFile, PF_X, PT_LOAD } from '../../flow/elf.js';
import { INPUT_LIMITS } from '../import/safe-files.js';
import type { GuestFiles } from './guest-files.js';
import { RuntimeCode } from './runtime-code.js';

const PT_INTERP = 3;
/** Descriptors tracked at once (the sandbox allows 1024 open files). */
const MAX_FDS = 1 << 16;
/** Distinct warnings kept; the rest are counted. */
const MAX_WARNINGS = 100;
/** Ranges remembered as having been writable; beyond, every range counts as such. */
const MAX_WRITABLE_RANGES = 1 << 16;

/** One executable file mapping. */
export interface ImageMapping {
  /** The file as the program named it (absolute). */
  path: string;
  /** First mapped byte's offset in the file. */
  offset: number;
  /** Bytes mapped from the file (clipped to the file's size by {@link MemoryMap.images}). */
  size: number;
  /** Load address. */
  address: number;
}

export class MemoryMap {
  private readonly fds = new Map<number, string>();
  private mappings: ImageMapping[] = [];
  private startCode = NaN;
  private entry = NaN;
  private droppedWarnings = 0;
  private tooMany = false;
  /** [start, end) ranges that were mapped or made writable at some point (code there may be modified). */
  private readonly writable: Array<[number, number]> = [];
  private allWritable = false;
  /** Warnings for the report (unparsable lines are not errors). */
  readonly warnings: string[] = [];
  /** Executed code that no file holds (runtime-code.ts). */
  runtime = new RuntimeCode();

  constructor(
    /** The program's path as the emulator was given it (the guest's path). */
    private readonly program: string,
    /** The guest's working directory, for relative openat paths. */
    private readonly cwd: string,
    /** The files as the program saw them. */
    private readonly files: GuestFiles,
  ) {}

  /** A forked child's address space: a copy of this one at the fork. */
  fork(): MemoryMap {
    const m = new MemoryMap(this.program, this.cwd, this.files);
    for (const [fd, path] of this.fds) m.fds.set(fd, path);
    m.mappings = this.mappings.map((x) => ({ ...x }));
    m.startCode = this.startCode;
    m.entry = this.entry;
    m.writable.push(...this.writable.map(([a, b]): [number, number] => [a, b]));
    m.allWritable = this.allWritable;
    m.tooMany = this.tooMany;
    m.runtime = this.runtime.fork();
    return m;
  }

  private warn(text: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(text);
    else this.droppedWarnings++;
  }

  layout(name: string, value: number): void {
    if (name === 'start_code') this.startCode = value;
    else if (name === 'entry') this.entry = value;
  }

  /**
   * Place the main binary and its interpreter once the layout is known.
   * Returns false if the layout lines were missing.
   */
  placeLoadedElves(): boolean {
    if (Number.isNaN(this.startCode) || Number.isNaN(this.entry)) return false;
    const bytes = this.files.read(this.program);
    if (bytes === null) return false;
    const main = ElfFile.parse(bytes, this.program);
    const execSegs = main.segments.filter((s) => s.type === PT_LOAD && (s.flags & PF_X) !== 0);
    if (execSegs.length === 0) return false;
    const mainBias = this.startCode - Math.min(...execSegs.map((s) => s.vaddr));
    this.addElf(this.program, main, mainBias);
    const interp = interpreterOf(main, bytes);
    if (interp !== null) {
      const ldBytes = this.files.read(interp);
      if (ldBytes === null) {
        this.warn(`cannot read the program's loader ${interp}`);
        return true;
      }
      const ld = ElfFile.parse(ldBytes, interp);
      this.addElf(interp, ld, this.entry - ld.entry);
    }
    return true;
  }

  private addElf(path: string, elf: ElfFile, bias: number): void {
    for (const s of elf.segments) {
      if (s.type !== PT_LOAD || (s.flags & PF_X) === 0 || s.filesz === 0) continue;
      this.add({ path, offset: s.offset, size: s.filesz, address: s.vaddr + bias });
    }
  }

  /** One `-strace` line (without the pid). */
  syscall(line: string): void {
    const paren = line.indexOf('(');
    if (paren <= 0) return;
    const name = line.slice(0, paren);
    switch (name) {
      case 'openat':
      case 'open': {
        const m = /^open(?:at)?\((?:[^,]*,)?"((?:[^"\\]|\\.)*)",.*\) = (-?\d+)/.exec(line);
        if (m && Number(m[2]) >= 0 && Number(m[2]) < MAX_FDS) {
          const p = m[1];
          this.fds.set(Number(m[2]), isAbsolute(p) ? resolve(p) : resolve(this.cwd, p));
        }
        return;
      }
      case 'close': {
        const m = /^close\((\d+)\) = 0/.exec(line);
        if (m) this.fds.delete(Number(m[1]));
        return;
      }
      case 'mmap': {
        const m = /^mmap\(([^,]+),(\d+),([^,]+),([^,]+),(-?\d+),(0x[0-9a-fA-F]+|\d+)\)\s*= (0x[0-9a-fA-F]+|-\d+)/.exec(line);
        if (!m || m[7].startsWith('-')) return;
        const at = Number(m[7]);
        const length = Number(m[2]);
        if (m[3].includes('PROT_WRITE')) this.markWritable(at, at + length);
        // Whatever was mapped there before is gone.
        this.cut(at, at + length);
        if (!m[3].includes('PROT_EXEC')) return;
        const fd = Number(m[5]);
        const path = this.fds.get(fd);
        if (path === undefined) {
          if (fd >= 0) this.warn(`executable mapping of unknown fd ${fd}: ${line.slice(0, 200)}`);
          return;
        }
        const offset = Number(m[6]);
        const size = Number(m[2]);
        if (size > 0 && Number.isSafeInteger(offset) && Number.isSafeInteger(size)) this.add({ path, offset, size, address: at });
        return;
      }
      case 'mprotect':
      case 'pkey_mprotect': {
        const m = /^\w+\((0x[0-9a-fA-F]+|\d+),(\d+),([^,)]+)[,)].* = 0$/.exec(line);
        if (m && m[3].includes('PROT_WRITE')) {
          const at = Number(m[1]);
          this.markWritable(at, at + Number(m[2]));
        }
        return;
      }
      default:
        return;
    }
  }

  /** Add a mapping, cutting the parts of older ones it covers. */
  add(m: ImageMapping): void {
    if (this.mappings.length >= INPUT_LIMITS.images) {
      if (!this.tooMany) this.warn(`more than ${INPUT_LIMITS.images} executable file mappings: later ones are not kept`);
      this.tooMany = true;
      return;
    }
    this.cut(m.address, m.address + m.size);
    this.mappings.push(m);
    this.mappings.sort((a, b) => a.address - b.address);
  }

  /** Remove [start, end) from the file mappings (a new mapping replaced it). */
  private cut(start: number, end: number): void {
    if (!(end > start)) return;
    let touched = false;
    const kept: ImageMapping[] = [];
    for (const o of this.mappings) {
      const oEnd = o.address + o.size;
      if (oEnd <= start || o.address >= end) {
        kept.push(o);
        continue;
      }
      touched = true;
      if (o.address < start) kept.push({ ...o, size: start - o.address });
      if (oEnd > end) kept.push({ ...o, offset: o.offset + (end - o.address), address: end, size: oEnd - end });
    }
    if (touched) this.mappings = kept;
  }

  private markWritable(start: number, end: number): void {
    if (!(end > start)) return;
    if (this.writable.length >= MAX_WRITABLE_RANGES) this.allWritable = true;
    else this.writable.push([start, end]);
  }

  /** True if some byte of [start, end) was mapped or made writable during the recording. */
  wasWritable(start: number, end: number): boolean {
    if (this.allWritable) return true;
    for (const [a, b] of this.writable) if (a < end && start < b) return true;
    return false;
  }

  /** The bytes of a file the host showed the program (null for files it made itself, or unreadable ones). */
  fileBytes(path: string): Buffer | null {
    if (this.files.isMadeByProgram(path)) return null;
    return this.files.read(path);
  }

  /** The mapping holding `ip`, or null. */
  mappingAt(ip: number): ImageMapping | null {
    let lo = 0;
    let hi = this.mappings.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.mappings[mid];
      if (ip < m.address) hi = mid - 1;
      else if (ip >= m.address + m.size) lo = mid + 1;
      else return m;
    }
    return null;
  }

  /** True if `ip` lies in a known mapping. */
  contains(ip: number): boolean {
    return this.mappingAt(ip) !== null;
  }

  /**
   * The executable mappings, by address, each clipped to its file's size;
   * mappings of files that cannot be read as the program saw them are left
   * out, with a warning.
   */
  images(): ImageMapping[] {
    const out: ImageMapping[] = [];
    for (const m of this.mappings) {
      const bytes = this.files.read(m.path);
      if (bytes === null) {
        this.warn(`${m.path}: executable mapping at 0x${m.address.toString(16)} of a file ptscope cannot read as the program saw it: not kept (${this.files.refused.get(m.path) ?? 'unreadable'})`);
        continue;
      }
      const size = Math.min(m.size, bytes.length - m.offset);
      if (size > 0) out.push({ ...m, size });
    }
    if (this.droppedWarnings > 0) {
      this.warnings.push(`${this.droppedWarnings} more warnings of the recorder's memory map`);
      this.droppedWarnings = 0;
    }
    return out;
  }
}

/** The PT_INTERP path of `elf` (whose file is `bytes`), or null for a static binary. */
export function interpreterOf(elf: ElfFile, bytes: Uint8Array): string | null {
  const seg = elf.segments.find((s) => s.type === PT_INTERP);
  if (!seg) return null;
  let end = seg.offset;
  const stop = Math.min(bytes.length, seg.offset + Math.min(seg.filesz, 4096));
  while (end < stop && bytes[end] !== 0) end++;
  return Buffer.from(bytes.subarray(seg.offset, end)).toString('latin1');
}
