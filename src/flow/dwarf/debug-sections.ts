/**
 * The DWARF sections of an ELF file, found through {@link ElfFile}'s
 * section headers: `.debug_line`, `.debug_line_str`, `.debug_str`,
 * `.debug_info`, `.debug_abbrev`, `.debug_str_offsets`.
 *
 * A section compressed with SHF_COMPRESSED (gABI "Section Compression":
 * an Elf32_Chdr/Elf64_Chdr, then a zlib stream for ELFCOMPRESS_ZLIB) is
 * inflated, with its declared size bounded and enforced as the inflater's
 * output limit. A section whose bytes lie outside the file, SHT_NOBITS
 * (stripped into a separate debug file) or an unknown compression is
 * absent: no line info, never an exception.
 */
import { inflateSync } from 'node:zlib';
import type { ElfFile, ElfSectionHeader } from '../elf.js';

const SHT_NOBITS = 8;
const SHF_COMPRESSED = 0x800;
const ELFCOMPRESS_ZLIB = 1;
/** Largest inflated debug section we accept (libxul's .debug_info is below this). */
const MAX_INFLATED = 1 << 30;

export interface DebugSections {
  line: Uint8Array | null;
  lineStr: Uint8Array | null;
  str: Uint8Array | null;
  info: Uint8Array | null;
  abbrev: Uint8Array | null;
  strOffsets: Uint8Array | null;
}

function contents(bytes: Uint8Array, elf: ElfFile, s: ElfSectionHeader): Uint8Array | null {
  if (s.type === SHT_NOBITS || !(s.offset >= 0) || !(s.size >= 0) || s.offset + s.size > bytes.length) return null;
  const raw = bytes.subarray(s.offset, s.offset + s.size);
  if ((s.flags & SHF_COMPRESSED) === 0) return raw;
  const is64 = elf.bits === 64;
  const headerSize = is64 ? 24 : 12;
  if (raw.length < headerSize) return null;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = elf.littleEndian;
  const type = view.getUint32(0, le);
  const size = is64 ? Number(view.getBigUint64(8, le)) : view.getUint32(4, le);
  if (type !== ELFCOMPRESS_ZLIB || !(size > 0) || size > MAX_INFLATED) return null;
  try {
    const out = inflateSync(raw.subarray(headerSize), { maxOutputLength: size });
    return out.length === size ? new Uint8Array(out.buffer, out.byteOffset, out.length) : null;
  } catch {
    return null;
  }
}

/** The debug sections of `elf`, whose file bytes are `bytes`. */
export function debugSections(bytes: Uint8Array, elf: ElfFile): DebugSections {
  const get = (name: string): Uint8Array | null => {
    const s = elf.sections.find((x) => x.name === name);
    return s === undefined ? null : contents(bytes, elf, s);
  };
  return {
    line: get('.debug_line'),
    lineStr: get('.debug_line_str'),
    str: get('.debug_str'),
    info: get('.debug_info'),
    abbrev: get('.debug_abbrev'),
    strOffsets: get('.debug_str_offsets'),
  };
}
