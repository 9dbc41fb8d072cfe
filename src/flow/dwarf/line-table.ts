/**
 * Source lines of machine code, in process: every line-number program of
 * an ELF's `.debug_line` decoded into one table (line-program.ts), looked
 * up by link-time address. This replaces spawning `addr2line`.
 *
 * Which programs: those the compilation units of `.debug_info` point at
 * (DW_AT_stmt_list, with their DW_AT_comp_dir), and every program met
 * walking `.debug_line` from its start (so a file without `.debug_info`
 * still has lines).
 *
 * Lookup, where the DWARF specification leaves the choice to the consumer,
 * answers as binutils' addr2line does, so the two agree:
 * - an address is in a sequence when low <= address < the end_sequence
 *   row's address; sequences are ordered by start, and a sequence that
 *   starts inside an earlier one is trimmed to start at its end, or dropped
 *   when it lies wholly inside it;
 * - within a sequence, the row is the last one at the greatest address not
 *   above the looked-up one (of several rows at one address, the last).
 * One deliberate difference: a DWARF 5 program's file register starts at 1,
 * as the specification says (DWARF 5 table 6.4) and readelf decodes it;
 * binutils 2.40's addr2line starts it at 0, which names the wrong file when
 * a sequence starts without DW_LNS_set_file and file 1 is not the primary
 * source file (gcc does this for a header's function placed first).
 *
 * Storage is columnar typed arrays; building grows them, never allocating
 * by a size the input declares. Building is linear in the sections' size:
 * programs are decoded for at most a few times the section's bytes, and a
 * row costs at least one byte of program.
 */
import type { ElfFile } from '../elf.js';
import { readCompileUnits } from './compile-units.js';
import { debugSections, type DebugSections } from './debug-sections.js';
import { decodeLineProgram, type LineRows } from './line-program.js';
import { lastAtOrBelow } from '../sorted-search.js';

/** A row of the line table: where an address's code came from. */
export interface SourceLine {
  /** The file name as the compiler recorded it, joined with its directory and the compilation directory. */
  file: string;
  /** 1-based; 0 when the code has no source line (compiler-generated). */
  line: number;
  /** 1-based; 0 for no column. */
  column: number;
  /** Which block of a line with several (DW_LNE_set_discriminator); 0 for none. */
  discriminator: number;
}

/** Growable columnar rows. */
class RowStore implements LineRows {
  address = new Float64Array(1024);
  file = new Int32Array(1024);
  line = new Uint32Array(1024);
  column = new Uint32Array(1024);
  discriminator = new Uint32Array(1024);
  rowCount = 0;
  /** Sequences as [first row, end row (inclusive)] pairs. */
  seqFirst: number[] = [];
  seqLast: number[] = [];
  readonly files: string[] = [];
  private readonly fileIds = new Map<string, number>();

  get sequenceCount(): number {
    return this.seqFirst.length;
  }

  fileId(name: string): number {
    let id = this.fileIds.get(name);
    if (id === undefined) {
      id = this.files.length;
      this.files.push(name);
      this.fileIds.set(name, id);
    }
    return id;
  }

  row(address: number, fileId: number, line: number, column: number, discriminator: number): void {
    const i = this.rowCount;
    if (i === this.address.length) this.grow();
    this.address[i] = address;
    this.file[i] = fileId;
    this.line[i] = line;
    this.column[i] = column;
    this.discriminator[i] = discriminator;
    this.rowCount = i + 1;
  }

  sequence(firstRow: number): void {
    const last = this.rowCount - 1;
    // A sequence needs an end row after its first row, and addresses that are numbers.
    let ok = last > firstRow;
    for (let i = firstRow; ok && i <= last; i++) if (!Number.isFinite(this.address[i])) ok = false;
    if (!ok) {
      this.rowCount = firstRow;
      return;
    }
    this.seqFirst.push(firstRow);
    this.seqLast.push(last);
  }

  rollback(rows: number, sequences: number): void {
    this.rowCount = Math.min(this.rowCount, rows);
    this.seqFirst.length = Math.min(this.seqFirst.length, sequences);
    this.seqLast.length = Math.min(this.seqLast.length, sequences);
  }

  private grow(): void {
    const n = this.address.length * 2;
    const a = new Float64Array(n);
    a.set(this.address);
    this.address = a;
    const f = new Int32Array(n);
    f.set(this.file);
    this.file = f;
    const l = new Uint32Array(n);
    l.set(this.line);
    this.line = l;
    const c = new Uint32Array(n);
    c.set(this.column);
    this.column = c;
    const d = new Uint32Array(n);
    d.set(this.discriminator);
    this.discriminator = d;
  }
}

/** Every line-number program's offset: those of the compilation units, then a walk of the section. */
function programOffsets(s: DebugSections, littleEndian: boolean): Map<number, string | null> {
  const offsets = new Map<number, string | null>();
  for (const cu of readCompileUnits(s, littleEndian)) {
    if (Number.isFinite(cu.stmtList) && !offsets.has(cu.stmtList)) offsets.set(cu.stmtList, cu.compDir);
  }
  return offsets;
}

export class LineTable {
  /** Sorted, non-overlapping sequences: [low, high) and their rows [first, last). */
  private readonly seqLow: Float64Array;
  private readonly seqHigh: Float64Array;
  private readonly seqFirst: Uint32Array;
  private readonly seqLast: Uint32Array;

  private constructor(private readonly rows: RowStore) {
    // Sort rows within each sequence by address (stable: later rows stay later), then the sequences.
    const order: number[] = [];
    for (let k = 0; k < rows.seqFirst.length; k++) {
      sortSequenceRows(rows, rows.seqFirst[k], rows.seqLast[k]);
      order.push(k);
    }
    const low = (k: number): number => rows.address[rows.seqFirst[k]];
    const high = (k: number): number => rows.address[rows.seqLast[k]];
    order.sort((a, b) => low(a) - low(b) || high(b) - high(a) || a - b);
    const kept: { low: number; high: number; first: number; last: number }[] = [];
    let lastHigh = -Infinity;
    for (const k of order) {
      let lo = low(k);
      const hi = high(k);
      if (!(hi > lo)) continue;
      if (lo < lastHigh) {
        // Wholly inside the previous sequence: dropped; overlapping its end: trimmed.
        if (hi <= lastHigh) continue;
        lo = lastHigh;
      }
      kept.push({ low: lo, high: hi, first: rows.seqFirst[k], last: rows.seqLast[k] });
      lastHigh = hi;
    }
    this.seqLow = Float64Array.from(kept, (s) => s.low);
    this.seqHigh = Float64Array.from(kept, (s) => s.high);
    this.seqFirst = Uint32Array.from(kept, (s) => s.first);
    this.seqLast = Uint32Array.from(kept, (s) => s.last);
  }

  /** The line table of an ELF file (`bytes` are the file's contents). Never throws for malformed DWARF. */
  static fromElf(bytes: Uint8Array, elf: ElfFile): LineTable {
    return LineTable.fromSections(debugSections(bytes, elf), elf.littleEndian);
  }

  static fromSections(s: DebugSections, littleEndian: boolean): LineTable {
    const rows = new RowStore();
    if (s.line !== null) {
      const offsets = programOffsets(s, littleEndian);
      const done = new Set<number>();
      // Units that compilation units point at may overlap (hostile input): decode at most twice the section.
      let budget = 2 * s.line.length;
      for (const [offset, compDir] of offsets) {
        if (budget <= 0) break;
        if (offset >= 0 && offset < s.line.length && !done.has(offset)) {
          done.add(offset);
          const end = decodeLineProgram(s, littleEndian, offset, compDir, rows);
          budget -= Number.isFinite(end) ? end - offset : 4;
        }
      }
      // Programs no compilation unit points at: walk the section unit by unit.
      for (let at = 0; at < s.line.length; ) {
        const next = done.has(at) ? nextUnit(s.line, littleEndian, at) : decodeLineProgram(s, littleEndian, at, null, rows);
        done.add(at);
        if (!(next > at)) break;
        at = next;
      }
    }
    return new LineTable(rows);
  }

  /** Sequences kept (for tests and statistics). */
  get sequences(): number {
    return this.seqLow.length;
  }

  get rowCount(): number {
    return this.rows.rowCount;
  }

  /** The source line of link-time address `address`, or null when no sequence covers it. */
  lookup(address: number): SourceLine | null {
    const hi = lastAtOrBelow(this.seqLow, address);
    if (hi < 0 || !(address < this.seqHigh[hi])) return null;
    const rows = this.rows;
    const addr = rows.address;
    // The last row at or below `address`, among [first, last) (the end row is no location).
    let a = this.seqFirst[hi];
    let b = this.seqLast[hi] - 1;
    while (a <= b) {
      const mid = (a + b) >> 1;
      if (addr[mid] <= address) a = mid + 1;
      else b = mid - 1;
    }
    if (b < this.seqFirst[hi]) return null;
    const fileId = rows.file[b];
    if (fileId < 0) return null;
    return { file: rows.files[fileId], line: rows.line[b], column: rows.column[b], discriminator: rows.discriminator[b] };
  }
}

/** The offset after the unit at `at` (from its initial length), or NaN. */
function nextUnit(section: Uint8Array, le: boolean, at: number): number {
  if (at + 4 > section.length) return NaN;
  const view = new DataView(section.buffer, section.byteOffset, section.byteLength);
  const l = view.getUint32(at, le);
  if (l < 0xfffffff0) return at + 4 + l;
  if (l !== 0xffffffff || at + 12 > section.length) return NaN;
  const lo = view.getUint32(at + (le ? 4 : 8), le);
  const hi = view.getUint32(at + (le ? 8 : 4), le);
  return hi >= 0x200000 ? NaN : at + 12 + hi * 2 ** 32 + lo;
}

/** Stable insertion of out-of-order rows (producers emit them in order; this is for the rest). */
function sortSequenceRows(rows: RowStore, first: number, last: number): void {
  const addr = rows.address;
  let sorted = true;
  for (let i = first + 1; i <= last && sorted; i++) if (addr[i] < addr[i - 1]) sorted = false;
  if (sorted) return;
  const idx: number[] = [];
  for (let i = first; i <= last; i++) idx.push(i);
  idx.sort((x, y) => addr[x] - addr[y] || x - y);
  const copy = <T extends Float64Array | Int32Array | Uint32Array>(a: T): void => {
    const vals = idx.map((i) => a[i]);
    vals.forEach((v, k) => (a[first + k] = v));
  };
  copy(rows.address);
  copy(rows.file);
  copy(rows.line);
  copy(rows.column);
  copy(rows.discriminator);
}
