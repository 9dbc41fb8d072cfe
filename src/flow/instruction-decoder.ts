/**
 * Decode and classify the single instruction at an address of an image
 * (libipt's pt_insn_decode over pt_ild_decode). iced-x86 does the x86
 * decoding; this file maps iced's `Code` to libipt's classes (instruction.ts
 * explains the rules) and caches results.
 *
 * How it is kept fast:
 * - Results are cached per byte source (file or memory buffer) and mode,
 *   keyed by the offset in the source: one Uint32 of packed fields per
 *   byte (a direct branch's displacement is read again from its bytes), in
 *   pages of 64 Ki offsets allocated when code in them is first decoded. Sources are immutable (see section.ts), so entries
 *   never go stale; a hit is used only if the instruction still ends inside
 *   the mapping it starts in, which keeps overlays and split sections exact.
 * - A miss decodes with an iced `Decoder` that holds a 1 MiB window of the
 *   source (iced copies its input into WASM memory once) and one reused
 *   `Instruction` via `decodeOut`; the window's position is only set when
 *   the decode is not sequential, since the setter costs as much as a decode.
 * - Branch displacements are read from the instruction's last bytes (their
 *   width comes from the `Code`), so no BigInt is created.
 * - An instruction that runs past the end of its mapping goes the slow path
 *   of libipt's pt_insn_decode_retry: read what the mapping has, then the
 *   rest from whatever is mapped next, and decode those bytes. It is not cached.
 *
 * APX `jmpabs` (REX2 prefix 0xd5) is the one encoding iced-x86 1.21 does not
 * know; it is recognised here from its fixed layout (REX2 with M0 = W = 0,
 * opcode 0xa1, imm64: 11 bytes), as libipt's ILD does.
 *
 * Where iced and libipt's length decoder disagree: libipt's ILD only measures
 * length, so it accepts encodings that are invalid (e.g. 0x06 `push es` in
 * 64-bit mode) and iced rejects them with `-ErrorCode.BadInsn`. This only
 * matters for traces that execute invalid code.
 *
 * Measured speed (Node 20 on this 2-core machine while other jobs ran, so
 * approximate; mruby's seg_400000.bin, 745 KB, 212,886 valid instructions
 * decoded linearly, 17,693 invalid offsets in data skipped one byte at a time):
 * - first decode (iced via WASM, cache miss), JIT warm: about 4 M instructions/s
 *   (0.8-2 M/s in the first cold pass);
 * - repeated decode (cache hit): about 21 M instructions/s.
 * For comparison, raw iced `decodeOut` alone runs at about 10 M/s sequentially
 * and 5 M/s when the position is set for every instruction. A trace revisits
 * the same code millions of times (mruby: 6.3 M executed instructions over
 * about 0.2 M distinct ones), so the flow decoders run at cache-hit speed.
 * test/instruction-classify.test.ts prints both figures under vitest.
 */
import {
  Code,
  Decoder,
  DecoderError,
  DecoderOptions,
  Formatter,
  FormatterSyntax,
  Instruction,
  MemorySizeOptions,
  Register,
} from './iced.js';
import { ErrorCode } from '../packets/errors.js';
import { Asid, ipToBigInt } from './address-space.js';
import type { Image, MappedSection } from './image.js';
import { ExecMode, execModeBits, InsnClass, InsnKind, InstructionInfo } from './instruction.js';
import type { ByteSource } from './section.js';

/** The longest x86 instruction (SDM Vol. 2A, 2.3.11). */
export const MAX_INSN_SIZE = 15;

// ---------------------------------------------------------------------------
// Classification tables, indexed by iced's Code.

const CODE_COUNT = Object.values(Code).filter((v) => typeof v === 'number').length;
/** InsnClass per Code (0 = Other). */
const CODE_CLASS = new Uint8Array(CODE_COUNT).fill(InsnClass.Other);
/** InsnKind per Code. */
const CODE_KIND = new Uint8Array(CODE_COUNT);
/** Width in bytes of the branch displacement for direct branches, else 0. */
const CODE_DISP = new Uint8Array(CODE_COUNT);
/** `mov cr, r`: a MovCr3 only if the control register is CR3. */
const CODE_MOV_CR = new Uint8Array(CODE_COUNT);

function relWidth(name: string): number {
  const m = /_rel(8|16|32)/.exec(name);
  return m ? Number(m[1]) / 8 : 0;
}

/** Codes classified by name alone. */
const SIMPLE_CODES: Readonly<Record<string, [InsnClass, InsnKind]>> = {
  Int_imm8: [InsnClass.FarCall, InsnKind.Int],
  Int3: [InsnClass.FarCall, InsnKind.Int3],
  Int1: [InsnClass.FarCall, InsnKind.Int1],
  Into: [InsnClass.FarCall, InsnKind.Into],
  Syscall: [InsnClass.FarCall, InsnKind.Syscall],
  Sysenter: [InsnClass.FarCall, InsnKind.Sysenter],
  Vmcall: [InsnClass.FarCall, InsnKind.Vmcall],
  Vmlaunch: [InsnClass.FarReturn, InsnKind.Vmlaunch],
  Vmresume: [InsnClass.FarReturn, InsnKind.Vmresume],
  Uiret: [InsnClass.FarReturn, InsnKind.Uiret],
  Erets: [InsnClass.FarReturn, InsnKind.Erets],
  Eretu: [InsnClass.FarReturn, InsnKind.Eretu],
  // libipt's ILD takes any 0f c7 /6 with a memory operand for vmptrld,
  // whatever the prefix (66: vmclear, f3: vmxon); mirror it.
  Vmptrld_m64: [InsnClass.Other, InsnKind.Vmptrld],
  Vmclear_m64: [InsnClass.Other, InsnKind.Vmptrld],
  Vmxon_m64: [InsnClass.Other, InsnKind.Vmptrld],
  Xend: [InsnClass.Other, InsnKind.Xend],
  Xabort_imm8: [InsnClass.Other, InsnKind.Xabort],
  Mwait: [InsnClass.Other, InsnKind.Mwait],
  Mwaitx: [InsnClass.Other, InsnKind.Mwait],
  Stac: [InsnClass.Other, InsnKind.Stac],
  Clac: [InsnClass.Other, InsnKind.Clac],
  Hlt: [InsnClass.Other, InsnKind.Hlt],
};

let tablesReady = false;

/**
 * Fill the tables, once, when the first decoder is made (not at import:
 * commands that never decode an instruction, such as `dump`, skip it).
 */
function initTables(): void {
  if (tablesReady) return;
  tablesReady = true;
  for (const name of Object.keys(Code)) {
    const code = (Code as unknown as Record<string, number>)[name];
    if (typeof code !== 'number') continue;
    let cls = InsnClass.Other;
    let kind = InsnKind.None;
    let disp = 0;
    if (/^J(o|no|b|ae|e|ne|be|a|s|ns|p|np|l|ge|le|g)_rel/.test(name)) {
      [cls, kind, disp] = [InsnClass.CondJump, InsnKind.Jcc, relWidth(name)];
    } else if (/^J(cxz|ecxz|rcxz)_rel8/.test(name)) {
      [cls, kind, disp] = [InsnClass.CondJump, InsnKind.JrCXZ, 1];
    } else if (/^Loop_rel8/.test(name)) {
      [cls, kind, disp] = [InsnClass.CondJump, InsnKind.Loop, 1];
    } else if (/^Loope_rel8/.test(name)) {
      [cls, kind, disp] = [InsnClass.CondJump, InsnKind.LoopE, 1];
    } else if (/^Loopne_rel8/.test(name)) {
      [cls, kind, disp] = [InsnClass.CondJump, InsnKind.LoopNE, 1];
    } else if (/^Call_rel(16|32)/.test(name)) {
      [cls, kind, disp] = [InsnClass.Call, InsnKind.CallE8, relWidth(name)];
    } else if (/^Call_rm(16|32|64)$/.test(name)) {
      [cls, kind] = [InsnClass.Call, InsnKind.CallFFr2];
    } else if (/^Call_m16(16|32|64)$/.test(name)) {
      [cls, kind] = [InsnClass.FarCall, InsnKind.CallFFr3];
    } else if (/^Call_ptr16(16|32)$/.test(name)) {
      [cls, kind] = [InsnClass.FarCall, InsnKind.Call9A];
    } else if (/^Jmp_rel8/.test(name)) {
      [cls, kind, disp] = [InsnClass.Jump, InsnKind.JmpEB, 1];
    } else if (/^Jmp_rel(16|32)/.test(name)) {
      [cls, kind, disp] = [InsnClass.Jump, InsnKind.JmpE9, relWidth(name)];
    } else if (/^Jmp_rm(16|32|64)$/.test(name)) {
      [cls, kind] = [InsnClass.Jump, InsnKind.JmpFFr4];
    } else if (/^Jmp_m16(16|32|64)$/.test(name)) {
      [cls, kind] = [InsnClass.FarJump, InsnKind.JmpFFr5];
    } else if (/^Jmp_ptr16(16|32)$/.test(name)) {
      [cls, kind] = [InsnClass.FarJump, InsnKind.JmpEA];
    } else if (/^Retn[wdq]$/.test(name)) {
      [cls, kind] = [InsnClass.Return, InsnKind.RetC3];
    } else if (/^Retn[wdq]_imm16$/.test(name)) {
      [cls, kind] = [InsnClass.Return, InsnKind.RetC2];
    } else if (/^Retf[wdq]$/.test(name)) {
      [cls, kind] = [InsnClass.FarReturn, InsnKind.RetCB];
    } else if (/^Retf[wdq]_imm16$/.test(name)) {
      [cls, kind] = [InsnClass.FarReturn, InsnKind.RetCA];
    } else if (/^Iret[wdq]$/.test(name)) {
      [cls, kind] = [InsnClass.FarReturn, InsnKind.Iret];
    } else if (/^Sysexit[dq]$/.test(name)) {
      [cls, kind] = [InsnClass.FarReturn, InsnKind.Sysexit];
    } else if (/^Sysret[dq]$/.test(name)) {
      [cls, kind] = [InsnClass.FarReturn, InsnKind.Sysret];
    } else if (/^Mov_cr_r(32|64)$/.test(name)) {
      CODE_MOV_CR[code] = 1;
    } else if (/^Ptwrite_rm(32|64)$/.test(name)) {
      [cls, kind] = [InsnClass.Ptwrite, InsnKind.Ptwrite];
    } else if (/^Xbegin_rel/.test(name)) {
      kind = InsnKind.Xbegin;
    } else if (/^(Ud2|Ud0|Ud0_r\d+_rm\d+|Ud1_r\d+_rm\d+)$/.test(name)) {
      kind = InsnKind.Ud;
    } else {
      const s = SIMPLE_CODES[name];
      if (s) [cls, kind] = s;
    }
    CODE_CLASS[code] = cls;
    CODE_KIND[code] = kind;
    CODE_DISP[code] = disp;
  }
}

// ---------------------------------------------------------------------------
// Packed cache entries: size (bits 0-3, 0 = empty), class (4-7), kind (8-15),
// direct (16), the displacement's width in bytes (17-19: 0, 1, 2 or 4). The
// displacement itself is read again from the instruction's last bytes on
// each hit, so that the cache holds 4 bytes per byte of code, not 8: a cold
// decode zero-fills (and faults in) every page it touches.

/**
 * Entries per page: 64 Ki, so that a source of a few MiB takes a handful of
 * allocations (each costs far more than its zeroing: typed arrays this big
 * are allocated outside the JS heap). A source smaller than a page gets one
 * page of its own size.
 */
const PAGE_BITS = 16;
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;
const DIRECT_BIT = 1 << 16;
const DISP_WIDTH_SHIFT = 17;

/** An entry; `dispWidth` is the branch displacement's width in bytes (0: not a direct branch). */
function pack(size: number, cls: number, kind: number, dispWidth: number): number {
  return size | (cls << 4) | (kind << 8) | (dispWidth !== 0 ? DIRECT_BIT | (dispWidth << DISP_WIDTH_SHIFT) : 0);
}

/** The sign-extended little-endian displacement of `width` (1, 2 or 4) bytes that ends at `end`. */
function readDisplacement(bytes: Uint8Array, end: number, width: number): number {
  if (width === 1) return (bytes[end - 1] << 24) >> 24;
  if (width === 2) return ((bytes[end - 2] | (bytes[end - 1] << 8)) << 16) >> 16;
  return bytes[end - 4] | (bytes[end - 3] << 8) | (bytes[end - 2] << 16) | (bytes[end - 1] << 24);
}

/** Bytes of a source an iced Decoder holds; neighbours overlap by MAX_INSN_SIZE. */
const WINDOW_BITS = 20;
const WINDOW_SIZE = 1 << WINDOW_BITS;

/** An iced object that holds WASM memory until freed. */
interface WasmOwned {
  free(): void;
}

/**
 * iced-x86's objects live in WASM memory, which the JS garbage collector
 * neither sees nor frees: a decoder that is dropped without
 * {@link InstructionDecoder.dispose} would keep its windows (up to 1 MiB of
 * source each) for the life of the process, and WASM memory only grows. A
 * long-lived process (a fleet worker that opens one image per job, a
 * benchmark that makes one per pass) grew by the size of its code per image.
 * So each decoder's iced objects are freed when the decoder is collected,
 * or at dispose, whichever comes first (never both: dispose unregisters).
 */
const wasmReleaser = new FinalizationRegistry<WasmOwned[]>((owned) => {
  for (const o of owned) o.free();
});

/** Decoded instructions and iced decoders for one source in one mode. */
class SourceCache {
  readonly pages: (Uint32Array | undefined)[] = [];
  /** The source's content (read on creation). */
  readonly bytes: Uint8Array;
  readonly windows: (Decoder | undefined)[] = [];
  /** The position each window's decoder will decode next, or -1. */
  readonly nextPos: number[] = [];

  constructor(
    readonly source: ByteSource,
    readonly bits: number,
    /** Where windows are recorded for release (the owning decoder's list). */
    private readonly owned: WasmOwned[],
  ) {
    this.bytes = source.bytes;
  }

  /** The iced decoder over window `w` of the source, made on first use. */
  window(w: number): Decoder {
    let dec = this.windows[w];
    if (dec === undefined) {
      const base = w * WINDOW_SIZE;
      const end = Math.min(this.bytes.length, base + WINDOW_SIZE + MAX_INSN_SIZE);
      dec = new Decoder(this.bits, this.bytes.subarray(base, end), DecoderOptions.None);
      this.owned.push(dec);
      this.windows[w] = dec;
      this.nextPos[w] = 0;
    }
    return dec;
  }

  /** The page that holds `offset`, which lies in the source. */
  page(offset: number): Uint32Array {
    const idx = offset >>> PAGE_BITS;
    let p = this.pages[idx];
    if (p === undefined) {
      const length = Math.max(1, Math.min(PAGE_SIZE, this.bytes.length));
      p = new Uint32Array(length);
      this.pages[idx] = p;
    }
    return p;
  }
}

/** Status of a raw decode besides a packed entry (> 0). */
const NEED_MORE_BYTES = -1;
const INVALID = -2;
/**
 * Cache entry for bytes iced rejects (size field 0). Trusted only if the
 * mapping holds 15 bytes at the address: otherwise bytes past the mapping
 * took part and the slow path decides.
 */
const INVALID_ENTRY = 1 << 20;

/** Decodes and classifies single instructions of one image. */
export class InstructionDecoder {
  private readonly caches = new Map<ByteSource, SourceCache[]>();
  private lastSource: ByteSource | null = null;
  private lastMode = ExecMode.Unknown;
  private lastCache: SourceCache | null = null;
  private readonly insn = new Instruction();
  private readonly scratch = new Uint8Array(MAX_INSN_SIZE);
  /** Displacement of the last raw decode (valid when the entry has DIRECT_BIT). */
  private rawDisp = 0;
  private readonly formatters: { intel: Formatter | null; att: Formatter | null } = { intel: null, att: null };
  /** Every iced object this decoder keeps, freed together (see {@link wasmReleaser}). */
  private readonly owned: WasmOwned[] = [this.insn];

  constructor(readonly image: Image) {
    initTables();
    wasmReleaser.register(this, this.owned, this);
  }

  /**
   * Decode the instruction at `ip` in address space `asid` into `out`.
   * Returns 0, `-ErrorCode.NoMap` (nothing mapped at `ip`) or
   * `-ErrorCode.BadInsn` (not a valid instruction, or the mode is unknown).
   * On error `out.ip`, `out.mode` are set and `out.iclass` is Unknown.
   */
  decode(out: InstructionInfo, ip: number, mode: ExecMode, asid: Asid): number {
    out.ip = ip;
    out.mode = mode;
    const msec = this.image.find(ip, asid);
    if (msec === null) return this.fail(out, -ErrorCode.NoMap, null);
    if (mode === ExecMode.Unknown) return this.fail(out, -ErrorCode.BadInsn, msec);

    const src = msec.section.source;
    const srcOff = msec.sourceOffset + (ip - msec.vaddr);
    const avail = msec.end - ip;

    let cache = this.lastCache;
    if (src !== this.lastSource || mode !== this.lastMode || cache === null) {
      cache = this.cacheFor(src, mode);
    }
    // Past the end of the source (a file that shrank): the bytes are read
    // from the image, as for an instruction that runs past its mapping.
    if (srcOff >= cache.bytes.length) return this.decodeAcrossSections(out, ip, mode, asid, msec);
    let page = cache.pages[srcOff >>> PAGE_BITS];
    if (page === undefined) page = cache.page(srcOff);
    const slot = srcOff & PAGE_MASK;
    let entry = page[slot];
    if (entry === 0) {
      entry = this.decodeInSource(cache, srcOff);
      if (entry > 0) {
        page[slot] = entry;
      } else if (entry === INVALID) {
        entry = page[slot] = INVALID_ENTRY;
      }
    }
    const size = entry & 15;
    if (size !== 0) {
      if (size <= avail && srcOff + size <= cache.bytes.length) {
        out.size = size;
        out.iclass = (entry >>> 4) & 15;
        out.kind = (entry >>> 8) & 255;
        if ((entry & DIRECT_BIT) !== 0) {
          const disp = readDisplacement(cache.bytes, srcOff + size, (entry >>> DISP_WIDTH_SHIFT) & 7);
          out.isDirect = true;
          out.displacement = disp;
          out.target = ip + size + disp;
        } else {
          out.isDirect = false;
          out.displacement = 0;
          out.target = 0;
        }
        out.truncated = false;
        out.section = msec;
        out.isid = msec.isid;
        out.rawBuffer = cache.bytes;
        out.rawOffset = srcOff;
        return 0;
      }
    } else if (entry === INVALID_ENTRY && avail >= MAX_INSN_SIZE) {
      return this.fail(out, -ErrorCode.BadInsn, msec);
    }
    return this.decodeAcrossSections(out, ip, mode, asid, msec);
  }

  /**
   * The instruction in ptxed's style: lower-case, hex with 0x, branch
   * targets as absolute addresses; Intel syntax, or AT&T (ptxed's --att).
   * For output only (allocates).
   */
  disassemble(insn: InstructionInfo, syntax: 'intel' | 'att' = 'intel'): string {
    if (insn.iclass === InsnClass.Unknown || insn.size === 0) return '';
    if (insn.kind === InsnKind.Jmpabs) {
      const target = '0x' + readU64(insn.rawBuffer, insn.rawOffset + 3).toString(16);
      return syntax === 'att' ? 'jmpabs $' + target : 'jmpabs ' + target;
    }
    const bits = execModeBits(insn.mode);
    const dec = new Decoder(bits, insn.raw(), DecoderOptions.None);
    try {
      dec.ip = ipToBigInt(insn.ip);
      const ins = new Instruction();
      try {
        dec.decodeOut(ins);
        return this.formatterFor(syntax).format(ins);
      } finally {
        ins.free();
      }
    } finally {
      dec.free();
    }
  }

  /** The iced formatter of a syntax, made on first use. */
  private formatterFor(syntax: 'intel' | 'att'): Formatter {
    let f = this.formatters[syntax];
    if (f === null) {
      f = new Formatter(syntax === 'att' ? FormatterSyntax.Gas : FormatterSyntax.Intel);
      f.hexPrefix = '0x';
      f.hexSuffix = '';
      f.uppercaseHex = false;
      f.branchLeadingZeros = false;
      f.showBranchSize = false;
      f.smallHexNumbersInDecimal = false;
      f.spaceAfterOperandSeparator = true;
      if (syntax === 'intel') f.memorySizeOptions = MemorySizeOptions.Always;
      this.owned.push(f);
      this.formatters[syntax] = f;
    }
    return f;
  }

  /** Release iced's WASM memory. The decoder must not be used afterwards. */
  dispose(): void {
    wasmReleaser.unregister(this);
    for (const o of this.owned) o.free();
    this.owned.length = 0;
    this.caches.clear();
    this.lastCache = null;
    this.lastSource = null;
    this.formatters.intel = this.formatters.att = null;
  }

  private cacheFor(src: ByteSource, mode: ExecMode): SourceCache {
    let list = this.caches.get(src);
    if (!list) {
      list = [];
      this.caches.set(src, list);
    }
    let c = list[mode];
    if (!c) {
      c = new SourceCache(src, execModeBits(mode), this.owned);
      list[mode] = c;
    }
    this.lastSource = src;
    this.lastMode = mode;
    this.lastCache = c;
    return c;
  }

  /** Decode at `offset` of a source through its window decoder: a packed entry or a status < 0. */
  private decodeInSource(cache: SourceCache, offset: number): number {
    const bytes = cache.bytes;
    if (offset >= bytes.length) return NEED_MORE_BYTES;
    if (cache.bits === 64 && bytes[offset] === 0xd5) return this.decodeRex2(bytes, offset, bytes.length - offset);
    const w = offset >>> WINDOW_BITS;
    const dec = cache.windows[w] ?? cache.window(w);
    const pos = offset - w * WINDOW_SIZE;
    if (cache.nextPos[w] !== pos) dec.position = pos;
    const ins = this.insn;
    dec.decodeOut(ins);
    const code = ins.code;
    if (code === Code.INVALID) {
      cache.nextPos[w] = -1;
      return dec.lastError === DecoderError.NoMoreBytes ? NEED_MORE_BYTES : INVALID;
    }
    const size = ins.length;
    cache.nextPos[w] = pos + size;
    return this.classify(code, bytes, offset, size);
  }

  /** Pack the classification of a decoded instruction; sets rawDisp. */
  private classify(code: number, bytes: Uint8Array, offset: number, size: number): number {
    let kind = CODE_KIND[code];
    if (CODE_MOV_CR[code] === 1 && this.insn.op0Register === Register.CR3) kind = InsnKind.MovCr3;
    const dispSize = CODE_DISP[code];
    this.rawDisp = dispSize === 0 ? 0 : readDisplacement(bytes, offset + size, dispSize);
    return pack(size, CODE_CLASS[code], kind, dispSize);
  }

  /**
   * REX2-prefixed (APX) instructions in 64-bit mode: only jmpabs is known
   * (Intel APX spec: REX2 with M0 = 0 and W = 0, opcode 0xa1, imm64).
   */
  private decodeRex2(bytes: Uint8Array, offset: number, avail: number): number {
    if (avail < 3) return NEED_MORE_BYTES;
    if ((bytes[offset + 1] & 0x88) !== 0 || bytes[offset + 2] !== 0xa1) return INVALID;
    if (avail < 11) return NEED_MORE_BYTES;
    this.rawDisp = 0;
    return pack(11, InsnClass.Indirect, InsnKind.Jmpabs, 0);
  }

  /**
   * libipt's pt_insn_decode with pt_insn_decode_retry: the instruction does
   * not fit in its mapping; read what the mapping has, then keep reading
   * from the image at the end of what was read, until the bytes decode.
   */
  private decodeAcrossSections(
    out: InstructionInfo,
    ip: number,
    mode: ExecMode,
    asid: Asid,
    msec: MappedSection,
  ): number {
    const buf = this.scratch;
    let n = this.image.read(buf, ip, MAX_INSN_SIZE, asid);
    if (n < 0) return this.fail(out, n, msec);
    let reads = 1;
    for (;;) {
      const entry = this.decodeScratch(execModeBits(mode), n);
      if (entry > 0) {
        this.fill(out, entry, this.rawDisp, msec);
        out.truncated = reads > 1;
        out.rawBuffer = buf;
        out.rawOffset = 0;
        return 0;
      }
      if (entry === INVALID || n >= MAX_INSN_SIZE) return this.fail(out, -ErrorCode.BadInsn, msec);
      const more = this.image.read(buf, ip + n, MAX_INSN_SIZE - n, asid, n);
      if (more < 0) return this.fail(out, more === -ErrorCode.NoMap ? -ErrorCode.BadInsn : more, msec);
      n += more;
      reads++;
    }
  }

  /** Decode the first `n` bytes of the scratch buffer with a throw-away decoder. */
  private decodeScratch(bits: number, n: number): number {
    const buf = this.scratch;
    if (bits === 64 && buf[0] === 0xd5) return this.decodeRex2(buf, 0, n);
    const dec = new Decoder(bits, buf.subarray(0, n), DecoderOptions.None);
    try {
      const ins = this.insn;
      dec.decodeOut(ins);
      const code = ins.code;
      if (code === Code.INVALID) {
        return dec.lastError === DecoderError.NoMoreBytes ? NEED_MORE_BYTES : INVALID;
      }
      return this.classify(code, buf, 0, ins.length);
    } finally {
      dec.free();
    }
  }

  private fill(out: InstructionInfo, entry: number, disp: number, msec: MappedSection): void {
    const size = entry & 15;
    out.size = size;
    out.iclass = (entry >>> 4) & 15;
    out.kind = (entry >>> 8) & 255;
    const direct = (entry & DIRECT_BIT) !== 0;
    out.isDirect = direct;
    out.displacement = direct ? disp : 0;
    out.target = direct ? out.ip + size + disp : 0;
    out.truncated = false;
    out.section = msec;
    out.isid = msec.isid;
  }

  private fail(out: InstructionInfo, status: number, msec: MappedSection | null): number {
    out.size = 0;
    out.iclass = InsnClass.Unknown;
    out.kind = InsnKind.None;
    out.isDirect = false;
    out.displacement = 0;
    out.target = 0;
    out.truncated = false;
    out.section = msec;
    out.isid = msec === null ? 0 : msec.isid;
    return status;
  }
}

function readU64(bytes: Uint8Array, at: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]);
  return v;
}

const shared = new WeakMap<Image, InstructionDecoder>();

/**
 * The decoder shared by everything that decodes `image` (created on first
 * use), so its cache is filled once. Hot loops keep the result instead of
 * calling {@link decodeInstruction}, which looks it up per call.
 */
export function instructionDecoderFor(image: Image): InstructionDecoder {
  let d = shared.get(image);
  if (!d) {
    d = new InstructionDecoder(image);
    shared.set(image, d);
  }
  return d;
}

/**
 * Free the WASM memory of `image`'s shared decoder now, for a caller that is
 * done with the image and will not return to the event loop soon (a
 * collected decoder is only released from the event loop). The next
 * {@link instructionDecoderFor} makes a new one.
 */
export function releaseInstructionDecoder(image: Image): void {
  const d = shared.get(image);
  if (d === undefined) return;
  shared.delete(image);
  d.dispose();
}

/**
 * Decode the instruction at `ip` with the decoder shared per image.
 * Returns as {@link InstructionDecoder.decode}.
 */
export function decodeInstruction(
  image: Image,
  asid: Asid,
  ip: number,
  mode: ExecMode,
  out: InstructionInfo,
): number {
  return instructionDecoderFor(image).decode(out, ip, mode, asid);
}
