/**
 * Attribute forms (DWARF 5 section 7.5.6, table 7.6; DWARF 4 section
 * 7.5.4): how long a value is and what it holds. Used by the line table's
 * DWARF 5 directory and file entries and by the compile-unit DIE.
 *
 * Every form is either read (numbers, strings, string-section offsets,
 * string indices) or skipped by its size; an unknown form is malformed,
 * since its size cannot be known.
 */
import { DwarfError, DwarfReader, stringAt } from './dwarf-reader.js';

export const DW_FORM = {
  addr: 0x01,
  block2: 0x03,
  block4: 0x04,
  data2: 0x05,
  data4: 0x06,
  data8: 0x07,
  string: 0x08,
  block: 0x09,
  block1: 0x0a,
  data1: 0x0b,
  flag: 0x0c,
  sdata: 0x0d,
  strp: 0x0e,
  udata: 0x0f,
  refAddr: 0x10,
  ref1: 0x11,
  ref2: 0x12,
  ref4: 0x13,
  ref8: 0x14,
  refUdata: 0x15,
  indirect: 0x16,
  secOffset: 0x17,
  exprloc: 0x18,
  flagPresent: 0x19,
  strx: 0x1a,
  addrx: 0x1b,
  refSup4: 0x1c,
  strpSup: 0x1d,
  data16: 0x1e,
  lineStrp: 0x1f,
  refSig8: 0x20,
  implicitConst: 0x21,
  loclistx: 0x22,
  rnglistx: 0x23,
  refSup8: 0x24,
  strx1: 0x25,
  strx2: 0x26,
  strx3: 0x27,
  strx4: 0x28,
  addrx1: 0x29,
  addrx2: 0x2a,
  addrx3: 0x2b,
  addrx4: 0x2c,
  gnuAddrIndex: 0x1f01,
  gnuStrIndex: 0x1f02,
  gnuRefAlt: 0x1f20,
  gnuStrpAlt: 0x1f21,
} as const;

/** What a value read with {@link readForm} holds. */
export type FormValue =
  | { kind: 'number'; value: number }
  | { kind: 'string'; value: string | null }
  /** An index into the string offsets table (DW_FORM_strx*), resolved by the caller. */
  | { kind: 'strx'; index: number }
  | { kind: 'other' };

/** The unit a value is read in: sizes, and the string sections it may point into. */
export interface FormContext {
  version: number;
  offsetSize: 4 | 8;
  addressSize: number;
  str: Uint8Array | null;
  lineStr: Uint8Array | null;
}

const OTHER: FormValue = { kind: 'other' };
/** DW_FORM_indirect may name another form; one level is all a real producer needs. */
const MAX_INDIRECT = 4;

/** Read (or skip) one value of `form`; `implicit` is an abbreviation's DW_FORM_implicit_const value. */
export function readForm(r: DwarfReader, form: number, ctx: FormContext, implicit = 0, depth = 0): FormValue {
  switch (form) {
    case DW_FORM.data1:
    case DW_FORM.ref1:
    case DW_FORM.flag:
    case DW_FORM.addrx1:
      return { kind: 'number', value: r.u8() };
    case DW_FORM.data2:
    case DW_FORM.ref2:
    case DW_FORM.addrx2:
      return { kind: 'number', value: r.u16() };
    case DW_FORM.addrx3:
      return { kind: 'number', value: r.u24() };
    case DW_FORM.data4:
    case DW_FORM.ref4:
    case DW_FORM.refSup4:
    case DW_FORM.addrx4:
      return { kind: 'number', value: r.u32() };
    case DW_FORM.data8:
    case DW_FORM.ref8:
    case DW_FORM.refSig8:
    case DW_FORM.refSup8:
      return { kind: 'number', value: r.u64() };
    case DW_FORM.data16:
      r.skip(16, 'data16');
      return OTHER;
    case DW_FORM.udata:
    case DW_FORM.refUdata:
    case DW_FORM.addrx:
    case DW_FORM.loclistx:
    case DW_FORM.rnglistx:
    case DW_FORM.gnuAddrIndex:
      return { kind: 'number', value: r.uleb() };
    case DW_FORM.sdata:
      return { kind: 'number', value: r.sleb() };
    case DW_FORM.addr:
      return { kind: 'number', value: r.unsigned(ctx.addressSize) };
    case DW_FORM.refAddr:
      // An address in DWARF 2, a section offset since DWARF 3.
      return { kind: 'number', value: r.unsigned(ctx.version <= 2 ? ctx.addressSize : ctx.offsetSize) };
    case DW_FORM.secOffset:
    case DW_FORM.strpSup:
    case DW_FORM.gnuRefAlt:
    case DW_FORM.gnuStrpAlt:
      return { kind: 'number', value: r.unsigned(ctx.offsetSize) };
    case DW_FORM.string:
      return { kind: 'string', value: r.cstring() };
    case DW_FORM.strp:
      return { kind: 'string', value: stringAt(ctx.str, r.unsigned(ctx.offsetSize)) };
    case DW_FORM.lineStrp:
      return { kind: 'string', value: stringAt(ctx.lineStr, r.unsigned(ctx.offsetSize)) };
    case DW_FORM.strx:
    case DW_FORM.gnuStrIndex:
      return { kind: 'strx', index: r.uleb() };
    case DW_FORM.strx1:
      return { kind: 'strx', index: r.u8() };
    case DW_FORM.strx2:
      return { kind: 'strx', index: r.u16() };
    case DW_FORM.strx3:
      return { kind: 'strx', index: r.u24() };
    case DW_FORM.strx4:
      return { kind: 'strx', index: r.u32() };
    case DW_FORM.block1:
      r.skip(r.u8(), 'block');
      return OTHER;
    case DW_FORM.block2:
      r.skip(r.u16(), 'block');
      return OTHER;
    case DW_FORM.block4:
      r.skip(r.u32(), 'block');
      return OTHER;
    case DW_FORM.block:
    case DW_FORM.exprloc:
      r.skip(r.uleb(), 'block');
      return OTHER;
    case DW_FORM.flagPresent:
      return { kind: 'number', value: 1 };
    case DW_FORM.implicitConst:
      return { kind: 'number', value: implicit };
    case DW_FORM.indirect: {
      if (depth >= MAX_INDIRECT) throw new DwarfError('DW_FORM_indirect nested too deep');
      return readForm(r, r.uleb(), ctx, implicit, depth + 1);
    }
    default:
      throw new DwarfError(`unknown attribute form 0x${form.toString(16)}`);
  }
}
