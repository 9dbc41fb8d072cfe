/**
 * The walk over the units of `.debug_info` (DWARF 5 section 7.5.1: unit
 * headers of versions 2-5, DWARF 5 unit types). Each unit is read by a
 * reader bounded to the unit; a malformed unit (a {@link DwarfError}) is
 * skipped, and a malformed unit length ends the walk, since the next unit
 * cannot be found.
 */
import { DwarfError, DwarfReader } from './dwarf-reader.js';

export const DW_UT_compile = 0x01;
export const DW_UT_type = 0x02;
export const DW_UT_skeleton = 0x04;
export const DW_UT_split_compile = 0x05;
export const DW_UT_split_type = 0x06;

export interface UnitHeader {
  version: number;
  /** DW_UT_*; DW_UT_compile before DWARF 5. */
  unitType: number;
  offsetSize: 4 | 8;
  addressSize: number;
  abbrevOffset: number;
}

/** The unit header after its length; the reader is left at the unit's first DIE. */
function readUnitHeader(r: DwarfReader, offsetSize: 4 | 8): UnitHeader {
  const version = r.u16();
  if (version < 2 || version > 5) throw new DwarfError(`unsupported unit version ${version}`);
  if (version < 5) {
    const abbrevOffset = r.unsigned(offsetSize);
    return { version, unitType: DW_UT_compile, offsetSize, addressSize: r.u8(), abbrevOffset };
  }
  const unitType = r.u8();
  const addressSize = r.u8();
  const abbrevOffset = r.unsigned(offsetSize);
  if (unitType === DW_UT_skeleton || unitType === DW_UT_split_compile) r.skip(8, 'dwo id');
  else if (unitType === DW_UT_type || unitType === DW_UT_split_type) r.skip(8 + offsetSize, 'type signature');
  return { version, unitType, offsetSize, addressSize, abbrevOffset };
}

/**
 * Call `visit` for each unit of `info`, with a reader at the unit's first
 * DIE whose end is the unit's end. `visit` returns false to stop the walk.
 */
export function forEachUnit(info: Uint8Array, le: boolean, visit: (r: DwarfReader, unit: UnitHeader) => boolean | void): void {
  const r = new DwarfReader(info, le);
  let more = true;
  while (more && r.remaining > 0) {
    const unit = r.unitBounds();
    if (unit === null) break;
    const next = unit.end;
    const outerEnd = r.end;
    r.end = next;
    try {
      more = visit(r, readUnitHeader(r, unit.offsetSize)) !== false;
    } catch (e) {
      if (!(e instanceof DwarfError)) throw e;
    } finally {
      r.at = next;
      r.end = outerEnd;
    }
  }
}
