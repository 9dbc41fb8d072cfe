/**
 * A bounds-checked cursor over one DWARF section, for hostile input: every
 * read checks the end it was given (a unit's end, never just the section's)
 * and throws {@link DwarfError} past it, so the caller drops that unit and
 * keeps the rest. Values that do not fit a double exactly (> 2^53) read as
 * NaN rather than silently rounded.
 *
 * Encodings: DWARF 5 section 7.6 (LEB128), 7.4 (32- and 64-bit formats:
 * an initial length of 0xffffffff announces an 8-byte length and 8-byte
 * section offsets).
 */

/** Malformed DWARF; caught per unit, never shown with a stack trace. */
export class DwarfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DwarfError';
  }
}

const TWO32 = 2 ** 32;
/** LEB128 values longer than this are malformed for every field we read (64-bit values). */
const MAX_LEB_BYTES = 10;

export class DwarfReader {
  private readonly view: DataView;
  /** Current position (a section offset). */
  at: number;
  /** Reads must stay below this offset. */
  end: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly littleEndian: boolean,
    at = 0,
    end = bytes.length,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = at;
    this.end = Math.min(end, bytes.length);
  }

  get remaining(): number {
    return Math.max(0, this.end - this.at);
  }

  /** Throw unless `n` more bytes can be read. */
  need(n: number, what: string): void {
    if (!(n >= 0) || this.at + n > this.end) throw new DwarfError(`${what} at 0x${this.at.toString(16)} runs past the end (0x${this.end.toString(16)})`);
  }

  skip(n: number, what = 'data'): void {
    this.need(n, what);
    this.at += n;
  }

  u8(): number {
    this.need(1, 'byte');
    return this.view.getUint8(this.at++);
  }

  i8(): number {
    this.need(1, 'byte');
    return this.view.getInt8(this.at++);
  }

  u16(): number {
    this.need(2, 'u16');
    const v = this.view.getUint16(this.at, this.littleEndian);
    this.at += 2;
    return v;
  }

  u24(): number {
    this.need(3, 'u24');
    const b0 = this.bytes[this.at];
    const b1 = this.bytes[this.at + 1];
    const b2 = this.bytes[this.at + 2];
    this.at += 3;
    return this.littleEndian ? b0 | (b1 << 8) | (b2 << 16) : (b0 << 16) | (b1 << 8) | b2;
  }

  u32(): number {
    this.need(4, 'u32');
    const v = this.view.getUint32(this.at, this.littleEndian);
    this.at += 4;
    return v;
  }

  /** An unsigned 64-bit value; NaN above 2^53. */
  u64(): number {
    this.need(8, 'u64');
    const a = this.view.getUint32(this.at, this.littleEndian);
    const b = this.view.getUint32(this.at + 4, this.littleEndian);
    this.at += 8;
    const hi = this.littleEndian ? b : a;
    const lo = this.littleEndian ? a : b;
    return hi >= 0x200000 ? NaN : hi * TWO32 + lo;
  }

  /** An unsigned value of `size` bytes (1, 2, 4 or 8: addresses, offsets). */
  unsigned(size: number): number {
    switch (size) {
      case 1:
        return this.u8();
      case 2:
        return this.u16();
      case 4:
        return this.u32();
      case 8:
        return this.u64();
      default:
        throw new DwarfError(`unsupported size ${size}`);
    }
  }

  /** ULEB128; NaN when it does not fit a double exactly. */
  uleb(): number {
    return this.leb(false);
  }

  /** SLEB128; NaN when it does not fit a double exactly. */
  sleb(): number {
    return this.leb(true);
  }

  /** LEB128 (section 7.6): 7 bits a byte, low first; a signed value extends the sign bit (0x40) of its last byte. */
  private leb(signed: boolean): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < MAX_LEB_BYTES; i++) {
      const b = this.u8();
      result += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) {
        if (signed && b & 0x40) result -= scale;
        return Math.abs(result) <= Number.MAX_SAFE_INTEGER ? result : NaN;
      }
    }
    throw new DwarfError(`LEB128 longer than ${MAX_LEB_BYTES} bytes at 0x${(this.at - MAX_LEB_BYTES).toString(16)}`);
  }

  /** A NUL-terminated string (UTF-8), which must end before `end` (only [at, end) is searched). */
  cstring(): string {
    const rel = this.bytes.subarray(this.at, this.end).indexOf(0);
    if (rel < 0) throw new DwarfError(`unterminated string at 0x${this.at.toString(16)}`);
    const stop = this.at + rel;
    const s = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.at, stop - this.at).toString('utf8');
    this.at = stop + 1;
    return s;
  }

  /**
   * An initial length (DWARF 5 section 7.4): the unit's length and its
   * offset size (4, or 8 after the 0xffffffff escape). Reserved values
   * 0xfffffff0..0xfffffffe are malformed.
   */
  initialLength(): { length: number; offsetSize: 4 | 8 } {
    const l = this.u32();
    if (l < 0xfffffff0) return { length: l, offsetSize: 4 };
    if (l === 0xffffffff) return { length: this.u64(), offsetSize: 8 };
    throw new DwarfError(`reserved unit length 0x${l.toString(16)}`);
  }

  /**
   * The unit whose initial length is at the current position: where it
   * ends and its offset size; null when the length is unreadable or runs
   * past this reader's end (no unit, nor any after it, can be found).
   */
  unitBounds(): { end: number; offsetSize: 4 | 8 } | null {
    try {
      const l = this.initialLength();
      const end = this.at + l.length;
      return end <= this.end ? { end, offsetSize: l.offsetSize } : null;
    } catch (e) {
      if (e instanceof DwarfError) return null;
      throw e;
    }
  }
}

/**
 * Longest string taken from a string section: longer than any path a
 * system accepts (PATH_MAX is 4096), and it bounds the search for the NUL
 * whatever the section holds.
 */
export const MAX_STRING = 8192;

/** The NUL-terminated string at `offset` of a string section (.debug_str, .debug_line_str), or null. */
export function stringAt(section: Uint8Array | null, offset: number): string | null {
  if (section === null || !(offset >= 0) || offset >= section.length) return null;
  const rel = section.subarray(offset, offset + MAX_STRING).indexOf(0);
  if (rel < 0) return null;
  return Buffer.from(section.buffer, section.byteOffset + offset, rel).toString('utf8');
}
