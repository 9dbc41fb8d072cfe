/**
 * What the line tables need from `.debug_info`: for each compilation unit,
 * the offset of its line program (DW_AT_stmt_list) and its compilation
 * directory (DW_AT_comp_dir), which relative file names of a DWARF 2-4
 * line table are relative to. Only the first DIE of each unit (the
 * DW_TAG_compile_unit) is read.
 *
 * Layouts: DWARF 5 section 7.5.1 (unit headers, versions 2-5 and the
 * DWARF 5 unit types) and 7.5.3 (abbreviation tables), section 7.26
 * (.debug_str_offsets: an 8- or 16-byte header, then offsets, located by
 * DW_AT_str_offsets_base).
 *
 * A malformed unit is skipped; a malformed unit length ends the walk (the
 * next unit cannot be found). Work is bounded whatever the input: an
 * abbreviation table is read for at most {@link MAX_ABBREV_TABLE} bytes and
 * {@link MAX_ATTRS} attributes per abbreviation, and all tables together
 * for a few times the section's size, after which no more units are read.
 */
import { DwarfError, DwarfReader, stringAt } from './dwarf-reader.js';
import type { DebugSections } from './debug-sections.js';
import { DW_FORM, readForm, type FormContext, type FormValue } from './forms.js';

const DW_AT_name = 0x03;
const DW_AT_stmt_list = 0x10;
const DW_AT_comp_dir = 0x1b;
const DW_AT_str_offsets_base = 0x72;
const DW_UT_skeleton = 0x04;
const DW_UT_split_compile = 0x05;
const DW_UT_type = 0x02;
const DW_UT_split_type = 0x06;

export interface CompileUnit {
  /** Offset of the unit's line program in .debug_line, or NaN. */
  stmtList: number;
  compDir: string | null;
  name: string | null;
}

/** Bytes read of one abbreviation table (real ones are a few KiB). */
const MAX_ABBREV_TABLE = 1 << 20;
/** Attributes of one abbreviation (a compile-unit DIE has a few dozen at most). */
const MAX_ATTRS = 512;

interface AbbrevAttr {
  name: number;
  form: number;
  implicit: number;
}

/** Abbreviation code → attribute specs, for one table. */
type AbbrevTable = Map<number, AbbrevAttr[]>;

/** Read the table at `offset`; returns it and the bytes it took. */
function readAbbrevTable(section: Uint8Array, offset: number, le: boolean): { table: AbbrevTable; bytes: number } {
  const table: AbbrevTable = new Map();
  const r = new DwarfReader(section, le, offset, offset + MAX_ABBREV_TABLE);
  try {
    for (;;) {
      const code = r.uleb();
      if (code === 0 || Number.isNaN(code)) break;
      r.uleb(); // tag
      r.u8(); // has children
      const attrs: AbbrevAttr[] = [];
      for (;;) {
        const name = r.uleb();
        const form = r.uleb();
        if (name === 0 && form === 0) break;
        if (attrs.length >= MAX_ATTRS) throw new DwarfError('too many attributes in one abbreviation');
        attrs.push({ name, form, implicit: form === DW_FORM.implicitConst ? r.sleb() : 0 });
      }
      if (!table.has(code)) table.set(code, attrs);
    }
  } catch (e) {
    if (!(e instanceof DwarfError)) throw e;
    // A truncated table keeps the abbreviations read so far.
  }
  return { table, bytes: r.at - offset };
}

/** A string by index through .debug_str_offsets (DWARF 5 section 7.26), or null. */
function stringByIndex(s: DebugSections, base: number, index: number, offsetSize: 4 | 8, le: boolean): string | null {
  if (s.strOffsets === null || !(base >= 0) || !(index >= 0)) return null;
  const at = base + index * offsetSize;
  if (!(at + offsetSize <= s.strOffsets.length)) return null;
  const r = new DwarfReader(s.strOffsets, le, at);
  return stringAt(s.str, r.unsigned(offsetSize));
}

/** The compilation units of `.debug_info` (empty without it). */
export function readCompileUnits(s: DebugSections, littleEndian: boolean): CompileUnit[] {
  const units: CompileUnit[] = [];
  if (s.info === null || s.abbrev === null) return units;
  const abbrevs = new Map<number, AbbrevTable>();
  let abbrevBudget = 4 * s.abbrev.length + MAX_ABBREV_TABLE;
  const r = new DwarfReader(s.info, littleEndian);
  while (r.remaining > 0 && abbrevBudget > 0) {
    let next: number;
    let unitLength: { length: number; offsetSize: 4 | 8 };
    try {
      unitLength = r.initialLength();
      next = r.at + unitLength.length;
      if (!(next <= r.end)) break;
    } catch (e) {
      if (e instanceof DwarfError) break;
      throw e;
    }
    const unitEnd = r.end;
    r.end = next;
    try {
      const { offsetSize } = unitLength;
      const version = r.u16();
      if (version < 2 || version > 5) throw new DwarfError(`unsupported unit version ${version}`);
      let addressSize: number;
      let abbrevOffset: number;
      let unitType = 0x01;
      if (version >= 5) {
        unitType = r.u8();
        addressSize = r.u8();
        abbrevOffset = r.unsigned(offsetSize);
        if (unitType === DW_UT_skeleton || unitType === DW_UT_split_compile) r.skip(8, 'dwo id');
        else if (unitType === DW_UT_type || unitType === DW_UT_split_type) r.skip(8 + offsetSize, 'type signature');
      } else {
        abbrevOffset = r.unsigned(offsetSize);
        addressSize = r.u8();
      }
      if (unitType === DW_UT_type || unitType === DW_UT_split_type) continue;
      if (addressSize !== 4 && addressSize !== 8) throw new DwarfError(`address size ${addressSize}`);
      if (!(abbrevOffset >= 0 && abbrevOffset < s.abbrev.length)) throw new DwarfError('abbreviation offset outside .debug_abbrev');
      let table = abbrevs.get(abbrevOffset);
      if (table === undefined) {
        const read = readAbbrevTable(s.abbrev, abbrevOffset, littleEndian);
        abbrevBudget -= Math.max(1, read.bytes);
        abbrevs.set(abbrevOffset, (table = read.table));
      }
      const attrs = table.get(r.uleb());
      if (attrs === undefined) continue;
      const ctx: FormContext = { version, offsetSize, addressSize, str: s.str, lineStr: s.lineStr };
      let stmtList = NaN;
      let compDir: FormValue = { kind: 'other' };
      let name: FormValue = { kind: 'other' };
      let strOffsetsBase = NaN;
      for (const a of attrs) {
        const v = readForm(r, a.form, ctx, a.implicit);
        if (a.name === DW_AT_stmt_list && v.kind === 'number') stmtList = v.value;
        else if (a.name === DW_AT_comp_dir) compDir = v;
        else if (a.name === DW_AT_name) name = v;
        else if (a.name === DW_AT_str_offsets_base && v.kind === 'number') strOffsetsBase = v.value;
      }
      const text = (v: FormValue): string | null =>
        v.kind === 'string' ? v.value : v.kind === 'strx' ? stringByIndex(s, strOffsetsBase, v.index, offsetSize, littleEndian) : null;
      units.push({ stmtList, compDir: text(compDir), name: text(name) });
    } catch (e) {
      if (!(e instanceof DwarfError)) throw e;
    } finally {
      r.at = next;
      r.end = unitEnd;
    }
  }
  return units;
}
