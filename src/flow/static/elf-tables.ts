/**
 * The ELF tables static analysis needs beyond what elf.ts reads: dynamic
 * symbols by index (imports included), relocations, pointer-sized reads at
 * link-time addresses, and the unwind tables (.eh_frame FDEs and their LSDA
 * call-site tables in .gcc_except_table) that give function starts and
 * exception landing pads.
 *
 * Layouts: System V ABI "Relocation" and the x86-64 psABI relocation types;
 * the LSB "Exception Frames" (.eh_frame, pointer encodings DW_EH_PE_*) and
 * the Itanium C++ ABI LSDA layout used by gcc's personality routine.
 *
 * All reads are bounds-checked; a malformed table is skipped, never thrown on:
 * static analysis must still work on what is readable.
 */
import { PT_LOAD, type ElfFile, type ElfSectionHeader } from '../elf.js';
import { ipFromHiLo } from '../address-space.js';
import { partitionPoint } from '../sorted-search.js';

export const SHT_PROGBITS = 1;
export const SHT_RELA = 4;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const SHT_RELR = 19;
export const SHT_DYNSYM = 11;
export const SHT_INIT_ARRAY = 14;
export const SHT_FINI_ARRAY = 15;
export const SHT_PREINIT_ARRAY = 16;
export const SHF_WRITE = 1;
export const SHF_ALLOC = 2;
export const SHF_EXECINSTR = 4;

export const R_X86_64_64 = 1;
export const R_X86_64_GLOB_DAT = 6;
export const R_X86_64_JUMP_SLOT = 7;
export const R_X86_64_RELATIVE = 8;
export const R_X86_64_IRELATIVE = 37;
export const R_386_32 = 1;
export const R_386_GLOB_DAT = 6;
export const R_386_JMP_SLOT = 7;
export const R_386_RELATIVE = 8;
export const R_386_IRELATIVE = 42;

export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_GNU_IFUNC = 10;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;

/** A .dynsym entry, defined or not (index 0 is the null symbol). */
export interface DynamicSymbol {
  name: string;
  value: number;
  size: number;
  type: number;
  bind: number;
  /** st_other & 3 (STV_DEFAULT = 0). */
  visibility: number;
  /** Section index; 0 for an import. */
  shndx: number;
}

/** One relocation, normalised to RELA form (REL addends read in place). */
export interface Relocation {
  /** Link-time address of the relocated word. */
  offset: number;
  type: number;
  symIndex: number;
  addend: number;
  /** Name of the section that holds the relocation ('.rela.plt', '.rela.dyn', ...). */
  table: string;
}

/** Largest address or size believed in a hostile header: beyond it, doubles lose integer precision. */
const MAX_ADDRESS = 2 ** 53;

/**
 * The section headers as the file can back them. Headers are input like any
 * other: a `.rodata` claiming 2^50 bytes must not make a loop run 2^50 times.
 * - every size is clamped to the bytes the file has after the offset;
 * - an allocated section must lie in a PT_LOAD segment (when the file has
 *   any): it is cut to the segment's file-backed part, and its offset is
 *   the one the loader maps (segment offset + distance from p_vaddr), since
 *   that is what the program sees at those addresses;
 * - an allocated section outside every PT_LOAD has no bytes at run time:
 *   its size becomes 0;
 * - NOBITS sections keep their size (nothing reads them) but within
 *   {@link MAX_ADDRESS}.
 */
export function fileBackedSections(elf: ElfFile, fileSize: number): ElfSectionHeader[] {
  const loads = elf.segments.filter((g) => g.type === PT_LOAD && g.filesz > 0);
  return elf.sections.map((s) => {
    const out = { ...s };
    const finite = (v: number) => Number.isFinite(v) && v >= 0 && v < MAX_ADDRESS;
    if (!finite(out.addr) || !finite(out.size) || !finite(out.offset)) out.size = 0;
    if (out.type === SHT_NOBITS) return out;
    if ((out.flags & SHF_ALLOC) !== 0 && loads.length > 0 && out.size > 0) {
      const seg = loads.find((g) => out.addr >= g.vaddr && out.addr < g.vaddr + Math.min(g.filesz, g.memsz));
      if (seg === undefined) {
        out.size = 0;
      } else {
        out.size = Math.min(out.size, seg.vaddr + Math.min(seg.filesz, seg.memsz) - out.addr);
        out.offset = seg.offset + (out.addr - seg.vaddr);
      }
    }
    out.size = Math.max(0, Math.min(out.size, fileSize - out.offset));
    return out;
  });
}

/** Reads of an ELF's file bytes by section and by link-time address. */
export class ElfBytes {
  private readonly view: DataView;
  private readonly mapped: ElfSectionHeader[];
  /** The section headers clamped to what the file backs ({@link fileBackedSections}): use these, never `elf.sections`. */
  readonly sections: ElfSectionHeader[];

  constructor(
    readonly bytes: Uint8Array,
    readonly elf: ElfFile,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.sections = fileBackedSections(elf, bytes.length);
    this.mapped = this.sections
      .filter((s) => (s.flags & SHF_ALLOC) !== 0 && s.type !== SHT_NOBITS && s.size > 0)
      .slice()
      .sort((a, b) => a.addr - b.addr);
  }

  get is64(): boolean {
    return this.elf.bits === 64;
  }

  section(name: string): ElfSectionHeader | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** The file offset of link-time address `addr` for `len` bytes, or -1 if not file-backed. */
  fileOffset(addr: number, len = 1): number {
    const list = this.mapped;
    const i = partitionPoint(list.length, (k) => list[k].addr <= addr) - 1;
    if (i < 0) return -1;
    const s = list[i];
    if (addr + len > s.addr + s.size) return -1;
    const off = s.offset + (addr - s.addr);
    return off + len <= this.bytes.length ? off : -1;
  }

  u8(off: number): number {
    return off >= 0 && off < this.bytes.length ? this.bytes[off] : 0;
  }

  u16(off: number): number {
    return off >= 0 && off + 2 <= this.bytes.length ? this.view.getUint16(off, this.elf.littleEndian) : 0;
  }

  u32(off: number): number {
    return off >= 0 && off + 4 <= this.bytes.length ? this.view.getUint32(off, this.elf.littleEndian) : 0;
  }

  i32(off: number): number {
    return off >= 0 && off + 4 <= this.bytes.length ? this.view.getInt32(off, this.elf.littleEndian) : 0;
  }

  /** A 64-bit value at a file offset as a signed-double ip. */
  u64(off: number): number {
    if (off < 0 || off + 8 > this.bytes.length) return 0;
    const le = this.elf.littleEndian;
    const lo = this.view.getUint32(le ? off : off + 4, le);
    const hi = this.view.getUint32(le ? off + 4 : off, le);
    return ipFromHiLo(hi, lo);
  }

  /** A pointer-sized word at a file offset. */
  word(off: number): number {
    return this.is64 ? this.u64(off) : this.u32(off);
  }

  /** The pointer-sized word stored at link-time address `addr`, or NaN if not file-backed. */
  wordAt(addr: number): number {
    const size = this.is64 ? 8 : 4;
    const off = this.fileOffset(addr, size);
    return off < 0 ? NaN : this.word(off);
  }

  cstring(off: number, end: number): string {
    let i = off;
    const stop = Math.min(end, this.bytes.length);
    while (i < stop && this.bytes[i] !== 0) i++;
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + off, i - off).toString('latin1');
  }
}

/** .dynsym by index, imports included. Empty without a .dynsym. */
export function readDynamicSymbols(eb: ElfBytes): DynamicSymbol[] {
  const sec = eb.sections.find((s) => s.type === SHT_DYNSYM);
  if (!sec) return [];
  const str = eb.sections[sec.link];
  if (!str) return [];
  const is64 = eb.is64;
  const step = sec.entsize > 0 ? sec.entsize : is64 ? 24 : 16;
  const count = Math.floor(sec.size / step);
  const out: DynamicSymbol[] = [];
  for (let i = 0; i < count; i++) {
    const at = sec.offset + i * step;
    const nameOff = eb.u32(at);
    const info = eb.u8(at + (is64 ? 4 : 12));
    const other = eb.u8(at + (is64 ? 5 : 13));
    const shndx = eb.u16(at + (is64 ? 6 : 14));
    const value = is64 ? eb.u64(at + 8) : eb.u32(at + 4);
    const size = is64 ? eb.u64(at + 16) : eb.u32(at + 8);
    const name = nameOff < str.size ? eb.cstring(str.offset + nameOff, str.offset + str.size) : '';
    out.push({ name, value, size, type: info & 15, bind: info >> 4, visibility: other & 3, shndx });
  }
  return out;
}

/** Every relocation of every SHT_RELA/SHT_REL section that applies to the loaded image. */
export function readRelocations(eb: ElfBytes): Relocation[] {
  const out: Relocation[] = [];
  const is64 = eb.is64;
  for (const sec of eb.sections) {
    if (sec.type !== SHT_RELA && sec.type !== SHT_REL) continue;
    if ((sec.flags & SHF_ALLOC) === 0) continue; // .rela.text of object files etc.
    const rela = sec.type === SHT_RELA;
    const step = sec.entsize > 0 ? sec.entsize : is64 ? (rela ? 24 : 16) : rela ? 12 : 8;
    const count = Math.floor(sec.size / step);
    for (let i = 0; i < count; i++) {
      const at = sec.offset + i * step;
      if (at + step > eb.bytes.length) break;
      const offset = is64 ? eb.u64(at) : eb.u32(at);
      let type: number;
      let symIndex: number;
      if (is64) {
        const infoLo = eb.u32(at + 8);
        const infoHi = eb.u32(at + 12);
        type = infoLo;
        symIndex = infoHi;
        if (!eb.elf.littleEndian) [type, symIndex] = [infoHi, infoLo];
      } else {
        const info = eb.u32(at + 4);
        type = info & 0xff;
        symIndex = info >>> 8;
      }
      let addend: number;
      if (rela) addend = is64 ? eb.u64(at + 16) : eb.i32(at + 8);
      else addend = eb.wordAt(offset) || 0;
      out.push({ offset, type, symIndex, addend, table: sec.name });
    }
  }
  return out;
}

/**
 * The words SHT_RELR sections relocate by the load bias (packed RELATIVE
 * relocations, as `ld -z pack-relative-relocs` writes them: Debian's glibc
 * uses them). Each even entry is an address (the next word to relocate
 * follows it); each odd entry is a bitmap whose bit i (1..63) marks the
 * word i - 1 after the current position, which then moves 63 words on
 * (System V gABI, "Relocation", SHT_RELR). The words hold their link-time
 * values in the file.
 */
export function readRelrAddresses(eb: ElfBytes): number[] {
  const out: number[] = [];
  const word = eb.is64 ? 8 : 4;
  const bits = word * 8 - 1;
  for (const sec of eb.sections) {
    if (sec.type !== SHT_RELR || (sec.flags & SHF_ALLOC) === 0) continue;
    let where = NaN;
    for (let at = sec.offset; at + word <= sec.offset + sec.size; at += word) {
      if (eb.is64) {
        const lo = eb.u32(at);
        const hi = eb.u32(at + 4);
        if ((lo & 1) === 0) {
          where = hi * 2 ** 32 + lo;
          out.push(where);
          where += word;
        } else if (Number.isFinite(where)) {
          // Bits 1..31 of the low half, then 32..63 of the high half.
          for (let i = 1; i < 32; i++) if ((lo >>> i) & 1) out.push(where + (i - 1) * word);
          for (let i = 0; i < 32; i++) if ((hi >>> i) & 1) out.push(where + (i + 31) * word);
          where += bits * word;
        }
      } else {
        const v = eb.u32(at);
        if ((v & 1) === 0) {
          where = v;
          out.push(where);
          where += word;
        } else if (Number.isFinite(where)) {
          for (let i = 1; i < 32; i++) if ((v >>> i) & 1) out.push(where + (i - 1) * word);
          where += bits * word;
        }
      }
      if (out.length > 1 << 24) return out; // hostile: more words than any real image relocates
    }
  }
  return out;
}

/** True for relocation types that store an absolute address (the pointer is address-taken). */
export function isPointerRelocation(machine64: boolean, type: number): 'relative' | 'symbol' | 'irelative' | null {
  if (machine64) {
    if (type === R_X86_64_RELATIVE) return 'relative';
    if (type === R_X86_64_64 || type === R_X86_64_GLOB_DAT) return 'symbol';
    if (type === R_X86_64_IRELATIVE) return 'irelative';
    return null;
  }
  if (type === R_386_RELATIVE) return 'relative';
  if (type === R_386_32 || type === R_386_GLOB_DAT) return 'symbol';
  if (type === R_386_IRELATIVE) return 'irelative';
  return null;
}

export function isJumpSlot(machine64: boolean, type: number): boolean {
  return machine64 ? type === R_X86_64_JUMP_SLOT : type === R_386_JMP_SLOT;
}

// ---------------------------------------------------------------------------
// Unwind tables.

const DW_EH_PE_omit = 0xff;
const DW_EH_PE_pcrel = 0x10;
const DW_EH_PE_datarel = 0x30;
const DW_EH_PE_indirect = 0x80;

/** What the unwind tables say about code. */
export interface UnwindInfo {
  /** FDE initial locations (function or fragment starts), link-time addresses. */
  fdeStarts: number[];
  /** FDE ends (start + range), parallel to {@link fdeStarts}. */
  fdeEnds: number[];
  /** Landing pads from the LSDA call-site tables. */
  landingPads: number[];
  /**
   * Call-site records: calls in [callSiteStart[i], callSiteEnd[i]) unwind
   * to landing pad callSitePad[i] (the unwinder looks up the return address
   * minus one).
   */
  callSiteStart: number[];
  callSiteEnd: number[];
  callSitePad: number[];
}

/** A byte cursor over the file with the DWARF variable-length reads. */
class Cursor {
  constructor(
    readonly eb: ElfBytes,
    public off: number,
    /** Link-time address of file offset 0 of the section being read, for pcrel. */
    readonly addrBias: number,
  ) {}

  u8(): number {
    return this.eb.u8(this.off++);
  }

  uleb(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.u8();
      result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) break;
    }
    return result;
  }

  sleb(): number {
    let result = 0;
    let mul = 1;
    let b = 0;
    for (let i = 0; i < 10; i++) {
      b = this.u8();
      result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) break;
    }
    if ((b & 0x40) !== 0) result -= mul;
    return result;
  }

  /** A DW_EH_PE-encoded pointer; NaN for omit or an unsupported encoding. */
  encoded(enc: number, dataBase: number): number {
    if (enc === DW_EH_PE_omit) return NaN;
    const fieldAddr = this.off + this.addrBias;
    const eb = this.eb;
    let v: number;
    switch (enc & 0x0f) {
      case 0x00:
        v = eb.word(this.off);
        this.off += eb.is64 ? 8 : 4;
        break;
      case 0x01:
        v = this.uleb();
        break;
      case 0x02:
        v = eb.u16(this.off);
        this.off += 2;
        break;
      case 0x03:
        v = eb.u32(this.off);
        this.off += 4;
        break;
      case 0x04:
      case 0x0c:
        v = eb.u64(this.off);
        this.off += 8;
        break;
      case 0x09:
        v = this.sleb();
        break;
      case 0x0a:
        v = (eb.u16(this.off) << 16) >> 16;
        this.off += 2;
        break;
      case 0x0b:
        v = eb.i32(this.off);
        this.off += 4;
        break;
      default:
        return NaN;
    }
    const app = enc & 0x70;
    if (app === DW_EH_PE_pcrel) v += fieldAddr;
    else if (app === DW_EH_PE_datarel) v += dataBase;
    else if (app !== 0) return NaN;
    if ((enc & DW_EH_PE_indirect) !== 0) v = eb.wordAt(v);
    if (!eb.is64) v = v >>> 0;
    return v;
  }
}

interface Cie {
  fdeEnc: number;
  lsdaEnc: number;
  hasAugData: boolean;
}

/**
 * Parse .eh_frame: every FDE's code range and, through its LSDA, the
 * landing pads of the function. Stops quietly at the first malformed entry.
 */
export function readUnwindInfo(eb: ElfBytes): UnwindInfo {
  const info: UnwindInfo = { fdeStarts: [], fdeEnds: [], landingPads: [], callSiteStart: [], callSiteEnd: [], callSitePad: [] };
  const sec = eb.section('.eh_frame');
  if (!sec || sec.type === SHT_NOBITS) return info;
  const hdr = eb.section('.eh_frame_hdr');
  const dataBase = hdr ? hdr.addr : 0;
  const bias = sec.addr - sec.offset;
  const end = Math.min(sec.offset + sec.size, eb.bytes.length);
  const cies = new Map<number, Cie>();
  let at = sec.offset;
  while (at + 4 <= end) {
    let length = eb.u32(at);
    let idAt = at + 4;
    if (length === 0) break; // terminator
    if (length === 0xffffffff) {
      length = eb.u64(at + 4);
      idAt = at + 12;
    }
    const next = idAt + length;
    if (next > end || length < 4) break;
    const id = eb.u32(idAt);
    if (id === 0) {
      const cie = parseCie(eb, idAt + 4, next, bias, dataBase);
      if (cie) cies.set(at, cie);
    } else {
      const cieAt = idAt - id;
      const cie = cies.get(cieAt) ?? parseCieAt(eb, cieAt, end, bias, dataBase, cies);
      if (cie) {
        const c = new Cursor(eb, idAt + 4, bias);
        const start = c.encoded(cie.fdeEnc, dataBase);
        const range = c.encoded(cie.fdeEnc & 0x0f, dataBase);
        if (Number.isFinite(start) && Number.isFinite(range) && start !== 0) {
          info.fdeStarts.push(start);
          info.fdeEnds.push(start + range);
          if (cie.hasAugData) {
            const augLen = c.uleb();
            const augEnd = c.off + augLen;
            if (augLen > 0 && cie.lsdaEnc !== DW_EH_PE_omit) {
              const lsda = c.encoded(cie.lsdaEnc, dataBase);
              if (Number.isFinite(lsda) && lsda !== 0) readLandingPads(eb, lsda, start, info);
            }
            c.off = augEnd;
          }
        }
      }
    }
    at = next;
  }
  return info;
}

function parseCieAt(
  eb: ElfBytes,
  at: number,
  end: number,
  bias: number,
  dataBase: number,
  cies: Map<number, Cie>,
): Cie | null {
  if (at < 0 || at + 8 > end) return null;
  let length = eb.u32(at);
  let idAt = at + 4;
  if (length === 0xffffffff) {
    length = eb.u64(at + 4);
    idAt = at + 12;
  }
  if (eb.u32(idAt) !== 0) return null;
  const cie = parseCie(eb, idAt + 4, Math.min(idAt + length, end), bias, dataBase);
  if (cie) cies.set(at, cie);
  return cie;
}

function parseCie(eb: ElfBytes, at: number, end: number, bias: number, dataBase: number): Cie | null {
  const c = new Cursor(eb, at, bias);
  const version = c.u8();
  let aug = '';
  while (c.off < end) {
    const ch = c.u8();
    if (ch === 0) break;
    aug += String.fromCharCode(ch);
  }
  if (aug.includes('eh')) c.off += eb.is64 ? 8 : 4;
  c.uleb(); // code alignment
  c.sleb(); // data alignment
  if (version === 1) c.u8();
  else c.uleb(); // return address register
  const cie: Cie = { fdeEnc: 0, lsdaEnc: DW_EH_PE_omit, hasAugData: aug.startsWith('z') };
  if (!cie.hasAugData) return cie;
  const augLen = c.uleb();
  const augEnd = c.off + augLen;
  for (let i = 1; i < aug.length && c.off < augEnd; i++) {
    const ch = aug[i];
    if (ch === 'R') cie.fdeEnc = c.u8();
    else if (ch === 'L') cie.lsdaEnc = c.u8();
    else if (ch === 'P') c.encoded(c.u8() & 0x7f, dataBase);
    else if (ch === 'S' || ch === 'B' || ch === 'G') continue;
    else break; // unknown augmentation: the rest cannot be interpreted
  }
  return cie;
}

/** Landing pads and call sites of one LSDA (gcc_except_table call-site table). */
function readLandingPads(eb: ElfBytes, lsda: number, funcStart: number, out: UnwindInfo): void {
  const off = eb.fileOffset(lsda, 4);
  if (off < 0) return;
  const sec = eb.sections.find((s) => lsda >= s.addr && lsda < s.addr + s.size);
  if (!sec) return;
  const c = new Cursor(eb, off, sec.addr - sec.offset);
  const lpStartEnc = c.u8();
  let lpStart = funcStart;
  if (lpStartEnc !== DW_EH_PE_omit) {
    const v = c.encoded(lpStartEnc, 0);
    if (Number.isFinite(v)) lpStart = v;
  }
  const ttypeEnc = c.u8();
  if (ttypeEnc !== DW_EH_PE_omit) c.uleb();
  const csEnc = c.u8();
  const tableLen = c.uleb();
  const tableEnd = c.off + tableLen;
  const secEnd = sec.offset + sec.size;
  if (tableEnd > secEnd) return;
  while (c.off < tableEnd) {
    const start = c.encoded(csEnc, 0);
    const length = c.encoded(csEnc, 0);
    const lp = c.encoded(csEnc, 0);
    c.uleb(); // action
    if (!Number.isFinite(lp) || !Number.isFinite(start) || !Number.isFinite(length)) return;
    if (lp === 0) continue;
    out.landingPads.push(lpStart + lp);
    out.callSiteStart.push(funcStart + start);
    out.callSiteEnd.push(funcStart + start + length);
    out.callSitePad.push(lpStart + lp);
  }
}
