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
import { ElfFile, type SymbolHit } from '../flow/elf.js';
import type { ModuleCfg } from '../flow/static/cfg.js';
import { ImageCache, MAX_IMAGE_ENTRIES, sharedImageCache, type CachedImage } from '../flow/static/image-cache.js';
import { lastAtOrBelow } from '../flow/sorted-search.js';

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
    /** The file's content (from the image cache), when known. */
    readonly image: CachedImage | null = null,
    private readonly cache: ImageCache = sharedImageCache,
    /**
     * Code generated at run time (a JIT's output, unpacked or injected
     * code: the recorder's run-time images): no file, no linkage.
     */
    readonly generated = false,
  ) {}

  contains(ip: number): boolean {
    return ip >= this.start && ip < this.end;
  }

  /** `symbol+0xoff` for a run-time address, or null without a symbol. */
  symbolize(ip: number): SymbolHit | null {
    return this.elf === null ? null : this.elf.symbolize(ip - this.bias);
  }

  /** The static CFG (built on first use, once per file content; null if the module has no readable ELF). */
  cfg(): ModuleCfg | null {
    if (this.cfgState === undefined) {
      this.cfgState = null;
      if (this.path !== null && this.elf !== null) {
        try {
          const img = this.image ?? this.cache.load(this.path);
          this.cfgState = this.cache.cfg(img, this.path);
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

  /** A stable identity of the module's content and placement (for caches keyed by module). */
  get identity(): string {
    return `${this.image?.hash ?? this.path ?? this.name}@${this.bias}`;
  }
}

/** Too many image mappings for one trace: a one-line input error. */
export class TooManyImagesError extends Error {}

export class ModuleMap {
  private readonly list: Module[] = [];
  private sorted: Module[] | null = null;
  private starts = new Float64Array(0);
  private readonly byKey = new Map<string, Module>();
  private last: Module | null = null;
  /** Bumped at every change: caches of lookups over this map (stack-switch.ts) start afresh. */
  version = 0;

  /** `cache`: where image files are read and parsed (shared by default); `maxEntries`: the most mappings accepted. */
  constructor(
    readonly cache: ImageCache = sharedImageCache,
    readonly maxEntries = MAX_IMAGE_ENTRIES,
  ) {}

  get modules(): readonly Module[] {
    return this.list;
  }

  add(m: Module): void {
    if (this.list.length >= this.maxEntries) {
      throw new TooManyImagesError(`too many image mappings: more than ${this.maxEntries} (refused as hostile input)`);
    }
    this.list.push(m);
    this.sorted = null;
    this.last = null;
    this.version++;
  }

  private remove(m: Module): void {
    const i = this.list.indexOf(m);
    if (i >= 0) this.list.splice(i, 1);
    this.sorted = null;
    this.last = null;
    this.version++;
  }

  /**
   * Add a mapping of `fileOffset..fileOffset+size` of file `path` at run-time
   * `address` (a bundle image or `--raw`). The ELF, if the file is one, gives
   * symbols; `displayName` names the module. The file is read and parsed
   * once per distinct content (the image cache).
   */
  addMapping(path: string, fileOffset: number, size: number, address: number, displayName?: string, generated = false): Module {
    const name = displayName ?? baseName(path);
    let img: CachedImage | null = null;
    let elf: ElfFile | null = null;
    let bias = 0;
    try {
      img = this.cache.load(path);
      elf = img.elf;
      if (elf !== null) {
        const seg = elf.loadSegments().find((s) => fileOffset >= s.offset && fileOffset < s.offset + s.filesz);
        if (seg) bias = address - (seg.vaddr + (fileOffset - seg.offset));
        else elf = null;
      }
    } catch {
      elf = null;
    }
    const key = `${path}\0${name}\0${bias}`;
    const existing = elf !== null ? this.byKey.get(key) : undefined;
    if (existing !== undefined && elf !== null) {
      // Another segment of the same loaded file: one module spanning both.
      const merged = new Module(name, path, Math.min(existing.start, address), Math.max(existing.end, address + size), elf, bias, img, this.cache);
      this.remove(existing);
      this.add(merged);
      this.byKey.set(key, merged);
      return merged;
    }
    const m = new Module(name, elf ? path : null, address, address + size, elf, bias, img, this.cache, generated);
    this.add(m);
    if (elf !== null) this.byKey.set(key, m);
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
    let img: CachedImage | null = null;
    try {
      img = this.cache.load(path);
    } catch {
      img = null;
    }
    const m = new Module(baseName(path), path, start, end, elf, loadOffset, img, this.cache);
    this.add(m);
    return m;
  }

  /** The module that contains `ip`, or null (the latest-starting one where mappings overlap). */
  find(ip: number): Module | null {
    const last = this.last;
    if (last !== null && ip >= last.start && ip < last.end) return last;
    if (this.sorted === null) {
      this.sorted = [...this.list].sort((a, b) => a.start - b.start);
      this.starts = Float64Array.from(this.sorted, (m) => m.start);
    }
    const hi = lastAtOrBelow(this.starts, ip);
    // Overlapping mappings (hostile input): look back a bounded number.
    for (let i = hi; i >= 0 && i > hi - 64; i--) {
      const m = this.sorted[i];
      if (ip < m.end) {
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
