/**
 * One line-number program of `.debug_line` (DWARF 4 section 6.2, DWARF 5
 * section 6.2): its header (versions 2 to 5; the DWARF 5 directory and
 * file tables with their entry formats) and the state machine that turns
 * its standard, extended and special opcodes into rows of the line table.
 *
 * Rows go to a {@link LineRows} sink; a sequence is kept only once its
 * DW_LNE_end_sequence is read. Hostile input: the header is read within
 * its declared header_length, the program within its unit_length, every
 * table count is bounded by the bytes that could hold it, every opcode
 * consumes at least one byte, and any {@link DwarfError} drops the whole
 * unit (its rows are rolled back), never the table.
 */
import { DwarfError, DwarfReader } from './dwarf-reader.js';
import type { DebugSections } from './debug-sections.js';
import { readForm, type FormContext } from './forms.js';

// Standard opcodes (DWARF 5 section 6.2.5.2).
const DW_LNS_copy = 1;
const DW_LNS_advance_pc = 2;
const DW_LNS_advance_line = 3;
const DW_LNS_set_file = 4;
const DW_LNS_set_column = 5;
const DW_LNS_negate_stmt = 6;
const DW_LNS_set_basic_block = 7;
const DW_LNS_const_add_pc = 8;
const DW_LNS_fixed_advance_pc = 9;
const DW_LNS_set_prologue_end = 10;
const DW_LNS_set_epilogue_begin = 11;
const DW_LNS_set_isa = 12;
// Extended opcodes (section 6.2.5.3).
const DW_LNE_end_sequence = 1;
const DW_LNE_set_address = 2;
const DW_LNE_define_file = 3;
const DW_LNE_set_discriminator = 4;
// Entry content types (section 6.2.4.1).
const DW_LNCT_path = 1;
const DW_LNCT_directory_index = 2;

/** Where the rows of all programs go (line-table.ts). */
export interface LineRows {
  /** Rows kept so far (a rollback point). */
  readonly rowCount: number;
  readonly sequenceCount: number;
  /** The table-wide id of a file name. */
  fileId(name: string): number;
  row(address: number, fileId: number, line: number, column: number, discriminator: number): void;
  /** Close the sequence of rows since `firstRow` (the last row is the end_sequence row). */
  sequence(firstRow: number): void;
  /** Drop every row and sequence from the rollback point on. */
  rollback(rows: number, sequences: number): void;
}

interface FileEntry {
  name: string;
  dir: number;
}

/** The header fields the state machine needs. */
interface Header {
  version: number;
  offsetSize: 4 | 8;
  addressSize: number;
  minInsnLength: number;
  maxOpsPerInsn: number;
  defaultIsStmt: boolean;
  lineBase: number;
  lineRange: number;
  opcodeBase: number;
  /** Operand counts of standard opcodes 1..opcodeBase-1 (index 0 unused). */
  operandCounts: Uint8Array;
  dirs: string[];
  files: FileEntry[];
  programStart: number;
}

function isAbsolute(path: string): boolean {
  return path.startsWith('/');
}

/**
 * The full name of a file entry: its directory entry, itself relative to
 * the compilation directory unless absolute. The joining follows what
 * binutils prints (`comp_dir/dir/name`, no normalisation), so names agree
 * with addr2line's.
 */
function fullName(h: Header, file: FileEntry, compDir: string | null): string {
  if (isAbsolute(file.name)) return file.name;
  // DWARF 5 numbers directories from 0 (the compilation directory); DWARF 2-4 from 1, 0 meaning the compilation directory.
  const index = h.version >= 5 ? file.dir : file.dir - 1;
  const sub = index >= 0 && index < h.dirs.length ? h.dirs[index] : null;
  const base = sub === null || !isAbsolute(sub) ? compDir : null;
  if (base === null) return sub === null ? file.name : `${sub}/${file.name}`;
  return sub === null ? `${base}/${file.name}` : `${base}/${sub}/${file.name}`;
}

/**
 * A DWARF 5 entry-format table and its entries (section 6.2.4, items 14-20):
 * a count of (content type, form) pairs, then a count of entries, each made
 * of one value per pair.
 */
function readEntries(r: DwarfReader, ctx: FormContext): FileEntry[] {
  const formatCount = r.u8();
  const formats: [number, number][] = [];
  for (let i = 0; i < formatCount; i++) formats.push([r.uleb(), r.uleb()]);
  const count = r.uleb();
  // Each entry takes at least one byte unless no format has any size: bound the count by the bytes left.
  if (!(count >= 0) || count > r.remaining || (formatCount === 0 && count > 0)) throw new DwarfError(`entry count ${count} cannot fit the header`);
  const entries: FileEntry[] = [];
  for (let i = 0; i < count; i++) {
    const entry: FileEntry = { name: '', dir: 0 };
    for (const [type, form] of formats) {
      const v = readForm(r, form, ctx);
      if (type === DW_LNCT_path && v.kind === 'string') entry.name = v.value ?? '';
      else if (type === DW_LNCT_directory_index && v.kind === 'number') entry.dir = v.value;
    }
    entries.push(entry);
  }
  return entries;
}

function readHeaderBody(r: DwarfReader, offsetSize: 4 | 8, sections: DebugSections): Header {
  const version = r.u16();
  if (version < 2 || version > 5) throw new DwarfError(`unsupported line table version ${version}`);
  let addressSize = 8;
  if (version >= 5) {
    addressSize = r.u8();
    const segmentSelectorSize = r.u8();
    if (segmentSelectorSize !== 0) throw new DwarfError('segmented addresses are not supported');
  }
  const headerLength = r.unsigned(offsetSize);
  const programStart = r.at + headerLength;
  if (!(programStart <= r.end)) throw new DwarfError('header_length runs past the unit');
  const unitEnd = r.end;
  r.end = programStart;
  const minInsnLength = r.u8();
  const maxOpsPerInsn = version >= 4 ? r.u8() : 1;
  if (maxOpsPerInsn === 0) throw new DwarfError('maximum_operations_per_instruction is 0');
  const defaultIsStmt = r.u8() !== 0;
  const lineBase = r.i8();
  const lineRange = r.u8();
  const opcodeBase = r.u8();
  if (opcodeBase === 0) throw new DwarfError('opcode_base is 0');
  const operandCounts = new Uint8Array(opcodeBase);
  for (let i = 1; i < opcodeBase; i++) operandCounts[i] = r.u8();
  let dirs: string[];
  let files: FileEntry[];
  if (version >= 5) {
    const ctx: FormContext = { version, offsetSize, addressSize, str: sections.str, lineStr: sections.lineStr };
    dirs = readEntries(r, ctx).map((e) => e.name);
    files = readEntries(r, ctx);
  } else {
    dirs = [];
    for (let s = r.cstring(); s !== ''; s = r.cstring()) dirs.push(s);
    files = [];
    for (let s = r.cstring(); s !== ''; s = r.cstring()) {
      const dir = r.uleb();
      r.uleb(); // modification time
      r.uleb(); // length
      files.push({ name: s, dir });
    }
  }
  r.end = unitEnd;
  return { version, offsetSize, addressSize, minInsnLength, maxOpsPerInsn, defaultIsStmt, lineBase, lineRange, opcodeBase, operandCounts, dirs, files, programStart };
}

/**
 * Decode the line program at `offset` of `.debug_line` into `rows`.
 * Returns the offset of the next unit, or NaN when the unit length itself
 * is unreadable (no next unit can be found). A malformed unit leaves no
 * rows behind.
 */
export function decodeLineProgram(sections: DebugSections, littleEndian: boolean, offset: number, compDir: string | null, rows: LineRows): number {
  const section = sections.line;
  if (section === null) return NaN;
  const r = new DwarfReader(section, littleEndian, offset);
  const unit = r.unitBounds();
  if (unit === null) return NaN;
  const { end: unitEnd, offsetSize } = unit;
  r.end = unitEnd;
  const rowMark = rows.rowCount;
  const seqMark = rows.sequenceCount;
  try {
    const h = readHeaderBody(r, offsetSize, sections);
    // DWARF 5: directory 0 is the compilation directory, when .debug_info did not say.
    const dir = compDir ?? (h.version >= 5 && h.dirs.length > 0 ? h.dirs[0] : null);
    const fileIds: number[] = h.files.map((f) => rows.fileId(fullName(h, f, dir)));
    r.at = h.programStart;
    run(r, h, fileIds, (name, d) => {
      const entry = { name, dir: d };
      h.files.push(entry);
      fileIds.push(rows.fileId(fullName(h, entry, dir)));
    }, rows);
  } catch (e) {
    if (!(e instanceof DwarfError)) throw e;
    rows.rollback(rowMark, seqMark);
  }
  return unitEnd;
}

/** The state machine (section 6.2.2) over the program bytes [r.at, r.end). */
function run(r: DwarfReader, h: Header, fileIds: number[], defineFile: (name: string, dir: number) => void, rows: LineRows): void {
  const v5 = h.version >= 5;
  const maxOps = h.maxOpsPerInsn;
  const minLen = h.minInsnLength;
  let address = 0;
  let opIndex = 0;
  let file = 1;
  let line = 1;
  let column = 0;
  let discriminator = 0;
  let sequenceStart = rows.rowCount;
  // is_stmt, basic_block, prologue_end, epilogue_begin and isa change no lookup result: tracked by the spec, unused here.
  const fileId = (): number => {
    // DWARF 5 indexes files from 0; DWARF 2-4 from 1.
    const i = v5 ? file : file - 1;
    return i >= 0 && i < fileIds.length ? fileIds[i] : -1;
  };
  /** Advance by `ops` operations (the operation advance of section 6.2.5.1). */
  const advance = (ops: number): void => {
    if (maxOps === 1) {
      address += minLen * ops;
    } else {
      address += minLen * Math.floor((opIndex + ops) / maxOps);
      opIndex = (opIndex + ops) % maxOps;
    }
  };
  const emit = (): void => {
    rows.row(address, fileId(), line, column, discriminator);
    discriminator = 0;
  };
  while (r.at < r.end) {
    const op = r.u8();
    if (op >= h.opcodeBase) {
      // Special opcode.
      if (h.lineRange === 0) throw new DwarfError('special opcode with line_range 0');
      const adjusted = op - h.opcodeBase;
      advance(Math.floor(adjusted / h.lineRange));
      line += h.lineBase + (adjusted % h.lineRange);
      emit();
      continue;
    }
    switch (op) {
      case 0: {
        // Extended opcode: a ULEB128 length (the sub-opcode and its operands), then the sub-opcode.
        const len = r.uleb();
        if (!(len >= 1) || len > r.remaining) throw new DwarfError(`extended opcode length ${len}`);
        const next = r.at + len;
        const sub = r.u8();
        if (sub === DW_LNE_end_sequence) {
          emit();
          rows.sequence(sequenceStart);
          sequenceStart = rows.rowCount;
          address = 0;
          opIndex = 0;
          file = 1;
          line = 1;
          column = 0;
          discriminator = 0;
        } else if (sub === DW_LNE_set_address) {
          address = r.unsigned(len - 1);
          opIndex = 0;
        } else if (sub === DW_LNE_define_file && !v5) {
          const saved = r.end;
          r.end = next;
          const name = r.cstring();
          const dir = r.uleb();
          r.end = saved;
          defineFile(name, dir);
        } else if (sub === DW_LNE_set_discriminator) {
          discriminator = r.uleb();
        }
        // The length decides where the next opcode is, whatever the operands (unknown ones are skipped).
        r.at = next;
        break;
      }
      case DW_LNS_copy:
        emit();
        break;
      case DW_LNS_advance_pc:
        advance(r.uleb());
        break;
      case DW_LNS_advance_line:
        line += r.sleb();
        break;
      case DW_LNS_set_file:
        file = r.uleb();
        break;
      case DW_LNS_set_column:
        column = r.uleb();
        break;
      case DW_LNS_negate_stmt:
      case DW_LNS_set_basic_block:
      case DW_LNS_set_prologue_end:
      case DW_LNS_set_epilogue_begin:
        break;
      case DW_LNS_const_add_pc:
        if (h.lineRange === 0) throw new DwarfError('DW_LNS_const_add_pc with line_range 0');
        advance(Math.floor((255 - h.opcodeBase) / h.lineRange));
        break;
      case DW_LNS_fixed_advance_pc:
        address += r.u16();
        opIndex = 0;
        break;
      case DW_LNS_set_isa:
        r.uleb();
        break;
      default:
        // A standard opcode this reader does not know: skip the operands the header declares.
        for (let i = 0; i < h.operandCounts[op]; i++) r.uleb();
    }
  }
  // Rows after the last end_sequence belong to no sequence: drop them.
  rows.rollback(sequenceStart, rows.sequenceCount);
}
