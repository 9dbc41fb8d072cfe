/**
 * Where an address is in the program: module, symbol+offset (ELF symbol
 * tables) and source file:line (`addr2line` from binutils, for modules
 * with DWARF line info). The main executable is the recorded program; the
 * other modules are libraries, whose instructions are charged to the call
 * site in the main executable when naming a root cause.
 */
import { spawnSync } from 'node:child_process';
import { ElfFile, PT_LOAD } from '../../flow/elf.js';
import type { ImageMapping } from '../../sources/model/recording.js';

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

  locate(ip: number): CodeLocation {
    const m = this.moduleAt(ip);
    if (m === null) return { module: null, symbol: null, line: null, inMain: false };
    const hit = m.elf?.symbolize(ip - m.bias) ?? null;
    const symbol = hit === null ? null : `${hit.name}${hit.offset ? '+0x' + hit.offset.toString(16) : ''}`;
    return { module: m.path.slice(m.path.lastIndexOf('/') + 1), symbol, line: this.line(ip, m), inMain: m.isMain };
  }

  private line(ip: number, m: ModuleRange): string | null {
    if (this.lineCache.has(ip)) return this.lineCache.get(ip)!;
    let out: string | null = null;
    const r = spawnSync('addr2line', ['-e', m.file, '0x' + (ip - m.bias).toString(16)], { encoding: 'utf8', timeout: 10_000 });
    if (!r.error && r.status === 0) {
      const text = r.stdout.trim().split('\n')[0] ?? '';
      const cleaned = text.replace(/ \(discriminator \d+\)$/, '');
      if (cleaned && !cleaned.startsWith('??')) out = cleaned;
    }
    this.lineCache.set(ip, out);
    return out;
  }
}
