/**
 * A process's modules: several ELF modules, each with its static model
 * (cfg.ts, link-time addresses), loaded at run-time bases. Answers the
 * questions a trace analysis asks per executed address: which module and
 * block, which function (symbolized), whether an indirect transfer may go
 * there, and where a PLT stub leads in another module.
 *
 * Imports resolve like the dynamic linker's default lookup: the first
 * module in load order (the executable first, then libraries in the order
 * they were added) that exports the name. Symbol versions and
 * LD_PRELOAD-style interposition are not modelled beyond that order.
 *
 * Block ids across the process are `module.blockOffset + local index`, so a
 * per-process counter array can be a single typed array.
 */
import { formatIpShort } from '../address-space.js';
import { analyzeElfFile, ModuleCfg } from './cfg.js';
import type { DisassemblyOptions } from './disassembly.js';
import { lastAtOrBelow, partitionPoint } from '../sorted-search.js';

/** One module mapped into the process. */
export interface LoadedModule {
  readonly index: number;
  readonly cfg: ModuleCfg;
  /** Run-time address of the lowest PT_LOAD segment. */
  readonly base: number;
  /** Added to link-time addresses to get run-time ones. */
  readonly bias: number;
  /** Run-time [start, end) of the module's segments. */
  readonly start: number;
  readonly end: number;
  /** Process-wide id of the module's block 0. */
  readonly blockOffset: number;
  /** Short name (file name without directories). */
  readonly shortName: string;
}

/** A call or jump through a PLT stub, resolved to the module that defines the import. */
export interface CrossModuleEdge {
  /** Run-time address of the PLT stub. */
  stub: number;
  name: string;
  from: LoadedModule;
  /** The defining module, or null if no loaded module exports the name. */
  to: LoadedModule | null;
  /** Run-time target, or NaN. */
  target: number;
}

export class ProcessMap {
  private readonly list: LoadedModule[] = [];
  /** Modules sorted by start address, for lookups. */
  private sorted: LoadedModule[] = [];
  private sortedStart = new Float64Array(0);
  private totalBlocks = 0;
  private last: LoadedModule | null = null;

  /** Modules in load order. */
  get modules(): readonly LoadedModule[] {
    return this.list;
  }

  /** Number of blocks over all modules (the range of process block ids). */
  get blockCount(): number {
    return this.totalBlocks;
  }

  /**
   * Add a module whose lowest segment is at run-time address `base`; NaN
   * (the default) keeps the link-time addresses (non-PIE executables).
   */
  add(cfg: ModuleCfg, base = NaN): LoadedModule {
    const b = Number.isNaN(base) ? cfg.linkBase : base;
    const bias = b - cfg.linkBase;
    const name = cfg.name.slice(cfg.name.lastIndexOf('/') + 1);
    const m: LoadedModule = {
      index: this.list.length,
      cfg,
      base: b,
      bias,
      start: b,
      end: cfg.linkEnd + bias,
      blockOffset: this.totalBlocks,
      shortName: name,
    };
    for (const o of this.list) {
      if (m.start < o.end && o.start < m.end) throw new Error(`${cfg.name} at 0x${b.toString(16)} overlaps ${o.cfg.name}`);
    }
    this.list.push(m);
    this.totalBlocks += cfg.blockCount;
    this.sorted = [...this.list].sort((x, y) => x.start - y.start);
    this.sortedStart = Float64Array.from(this.sorted, (x) => x.start);
    return m;
  }

  /** Analyse `path` and add it at `base`. */
  addFile(path: string, base = NaN, options?: DisassemblyOptions): LoadedModule {
    return this.add(analyzeElfFile(path, options), base);
  }

  /** The module that maps `ip`, or null. */
  moduleAt(ip: number): LoadedModule | null {
    const last = this.last;
    if (last !== null && ip >= last.start && ip < last.end) return last;
    const i = lastAtOrBelow(this.sortedStart, ip);
    if (i < 0) return null;
    const m = this.sorted[i];
    if (ip >= m.end) return null;
    this.last = m;
    return m;
  }

  /** Process-wide id of the block containing run-time `ip`, or -1. */
  blockAt(ip: number): number {
    const m = this.moduleAt(ip);
    if (m === null) return -1;
    const b = m.cfg.blockAt(ip - m.bias);
    return b < 0 ? -1 : m.blockOffset + b;
  }

  /** The module owning process block id `id`. */
  moduleOfBlock(id: number): LoadedModule | null {
    const list = this.list;
    const i = partitionPoint(list.length, (k) => list[k].blockOffset <= id) - 1;
    return i >= 0 && id < list[i].blockOffset + list[i].cfg.blockCount ? list[i] : null;
  }

  /** `module!function+0xoff` for run-time `ip`, or null outside every module. For reports (allocates). */
  symbolize(ip: number): string | null {
    const m = this.moduleAt(ip);
    if (m === null) return null;
    const link = ip - m.bias;
    const f = m.cfg.functionAt(link);
    if (f < 0) return `${m.shortName}+0x${formatIpShort(link - m.cfg.linkBase)}`;
    const off = link - m.cfg.functionEntry[f];
    return `${m.shortName}!${m.cfg.functionName[f]}${off === 0 ? '' : '+0x' + off.toString(16)}`;
  }

  /** Run-time address of the first export of `name` in load order, or NaN. */
  resolveImport(name: string): number {
    for (const m of this.list) {
      const a = m.cfg.exportAddressOf(name);
      if (!Number.isNaN(a)) return a + m.bias;
    }
    return NaN;
  }

  /** Where the PLT stub containing run-time `ip` leads, or NaN if `ip` is no resolvable stub. */
  pltTarget(ip: number): number {
    const m = this.moduleAt(ip);
    if (m === null) return NaN;
    const p = m.cfg.pltAt(ip - m.bias);
    return p === null || p.name === '' ? NaN : this.resolveImport(p.name);
  }

  /** Every named PLT stub of every module, resolved. */
  crossModuleEdges(): CrossModuleEdge[] {
    const out: CrossModuleEdge[] = [];
    for (const m of this.list) {
      for (const p of m.cfg.plt) {
        if (p.name === '') continue;
        const target = this.resolveImport(p.name);
        out.push({ stub: p.address + m.bias, name: p.name, from: m, to: Number.isNaN(target) ? null : this.moduleAt(target), target });
      }
    }
    return out;
  }

  /** Coarse CFI: an indirect call/jump may go to an address-taken or exported function of any module. */
  isAllowedIndirectTarget(ip: number): boolean {
    const m = this.moduleAt(ip);
    return m !== null && m.cfg.isAllowedIndirectTarget(ip - m.bias);
  }

  /** Coarse CFI: a return may go to a call-preceded address. */
  isReturnSite(ip: number): boolean {
    const m = this.moduleAt(ip);
    return m !== null && m.cfg.isReturnSite(ip - m.bias);
  }
}
