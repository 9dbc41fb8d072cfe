/**
 * One abbreviation table of `.debug_abbrev` (DWARF 5 section 7.5.3): each
 * code's tag, whether its DIE has children, and its attribute specs
 * (DW_FORM_implicit_const carries its value in the table).
 *
 * Bounded whatever the input: at most {@link MAX_ABBREV_TABLE} bytes and
 * {@link MAX_ATTRS} attributes per abbreviation; a truncated or malformed
 * table keeps the abbreviations read before the fault.
 */
import { DwarfError, DwarfReader } from './dwarf-reader.js';
import { DW_FORM } from './forms.js';

/** Bytes read of one abbreviation table (real ones are a few KiB). */
export const MAX_ABBREV_TABLE = 1 << 20;
/** Attributes of one abbreviation (a compile-unit DIE has a few dozen at most). */
const MAX_ATTRS = 512;

export interface AbbrevAttr {
  name: number;
  form: number;
  implicit: number;
}

export interface Abbrev {
  tag: number;
  children: boolean;
  attrs: AbbrevAttr[];
}

/** Abbreviation code → abbreviation, for one table. */
export type AbbrevTable = Map<number, Abbrev>;

/** Read the table at `offset`; returns it and the bytes it took. */
export function readAbbrevTable(section: Uint8Array, offset: number, le: boolean): { table: AbbrevTable; bytes: number } {
  const table: AbbrevTable = new Map();
  const r = new DwarfReader(section, le, offset, offset + MAX_ABBREV_TABLE);
  try {
    for (;;) {
      const code = r.uleb();
      if (code === 0 || Number.isNaN(code)) break;
      const tag = r.uleb();
      const children = r.u8() !== 0;
      const attrs: AbbrevAttr[] = [];
      for (;;) {
        const name = r.uleb();
        const form = r.uleb();
        if (name === 0 && form === 0) break;
        if (attrs.length >= MAX_ATTRS) throw new DwarfError('too many attributes in one abbreviation');
        attrs.push({ name, form, implicit: form === DW_FORM.implicitConst ? r.sleb() : 0 });
      }
      if (!table.has(code)) table.set(code, { tag, children, attrs });
    }
  } catch (e) {
    if (!(e instanceof DwarfError)) throw e;
  }
  return { table, bytes: r.at - offset };
}
