/**
 * ELF reading for ptxed's `--elf <file>[:<base>]` (ptxed/src/load_elf.c) and
 * for symbol names in reports.
 *
 * Layouts: System V ABI, "ELF Header", "Program Header", "Sections",
 * "Symbol Table", "Note Section"; ELFCLASS32 and ELFCLASS64, either byte order.
 *
 * Loading follows load_elf.c exactly: every PT_LOAD segment with a non-zero
 * p_filesz is mapped, executable or not, at p_vaddr; with a non-zero base,
 * every segment moves by `base - (lowest PT_LOAD p_vaddr)`, so the lowest
 * segment lands at `base` (for PIE and shared objects linked at 0 that is the
 * load address). Only the file-backed part (p_filesz) is mapped; the .bss
 * tail of p_memsz is not code.
 *
 * Every offset and count read from the file is checked against its size; a
 * malformed file throws PtError(BadImage) with the reason, never a RangeError.
 */
import { readFileSync } from 'node:fs';
import { ErrorCode, errorMessage, PtError } from '../packets/errors.js';
import { ANY_ASID, Asid, ipFromBigInt } from './address-space.js';
import type { Image } from './image.js';
import { ByteSourceCache } from './section.js';
import { lastAtOrBelow } from './sorted-search.js';

export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
export const SHT_SYMTAB = 2;
export const SHT_NOTE = 7;
export const SHT_DYNSYM = 11;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const EM_386 = 3;
export const EM_X86_64 = 62;
const NT_GNU_BUILD_ID = 3;
const SHN_UNDEF = 0;
const SHN_XINDEX = 0xffff;
const STT_NOTYPE = 0;
const STT_OBJECT = 1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;

/** A program header. Addresses are signed-double ips (address-space.ts). */
export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

/** A section header. */
export interface ElfSectionHeader {
  name: string;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

/** A defined symbol from .symtab or .dynsym. */
export interface ElfSymbol {
  name: string;
  /** Link-time address. */
  value: number;
  size: number;
  /** STT_* */
  type: number;
  /** STB_* */
  bind: number;
}

/** Result of {@link ElfFile.symbolize}. */
export interface SymbolHit {
  name: string;
  /** ip - symbol address. */
  offset: number;
  symbol: ElfSymbol;
}

function bad(name: string, why: string): PtError {
  return new PtError(ErrorCode.BadImage, 0, `${name}: bad ELF: ${why}`);
}

/** Bounds-checked little/big-endian reads over the file bytes. */
class Reader {
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    readonly le: boolean,
    readonly name: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  check(at: number, len: number, what: string): void {
    if (!(at >= 0) || !(len >= 0) || at + len > this.bytes.length) {
      throw bad(this.name, `${what} at 0x${at.toString(16)}+0x${len.toString(16)} lies outside the file (size 0x${this.bytes.length.toString(16)})`);
    }
  }

  u8(at: number): number {
    this.check(at, 1, 'field');
    return this.view.getUint8(at);
  }

  u16(at: number): number {
    this.check(at, 2, 'field');
    return this.view.getUint16(at, this.le);
  }

  u32(at: number): number {
    this.check(at, 4, 'field');
    return this.view.getUint32(at, this.le);
  }

  u64(at: number): bigint {
    this.check(at, 8, 'field');
    return this.view.getBigUint64(at, this.le);
  }

  /** An unsigned file offset or size, which must fit a double exactly. */
  size64(at: number): number {
    const v = this.u64(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(this.name, `value 0x${v.toString(16)} at 0x${at.toString(16)} is too large`);
    return Number(v);
  }

  /** A NUL-terminated string starting at `at`, not beyond `end`. */
  cstring(at: number, end: number): string {
    if (at >= end || at >= this.bytes.length) return '';
    const stop = Math.min(end, this.bytes.length);
    let i = at;
    while (i < stop && this.bytes[i] !== 0) i++;
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + at, i - at).toString('latin1');
  }
}

export class ElfFile {
  /** 32 or 64 (ELFCLASS32 or ELFCLASS64). */
  readonly bits: 32 | 64;
  readonly littleEndian: boolean;
  /** e_type: ET_EXEC, ET_DYN, ... */
  readonly type: number;
  /** e_machine: EM_X86_64, EM_386, ... */
  readonly machine: number;
  /** Entry point (link-time address). */
  readonly entry: number;
  readonly segments: readonly ElfSegment[];
  readonly sections: readonly ElfSectionHeader[];
  /** Defined symbols of .symtab and .dynsym, sorted by address. */
  readonly symbols: readonly ElfSymbol[];
  /** The GNU build-id note as lower-case hex, or null. */
  readonly buildId: string | null;
  private readonly symValues: Float64Array;

  private constructor(
    readonly name: string,
    r: Reader,
    bits: 32 | 64,
  ) {
    this.bits = bits;
    this.littleEndian = r.le;
    const is64 = bits === 64;
    r.check(0, is64 ? 64 : 52, 'ELF header');
    this.type = r.u16(16);
    this.machine = r.u16(18);
    this.entry = is64 ? ipFromBigInt(r.u64(24)) : r.u32(24);
    const phoff = is64 ? r.size64(32) : r.u32(28);
    const shoff = is64 ? r.size64(40) : r.u32(32);
    const phentsize = r.u16(is64 ? 54 : 42);
    let phnum = r.u16(is64 ? 56 : 44);
    const shentsize = r.u16(is64 ? 58 : 46);
    let shnum = r.u16(is64 ? 60 : 48);
    let shstrndx = r.u16(is64 ? 62 : 50);

    const minPh = is64 ? 56 : 32;
    const minSh = is64 ? 64 : 40;
    // Extended numbering (gABI): counts that do not fit live in section 0.
    if (shoff !== 0 && shentsize >= minSh) {
      r.check(shoff, minSh, 'section header 0');
      if (shnum === 0) shnum = is64 ? r.size64(shoff + 32) : r.u32(shoff + 20);
      if (shstrndx === SHN_XINDEX) shstrndx = r.u32(shoff + (is64 ? 40 : 24));
      if (phnum === 0xffff) phnum = r.u32(shoff + (is64 ? 44 : 28));
    }

    const segments: ElfSegment[] = [];
    if (phnum > 0) {
      if (phentsize < minPh) throw bad(name, `program header entry size ${phentsize} < ${minPh}`);
      r.check(phoff, phnum * phentsize, 'program header table');
      for (let i = 0; i < phnum; i++) {
        const at = phoff + i * phentsize;
        segments.push(
          is64
            ? {
                type: r.u32(at),
                flags: r.u32(at + 4),
                offset: r.size64(at + 8),
                vaddr: ipFromBigInt(r.u64(at + 16)),
                filesz: r.size64(at + 32),
                memsz: r.size64(at + 40),
              }
            : {
                type: r.u32(at),
                offset: r.u32(at + 4),
                vaddr: r.u32(at + 8),
                filesz: r.u32(at + 16),
                memsz: r.u32(at + 20),
                flags: r.u32(at + 24),
              },
        );
      }
    }
    this.segments = segments;

    const raw: (ElfSectionHeader & { nameOff: number })[] = [];
    if (shoff !== 0 && shnum > 0) {
      if (shentsize < minSh) throw bad(name, `section header entry size ${shentsize} < ${minSh}`);
      r.check(shoff, shnum * shentsize, 'section header table');
      for (let i = 0; i < shnum; i++) {
        const at = shoff + i * shentsize;
        raw.push(
          is64
            ? {
                name: '',
                nameOff: r.u32(at),
                type: r.u32(at + 4),
                flags: Number(r.u64(at + 8) & 0xffffffffn),
                addr: ipFromBigInt(r.u64(at + 16)),
                offset: r.size64(at + 24),
                size: r.size64(at + 32),
                link: r.u32(at + 40),
                entsize: r.size64(at + 56),
              }
            : {
                name: '',
                nameOff: r.u32(at),
                type: r.u32(at + 4),
                flags: r.u32(at + 8),
                addr: r.u32(at + 12),
                offset: r.u32(at + 16),
                size: r.u32(at + 20),
                link: r.u32(at + 24),
                entsize: r.u32(at + 36),
              },
        );
      }
      const strtab = raw[shstrndx];
      if (strtab && strtab.type !== 8 /* SHT_NOBITS */) {
        r.check(strtab.offset, strtab.size, 'section name table');
        for (const s of raw) s.name = r.cstring(strtab.offset + s.nameOff, strtab.offset + strtab.size);
      }
    }
    this.sections = raw.map(({ nameOff: _n, ...s }) => s);

    this.symbols = ElfFile.readSymbols(r, raw, is64);
    this.symValues = Float64Array.from(this.symbols, (s) => s.value);
    this.buildId = ElfFile.readBuildId(r, raw, segments);
  }

  /** Parse ELF bytes. Throws PtError(BadImage) for anything malformed. */
  static parse(bytes: Uint8Array, name = '<memory>'): ElfFile {
    if (bytes.length < 16) throw bad(name, `file too short for the ELF identification (${bytes.length} bytes)`);
    if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
      throw bad(name, 'not an ELF file (wrong magic)');
    }
    const cls = bytes[4];
    if (cls !== 1 && cls !== 2) throw bad(name, `unsupported ELF class ${cls}`);
    const data = bytes[5];
    if (data !== 1 && data !== 2) throw bad(name, `unsupported data encoding ${data}`);
    return new ElfFile(name, new Reader(bytes, data === 1, name), cls === 2 ? 64 : 32);
  }

  /** Read and parse a file. Throws PtError(BadFile) if it cannot be read. */
  static read(path: string): ElfFile {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new PtError(ErrorCode.BadFile, 0, `${path}: ${(e as Error).message}`);
    }
    return ElfFile.parse(bytes, path);
  }

  /** The segments ptxed maps: PT_LOAD with file content. */
  loadSegments(): ElfSegment[] {
    return this.segments.filter((s) => s.type === PT_LOAD && s.filesz > 0);
  }

  /** Lowest p_vaddr of any PT_LOAD segment (load_elf.c's minaddr), or NaN if none. */
  minLoadAddress(): number {
    let min = NaN;
    for (const s of this.segments) {
      if (s.type === PT_LOAD && !(s.vaddr >= min)) min = s.vaddr;
    }
    return min;
  }

  /**
   * The symbol that contains `ip` (link-time address): a sized symbol whose
   * range holds it, else the nearest zero-sized symbol at or below it.
   */
  symbolize(ip: number): SymbolHit | null {
    const values = this.symValues;
    const hi = lastAtOrBelow(values, ip);
    if (hi < 0) return null;
    // Look back over symbols at lower addresses for one whose range holds ip;
    // a few suffice since functions do not nest.
    for (let i = hi; i >= 0 && i > hi - 16; i--) {
      const s = this.symbols[i];
      if (s.size > 0 && ip < s.value + s.size) return { name: s.name, offset: ip - s.value, symbol: s };
    }
    const near = this.symbols[hi];
    if (near.size === 0) return { name: near.name, offset: ip - near.value, symbol: near };
    return null;
  }

  private static readSymbols(r: Reader, sections: ElfSectionHeader[], is64: boolean): ElfSymbol[] {
    const entSize = is64 ? 24 : 16;
    const byKey = new Map<string, ElfSymbol>();
    for (const sec of sections) {
      if (sec.type !== SHT_SYMTAB && sec.type !== SHT_DYNSYM) continue;
      const strtab = sections[sec.link];
      if (!strtab) throw bad(r.name, `symbol table ${sec.name} links to missing section ${sec.link}`);
      r.check(sec.offset, sec.size, `symbol table ${sec.name}`);
      r.check(strtab.offset, strtab.size, `string table ${strtab.name}`);
      const step = sec.entsize >= entSize ? sec.entsize : entSize;
      const count = Math.floor(sec.size / step);
      for (let i = 1; i < count; i++) {
        const at = sec.offset + i * step;
        const nameOff = r.u32(at);
        const info = r.u8(at + (is64 ? 4 : 12));
        const shndx = r.u16(at + (is64 ? 6 : 14));
        const value = is64 ? ipFromBigInt(r.u64(at + 8)) : r.u32(at + 4);
        const size = is64 ? r.size64(at + 16) : r.u32(at + 8);
        const type = info & 15;
        if (shndx === SHN_UNDEF || nameOff === 0) continue;
        if (type !== STT_FUNC && type !== STT_OBJECT && type !== STT_NOTYPE && type !== STT_GNU_IFUNC) continue;
        const name = r.cstring(strtab.offset + nameOff, strtab.offset + strtab.size);
        if (name.length === 0) continue;
        const key = `${value}:${name}`;
        if (!byKey.has(key)) byKey.set(key, { name, value, size, type, bind: info >> 4 });
      }
    }
    const syms = [...byKey.values()];
    // By address; at equal addresses, sized functions first so they win lookups.
    syms.sort((a, b) => a.value - b.value || (a.size === 0 ? 1 : 0) - (b.size === 0 ? 1 : 0));
    return syms;
  }

  private static readBuildId(r: Reader, sections: ElfSectionHeader[], segments: ElfSegment[]): string | null {
    const ranges: [number, number][] = [];
    for (const s of sections) if (s.type === SHT_NOTE) ranges.push([s.offset, s.size]);
    if (ranges.length === 0) for (const p of segments) if (p.type === PT_NOTE) ranges.push([p.offset, p.filesz]);
    for (const [off, size] of ranges) {
      r.check(off, size, 'note');
      let at = off;
      const end = off + size;
      while (at + 12 <= end) {
        const namesz = r.u32(at);
        const descsz = r.u32(at + 4);
        const type = r.u32(at + 8);
        const nameAt = at + 12;
        // Sizes are 32-bit: align without 32-bit bit operations, which wrap.
        const descAt = nameAt + Math.ceil(namesz / 4) * 4;
        const next = descAt + Math.ceil(descsz / 4) * 4;
        if (next > end || next <= at || descAt + descsz > end) break;
        if (type === NT_GNU_BUILD_ID && namesz === 4 && r.cstring(nameAt, nameAt + 4) === 'GNU') {
          return Buffer.from(r.bytes.buffer, r.bytes.byteOffset + descAt, descsz).toString('hex');
        }
        at = next;
      }
    }
    return null;
  }
}

/** An ELF mapped into an image. */
export class LoadedElf {
  constructor(
    readonly elf: ElfFile,
    /** Added to link-time addresses to get mapped addresses. */
    readonly loadOffset: number,
    /** The PT_LOAD segments mapped, in program-header order. */
    readonly mapped: readonly ElfSegment[],
    /** ptxed-style warnings (segments that could not be mapped, none found). */
    readonly warnings: readonly string[],
  ) {}

  /** Symbol for a mapped (run-time) address. */
  symbolize(ip: number): SymbolHit | null {
    return this.elf.symbolize(ip - this.loadOffset);
  }
}

/**
 * ptxed's load_elf: map the PT_LOAD segments of `path` into `image`. `base`
 * is 0 for the linked addresses, else the address of the lowest segment.
 * Throws PtError(BadFile) if the file cannot be read and PtError(BadImage)
 * if it is not a valid ELF.
 */
export function loadElf(
  image: Image,
  files: ByteSourceCache,
  path: string,
  base: bigint | number = 0,
  asid: Asid = ANY_ASID,
): LoadedElf {
  const source = files.file(path);
  const bytes = source.bytes;
  if (source.error !== null) throw new PtError(ErrorCode.BadFile, 0, `${path}: ${source.error}`);
  const elf = ElfFile.parse(bytes, path);
  const baseIp = typeof base === 'bigint' ? ipFromBigInt(base) : base;
  let loadOffset = 0;
  if (baseIp !== 0) {
    const min = elf.minLoadAddress();
    loadOffset = Number.isNaN(min) ? 0 : baseIp - min;
  }
  const warnings: string[] = [];
  const mapped: ElfSegment[] = [];
  elf.segments.forEach((seg, idx) => {
    if (seg.type !== PT_LOAD || seg.filesz === 0) return;
    let status: number;
    try {
      status = image.addFile(files, path, seg.offset, seg.filesz, seg.vaddr + loadOffset, asid);
    } catch (e) {
      status = e instanceof PtError ? -e.code : -ErrorCode.Internal;
    }
    if (status < 0) {
      warnings.push(`${path}: failed to create section for phdr ${idx}: ${errorMessage(status)}`);
      return;
    }
    mapped.push(seg);
  });
  if (mapped.length === 0) warnings.push(`${path}: did not find any load sections`);
  return new LoadedElf(elf, loadOffset, mapped, warnings);
}
