/**
 * Where inlined code was called from: DWARF's inline records
 * (DW_TAG_inlined_subroutine, DWARF 5 section 3.3.8.2) give each inlined
 * body's address ranges and its call site (DW_AT_call_file, DW_AT_call_line).
 * An instruction of `atoi` inlined from stdlib.h into `main` has the
 * header's line in the line table; its outermost inline record names the
 * line of `main` that called it, which is the program's own source line.
 *
 * Ranges: DW_AT_low_pc with DW_AT_high_pc (an address, or since DWARF 4 a
 * length), or DW_AT_ranges into .debug_rnglists (DWARF 5 section 7.25,
 * DW_RLE_*; DW_FORM_rnglistx through DW_AT_rnglists_base) or .debug_ranges
 * (DWARF 2-4: pairs relative to the unit's base, a base-selection entry
 * starting with the largest address). File numbers index the unit's line
 * program file table (from 0 in DWARF 5, from 1 before).
 *
 * Bounded whatever the input: a unit's DIEs are walked for at most its own
 * bytes, abbreviation tables are read once each with a byte cap, and at most
 * {@link MAX_RECORDS} records and {@link MAX_RANGES} ranges are kept.
 */
import { readAbbrevTable, type AbbrevTable } from '../../flow/dwarf/abbrev-table.js';
import type { DebugSections } from '../../flow/dwarf/debug-sections.js';
import { DwarfError, DwarfReader } from '../../flow/dwarf/dwarf-reader.js';
import { DW_FORM, readForm, type FormContext } from '../../flow/dwarf/forms.js';
import { DW_UT_compile, forEachUnit } from '../../flow/dwarf/info-units.js';
import { decodeLineProgram, type LineRows } from '../../flow/dwarf/line-program.js';

const DW_TAG_compile_unit = 0x11;
const DW_TAG_inlined_subroutine = 0x1d;
const DW_AT_low_pc = 0x11;
const DW_AT_high_pc = 0x12;
const DW_AT_ranges = 0x55;
const DW_AT_stmt_list = 0x10;
const DW_AT_comp_dir = 0x1b;
const DW_AT_call_file = 0x58;
const DW_AT_call_line = 0x59;
const DW_AT_rnglists_base = 0x74;

const MAX_RECORDS = 1 << 20;
const MAX_RANGES = 1 << 22;
const MAX_RANGES_PER_LIST = 4096;

export interface CallSite {
  /** The call site's file, as the line program names it (joined with its directory). */
  file: string;
  line: number;
}

interface InlineRecord {
  lo: number;
  hi: number;
  depth: number;
  site: CallSite;
}

/** The file names of the line program at `offset`, by file number. */
function lineFiles(s: DebugSections, le: boolean, offset: number, compDir: string | null, version: number): (n: number) => string | null {
  const names: string[] = [];
  const rows: LineRows = {
    rowCount: 0,
    sequenceCount: 0,
    fileId: (name: string) => names.push(name) - 1,
    row: () => {},
    sequence: () => {},
    rollback: () => {},
  };
  if (offset >= 0 && s.line !== null) decodeLineProgram(s, le, offset, compDir, rows);
  // DWARF 5 numbers files from 0, earlier versions from 1 (DWARF 5 section 6.2.4).
  return (n) => names[version >= 5 ? n : n - 1] ?? null;
}

export class InlineCallSites {
  private constructor(private readonly records: InlineRecord[]) {}

  static fromSections(s: DebugSections, rnglists: Uint8Array | null, ranges: Uint8Array | null, le: boolean): InlineCallSites {
    const records: InlineRecord[] = [];
    const abbrev = s.abbrev;
    if (s.info === null || abbrev === null) return new InlineCallSites(records);
    let rangeCount = 0;
    const abbrevCache = new Map<number, AbbrevTable>();
    forEachUnit(s.info, le, (r, { version, unitType, offsetSize, addressSize, abbrevOffset }) => {
      if (records.length >= MAX_RECORDS) return false;
      if (unitType !== DW_UT_compile) return; // only full compile units
      let abbrevs = abbrevCache.get(abbrevOffset);
      if (abbrevs === undefined) abbrevCache.set(abbrevOffset, (abbrevs = readAbbrevTable(abbrev, abbrevOffset, le).table));
      const ctx: FormContext = { version, offsetSize, addressSize, str: s.str, lineStr: s.lineStr };
      let stmtList = NaN;
      let compDir: string | null = null;
      let fileOf: ((n: number) => string | null) | null = null;
      let base = 0;
      let rnglistsBase = NaN;
      let depth = 0;
      while (r.at < r.end) {
        const code = r.uleb();
        if (code === 0) {
          depth--;
          if (depth <= 0) return;
          continue;
        }
        const ab = abbrevs.get(code);
        if (ab === undefined) return;
        let lo = NaN;
        let hi = NaN;
        let hiIsLength = false;
        let rangesAt = NaN;
        let rangesIndexed = false;
        let callFile = NaN;
        let callLine = NaN;
        for (const a of ab.attrs) {
          const v = readForm(r, a.form, ctx, a.implicit);
          if (a.name === DW_AT_comp_dir && v.kind === 'string') compDir = v.value;
          if (v.kind !== 'number') continue;
          if (a.name === DW_AT_stmt_list) stmtList = v.value;
          if (a.name === DW_AT_low_pc) lo = v.value;
          else if (a.name === DW_AT_high_pc) {
            hi = v.value;
            hiIsLength = a.form !== DW_FORM.addr;
          } else if (a.name === DW_AT_ranges) {
            rangesAt = v.value;
            rangesIndexed = a.form === DW_FORM.rnglistx;
          } else if (a.name === DW_AT_call_file) callFile = v.value;
          else if (a.name === DW_AT_call_line) callLine = v.value;
          else if (a.name === DW_AT_rnglists_base) rnglistsBase = v.value;
        }
        if (ab.tag === DW_TAG_compile_unit && !Number.isNaN(lo)) base = lo;
        if (ab.tag === DW_TAG_inlined_subroutine && callLine > 0) {
          fileOf ??= lineFiles(s, le, stmtList, compDir, version);
          const file = fileOf(callFile);
          if (file !== null) {
            const spans: [number, number][] = [];
            if (!Number.isNaN(lo) && !Number.isNaN(hi)) spans.push([lo, hiIsLength ? lo + hi : hi]);
            else if (!Number.isNaN(rangesAt)) {
              const list = version >= 5 ? rnglist(rnglists, le, addressSize, offsetSize, rangesAt, rangesIndexed, rnglistsBase, base) : rangeList(ranges, le, addressSize, rangesAt, base);
              spans.push(...list);
            }
            for (const [a, b] of spans) {
              if (b <= a || rangeCount >= MAX_RANGES) continue;
              rangeCount++;
              records.push({ lo: a, hi: b, depth, site: { file, line: callLine } });
            }
          }
        }
        if (ab.children) depth++;
        else if (depth === 0) return;
      }
    });
    return new InlineCallSites(records);
  }

  /**
   * The call site, in the function the code was inlined into, of the
   * outermost inlined body holding link-time `address`; null when the
   * address is not inlined code.
   */
  outermostCallSite(address: number): CallSite | null {
    let best: InlineRecord | null = null;
    for (const rec of this.records) {
      if (address >= rec.lo && address < rec.hi && (best === null || rec.depth < best.depth)) best = rec;
    }
    return best?.site ?? null;
  }
}

/** A DWARF 5 range list (.debug_rnglists). */
function rnglist(sec: Uint8Array | null, le: boolean, addressSize: number, offsetSize: 4 | 8, at: number, indexed: boolean, listsBase: number, unitBase: number): [number, number][] {
  if (sec === null) return [];
  const out: [number, number][] = [];
  try {
    let offset = at;
    if (indexed) {
      if (Number.isNaN(listsBase)) return [];
      const ix = new DwarfReader(sec, le, listsBase + at * offsetSize);
      offset = listsBase + ix.unsigned(offsetSize);
    }
    const r = new DwarfReader(sec, le, offset);
    let base = unitBase;
    for (let i = 0; i < MAX_RANGES_PER_LIST; i++) {
      const kind = r.u8();
      if (kind === 0) break; // DW_RLE_end_of_list
      if (kind === 4) {
        // offset_pair
        const a = r.uleb();
        const b = r.uleb();
        out.push([base + a, base + b]);
      } else if (kind === 5) base = r.unsigned(addressSize); // base_address
      else if (kind === 6) out.push([r.unsigned(addressSize), r.unsigned(addressSize)]); // start_end
      else if (kind === 7) {
        // start_length
        const a = r.unsigned(addressSize);
        out.push([a, a + r.uleb()]);
      } else return out; // the *x forms need .debug_addr (split DWARF): not read
    }
  } catch (e) {
    if (!(e instanceof DwarfError)) throw e;
  }
  return out;
}

/** A DWARF 2-4 range list (.debug_ranges). */
function rangeList(sec: Uint8Array | null, le: boolean, addressSize: number, at: number, unitBase: number): [number, number][] {
  if (sec === null) return [];
  const out: [number, number][] = [];
  try {
    const r = new DwarfReader(sec, le, at);
    let base = unitBase;
    for (let i = 0; i < MAX_RANGES_PER_LIST; i++) {
      const a = r.unsigned(addressSize);
      const b = r.unsigned(addressSize);
      if (a === 0 && b === 0) break;
      // A base-selection entry starts with the largest address (read as NaN for 64 bits: above 2^53).
      if (Number.isNaN(a) || (addressSize === 4 && a === 0xffffffff)) base = b;
      else out.push([base + a, base + b]);
    }
  } catch (e) {
    if (!(e instanceof DwarfError)) throw e;
  }
  return out;
}
