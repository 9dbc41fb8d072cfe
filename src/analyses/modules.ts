/**
 * The modules of a traced address space, as the analyses see them: each
 * loaded file with its run-time range, its ELF (for symbols) and, on demand,
 * its static control-flow model (src/flow/static/cfg.ts, link-time
 * addresses; {@link Module.bias} converts).
 *
 * Built from a recorder bundle's manifest or from `--elf`/`--raw` arguments.
 * A raw image without an ELF is a module with no symbols and no CFG:
 * checks that need them record what they could not check.
 */
import { readFileSync } from 'node:fs';
import { ElfFile, type SymbolHit } from '../flow/elf.js';
import { analyzeElfFile, type ModuleCfg } from '../flow/static/cfg.js';

export class Module {
  private cfgState: ModuleCfg | null | undefined = undefined;
  private cfgError: string | null = null;

  constructor(
    /** Short name (file base name). */
    readonly name: string,
    /** The file read for symbols and static analysis, or null for a raw image. */
    readonly path: string | null,
    /** First run-time address of the module's mapped code. */
    readonly start: number,
    /** First run-time address after it. */
    readonly end: number,
    readonly elf: ElfFile | null,
    /** run-time address - link-time address. */
    readonly bias: number,
  ) {}

  contains(ip: number): boolean {
    return ip >= this.start && ip < this.end;
  }

  /** `symbol+0xoff` for a run-time address, or null without a symbol. */
  symbolize(ip: number): SymbolHit | null {
    return this.elf === null ? null : this.elf.symbolize(ip - this.bias);
  }

  /** The static CFG (built on first use; null if the module has no readable ELF). */
  cfg(): ModuleCfg | null {
    if (this.cfgState === undefined) {
      this.cfgState = null;
      if (this.path !== null && this.elf !== null) {
        try {
          this.cfgState = analyzeElfFile(this.path);
        } catch (e) {
          this.cfgError = (e as Error).message;
        }
      }
    }
    return this.cfgState;
  }

  /** Set a CFG built elsewhere (tests, a saved model). */
  setCfg(cfg: ModuleCfg | null): void {
    this.cfgState = cfg;
  }

  /** Why {@link cfg} is null. */
  get cfgUnavailableReason(): string {
    if (this.path === null || this.elf === null) return `no ELF for module ${this.name}`;
    return this.cfgError ?? `no CFG for module ${this.name}`;
  }
}

export class ModuleMap {
  private readonly list: Module[] = [];
  private last: Module | null = null;

  get modules(): readonly Module[] {
    return this.list;
  }

  add(m: Module): void {
    // Merge ranges of the same file (several executable mappings).
    this.list.push(m);
    this.list.sort((a, b) => a.start - b.start);
    this.last = null;
  }

  /**
   * Add a mapping of `fileOffset..fileOffset+size` of file `path` at run-time
   * `address` (a bundle image or `--raw`). The ELF, if the file is one, gives
   * symbols; `displayName` names the module.
   */
  addMapping(path: string, fileOffset: number, size: number, address: number, displayName?: string): Module {
    const name = displayName ?? baseName(path);
    let elf: ElfFile | null = null;
    let bias = 0;
    try {
      const bytes = readFileSync(path);
      if (bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46) {
        elf = ElfFile.parse(bytes, path);
        const seg = elf.loadSegments().find((s) => fileOffset >= s.offset && fileOffset < s.offset + s.filesz);
        if (seg) bias = address - (seg.vaddr + (fileOffset - seg.offset));
        else elf = null;
      }
    } catch {
      elf = null;
    }
    const existing = this.list.find((m) => m.path === (elf ? path : null) && m.name === name && m.bias === bias && elf);
    if (existing && elf) {
      // Another segment of the same loaded file: one module spanning both.
      const merged = new Module(name, path, Math.min(existing.start, address), Math.max(existing.end, address + size), elf, bias);
      this.list.splice(this.list.indexOf(existing), 1);
      this.add(merged);
      return merged;
    }
    const m = new Module(name, elf ? path : null, address, address + size, elf, bias);
    this.add(m);
    return m;
  }

  /** Add an ELF loaded like ptxed's `--elf` (load offset as computed by loadElf). */
  addElf(path: string, elf: ElfFile, loadOffset: number): Module {
    let start = Infinity;
    let end = -Infinity;
    for (const s of elf.loadSegments()) {
      start = Math.min(start, s.vaddr + loadOffset);
      end = Math.max(end, s.vaddr + loadOffset + s.filesz);
    }
    const m = new Module(baseName(path), path, start, end, elf, loadOffset);
    this.add(m);
    return m;
  }

  /** The module that contains `ip`, or null. */
  find(ip: number): Module | null {
    const last = this.last;
    if (last !== null && ip >= last.start && ip < last.end) return last;
    const list = this.list;
    for (let i = list.length - 1; i >= 0; i--) {
      const m = list[i];
      if (ip >= m.start && ip < m.end) {
        this.last = m;
        return m;
      }
    }
    return null;
  }

  /** `module!symbol+0xoff`, `module+0xoff` or null. */
  symbolize(ip: number): string | null {
    const m = this.find(ip);
    if (m === null) return null;
    const hit = m.symbolize(ip);
    // A zero-sized symbol far below (a version name, a section marker) says nothing.
    if (hit !== null && (hit.symbol.size > 0 || hit.offset < 0x100)) return hit.offset === 0 ? `${m.name}!${hit.name}` : `${m.name}!${hit.name}+0x${hit.offset.toString(16)}`;
    return `${m.name}+0x${(m.elf !== null ? ip - m.bias : ip - m.start).toString(16)}`;
  }

  /** The name of the sized symbol containing `ip`, or null. */
  functionName(ip: number): string | null {
    const m = this.find(ip);
    if (m === null) return null;
    const hit = m.symbolize(ip);
    return hit !== null && hit.symbol.size > 0 ? hit.name : null;
  }
}

function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return (i >= 0 ? path.slice(i + 1) : path).replace(/^\d+-/, '');
}
