/**
 * Parsing of ptxed's image arguments, exactly as ptxed.c does it:
 *
 *   --raw <file>[:<from>[-<to>]]:<base>   bytes [from, to) of file at base
 *   --elf <file>[:<base>]                 an ELF, optionally rebased
 *
 * ptxed splits from the right: `extract_base` takes the text after the last
 * ':' as the base address and fails if it is not a number. For --raw,
 * `preprocess_filename` then looks at the text after the (new) last ':': if
 * it parses as `<from>` or `<from>-<to>`, it is the file range; otherwise the
 * ':' belongs to the file name (a Windows drive letter, say). So
 * `truncated.bin:0x2:0x1002` maps the file from offset 2 at 0x1002, and
 * `seg.bin:0x400000` maps the whole file at 0x400000.
 *
 * Numbers follow C's `strtoull(s, &end, 0)`, which ptxed uses: leading white
 * space, an optional sign (a '-' negates modulo 2^64), then `0x`/`0X` hex,
 * a leading `0` octal, or decimal; a value above 2^64-1 is an error.
 * The whole text must be consumed.
 */
import { ErrorCode, PtError } from '../packets/errors.js';
import { ANY_ASID, Asid, ipFromBigInt } from './address-space.js';
import type { Image } from './image.js';
import type { ByteSourceCache } from './section.js';

const U64_MAX = (1n << 64n) - 1n;

/** Result of {@link strtoull}: the value and the index of the first unparsed character. */
export interface StrtoullResult {
  value: bigint;
  end: number;
  /** True if the value overflowed (C sets errno to ERANGE). */
  overflow: boolean;
}

function isCSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

function digitValue(c: string): number {
  const code = c.charCodeAt(0);
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 122) return code - 87;
  if (code >= 65 && code <= 90) return code - 55;
  return 99;
}

/** C's `strtoull(text + start, &end, 0)`. If no digits were found, `end` is `start`. */
export function strtoull(text: string, start = 0): StrtoullResult {
  let i = start;
  while (i < text.length && isCSpace(text[i])) i++;
  let negative = false;
  if (text[i] === '+' || text[i] === '-') {
    negative = text[i] === '-';
    i++;
  }
  let base = 10;
  if (text[i] === '0') {
    if ((text[i + 1] === 'x' || text[i + 1] === 'X') && i + 2 < text.length && digitValue(text[i + 2]) < 16) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  const digitsStart = i;
  let value = 0n;
  let overflow = false;
  const b = BigInt(base);
  while (i < text.length) {
    const d = digitValue(text[i]);
    if (d >= base) break;
    value = value * b + BigInt(d);
    if (value > U64_MAX) overflow = true;
    i++;
  }
  if (i === digitsStart) return { value: 0n, end: start, overflow: false };
  if (overflow) return { value: U64_MAX, end: i, overflow: true };
  return { value: negative ? BigInt.asUintN(64, -value) : value, end: i, overflow: false };
}

/** A whole string as an unsigned 64-bit number (ptxed's get_arg_uint64 rule), or null. */
export function parseCUnsigned(text: string): bigint | null {
  if (text.length === 0) return null;
  const r = strtoull(text);
  if (r.overflow || r.end !== text.length) return null;
  return r.value;
}

/** A parsed `--raw` argument. */
export interface RawImageArg {
  file: string;
  /** File offset of the first byte to map. */
  offset: bigint;
  /** Number of bytes to map; null means "to the end of the file". */
  size: bigint | null;
  /** Address of the first mapped byte. */
  base: bigint;
}

/** A parsed `--elf` argument. */
export interface ElfImageArg {
  file: string;
  /** Load address of the lowest PT_LOAD segment; 0 means "as linked". */
  base: bigint;
}

/** A failed parse: ptxed's message and the libipt error code where it reports one. */
export interface ImageArgError {
  error: string;
  code: ErrorCode;
}

/** ptxed's extract_base: the number after the last ':' and the text before it. */
function extractBase(arg: string): { head: string; base: bigint } | null {
  const sep = arg.lastIndexOf(':');
  if (sep < 0 || sep + 1 === arg.length) return null;
  const base = parseCUnsigned(arg.slice(sep + 1));
  if (base === null) return null;
  return { head: arg.slice(0, sep), base };
}

/** ptxed's parse_range: 0 (empty), 1 (`from`), 2 (`from-to`) parts, or -1 (not a range). */
function parseRange(text: string): { parts: number; begin: bigint; end: bigint } {
  if (text.length === 0) return { parts: 0, begin: 0n, end: 0n };
  const b = strtoull(text);
  if (b.overflow) return { parts: -1, begin: 0n, end: 0n };
  if (b.end === text.length) return { parts: 1, begin: b.value, end: 0n };
  if (text[b.end] !== '-') return { parts: -1, begin: 0n, end: 0n };
  const e = strtoull(text, b.end + 1);
  if (e.overflow || e.end !== text.length) return { parts: -1, begin: 0n, end: 0n };
  return { parts: 2, begin: b.value, end: e.value };
}

/** Parse ptxed's `--raw` argument. */
export function parseRawArg(arg: string): RawImageArg | ImageArgError {
  const eb = extractBase(arg);
  if (!eb) return { error: `failed to parse base address from '${arg}'`, code: ErrorCode.Invalid };
  let file = eb.head;
  let offset = 0n;
  let size: bigint | null = null;
  const colon = file.lastIndexOf(':');
  if (colon >= 0) {
    const r = parseRange(file.slice(colon + 1));
    if (r.parts === 1) {
      offset = r.begin;
      file = file.slice(0, colon);
    } else if (r.parts === 2) {
      if (r.end <= r.begin) return { error: `bad file ${file}: invalid argument`, code: ErrorCode.Invalid };
      offset = r.begin;
      size = r.end - r.begin;
      file = file.slice(0, colon);
    }
  }
  return { file, offset, size, base: eb.base };
}

/**
 * Parse ptxed's `--elf` argument. As in ptxed, a suffix that is not a number
 * stays part of the file name and the ELF loads at its linked addresses.
 */
export function parseElfArg(arg: string): ElfImageArg {
  const eb = extractBase(arg);
  if (!eb) return { file: arg, base: 0n };
  return { file: eb.head, base: eb.base };
}

/** True if a parse result is an error. */
export function isImageArgError(r: RawImageArg | ElfImageArg | ImageArgError): r is ImageArgError {
  return (r as ImageArgError).error !== undefined;
}

/**
 * Map a parsed `--raw` argument into `image`, as ptxed's load_raw does.
 * Returns 0 or a negative ErrorCode (`-Invalid`: offset beyond the end of the
 * file, or an address the image cannot hold). Throws PtError(BadFile) if the
 * file cannot be opened.
 */
export function addRawImage(image: Image, files: ByteSourceCache, raw: RawImageArg, asid: Asid = ANY_ASID): number {
  if (raw.offset > BigInt(Number.MAX_SAFE_INTEGER)) return -ErrorCode.Invalid;
  const size = raw.size === null || raw.size > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(raw.size);
  try {
    return image.addFile(files, raw.file, Number(raw.offset), size, ipFromBigInt(raw.base), asid);
  } catch (e) {
    if (e instanceof PtError && e.code === ErrorCode.Invalid) return -ErrorCode.Invalid;
    throw e;
  }
}
