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
 * next unit cannot be found). Work is bounded whatever the input: each
 * abbreviation table within its own bounds (abbrev-table.ts), and all
 * tables together for a few times the section's size, after which no more
 * units are read.
 */
import { MAX_ABBREV_TABLE, readAbbrevTable, type AbbrevTable } from './abbrev-table.js';
import type { DebugSections } from './debug-sections.js';
import { DwarfError, DwarfReader, stringAt } from './dwarf-reader.js';
import { readForm, type FormContext, type FormValue } from './forms.js';
import { DW_UT_split_type, DW_UT_type, forEachUnit } from './info-units.js';

const DW_AT_name = 0x03;
const DW_AT_stmt_list = 0x10;
const DW_AT_comp_dir = 0x1b;
const DW_AT_str_offsets_base = 0x72;

export interface CompileUnit {
  /** Offset of the unit's line program in .debug_line, or NaN. */
  stmtList: number;
  compDir: string | null;
  name: string | null;
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
  const abbrev = s.abbrev;
  if (s.info === null || abbrev === null) return units;
  const abbrevs = new Map<number, AbbrevTable>();
  let abbrevBudget = 4 * abbrev.length + MAX_ABBREV_TABLE;
  forEachUnit(s.info, littleEndian, (r, { version, unitType, offsetSize, addressSize, abbrevOffset }) => {
    if (abbrevBudget <= 0) return false;
    if (unitType === DW_UT_type || unitType === DW_UT_split_type) return;
    if (addressSize !== 4 && addressSize !== 8) throw new DwarfError(`address size ${addressSize}`);
    if (!(abbrevOffset >= 0 && abbrevOffset < abbrev.length)) throw new DwarfError('abbreviation offset outside .debug_abbrev');
    let table = abbrevs.get(abbrevOffset);
    if (table === undefined) {
      const read = readAbbrevTable(abbrev, abbrevOffset, littleEndian);
      abbrevBudget -= Math.max(1, read.bytes);
      abbrevs.set(abbrevOffset, (table = read.table));
    }
    const attrs = table.get(r.uleb())?.attrs;
    if (attrs === undefined) return;
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
  });
  return units;
}
