/**
 * Dormant code, step 3: the inputs a guard's condition comes from.
 *
 * The backward slice from a branch condition ends at the results of library
 * calls and system calls: return values and out-parameters of time,
 * localtime, getenv, setlocale, access, stat, fopen, getuid, uname,
 * gethostname, ptrace, rand, read, ... This file says, for each such call,
 * which of its outputs become symbols when symbolic execution
 * (symbolic.ts) passes the call, and how a solved value becomes a shim rule
 * for the re-run (rerun.ts). It also models the pure string functions a
 * slice often goes through (strcmp, strncmp, memcmp, strlen), so that a
 * comparison of a symbolic string with a constant stays exact.
 *
 * The slice itself is dynamic: the executor records every instruction on
 * the executed path whose result depends on a symbol (see {@link SliceStep}).
 */
import type { Arith, BitVec, Bool, Context } from 'z3-solver';
import { BUFFER_BYTES, LAYOUTS, LIBRARY_MODELS, STRING_BYTES, type ResultKind } from './library-models.js';

export type Z3 = Context<'main'>;
export type BV = BitVec<number, 'main'>;
export type Z3Bool = Bool<'main'>;
export type { Arith };

/** A value: its concrete shadow, its expression when symbolic, and whether it depends on something unknown. */
export interface Val {
  c: bigint;
  e: BV | null;
  /** Depends on a value neither the snapshot nor the model provides. */
  u: boolean;
}

/** Where a symbol of a call's output lives. */
export type SymbolRole =
  | { kind: 'ret'; bits: number }
  | { kind: 'present' }
  | { kind: 'mem'; base: 'ret' | number; offset: number };

/** One symbol: a byte of an out-parameter, a return value, a "result is not NULL" bit. */
export interface SourceSymbol {
  name: string;
  bits: number;
  role: SymbolRole;
  call: SourceCall;
  /** The value the snapshot run saw. */
  observed: bigint;
}

/** One dynamic library call whose outputs are symbolic. */
export interface SourceCall {
  name: string;
  /** Link-time return site, in module {@link module}. */
  site: number;
  /** The caller's module: '' for the main executable, else the library's file name (code-space.ts). */
  module: string;
  /** Which call of this name at the site it is in the snapshot run (snapshot.ts); 0 if not known. */
  occurrence: number;
  /** How the result is re-created by the shim. */
  result: ResultKind;
  symbols: SourceSymbol[];
  /** A description for reports, e.g. `getenv("UPDATER_MODE")`. */
  text: string;
}

/** What a model needs from the executor. */
export interface ModelHost {
  z3: Z3;
  /** Argument i (rdi, rsi, rdx, rcx), concrete shadow and expression. */
  arg(i: number): Val;
  /** A string argument read from memory, for reports. */
  argString(i: number): string | null;
  /** A new symbol owned by `call`. */
  symbol(call: SourceCall, suffix: string, bits: number, role: SymbolRole, observed: bigint): Val;
  /** The byte the snapshot of this call (if any) holds at an address; -1 if none. */
  observedByte(addr: number): number;
  /** The call's result in the snapshot run, or null when the call never ran there. */
  observedResult: bigint | null;
  readByte(addr: number): Val;
  writeByte(addr: number, v: Val): void;
  /** A fresh address that no mapping uses, for results that were NULL when observed. */
  fakeAddress(): number;
}

/** The calls whose outputs become symbols. Returns the new rax, or null if `name` is not a source. */
export function applySourceModel(name: string, site: number, module: string, occurrence: number, host: ModelHost): { rax: Val; call: SourceCall } | null {
  const model = SOURCE_MODELS[name];
  const entry = LIBRARY_MODELS[name];
  if (model === undefined || entry === undefined) return null;
  const call: SourceCall = { name, site, module, occurrence, result: entry.result, symbols: [], text: name + '()' };
  const rax = model.apply(call, host);
  return { rax, call };
}

/** How a call's outputs become symbols; its result kind and out-object come from library-models.ts. */
interface SourceModel {
  apply(call: SourceCall, h: ModelHost): Val;
}

function intResult(bits: number, range?: [bigint, bigint]): SourceModel {
  return {
    apply(call, h) {
      const obs = h.observedResult ?? 0n;
      const v = h.symbol(call, 'ret', bits, { kind: 'ret', bits }, obs & ((1n << BigInt(bits)) - 1n));
      if (range) (call as SourceCall & { range?: [bigint, bigint] }).range = range;
      return widen(h.z3, v, bits, true);
    },
  };
}

/** Symbolic bytes of an out-parameter or a returned buffer. */
function symbolicBytes(call: SourceCall, h: ModelHost, addr: number, count: number, base: 'ret' | number, label: string): void {
  for (let i = 0; i < count; i++) {
    const o = h.observedByte(addr + i);
    const v = h.symbol(call, `${label}+${i}`, 8, { kind: 'mem', base, offset: i }, BigInt(o < 0 ? 0 : o));
    h.writeByte(addr + i, v);
  }
}

/** A pointer result that is NULL or a buffer of symbolic bytes. */
function pointerResult(call: SourceCall, h: ModelHost, bytes: number): Val {
  const obs = h.observedResult ?? 0n;
  const present = h.symbol(call, 'present', 1, { kind: 'present' }, obs !== 0n ? 1n : 0n);
  const addr = obs !== 0n ? Number(obs) : h.fakeAddress();
  if (bytes > 0) symbolicBytes(call, h, addr, bytes, 'ret', 'str');
  const z = h.z3;
  const e = z.If(present.e!.eq(z.BitVec.val(1, 1)), z.BitVec.val(BigInt(addr), 64), z.BitVec.val(0, 64)) as BV;
  return { c: obs, e, u: false };
}

/** The int fields of struct tm (tm_sec .. tm_isdst): what guards read. */
const TM_BYTES = LAYOUTS.tm.fields[8].offset + 4;

const SOURCE_MODELS: Record<string, SourceModel> = {
  time: {
    apply(call, h) {
      const v = h.symbol(call, 'ret', 64, { kind: 'ret', bits: 64 }, h.observedResult ?? 0n);
      const out = h.arg(0);
      if (out.e === null && out.c !== 0n) for (let i = 0; i < 8; i++) h.writeByte(Number(out.c) + i, extractByte(h.z3, v, i));
      return v;
    },
  },
  getuid: intResult(32),
  geteuid: intResult(32),
  getgid: intResult(32),
  getpid: intResult(32),
  getppid: intResult(32),
  isatty: intResult(32),
  access: intResult(32),
  rand: intResult(32, [0n, 0x7fffffffn]),
  random: intResult(64, [0n, 0x7fffffffn]),
  ptrace: intResult(64),
  stat: {
    apply(call, h) {
      call.text = `stat("${h.argString(0) ?? '?'}")`;
      symbolicBytes(call, h, Number(h.arg(1).c), LAYOUTS.stat.size, 1, 'statbuf');
      return widen(h.z3, h.symbol(call, 'ret', 32, { kind: 'ret', bits: 32 }, (h.observedResult ?? 0n) & 0xffffffffn), 32, true);
    },
  },
  lstat: { apply: (call, h) => SOURCE_MODELS.stat.apply(call, h) },
  gethostname: {
    apply(call, h) {
      const len = Math.min(Number(h.arg(1).c), BUFFER_BYTES);
      symbolicBytes(call, h, Number(h.arg(0).c), len, 0, 'name');
      return widen(h.z3, h.symbol(call, 'ret', 32, { kind: 'ret', bits: 32 }, (h.observedResult ?? 0n) & 0xffffffffn), 32, true);
    },
  },
  uname: {
    apply(call, h) {
      symbolicBytes(call, h, Number(h.arg(0).c), LAYOUTS.utsname.size, 0, 'utsname');
      return { c: h.observedResult ?? 0n, e: null, u: false };
    },
  },
  read: {
    apply(call, h) {
      const n = Math.min(Number(h.arg(2).c), BUFFER_BYTES);
      symbolicBytes(call, h, Number(h.arg(1).c), n, 1, 'buf');
      return h.symbol(call, 'ret', 64, { kind: 'ret', bits: 64 }, h.observedResult ?? 0n);
    },
  },
  gettimeofday: {
    apply(call, h) {
      symbolicBytes(call, h, Number(h.arg(0).c), LAYOUTS.timeval.size, 0, 'tv');
      return { c: h.observedResult ?? 0n, e: null, u: false };
    },
  },
  localtime: {
    apply(call, h) {
      // Never observed (the call lies past the recorded path) or NULL: the
      // struct is all symbols at a fresh address; the shim writes the
      // solved fields into the real result of the re-run.
      const observed = h.observedResult ?? 0n;
      const p = observed !== 0n ? observed : BigInt(h.fakeAddress());
      symbolicBytes(call, h, Number(p), TM_BYTES, 'ret', 'tm');
      return { c: p, e: null, u: false };
    },
  },
  gmtime: { apply: (call, h) => SOURCE_MODELS.localtime.apply(call, h) },
  localtime_r: {
    apply(call, h) {
      const out = h.arg(1).c;
      symbolicBytes(call, h, Number(out), TM_BYTES, 1, 'tm');
      return { c: h.observedResult ?? out, e: null, u: false };
    },
  },
  getenv: {
    apply(call, h) {
      call.text = `getenv("${h.argString(0) ?? '?'}")`;
      return pointerResult(call, h, STRING_BYTES);
    },
  },
  secure_getenv: { apply: (call, h) => SOURCE_MODELS.getenv.apply(call, h) },
  nl_langinfo: {
    apply(call, h) {
      call.text = `nl_langinfo(${h.arg(0).c})`;
      return pointerResult(call, h, STRING_BYTES);
    },
  },
  gmtime_r: { apply: (call, h) => SOURCE_MODELS.localtime_r.apply(call, h) },
  fread: {
    apply(call, h) {
      const n = Math.min(Number(h.arg(1).c * h.arg(2).c), BUFFER_BYTES);
      symbolicBytes(call, h, Number(h.arg(0).c), n, 0, 'buf');
      return h.symbol(call, 'ret', 64, { kind: 'ret', bits: 64 }, h.observedResult ?? 0n);
    },
  },
  fgets: {
    apply(call, h) {
      // The buffer (arg 0) or NULL; its bytes up to the size (arg 1) are the line.
      const buf = h.arg(0).c;
      const n = Math.min(Number(h.arg(1).c), BUFFER_BYTES);
      symbolicBytes(call, h, Number(buf), n, 0, 'line');
      const present = h.symbol(call, 'present', 1, { kind: 'present' }, (h.observedResult ?? 0n) !== 0n ? 1n : 0n);
      const z = h.z3;
      return { c: h.observedResult ?? 0n, e: z.If(present.e!.eq(z.BitVec.val(1, 1)), z.BitVec.val(buf, 64), z.BitVec.val(0, 64)) as BV, u: false };
    },
  },
  setlocale: {
    apply(call, h) {
      call.text = `setlocale(${h.arg(0).c}, ${h.arg(1).c === 0n ? 'NULL' : `"${h.argString(1) ?? '?'}"`})`;
      return pointerResult(call, h, STRING_BYTES);
    },
  },
  fopen: {
    apply(call, h) {
      call.text = `fopen("${h.argString(0) ?? '?'}")`;
      return pointerResult(call, h, 0);
    },
  },
  open: {
    apply(call, h) {
      call.text = `open("${h.argString(0) ?? '?'}")`;
      return widen(h.z3, h.symbol(call, 'ret', 32, { kind: 'ret', bits: 32 }, (h.observedResult ?? 0n) & 0xffffffffn), 32, true);
    },
  },
};

/** Names of the calls {@link applySourceModel} knows (the shim interposes the same). */
export const SOURCE_CALLS: readonly string[] = Object.keys(SOURCE_MODELS);

/** Byte i of v as a value. */
export function extractByte(z: Z3, v: Val, i: number): Val {
  return { c: (v.c >> BigInt(8 * i)) & 0xffn, e: v.e === null ? null : (v.e.extract(8 * i + 7, 8 * i) as BV), u: v.u };
}

/** A `bits`-wide value widened to 64 bits (rax after a call returning int: the upper half is what the ABI leaves, zero here). */
function widen(z: Z3, v: Val, bits: number, _signed: boolean): Val {
  if (bits === 64) return v;
  return { c: v.c & ((1n << BigInt(bits)) - 1n), e: v.e === null ? null : (v.e.zeroExt(64 - bits) as BV), u: v.u };
}

// ---------------------------------------------------------------------------
// Pure string functions.

/** Decimal conversions: the result's width in bits (int or long). */
const DECIMAL: Record<string, number> = { atoi: 32, atol: 64, atoll: 64, strtol: 64, strtoll: 64, strtoul: 64, strtoull: 64 };

const PURE = new Set(['strcmp', 'strncmp', 'memcmp', 'strlen', 'strcasecmp', 'strncasecmp', ...Object.keys(DECIMAL)]);

export function isPureModel(name: string): boolean {
  return PURE.has(name);
}

const MAX_COMPARE = 64;

/** The result of a pure string function on the host's memory (rax). */
export function applyPureModel(name: string, h: ModelHost): Val {
  const z = h.z3;
  const a = Number(h.arg(0).c);
  if (DECIMAL[name] !== undefined) return decimalValue(name, h, a);
  if (name === 'strlen') {
    const bytes: Val[] = [];
    for (let i = 0; i < MAX_COMPARE; i++) {
      const v = h.readByte(a + i);
      bytes.push(v);
      if (v.e === null && v.c === 0n) break;
    }
    let c = 0n;
    while (Number(c) < bytes.length && bytes[Number(c)].c !== 0n) c++;
    if (bytes.every((b) => b.e === null)) return { c, e: null, u: bytes.some((b) => b.u) };
    let e: BV = z.BitVec.val(BigInt(bytes.length), 64);
    for (let i = bytes.length - 1; i >= 0; i--) {
      const bi = bytes[i].e ?? z.BitVec.val(bytes[i].c, 8);
      e = z.If(bi.eq(z.BitVec.val(0, 8)), z.BitVec.val(i, 64), e) as BV;
    }
    return { c, e, u: bytes.some((b) => b.u) };
  }
  const b = Number(h.arg(1).c);
  const limit = name === 'strncmp' || name === 'memcmp' || name === 'strncasecmp' ? Number(h.arg(2).c) : Infinity;
  const stopAtNul = name !== 'memcmp';
  const fold = name === 'strcasecmp' || name === 'strncasecmp';
  const pairs: Array<[Val, Val]> = [];
  for (let i = 0; i < Math.min(limit, MAX_COMPARE); i++) {
    let x = h.readByte(a + i);
    let y = h.readByte(b + i);
    if (fold) {
      x = lowerByte(z, x);
      y = lowerByte(z, y);
    }
    pairs.push([x, y]);
    const concrete = x.e === null && y.e === null;
    if (concrete && x.c !== y.c) break;
    if (stopAtNul && ((x.e === null && x.c === 0n) || (y.e === null && y.c === 0n))) break;
  }
  // Concrete shadow.
  let c = 0n;
  for (const [x, y] of pairs) {
    if (x.c !== y.c) {
      c = x.c - y.c;
      break;
    }
    if (stopAtNul && x.c === 0n) break;
  }
  const u = pairs.some(([x, y]) => x.u || y.u);
  if (pairs.every(([x, y]) => x.e === null && y.e === null)) return { c: c & 0xffffffffn, e: null, u };
  // Symbolic: from the last compared pair backwards.
  let e: BV = z.BitVec.val(0, 32);
  for (let i = pairs.length - 1; i >= 0; i--) {
    const x = (pairs[i][0].e ?? z.BitVec.val(pairs[i][0].c, 8)).zeroExt(24) as BV;
    const y = (pairs[i][1].e ?? z.BitVec.val(pairs[i][1].c, 8)).zeroExt(24) as BV;
    const diff = x.sub(y) as BV;
    const rest = stopAtNul ? (z.If(x.eq(z.BitVec.val(0, 32)), z.BitVec.val(0, 32), e) as BV) : e;
    e = z.If(x.neq(y), diff, rest) as BV;
  }
  return { c: c & 0xffffffffn, e: e.zeroExt(32) as BV, u };
}

/** Digits a conversion's formula follows: 18 never overflow a 64-bit value. */
const MAX_DIGITS = 18;
/** Leading white-space characters the formula skips (strtol skips any number: more give a wrong value). */
const MAX_LEADING_SPACE = 2;

/**
 * atoi, atol and strtol/strtoul in base 10 (C11 7.22.1.4; glibc's atoi and
 * atol are strtol): white space, an optional sign, then decimal digits up
 * to the first other character; no digits give 0, and a value out of range
 * gives LONG_MAX/LONG_MIN (ULONG_MAX for strtoul, which negates a
 * negative value). strtol with an end pointer or another base is not
 * modelled (its result is unknown). Symbolic bytes give the value as a
 * formula, so a guard on the number solves for the text. The formula
 * follows 18 digits (64-bit arithmetic, which a solver handles far better
 * than wider): a longer run of digits counts as out of range, which is
 * wrong for the 19-digit values in range and for numbers padded with
 * leading zeros.
 */
function decimalValue(name: string, h: ModelHost, a: number): Val {
  const z = h.z3;
  const bits = DECIMAL[name];
  const isStrto = name.startsWith('strto');
  const unsigned = name === 'strtoul' || name === 'strtoull';
  if (isStrto && (h.arg(1).c !== 0n || h.arg(1).e !== null || h.arg(2).c !== 10n || h.arg(2).e !== null)) return { c: 0n, e: null, u: true };
  const n = MAX_LEADING_SPACE + 1 + MAX_DIGITS + 1;
  const bytes: Val[] = [];
  for (let i = 0; i < n; i++) {
    const v = h.readByte(a + i);
    bytes.push(v);
    if (v.e === null && v.c === 0n) break;
  }
  const u = bytes.some((b) => b.u);
  const MAX = unsigned ? (1n << 64n) - 1n : (1n << 63n) - 1n;
  const MIN_MAG = unsigned ? (1n << 64n) - 1n : 1n << 63n;
  const mask64 = (1n << 64n) - 1n;
  const finish = (v: bigint): bigint => (bits < 64 ? v & 0xffffffffn : v & mask64);
  // Concrete shadow, as the library parses.
  let i = 0;
  while (i < bytes.length && isSpaceCode(bytes[i].c)) i++;
  let negative = false;
  if (i < bytes.length && (bytes[i].c === 0x2dn || bytes[i].c === 0x2bn)) negative = bytes[i++].c === 0x2dn;
  let mag = 0n;
  for (; i < bytes.length && bytes[i].c >= 0x30n && bytes[i].c <= 0x39n; i++) mag = mag * 10n + (bytes[i].c - 0x30n);
  const c = finish(negative ? (mag > MIN_MAG ? (unsigned ? MAX : -MIN_MAG) : -mag) : mag > MAX ? MAX : mag);
  if (bytes.every((b) => b.e === null)) return { c, e: null, u };
  const W = 64;
  const k64 = (x: bigint): BV => z.BitVec.val(x, W);
  const byteAt = (k: number): BV => (k < bytes.length ? (bytes[k].e ?? z.BitVec.val(bytes[k].c, 8)) : z.BitVec.val(0, 8));
  const isDigit = (b: BV) => z.And(b.uge(z.BitVec.val(0x30, 8)), b.ule(z.BitVec.val(0x39, 8)));
  // The value of the digits from `from` on, given the sign: each digit counts while every one before it was one.
  const valueFrom = (from: number, neg: boolean): BV => {
    let acc: BV = k64(0n);
    let valid = z.Bool.val(true);
    for (let k = from; k < from + MAX_DIGITS; k++) {
      const b = byteAt(k);
      valid = z.And(valid, isDigit(b));
      acc = z.If(valid, acc.mul(k64(10n)).add(b.sub(z.BitVec.val(0x30, 8)).zeroExt(W - 8)), acc) as BV;
    }
    const longer = z.And(valid, isDigit(byteAt(from + MAX_DIGITS)));
    // 18 digits are below both limits: only a longer run is out of range.
    if (neg) return z.If(longer, k64(unsigned ? MAX : (-MIN_MAG) & mask64), acc.neg()) as BV;
    return z.If(longer, k64(MAX), acc) as BV;
  };
  const signedFrom = (from: number): BV => {
    const b = byteAt(from);
    return z.If(b.eq(z.BitVec.val(0x2d, 8)), valueFrom(from + 1, true), z.If(b.eq(z.BitVec.val(0x2b, 8)), valueFrom(from + 1, false), valueFrom(from, false))) as BV;
  };
  // The number starts at the first byte that is no white space.
  let e = signedFrom(MAX_LEADING_SPACE);
  for (let k = MAX_LEADING_SPACE - 1; k >= 0; k--) e = z.If(isSpace(z, byteAt(k)), e, signedFrom(k)) as BV;
  if (bits < 64) e = e.extract(31, 0).zeroExt(32) as BV;
  return { c, e, u };
}

function isSpaceCode(c: bigint): boolean {
  return c === 0x20n || (c >= 0x09n && c <= 0x0dn);
}

function isSpace(z: Z3, b: BV) {
  return z.Or(b.eq(z.BitVec.val(0x20, 8)), z.And(b.uge(z.BitVec.val(0x09, 8)), b.ule(z.BitVec.val(0x0d, 8))));
}

function lowerByte(z: Z3, v: Val): Val {
  const c = v.c >= 0x41n && v.c <= 0x5an ? v.c + 0x20n : v.c;
  if (v.e === null) return { c, e: null, u: v.u };
  const isUpper = z.And(v.e.uge(z.BitVec.val(0x41, 8)), v.e.ule(z.BitVec.val(0x5a, 8)));
  return { c, e: z.If(isUpper, v.e.add(z.BitVec.val(0x20, 8)), v.e) as BV, u: v.u };
}

// ---------------------------------------------------------------------------
// The slice report.

/** One instruction of the executed path whose result depends on a call's output. */
export interface SliceStep {
  /** Link-time address, in module `module`. */
  ip: number;
  /** '' for the main executable, else the library's file name. */
  module: string;
  text: string;
}

/** Symbols a formula mentions, by name (from its S-expression). */
export function symbolNames(sexpr: string): Set<string> {
  const out = new Set<string>();
  for (const m of sexpr.matchAll(/\|([^|]+)\||([A-Za-z_][\w.@!+:-]*)/g)) out.add(m[1] ?? m[2]);
  return out;
}
