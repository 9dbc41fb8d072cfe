/**
 * Where an address is in the program: module, symbol+offset (ELF symbol
 * tables) and source file:line (the module's DWARF line table, read in
 * process by src/flow/dwarf; no external tool). The main executable is the
 * recorded program; the other modules are libraries, whose instructions are
 * charged to the call site in the main executable when naming a root cause.
 */
import { readFileSync } from 'node:fs';
import { debugSections } from '../../flow/dwarf/debug-sections.js';
import { LineTable } from '../../flow/dwarf/line-table.js';
import { ElfFile, PT_LOAD, type ElfSymbol } from '../../flow/elf.js';
import { ElfBytes, R_X86_64_GLOB_DAT, R_X86_64_IRELATIVE, R_X86_64_JUMP_SLOT, STT_FUNC, STT_GNU_IFUNC, STT_OBJECT, readDynamicSymbols, readRelocations } from '../../flow/static/elf-tables.js';
import type { ImageMapping } from '../../sources/model/recording.js';
import { InlineCallSites } from './inline-call-sites.js';
import { partitionPoint } from '../../flow/sorted-search.js';

export interface ModuleRange {
  path: string;
  /** The file in the bundle. */
  file: string;
  start: number;
  end: number;
  /** Run-time minus link-time address. */
  bias: number;
  isMain: boolean;
  elf: ElfFile | null;
}

/** A global or static variable at run time: [start, end). */
export interface DataObject {
  name: string;
  start: number;
  end: number;
}

export interface CodeLocation {
  module: string | null;
  symbol: string | null;
  /** `file:line`, or null without debug info. */
  line: string | null;
  inMain: boolean;
}

export class CodeLocations {
  readonly modules: ModuleRange[] = [];
  private readonly lineCache = new Map<number, string | null>();
  /** Line tables by file, built on the first lookup in that file. */
  private readonly lineTables = new Map<string, LineTable | null>();
  /** Inline records by file, read on the first line lookup in that file. */
  private readonly inlineSites = new Map<string, InlineCallSites | null>();
  /** Per file: link-time GOT slot -> the symbol its JUMP_SLOT / GLOB_DAT relocation imports, or its IRELATIVE relocation resolves. */
  private readonly imports = new Map<string, Map<number, string>>();
  /** Per file: its data objects, by link-time address. */
  private readonly dataObjects = new Map<string, ElfSymbol[]>();

  constructor(mappings: readonly ImageMapping[], programPath: string | null) {
    const byFile = new Map<string, ElfFile | null>();
    for (const im of mappings) {
      let elf = byFile.get(im.file);
      if (elf === undefined) {
        try {
          elf = ElfFile.read(im.file);
        } catch {
          elf = null;
        }
        byFile.set(im.file, elf);
      }
      const address = im.address;
      let bias = address - im.offset;
      if (elf !== null) {
        const seg = elf.segments.find((s) => s.type === PT_LOAD && im.offset >= s.offset && im.offset < s.offset + Math.max(s.filesz, 1));
        if (seg !== undefined) bias = address - (seg.vaddr + (im.offset - seg.offset));
      }
      this.modules.push({ path: im.originalPath, file: im.file, start: address, end: address + im.size, bias, isMain: im.originalPath === programPath, elf });
    }
  }

  moduleAt(ip: number): ModuleRange | null {
    for (const m of this.modules) if (ip >= m.start && ip < m.end) return m;
    return null;
  }

  isMain(ip: number): boolean {
    return this.moduleAt(ip)?.isMain ?? false;
  }

  /** The name of the symbol at run-time `ip` (no offset), or null. */
  symbolName(ip: number): string | null {
    const m = this.moduleAt(ip);
    return m?.elf?.symbolize(ip - m.bias)?.name ?? null;
  }

  /**
   * The function that starts at run-time `ip` (a call's target), or null.
   * An IFUNC symbol (STT_GNU_IFUNC) names its resolver, not the routine it
   * picks, so it does not count.
   */
  functionAt(ip: number): string | null {
    const m = this.moduleAt(ip);
    const hit = m?.elf?.symbolize(ip - m.bias) ?? null;
    if (hit === null || hit.offset !== 0 || hit.symbol.type !== STT_FUNC) return null;
    return hit.name;
  }

  /** The function symbol with a size that holds `ip`, or null (a PLT stub only has the nearest sizeless symbol). */
  functionContaining(ip: number): string | null {
    const m = this.moduleAt(ip);
    const hit = m?.elf?.symbolize(ip - m.bias) ?? null;
    return hit !== null && hit.symbol.size > 0 && hit.symbol.type === STT_FUNC ? hit.name : null;
  }

  /**
   * The symbol whose address the dynamic linker writes into the GOT slot at
   * run-time `slot` (the PLT's `jmp [slot]`): the name the program called,
   * whatever implementation an IFUNC resolver picked for it. A library's
   * calls of its own IFUNCs (glibc's fread calling memcpy) go through slots
   * with an IRELATIVE relocation and no symbol: the relocation's addend is
   * the resolver, and the IFUNC symbol whose value is that resolver names
   * the routine. Null if the slot is not an import of a loaded image.
   */
  importName(slot: number): string | null {
    for (const m of this.imagesHolding(slot)) {
      let table = this.imports.get(m.file);
      if (table === undefined) {
        table = importTable(m.file, m.elf);
        this.imports.set(m.file, table);
      }
      const name = table.get(slot - m.bias);
      if (name !== undefined) return name;
    }
    return null;
  }

  /** The mappings of the ELF images whose loaded extent (every PT_LOAD segment, data too) holds run-time `addr`. */
  private imagesHolding(addr: number): Array<ModuleRange & { elf: ElfFile }> {
    return this.modules.filter((m): m is ModuleRange & { elf: ElfFile } => {
      if (m.elf === null) return false;
      const link = addr - m.bias;
      return m.elf.segments.some((g) => g.type === PT_LOAD && link >= g.vaddr && link < g.vaddr + g.memsz);
    });
  }

  /**
   * The data object (an STT_OBJECT symbol with a size: a global or static
   * variable) that holds run-time `addr`, in the image whose loaded extent
   * holds it; null if none does (padding, the heap, the stack).
   */
  dataObjectAt(addr: number): DataObject | null {
    for (const m of this.imagesHolding(addr)) {
      const link = addr - m.bias;
      let objects = this.dataObjects.get(m.file);
      if (objects === undefined) {
        objects = m.elf.symbols.filter((x) => x.type === STT_OBJECT && x.size > 0).sort((x, y) => x.value - y.value);
        this.dataObjects.set(m.file, objects);
      }
      // From the last object starting at or below the address (objects do not overlap, but aliases share an address).
      const at = partitionPoint(objects.length, (i) => objects[i].value <= link) - 1;
      for (let i = at; i >= 0 && i > at - 8; i--) {
        const o = objects[i];
        if (link < o.value + o.size) return { name: o.name, start: o.value + m.bias, end: o.value + o.size + m.bias };
      }
      return null;
    }
    return null;
  }

  locate(ip: number): CodeLocation {
    const m = this.moduleAt(ip);
    if (m === null) return { module: null, symbol: null, line: null, inMain: false };
    const hit = m.elf?.symbolize(ip - m.bias) ?? null;
    const symbol = hit === null ? null : `${hit.name}${hit.offset ? '+0x' + hit.offset.toString(16) : ''}`;
    return { module: m.path.slice(m.path.lastIndexOf('/') + 1), symbol, line: this.line(ip, m), inMain: m.isMain };
  }

  /** `file:line` of run-time `ip`, or null without a line (no DWARF, or compiler-generated code: line 0). */
  private line(ip: number, m: ModuleRange): string | null {
    if (this.lineCache.has(ip)) return this.lineCache.get(ip)!;
    let table = this.lineTables.get(m.file);
    if (table === undefined) {
      table = m.elf === null ? null : lineTableOf(m.file, m.elf);
      this.lineTables.set(m.file, table);
    }
    const hit = table?.lookup(ip - m.bias) ?? null;
    let out = hit === null || hit.line === 0 ? null : `${hit.file}:${hit.line}`;
    // Code inlined from another file (a header's atoi in main): the line of the function it was inlined into.
    if (hit !== null) {
      let sites = this.inlineSites.get(m.file);
      if (sites === undefined) {
        sites = m.elf === null ? null : inlineSitesOf(m.file, m.elf);
        this.inlineSites.set(m.file, sites);
      }
      const site = sites?.outermostCallSite(ip - m.bias) ?? null;
      if (site !== null && site.file !== hit.file) out = `${site.file}:${site.line}`;
    }
    this.lineCache.set(ip, out);
    return out;
  }
}

/** The line table of an ELF file (read again: the bytes are not kept for modules never asked about), or null. */
function lineTableOf(path: string, elf: ElfFile): LineTable | null {
  try {
    return LineTable.fromElf(readFileSync(path), elf);
  } catch {
    return null;
  }
}

/** The inline records of an ELF file, or null without them. */
function inlineSitesOf(path: string, elf: ElfFile): InlineCallSites | null {
  try {
    const bytes = readFileSync(path);
    const raw = (name: string): Uint8Array | null => {
      const sec = elf.sections.find((x) => x.name === name);
      // Compressed sections (SHF_COMPRESSED) are not read here: their code keeps its own lines.
      if (sec === undefined || (sec.flags & 0x800) !== 0 || sec.offset + sec.size > bytes.length) return null;
      return bytes.subarray(sec.offset, sec.offset + sec.size);
    };
    return InlineCallSites.fromSections(debugSections(bytes, elf), raw('.debug_rnglists'), raw('.debug_ranges'), elf.littleEndian);
  } catch {
    return null;
  }
}

function importTable(path: string, elf: ElfFile): Map<number, string> {
  const out = new Map<number, string>();
  try {
    const eb = new ElfBytes(readFileSync(path), elf);
    const syms = readDynamicSymbols(eb);
    let resolvers: Map<number, string> | null = null;
    for (const r of readRelocations(eb)) {
      if (r.type === R_X86_64_IRELATIVE) {
        resolvers ??= ifuncResolvers(elf);
        const name = resolvers.get(r.addend);
        if (name !== undefined) out.set(r.offset, name);
        continue;
      }
      if (r.type !== R_X86_64_JUMP_SLOT && r.type !== R_X86_64_GLOB_DAT) continue;
      const name = syms[r.symIndex]?.name;
      if (name) out.set(r.offset, name);
    }
  } catch {
    // An image without readable relocations imports nothing we can name.
  }
  return out;
}

/**
 * Link-time resolver address -> the IFUNC (STT_GNU_IFUNC) symbol it resolves,
 * from .symtab and .dynsym. When several names share a resolver (`mempcpy`,
 * `__mempcpy`), the public one (no leading underscore, then the shortest).
 */
function ifuncResolvers(elf: ElfFile): Map<number, string> {
  const out = new Map<number, string>();
  const rank = (name: string): number => (name.startsWith('_') ? 1000 : 0) + name.length;
  for (const s of elf.symbols) {
    if (s.type !== STT_GNU_IFUNC || s.name === '') continue;
    const name = s.name.replace(/@.*$/, '');
    const had = out.get(s.value);
    if (had === undefined || rank(name) < rank(had)) out.set(s.value, name);
  }
  return out;
}
