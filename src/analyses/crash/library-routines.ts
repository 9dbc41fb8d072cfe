/**
 * Summaries of libc's copy and string routines for the backward taint: a
 * call to memcpy writes [dst, dst+n) from [src, src+n), whatever vector
 * path (SSE2, AVX2, EVEX, ERMS `rep movsb`) glibc's IFUNC resolver picked.
 * Following each vector instruction would need the vector registers'
 * values; the summary needs only the arguments (rdi, rsi, rdx at the call,
 * as reverse execution recovered them), the return value and, for the
 * string routines, the strings' lengths from memory.
 *
 * The routine is recognised by the name the caller imported (the PLT's GOT
 * slot and its JUMP_SLOT relocation), else by the symbol at the code the
 * call reached (glibc's multiarch names such as `__memmove_avx_unaligned_erms`
 * when the library has a symbol table).
 *
 * Semantics from the man pages (memcpy(3), memset(3), strcpy(3),
 * strncpy(3), strcat(3), sprintf(3)).
 */
import type { CoreFile } from '../../sources/core-file.js';
import { RAX, RDI, RDX, RSI } from './instruction-facts.js';
import type { ReverseExecution } from './reverse-execution.js';

export type Routine = 'memcpy' | 'memmove' | 'mempcpy' | 'memset' | 'strcpy' | 'stpcpy' | 'strncpy' | 'strcat' | 'sprintf' | 'snprintf';

/** How far a string is searched for its terminating NUL. */
const MAX_STRING = 1 << 20;
/** The longest block a summary describes (a call that returned wrote at most this much). */
const MAX_BLOCK = 2 ** 32;

/**
 * The routine a symbol implements: the plain name, the fortified `__*_chk`
 * entry, glibc's internal aliases (`__libc_memcpy`, `__GI_memcpy`) and its
 * multiarch variants (`__memmove_avx_unaligned_erms`, `__strcpy_evex`,
 * `__memset_sse2_unaligned`, `__memcpy_ssse3`...). memcpy and memmove share
 * one implementation in glibc, so the name of either may show.
 */
export function routineOf(symbol: string): Routine | null {
  const m = /^(?:__(?:libc_|GI_)?)?(memcpy|memmove|mempcpy|memset|strcpy|stpcpy|strncpy|strcat|sprintf|snprintf|vsprintf|vsnprintf)(?:_chk)?(?:_(?:sse2|ssse3|avx|avx2|avx512|evex|evex512|erms|unaligned|aligned|rtm|back|fast|no_vzeroupper|sse4_1|sse4_2)(?:_[a-z0-9]+)*)?$/.exec(symbol);
  if (m === null) return null;
  const base = m[1];
  if (base === 'vsprintf') return 'sprintf';
  if (base === 'vsnprintf') return 'snprintf';
  return base as Routine;
}

/**
 * Whether a symbol is one of libc's readers of a stream or a descriptor
 * (read(2), recv(2), fread(3), fgets(3), getline(3), getc(3), scanf(3)...):
 * what it returns or stores comes from outside the program. Its plain name,
 * the ISO C99/C23 scanf entries (`__isoc99_scanf`), glibc's internal and
 * fortified names (`__libc_read`, `__read_chk`, `_IO_getc`) and the
 * `_unlocked` variants.
 */
export function readsInput(symbol: string): boolean {
  return /^(?:__isoc(?:99|23)_|__libc_|_IO_|__)?(read|pread(?:64)?|readv|recv|recvfrom|recvmsg|fread|fgets|fgetc|getc|getchar|gets|getline|getdelim|v?f?scanf)(?:_unlocked)?(?:_chk)?$/.test(symbol);
}

/** One call of a summarised routine: the bytes it wrote and where they came from. */
export interface LibraryCall {
  routine: Routine;
  /** Window index of the call instruction and of the first instruction after it returned. */
  call: number;
  ret: number;
  /** The bytes written: [dst, dst+n). */
  dst: number;
  n: number;
  /** The bytes they came from, [src, src + n - zeros) (copies); NaN when made (memset, sprintf). */
  src: number;
  /** Trailing bytes written as zero (strncpy's padding). */
  zeros: number;
  /** memset's fill byte. */
  fill: number | null;
  /** What the summary relied on beyond the registers, in words (empty: nothing). */
  assumes: string[];
}

/** The length of the NUL-terminated string at `addr` in the core, or null if it leaves mapped memory. */
function coreStrlen(core: CoreFile, addr: number): number | null {
  for (let i = 0; i < MAX_STRING; i++) {
    const b = core.byte(addr + i);
    if (b < 0) return null;
    if (b === 0) return i;
  }
  return null;
}

/**
 * Summarise one call (window index `call`, returning at `ret`), or explain
 * why it cannot be: the arguments were not recovered.
 * `writtenAfter(a, n)` says whether a resolved store after the call touched
 * [a, a+n): then the core no longer holds what the string routine saw.
 */
export function summariseCall(
  routine: Routine,
  call: number,
  ret: number,
  rev: ReverseExecution,
  core: CoreFile,
  writtenAfter: (addr: number, n: number) => boolean,
): LibraryCall | string {
  const arg = (r: number): number | null => {
    const v = rev.reg(call, r);
    return v === null ? null : Number(v);
  };
  const dst = arg(RDI);
  if (dst === null) return `${routine}: its destination (rdi) was not recovered`;
  const out: LibraryCall = { routine, call, ret, dst, n: 0, src: NaN, zeros: 0, fill: null, assumes: [] };
  const fromCore = (addr: number, what: string): number | null => {
    const len = coreStrlen(core, addr);
    if (len === null) return null;
    if (writtenAfter(addr, len + 1)) return null;
    out.assumes.push(`the length of ${what} is read from the core (nothing traced wrote it after the call)`);
    return len;
  };
  const src = arg(RSI);
  const rdx = arg(RDX);
  // A length past any mapping would be a misread argument, not a copy that returned.
  const n = rdx === null || rdx > MAX_BLOCK ? null : rdx;
  switch (routine) {
    case 'memcpy':
    case 'memmove':
    case 'mempcpy':
      if (src === null || n === null) return `${routine}: its source or length (rsi, rdx) was not recovered`;
      return { ...out, src, n };
    case 'memset':
      if (src === null || n === null) return `memset: its fill byte or length (rsi, rdx) was not recovered`;
      return { ...out, n, fill: src & 0xff };
    case 'strcpy':
    case 'stpcpy': {
      if (src === null) return `${routine}: its source (rsi) was not recovered`;
      // stpcpy returns the end of the copy; strcpy only dst, so the source string's length decides.
      const end = routine === 'stpcpy' ? rev.reg(ret, RAX) : null;
      const len = end !== null ? Number(end) - dst : fromCore(src, 'the source string');
      if (len === null || len < 0 || len >= MAX_STRING) return `${routine}: the length of its source string is not known`;
      return { ...out, src, n: len + 1 };
    }
    case 'strncpy': {
      if (src === null || n === null) return `strncpy: its source or size (rsi, rdx) was not recovered`;
      const len = fromCore(src, 'the source string');
      if (len === null) return { ...out, src, n, assumes: ['strncpy: the source is taken as n bytes long (its length is not known)'] };
      const copied = Math.min(n, len + 1);
      return { ...out, src, n, zeros: n - copied };
    }
    case 'strcat': {
      if (src === null) return `strcat: its source (rsi) was not recovered`;
      // After the call dst holds old + src: the appended part is the last strlen(src) + 1 bytes.
      const srcLen = fromCore(src, 'the appended string');
      const total = fromCore(dst, 'the resulting string');
      if (srcLen === null || total === null || total < srcLen) return 'strcat: the strings are not in the core as the call left them';
      return { ...out, dst: dst + total - srcLen, src, n: srcLen + 1 };
    }
    case 'sprintf':
    case 'snprintf': {
      // The return value is the length of the formatted string (without the NUL).
      const r = rev.reg(ret, RAX);
      if (r === null) return `${routine}: its result (rax) was not recovered`;
      const len = Number(BigInt.asIntN(32, r));
      if (len < 0) return `${routine}: it failed (returned ${len})`;
      let written = len + 1;
      if (routine === 'snprintf') {
        const size = src;
        if (size === null) return 'snprintf: its size (rsi) was not recovered';
        written = Math.min(written, size);
      }
      return { ...out, n: written, assumes: [`${routine}: the formatted bytes are taken as made by the call (its arguments are not followed)`] };
    }
  }
}
