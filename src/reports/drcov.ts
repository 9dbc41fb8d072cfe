/**
 * Code coverage from a trace:
 * - {@link ExecutedBlocks}: a control-flow consumer that records the
 *   dynamic basic blocks the trace executed (from a transfer target up to
 *   the next branch, like DynamoRIO's blocks) with execution counts;
 * - {@link writeDrcov}: the drcov log DynamoRIO's drcov client writes
 *   ("DRCOV VERSION: 2", a text module table, then a binary table of
 *   `{uint32 start (offset from the module base), uint16 size, uint16
 *   module id}` entries), which Lighthouse and bncov load;
 * - {@link functionCoverage}: per-function coverage (blocks that ran vs all
 *   blocks of the static CFG, src/flow/static/cfg.ts), as text or JSON.
 */
import { TransferKind, type FlowConsumer } from '../flow/control-flow.js';
import type { InstructionInfo } from '../flow/instruction.js';
import { BlockCoverage, BlockFlag } from '../flow/static/cfg.js';
import { hexAddress } from '../analyses/finding.js';
import type { Module, ModuleMap } from '../analyses/modules.js';

/**
 * Cuts the instruction flow into dynamic blocks: a block runs from the first
 * instruction after a transfer (or gap) up to the transfer (or gap) that
 * ends it. Subclasses decide what to do with each closed block.
 */
export abstract class BlockCloser implements FlowConsumer {
  /** Start of the block being executed, NaN between a transfer and the next instruction. */
  current = NaN;
  /** End of the last executed instruction. */
  lastEnd = NaN;
  /** Instructions seen. */
  instructions = 0;

  /** A block [start, end) ran once. */
  protected abstract closed(start: number, end: number): void;

  onInstruction(insn: InstructionInfo): void {
    this.instructions++;
    if (this.current !== this.current) this.current = insn.ip;
    this.lastEnd = insn.ip + insn.size;
  }

  onTransfer(kind: TransferKind, from: number, _to: number, size: number): void {
    // An async transfer interrupts before `from`: the instruction there did not run.
    this.close(kind === TransferKind.Async ? from : from + size);
  }

  onGap(): void {
    this.close(this.lastEnd);
  }

  private close(end: number): void {
    const start = this.current;
    this.current = NaN;
    if (start !== start || !(end > start)) return;
    this.closed(start, end);
  }
}

/** Executed dynamic blocks: start → (end, executions), in growable typed arrays. */
export class ExecutedBlocks extends BlockCloser {
  private readonly index = new Map<number, number>();
  private starts = new Float64Array(1024);
  private ends = new Float64Array(1024);
  private counts = new Float64Array(1024);
  private used = 0;

  get size(): number {
    return this.used;
  }

  onEnd(): void {
    this.onGap();
  }

  protected closed(start: number, end: number): void {
    this.add(start, end, 1);
  }

  /** Count a block that ran `count` times (blocks merged from pieces of a trace, in trace order). */
  add(start: number, end: number, count: number): void {
    let i = this.index.get(start);
    if (i === undefined) {
      i = this.used++;
      if (i === this.starts.length) this.grow();
      this.index.set(start, i);
      this.starts[i] = start;
      this.ends[i] = end;
    } else if (end > this.ends[i]) {
      this.ends[i] = end;
    }
    this.counts[i] += count;
  }

  private grow(): void {
    const n = this.starts.length * 2;
    const s = new Float64Array(n);
    s.set(this.starts);
    this.starts = s;
    const e = new Float64Array(n);
    e.set(this.ends);
    this.ends = e;
    const c = new Float64Array(n);
    c.set(this.counts);
    this.counts = c;
  }

  /** Visit every block: run-time [start, end) and how often it ran. */
  forEach(fn: (start: number, end: number, count: number) => void): void {
    for (let i = 0; i < this.used; i++) fn(this.starts[i], this.ends[i], this.counts[i]);
  }
}

/** One module of the drcov module table. */
export interface CoverageModule {
  id: number;
  module: Module;
  /** The path written to the table (Lighthouse matches modules by its file name). */
  path: string;
  /** Run-time address of the module's lowest segment (block offsets are relative to it). */
  base: number;
  end: number;
  entry: number;
  /** File offset of the lowest segment. */
  offset: number;
}

/**
 * The drcov module table for a module map. `displayPath` gives the path to
 * write for a module (default: the file read, or its name for a raw image).
 */
export function coverageModules(modules: ModuleMap, displayPath?: (m: Module) => string | null): CoverageModule[] {
  return modules.modules.map((m, id) => {
    let base = m.start;
    let end = m.end;
    let entry = 0;
    let offset = 0;
    if (m.elf !== null) {
      const segs = m.elf.loadSegments();
      if (segs.length > 0) {
        const low = segs.reduce((a, b) => (b.vaddr < a.vaddr ? b : a));
        base = Math.floor(low.vaddr / 4096) * 4096 + m.bias;
        offset = Math.floor(low.offset / 4096) * 4096;
        end = Math.max(m.end, ...segs.map((s) => s.vaddr + s.memsz + m.bias));
      }
      // A shared library's e_entry is usually 0: no entry point.
      entry = m.elf.entry === 0 ? 0 : m.elf.entry + m.bias;
    }
    return { id, module: m, path: displayPath?.(m) ?? m.path ?? m.name, base, end, entry, offset };
  });
}

/** Module table layouts drcov readers know (DynamoRIO's MODULE_FILE_VERSION 2..4, Linux columns). */
export type DrcovTableVersion = 2 | 3 | 4;

const DRCOV_BB_ENTRY = 8;

/** The module of `ip` in a table sorted as given (few modules: a linear scan is fine). */
function moduleOf(table: readonly CoverageModule[], ip: number): CoverageModule | null {
  for (const m of table) if (ip >= m.base && ip < m.end) return m;
  return null;
}

/**
 * A drcov log of the executed blocks. Blocks outside every module are left
 * out (drcov has no entry for them); a block longer than 65535 bytes is
 * split. Returns the file bytes and how many blocks were left out.
 */
export function writeDrcov(blocks: ExecutedBlocks, table: readonly CoverageModule[], version: DrcovTableVersion = 2): { bytes: Uint8Array; blocks: number; outside: number } {
  const entries: number[] = [];
  let outside = 0;
  blocks.forEach((start, end) => {
    const m = moduleOf(table, start);
    if (m === null || start - m.base > 0xffffffff) {
      outside++;
      return;
    }
    for (let at = start; at < end; at += 0xffff) entries.push(at - m.base, Math.min(0xffff, end - at), m.id);
  });
  const lines: string[] = ['DRCOV VERSION: 2', 'DRCOV FLAVOR: drcov-64', `Module Table: version ${version}, count ${table.length}`];
  const hex16 = (v: number): string => '0x' + BigInt.asUintN(64, BigInt(v)).toString(16).padStart(16, '0');
  if (version === 2) lines.push('Columns: id, base, end, entry, path');
  else if (version === 3) lines.push('Columns: id, containing_id, start, end, entry, path');
  else lines.push('Columns: id, containing_id, start, end, entry, offset, path');
  for (const m of table) {
    // A path cannot hold a line break in this line-based table.
    const path = m.path.replace(/[\r\n]/g, '?');
    const id = String(m.id).padStart(3);
    if (version === 2) lines.push(`${id}, ${hex16(m.base)}, ${hex16(m.end)}, ${hex16(m.entry)}, ${path}`);
    else if (version === 3) lines.push(`${id}, ${id}, ${hex16(m.base)}, ${hex16(m.end)}, ${hex16(m.entry)}, ${path}`);
    else lines.push(`${id}, ${id}, ${hex16(m.base)}, ${hex16(m.end)}, ${hex16(m.entry)}, ${hex16(m.offset)}, ${path}`);
  }
  const count = entries.length / 3;
  lines.push(`BB Table: ${count} bbs`);
  const head = Buffer.from(lines.join('\n') + '\n', 'utf8');
  const out = new Uint8Array(head.length + count * DRCOV_BB_ENTRY);
  out.set(head, 0);
  const view = new DataView(out.buffer, out.byteOffset + head.length, count * DRCOV_BB_ENTRY);
  for (let i = 0; i < count; i++) {
    view.setUint32(i * DRCOV_BB_ENTRY, entries[i * 3], true);
    view.setUint16(i * DRCOV_BB_ENTRY + 4, entries[i * 3 + 1], true);
    view.setUint16(i * DRCOV_BB_ENTRY + 6, entries[i * 3 + 2], true);
  }
  return { bytes: out, blocks: count, outside };
}

/** A parsed drcov log (for tests and for merging). */
export interface DrcovLog {
  version: number;
  flavor: string;
  tableVersion: number;
  modules: { id: number; base: bigint; end: bigint; path: string }[];
  blocks: { start: number; size: number; module: number }[];
}

/** Read a drcov log with a binary block table. Throws on malformed input. */
export function readDrcov(bytes: Uint8Array): DrcovLog {
  let at = 0;
  const line = (): string => {
    const nl = bytes.indexOf(10, at);
    if (nl < 0) throw new Error('drcov: truncated header');
    const s = Buffer.from(bytes.subarray(at, nl)).toString('utf8');
    at = nl + 1;
    return s;
  };
  const v = /^DRCOV VERSION: (\d+)$/.exec(line());
  if (!v) throw new Error('drcov: no version line');
  const flavor = /^DRCOV FLAVOR: (.*)$/.exec(line());
  if (!flavor) throw new Error('drcov: no flavor line');
  const mt = /^Module Table: version (\d+), count (\d+)$/.exec(line());
  if (!mt) throw new Error('drcov: no module table');
  const tableVersion = Number(mt[1]);
  const columns = line().replace(/^Columns: /, '').split(', ');
  const modules: DrcovLog['modules'] = [];
  for (let i = 0; i < Number(mt[2]); i++) {
    const cells = line().split(', ');
    const get = (name: string): string => cells[columns.indexOf(name)].trim();
    const path = cells.slice(columns.length - 1).join(', ');
    modules.push({ id: Number(get('id')), base: BigInt(get(tableVersion === 2 ? 'base' : 'start')), end: BigInt(get('end')), path });
  }
  const bb = /^BB Table: (\d+) bbs$/.exec(line());
  if (!bb) throw new Error('drcov: no BB table');
  const n = Number(bb[1]);
  if (bytes.length - at < n * DRCOV_BB_ENTRY) throw new Error('drcov: truncated BB table');
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, n * DRCOV_BB_ENTRY);
  const blocks: DrcovLog['blocks'] = [];
  for (let i = 0; i < n; i++) {
    blocks.push({ start: view.getUint32(i * 8, true), size: view.getUint16(i * 8 + 4, true), module: view.getUint16(i * 8 + 6, true) });
  }
  return { version: Number(v[1]), flavor: flavor[1], tableVersion, modules, blocks };
}

// ---------------------------------------------------------------------------
// Per-function coverage.

export interface FunctionCoverage {
  name: string;
  /** Run-time entry address. */
  address: string;
  blocksRan: number;
  blocks: number;
  /** Executions of the function's entry block (0 if only entered elsewhere). */
  entries: number;
  /** PLT stub or low-confidence (gap-sweep) function. */
  plt: boolean;
}

export interface ModuleCoverage {
  module: string;
  path: string | null;
  /** null when the module has no static CFG (raw image, unreadable ELF). */
  unavailable: string | null;
  functions: number;
  functionsRan: number;
  blocks: number;
  blocksRan: number;
  /** Executed code outside every static block (misaligned gadgets, JIT, data). */
  blocksOutsideCfg: number;
  /** Every function, those that ran first (most blocks ran first), then the rest by address. */
  list: FunctionCoverage[];
}

/** Merge executed blocks onto each module's static CFG. */
export function functionCoverage(blocks: ExecutedBlocks, modules: ModuleMap): ModuleCoverage[] {
  const perModule = new Map<Module, { cov: BlockCoverage; outside: number }>();
  const out: ModuleCoverage[] = [];
  for (const m of modules.modules) {
    const cfg = m.cfg();
    if (cfg !== null) perModule.set(m, { cov: new BlockCoverage(cfg), outside: 0 });
  }
  blocks.forEach((start, end, count) => {
    const m = modules.find(start);
    const entry = m === null ? undefined : perModule.get(m);
    if (m === null || entry === undefined) return;
    const cfg = entry.cov.cfg;
    const lo = start - m.bias;
    const hi = end - m.bias;
    let b = cfg.blockAt(lo);
    if (b < 0) {
      entry.outside++;
      return;
    }
    // A dynamic block may run through several static blocks (fall-through into a jump target).
    for (; b < cfg.blockCount && cfg.blockStart[b] < hi; b++) entry.cov.counts[b] += count;
  });
  for (const m of modules.modules) {
    const entry = perModule.get(m);
    if (entry === undefined) {
      out.push({ module: m.name, path: m.path, unavailable: m.cfgUnavailableReason, functions: 0, functionsRan: 0, blocks: 0, blocksRan: 0, blocksOutsideCfg: 0, list: [] });
      continue;
    }
    const { cov } = entry;
    const cfg = cov.cfg;
    const list: FunctionCoverage[] = [];
    let functionsRan = 0;
    for (let f = 0; f < cfg.functionCount; f++) {
      const { ran, total } = cov.functionCoverage(f);
      if (ran > 0) functionsRan++;
      const entryBlock = cfg.blockStartingAt(cfg.functionEntry[f]);
      const flags = entryBlock >= 0 ? cfg.blockFlags[entryBlock] : 0;
      list.push({
        name: cfg.functionName[f] || `sub_${(cfg.functionEntry[f] + m.bias).toString(16)}`,
        address: hexAddress(cfg.functionEntry[f] + m.bias),
        blocksRan: ran,
        blocks: total,
        entries: entryBlock >= 0 ? cov.counts[entryBlock] : 0,
        plt: (flags & BlockFlag.Plt) !== 0,
      });
    }
    let blocksRan = 0;
    for (let b = 0; b < cov.counts.length; b++) if (cov.counts[b] > 0) blocksRan++;
    // Stable: equal keys keep address order.
    list.sort((a, b) => b.blocksRan - a.blocksRan);
    out.push({
      module: m.name,
      path: m.path,
      unavailable: null,
      functions: cfg.functionCount,
      functionsRan,
      blocks: cfg.blockCount,
      blocksRan,
      blocksOutsideCfg: entry.outside,
      list,
    });
  }
  return out;
}

function percent(a: number, b: number): string {
  return b === 0 ? '-' : `${((100 * a) / b).toFixed(1)}%`;
}

/**
 * Per-function coverage as text: one summary line per module, then one line
 * per function (`limit` per module; 0: all).
 */
export function formatCoverageText(coverage: readonly ModuleCoverage[], limit = 0): string[] {
  const lines: string[] = [];
  for (const m of coverage) {
    if (m.unavailable !== null) {
      lines.push(`module ${m.module}: no static CFG (${m.unavailable})`);
      continue;
    }
    lines.push(
      `module ${m.module}: ${m.functionsRan}/${m.functions} functions ran (${percent(m.functionsRan, m.functions)}), ` +
        `${m.blocksRan}/${m.blocks} blocks (${percent(m.blocksRan, m.blocks)})` +
        (m.blocksOutsideCfg > 0 ? `, ${m.blocksOutsideCfg} executed blocks outside the static CFG` : ''),
    );
    const shown = limit > 0 ? m.list.slice(0, limit) : m.list;
    lines.push(`  ${'address'.padEnd(18)} ${'blocks'.padStart(11)} ${'cover'.padStart(7)} ${'entries'.padStart(8)}  function`);
    for (const f of shown) {
      lines.push(
        `  ${f.address.padEnd(18)} ${`${f.blocksRan}/${f.blocks}`.padStart(11)} ${percent(f.blocksRan, f.blocks).padStart(7)} ${String(f.entries).padStart(8)}  ${f.blocksRan === 0 ? '(never ran) ' : ''}${f.name}`,
      );
    }
    if (shown.length < m.list.length) lines.push(`  ... ${m.list.length - shown.length} more functions (use --limit 0 for all)`);
  }
  return lines;
}
