/**
 * Static disassembly of one ELF module: which bytes of its executable
 * sections are instructions, where blocks and functions start, and what
 * the code points at. cfg.ts turns the result into blocks, edges and
 * functions.
 *
 * Recursive descent, seeded from (most trusted first):
 * - the entry point, .init/.fini, FUNC/IFUNC symbols of .symtab and .dynsym,
 *   .preinit/.init/.fini_array entries, .eh_frame FDE starts, LSDA landing
 *   pads and the PLT stubs;
 * - jump-table targets (jump-tables.ts), found after each round;
 * - code pointers: RIP-relative `lea`, `mov`/`push` immediates and pointers
 *   in data (relocations and aligned words) that land in code outside every
 *   known function range;
 * - last, a sweep over the gaps no seed reached: the first non-padding byte
 *   of each gap starts a descent whose instructions are marked low-confidence.
 *
 * Calls to functions known not to return (by name: abort, exit,
 * __stack_chk_fail, ...) get no fallthrough, so the bytes after them
 * (often the next function or padding) are not decoded as part of the caller.
 *
 * Speed: everything is kept per byte of the code span in typed arrays
 * (length, flow kind, marks, branch target), one iced Decoder walks the span
 * with a reused Instruction, and its position is set only when the walk is
 * not sequential. Only `lea`/immediate `mov`/`push` and branches read
 * operand getters. iced gives the same lengths as the trace-side
 * InstructionDecoder (both are iced), so block boundaries agree with it.
 */
import { Code, Decoder, DecoderOptions, Instruction, OpKind, Register } from '../iced.js';
import type { ElfFile, ElfSectionHeader } from '../elf.js';
import { EM_X86_64, ET_EXEC } from '../elf.js';
import {
  DynamicSymbol,
  ElfBytes,
  isJumpSlot,
  isPointerRelocation,
  readDynamicSymbols,
  readRelocations,
  readRelrAddresses,
  readUnwindInfo,
  Relocation,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHT_FINI_ARRAY,
  SHT_INIT_ARRAY,
  SHT_NOBITS,
  SHT_PREINIT_ARRAY,
  STB_GLOBAL,
  STB_WEAK,
  STT_FUNC,
  STT_GNU_IFUNC,
  UnwindInfo,
} from './elf-tables.js';
import { CodeSpace } from './code-space.js';
import { JumpSlicer, type JumpTable, type SliceContext } from './jump-tables.js';
import { lastAtOrBelow } from '../sorted-search.js';
import { withRoom } from '../grow.js';

/** How control leaves an instruction. */
export enum InsnFlow {
  /** Not decoded. */
  None = 0,
  /** Falls through (includes syscall, int n, far call). */
  Next = 1,
  /** Direct unconditional jump. */
  Jump = 2,
  /** Direct conditional jump (jcc, loop, jrcxz, xbegin). */
  CondJump = 3,
  /** Direct near call. */
  Call = 4,
  /** Indirect near jump. */
  IndirectJump = 5,
  /** Indirect near call. */
  IndirectCall = 6,
  /** Near return. */
  Return = 7,
  /** Does not continue here: hlt, ud2, int3, far jmp/ret, iret, sysret. */
  Stop = 8,
}

/** Per-byte marks of the code span. */
export const Mark = {
  /** An instruction starts here. */
  Insn: 1,
  /** A block starts here. */
  Leader: 2,
  /** A function starts here. */
  Function: 4,
  /** The instruction was reached only from a gap-sweep seed. */
  LowConfidence: 8,
  /** The instruction follows a call (a call-preceded return site). */
  ReturnSite: 16,
  /** An exception landing pad. */
  LandingPad: 32,
  /** A jump-table target. */
  JumpTableTarget: 64,
  /** The byte is part of some decoded instruction. */
  Covered: 128,
  /** The byte lies in an executable section. */
  Exec: 256,
  /** The byte lies in a PLT section. */
  Plt: 512,
  /** Decoding failed here. */
  Bad: 1024,
  /** A call to a function that does not return: no fallthrough. */
  NoReturnCall: 2048,
  /** A code pointer (constant or data word) points here. */
  Pointer: 4096,
} as const;

/** Why an address is a function start (bit set). */
export const FunctionOrigin = {
  Entry: 1,
  Symbol: 2,
  Export: 4,
  InitFini: 8,
  EhFrame: 16,
  CallTarget: 32,
  Plt: 64,
  Pointer: 128,
  Gap: 256,
} as const;

/** A PLT stub and the import it jumps to. */
export interface PltEntry {
  /** First byte of the stub. */
  address: number;
  /** Address of the `jmp *slot`. */
  jumpAddress: number;
  /** The GOT slot the stub jumps through. */
  gotSlot: number;
  /** Imported symbol name (no version), or '' if the slot has no named relocation. */
  name: string;
  /** Section holding the stub: .plt, .plt.sec or .plt.got. */
  section: string;
  /** For an IRELATIVE slot (a module-local IFUNC): the resolver's link-time address; else NaN. */
  resolver: number;
}

/** Writable sections the loader makes read-only after relocation (RELRO). */
const RELRO_SECTIONS = /^\.(data\.rel\.ro|got$|init_array|fini_array|preinit_array|dynamic)/;
/** How far past its entry a resolver without a known size is searched for choices. */
const IFUNC_RESOLVER_SPAN = 512;
/** Function starts that something reaches on its own: called, exported, address taken, the entry point. */
const REACHED_ORIGINS = FunctionOrigin.Entry | FunctionOrigin.Export | FunctionOrigin.InitFini | FunctionOrigin.CallTarget | FunctionOrigin.Plt | FunctionOrigin.Pointer;
/** Imports that exit when their first argument (the status) is not 0 (glibc's error(3)). */
const STATUS_EXIT_NAMES: ReadonlySet<string> = new Set(['error', 'error_at_line']);
/** The first argument's register (SysV x86-64), whole or in part. */
const FIRST_ARG_REGISTERS: ReadonlySet<Register> = new Set([Register.RDI, Register.EDI, Register.DI, Register.DIL]);
/** The largest split-off part looked at (gcc's `.cold` parts are small). */
const MAX_SPLIT_PART = 1 << 16;

/** Names of functions that never return to their caller. */
export const NORETURN_NAMES: ReadonlySet<string> = new Set([
  'abort', 'exit', '_exit', '_Exit', 'quick_exit', 'thrd_exit', 'pthread_exit', '__stack_chk_fail',
  '__stack_chk_fail_local', '__assert_fail', '__assert_perror_fail', '__assert', '__fortify_fail',
  '__chk_fail', '__libc_fatal', '__libc_message', '__fatal_error', 'err', 'errx', 'verr', 'verrx',
  'longjmp', '_longjmp', 'siglongjmp', '__longjmp_chk', '__libc_longjmp', '__libc_siglongjmp',
  '__cxa_throw', '__cxa_rethrow', '__cxa_bad_cast', '__cxa_bad_typeid', '__cxa_pure_virtual',
  '__cxa_deleted_virtual', '__cxa_call_terminate', '_Unwind_Resume', '_ZSt9terminatev',
  '__libc_start_main', '__libc_start_call_main', '__malloc_assert', '__libc_dynarray_at_failure',
  'malloc_printerr', '__tls_get_addr_fail',
]);

/** Per-instruction codes for the decode loop, from iced's Code names. */
const CODE_FLOW = new Uint8Array(Object.keys(Code).length);
/** 1: lea (operand 1 may point at code); 2: immediate in operand 1; 3: immediate in operand 0. */
const CODE_REF = new Uint8Array(Object.keys(Code).length);
const NOP_CODE = new Uint8Array(Object.keys(Code).length);

function initCodeTables(): void {
  for (const name of Object.keys(Code)) {
    const code = (Code as unknown as Record<string, number>)[name];
    if (typeof code !== 'number' || code >= CODE_FLOW.length) continue;
    let flow = InsnFlow.Next;
    if (/^J(o|no|b|ae|e|ne|be|a|s|ns|p|np|l|ge|le|g)_rel/.test(name)) flow = InsnFlow.CondJump;
    else if (/^(Jcxz|Jecxz|Jrcxz|Loop|Loope|Loopne)_rel8/.test(name)) flow = InsnFlow.CondJump;
    else if (/^Xbegin_rel/.test(name)) flow = InsnFlow.CondJump;
    else if (/^Jmp_rel(8|16|32)/.test(name)) flow = InsnFlow.Jump;
    else if (/^Call_rel(16|32)/.test(name)) flow = InsnFlow.Call;
    else if (/^Jmp_rm(16|32|64)$/.test(name)) flow = InsnFlow.IndirectJump;
    else if (/^Call_rm(16|32|64)$/.test(name)) flow = InsnFlow.IndirectCall;
    else if (/^Retn[wdq](_imm16)?$/.test(name)) flow = InsnFlow.Return;
    else if (
      /^(Retf[wdq](_imm16)?|Iret[wdq]|Sysret[dq]|Sysexit[dq]|Jmp_m16|Jmp_ptr16|Hlt|Int3|Ud2|Ud0|Ud0_.*|Ud1_.*|Uiret|Erets|Eretu|Vmlaunch|Vmresume)/.test(
        name,
      )
    ) {
      flow = InsnFlow.Stop;
    }
    CODE_FLOW[code] = flow;
    if (/^Lea_r(16|32|64)_m$/.test(name)) CODE_REF[code] = 1;
    else if (/^Mov_(r32_imm32|r64_imm64|rm64_imm32|rm32_imm32)$/.test(name)) CODE_REF[code] = 2;
    else if (/^Push[dq]_imm32$/.test(name)) CODE_REF[code] = 3;
    if (/^Nop[wdq]$|^Nop_rm(16|32|64)$|^Int3$/.test(name)) NOP_CODE[code] = 1;
  }
}
initCodeTables();

/** A growable list of doubles. */
export class NumberList {
  data: Float64Array;
  length = 0;

  constructor(capacity = 64) {
    this.data = new Float64Array(Math.max(16, capacity));
  }

  push(v: number): void {
    this.data = withRoom(this.data, this.length + 1);
    this.data[this.length++] = v;
  }

  pop(): number {
    return this.data[--this.length];
  }

  toArray(): Float64Array {
    return this.data.slice(0, this.length);
  }
}

/** Sorted, duplicate-free copy. */
export function sortedUnique(values: ArrayLike<number>): Float64Array {
  const a = Float64Array.from(values).sort();
  let w = 0;
  for (let r = 0; r < a.length; r++) if (r === 0 || a[r] !== a[w - 1]) a[w++] = a[r];
  return a.slice(0, w);
}

/** Options for {@link disassembleElf}. */
export interface DisassemblyOptions {
  /** Sweep gaps for code no seed reached (default true). */
  sweepGaps?: boolean;
  /** Extra function-start names that never return. */
  noReturnNames?: Iterable<string>;
}

/** An IFUNC resolver and the implementations it can return. */
export interface IfuncChoice {
  /** Link-time address of the resolver (the STT_GNU_IFUNC symbol's value, or an IRELATIVE addend). */
  resolver: number;
  /** Code addresses the resolver loads as constants: what the dynamic linker may store in the slot. */
  targets: number[];
}

/** The decoded code of one module. Addresses are link-time addresses. */
export class Disassembly {
  /** The executable bytes as dense regions; per-byte tables are indexed by its offsets. */
  readonly space: CodeSpace;
  /** Instruction length per byte (0 = no instruction starts there). */
  readonly len: Uint8Array;
  /** {@link InsnFlow} per instruction start. */
  readonly flow: Uint8Array;
  /** {@link Mark} bits per byte. */
  readonly mark: Uint16Array;
  /** Direct branch target (link-time address) per instruction start. */
  readonly target: Float64Array;
  /** {@link FunctionOrigin} bits per function start. */
  readonly functionOrigins = new Map<number, number>();
  readonly plt: PltEntry[] = [];
  readonly jumpTables: JumpTable[] = [];
  readonly ifuncs: IfuncChoice[] = [];
  /** Pairs (instruction address, constant) for lea/mov/push constants. */
  readonly codeRefs = new NumberList();
  /** Code addresses stored in data (relocations and aligned words). */
  readonly dataPointers = new NumberList();
  readonly dynamicSymbols: DynamicSymbol[];
  readonly relocations: Relocation[];
  readonly unwind: UnwindInfo;
  /** Statistics of the run. */
  readonly stats = { instructions: 0, lowConfidenceInstructions: 0, gapSeeds: 0, rounds: 0, millis: 0, indirectJumps: 0, unresolvedJumps: 0 };

  /** The bytes of the span (executable sections at their offsets, zero between). */
  private readonly code: Uint8Array;
  private readonly decoder: Decoder;
  private readonly detailDecoder: Decoder;
  private readonly ins = new Instruction();
  private readonly detail = new Instruction();
  private nextPos = -1;
  private readonly work = new NumberList(1024);
  private readonly pendingJumps = new NumberList();
  private readonly noReturnStarts = new Set<number>();
  /** PLT stubs of functions that do not return when their first argument is not 0 (glibc's `error`). */
  private readonly statusExitStarts = new Set<number>();
  /** Scratch for {@link exitsWithStatus}. */
  private readonly statusIns = new Instruction();
  private readonly funcRangeStart: Float64Array;
  private readonly funcRangeEnd: Float64Array;
  /** Direct branches by target offset: the sources (offsets) of each. */
  private readonly branchSources = new Map<number, number | number[]>();
  /** {@link inSplitPartOf}'s answers, by part start and owner start. */
  private readonly splitParts = new Map<string, boolean>();
  /**
   * Read-only data addresses that instructions name (`lea T(%rip)`, a
   * table's `T(,%idx,8)`): each starts an object of its own, so a table
   * read without a bound ends before one (jump-tables.ts).
   */
  private readonly dataRefs = new Set<number>();
  /** Indirect jumps whose target set was not recovered (or only as an unlocated table), by offset. */
  private readonly unrecovered = new Set<number>();
  private readonly relocated: Map<number, number>;
  /** GOT slots of imported symbols: slot address -> name. */
  private readonly importedSlots = new Map<number, string>();
  private readonly writable: ElfSectionHeader[];
  private readonly slicer: JumpSlicer;
  private readonly retryJumps: number[] = [];
  /** {@link mayReturn}'s answers by function entry: 1 returns, 0 never, 2 being computed. */
  private readonly returning = new Map<number, number>();
  private readonly retried = new Set<number>();
  private progressSinceRetry = false;
  private lowConfidence = false;

  constructor(
    readonly eb: ElfBytes,
    options: DisassemblyOptions = {},
  ) {
    const t0 = performance.now();
    const elf = eb.elf;
    const exec = eb.sections.filter(
      (s) => (s.flags & SHF_EXECINSTR) !== 0 && (s.flags & SHF_ALLOC) !== 0 && s.type !== SHT_NOBITS && s.size > 0,
    );
    this.space = new CodeSpace(exec.map((s) => [s.addr, s.size] as const));
    const span = this.space.size;
    const bytes = new Uint8Array(span);
    this.len = new Uint8Array(span);
    this.flow = new Uint8Array(span);
    this.mark = new Uint16Array(span);
    this.target = new Float64Array(span);
    for (const s of exec) {
      const from = this.space.toOffset(s.addr);
      if (from < 0) continue;
      const n = Math.min(s.size, this.space.regionEnd(from) - from);
      bytes.set(eb.bytes.subarray(s.offset, s.offset + n), from);
      const isPlt = s.name.startsWith('.plt') || s.name === '.iplt';
      this.mark.fill(Mark.Exec | (isPlt ? Mark.Plt : 0), from, from + n);
    }
    this.code = bytes;
    const bits = elf.machine === EM_X86_64 ? 64 : 32;
    this.decoder = new Decoder(bits, bytes, DecoderOptions.None);
    this.detailDecoder = new Decoder(bits, bytes, DecoderOptions.None);

    this.dynamicSymbols = readDynamicSymbols(eb);
    this.relocations = readRelocations(eb);
    this.relocated = this.relocatedWords();
    for (const r of this.relocations) {
      const sym = this.dynamicSymbols[r.symIndex];
      if (sym && sym.shndx === 0 && sym.name !== '' && (isJumpSlot(eb.is64, r.type) || isPointerRelocation(eb.is64, r.type) === 'symbol')) {
        this.importedSlots.set(r.offset, baseName(sym.name));
      }
    }
    this.unwind = readUnwindInfo(eb);
    this.writable = eb.sections.filter((s) => (s.flags & SHF_WRITE) !== 0 && (s.flags & SHF_ALLOC) !== 0 && !RELRO_SECTIONS.test(s.name));

    const ranges: [number, number][] = [];
    for (const s of elf.symbols) if (s.size > 0 && this.isCode(s.value)) ranges.push([s.value, s.value + s.size]);
    for (let i = 0; i < this.unwind.fdeStarts.length; i++) ranges.push([this.unwind.fdeStarts[i], this.unwind.fdeEnds[i]]);
    ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    this.funcRangeStart = Float64Array.from(ranges, (r) => r[0]);
    this.funcRangeEnd = Float64Array.from(ranges, (r) => r[1]);

    const noReturn = new Set(NORETURN_NAMES);
    for (const n of options.noReturnNames ?? []) noReturn.add(n);
    for (const s of elf.symbols) if (noReturn.has(baseName(s.name))) this.noReturnStarts.add(s.value);

    this.slicer = new JumpSlicer(this.sliceContext(), this.detail);
    this.readPlt();
    for (const p of this.plt) {
      if (noReturn.has(p.name)) this.noReturnStarts.add(p.address);
      // Imports only: a program's own function of that name may take anything first.
      if (STATUS_EXIT_NAMES.has(p.name)) this.statusExitStarts.add(p.address);
    }
    this.seedTrusted();
    this.runToFixpoint();
    this.seedPointers();
    this.runToFixpoint();
    if (options.sweepGaps !== false) this.sweepGaps();
    this.refineUnboundedTables();
    this.readIfuncs();

    let n = 0;
    let low = 0;
    for (let i = 0; i < span; i++) {
      if ((this.mark[i] & Mark.Insn) !== 0) {
        n++;
        if ((this.mark[i] & Mark.LowConfidence) !== 0) low++;
        if (this.flow[i] === InsnFlow.IndirectJump && (this.mark[i] & Mark.Plt) === 0) this.stats.indirectJumps++;
      }
    }
    this.stats.unresolvedJumps = this.stats.indirectJumps - this.jumpTables.filter((t) => t.source !== 'indexed').length;
    this.stats.instructions = n;
    this.stats.lowConfidenceInstructions = low;
    this.stats.millis = performance.now() - t0;
  }

  get elf(): ElfFile {
    return this.eb.elf;
  }

  /** Link-time address of the lowest code byte. */
  get start(): number {
    return this.space.start;
  }

  /** Link-time address of span offset `off`. */
  addressOf(off: number): number {
    return this.space.toAddress(off);
  }

  /** True if `addr` lies in an executable section. */
  isCode(addr: number): boolean {
    const off = this.space.toOffset(addr);
    return off >= 0 && (this.mark[off] & Mark.Exec) !== 0;
  }

  /** True if an instruction was decoded at `addr`. */
  isInstruction(addr: number): boolean {
    const off = this.space.toOffset(addr);
    return off >= 0 && (this.mark[off] & Mark.Insn) !== 0;
  }

  /** True if `addr` lies inside a symbol's or FDE's range (not at its start). */
  insideKnownFunction(addr: number): boolean {
    const s = this.funcRangeStart;
    const hi = lastAtOrBelow(s, addr);
    // Ranges rarely nest; look at a few before.
    for (let i = hi; i >= 0 && i > hi - 4; i--) {
      if (s[i] === addr) return false;
      if (addr < this.funcRangeEnd[i]) return true;
    }
    return false;
  }

  /** [start, end) of the symbol or FDE range that holds `addr`, or null. */
  knownFunctionRange(addr: number): [number, number] | null {
    const s = this.funcRangeStart;
    const hi = lastAtOrBelow(s, addr);
    for (let i = hi; i >= 0 && i > hi - 4; i--) if (addr < this.funcRangeEnd[i]) return [s[i], this.funcRangeEnd[i]];
    return null;
  }

  /** Release iced's WASM memory. */
  dispose(): void {
    this.slicer.dispose();
    this.decoder.free();
    this.detailDecoder.free();
    this.ins.free();
    this.detail.free();
    this.statusIns.free();
  }

  // -------------------------------------------------------------------------
  // Data reads for the slicer.

  /** The pointer-sized word at link-time `addr` as the loader leaves it: relocated, else the file's. NaN if not file-backed. */
  pointerAt(addr: number): number {
    const r = this.relocated.get(addr);
    return r !== undefined ? r : this.eb.wordAt(addr);
  }

  private isReadOnly(addr: number): boolean {
    if (this.eb.fileOffset(addr, this.eb.is64 ? 8 : 4) < 0) return false;
    return !this.writable.some((s) => addr >= s.addr && addr < s.addr + s.size);
  }

  private sliceContext(): SliceContext {
    return {
      is64: this.eb.is64,
      decodeAt: (addr, ins) => {
        const o = this.space.toOffset(addr);
        if (o < 0 || (this.mark[o] & Mark.Insn) === 0) return false;
        this.decodeDetail(o, ins);
        return ins.code !== Code.INVALID;
      },
      predecessors: (addr, out) => this.predecessors(addr, out),
      isCode: (addr) => this.isCode(addr),
      functionRange: (addr) => this.knownFunctionRange(addr),
      inSplitPartOf: (addr, owner) => this.inSplitPartOf(addr, owner),
      isFunctionStart: (addr) => {
        const o = this.space.toOffset(addr);
        return o >= 0 && ((this.mark[o] & Mark.Function) !== 0 || this.functionOrigins.has(addr));
      },
      originOf: (addr) => {
        const o = this.space.toOffset(addr);
        if (o < 0) return 'entry';
        const m = this.mark[o];
        return (m & (Mark.Function | Mark.Pointer | Mark.JumpTableTarget | Mark.LandingPad | Mark.LowConfidence)) !== 0 || this.branchSources.has(o) ? 'entry' : 'dead';
      },
      isUnreached: (addr) => {
        const o = this.space.toOffset(addr);
        if (o < 0) return false;
        const m = this.mark[o];
        if ((m & (Mark.Pointer | Mark.LandingPad)) !== 0) return false;
        // A function start is reached if something calls it, exports it or takes its address; a
        // symbol, an unwind entry (a `.cold` part has both) or a gap guess only say code starts there.
        if ((m & Mark.Function) !== 0 && ((this.functionOrigins.get(addr) ?? 0) & REACHED_ORIGINS) !== 0) return false;
        // Branched to only from guesses, if at all.
        const src = this.branchSources.get(o);
        if (src === undefined) return true;
        return (typeof src === 'number' ? [src] : src).every((b) => this.isGuess(b));
      },
      pointerAt: (addr) => this.pointerAt(addr),
      u8At: (addr) => {
        const off = this.eb.fileOffset(addr, 1);
        return off < 0 ? NaN : this.eb.u8(off);
      },
      i32At: (addr) => {
        const off = this.eb.fileOffset(addr, 4);
        return off < 0 ? NaN : this.eb.i32(off);
      },
      isReadOnly: (addr) => this.isReadOnly(addr),
      startsDataObject: (addr) => this.dataRefs.has(addr),
      importAt: (addr) => this.importedSlots.get(addr) ?? null,
    };
  }

  /**
   * The instructions that may run right before the one at `addr`, as pairs
   * (address, how) in `out`: how 0 = falls through, 1 = direct branch, 2 =
   * both. None at a function entry (its values come from the caller).
   */
  predecessors(addr: number, out: number[]): void {
    const o = this.space.toOffset(addr);
    if (o < 0) return;
    // A function entry is a boundary (its values come from its callers),
    // unless it is only an unwind fragment: gcc's `.cold` parts have their
    // own FDE but are entered by jumps from the hot part, registers live.
    if ((this.mark[o] & Mark.Function) !== 0 && ((this.functionOrigins.get(addr) ?? 0) & ~(FunctionOrigin.EhFrame | FunctionOrigin.Gap)) !== 0) return;
    const seq = this.previousOffset(o);
    let seqFalls = -1;
    if (seq >= 0) {
      const f = this.flow[seq];
      const falls =
        f === InsnFlow.Next || f === InsnFlow.CondJump || f === InsnFlow.IndirectCall ||
        (f === InsnFlow.Call && (this.mark[seq] & Mark.NoReturnCall) === 0 && this.mayReturn(this.target[seq]));
      if (falls) seqFalls = seq;
    }
    const src = this.branchSources.get(o);
    let list = src === undefined ? [] : typeof src === 'number' ? [src] : src;
    // Guesses (gap-sweep code, instructions overlapping others) do not reach well-decoded code.
    if ((this.mark[o] & Mark.LowConfidence) === 0) list = list.filter((s) => !this.isGuess(s));
    if (seqFalls >= 0) out.push(this.space.toAddress(seqFalls), list.includes(seqFalls) ? 2 : 0);
    for (const s of list) if (s !== seqFalls) out.push(this.space.toAddress(s), 1);
  }

  /**
   * False if the function at `entry` can be shown never to return: no
   * `ret` is reachable from its entry without leaving it. Calls fall
   * through only into a function that may return, and not into another
   * function's entry (a compiler places nothing after a call it knows does
   * not return: the bytes there belong to the next function). Indirect
   * jumps and tail calls to unknown code count as returning. Memoized; a
   * cycle counts as returning.
   */
  mayReturn(entry: number): boolean {
    const known = this.returning.get(entry);
    if (known !== undefined) return known !== 0;
    if (this.noReturnStarts.has(entry)) return false;
    const start = this.space.toOffset(entry);
    if (start < 0 || (this.mark[start] & Mark.Insn) === 0) return true;
    this.returning.set(entry, 2); // in progress: a recursive call counts as returning
    const seen = new Set<number>();
    const work = [start];
    let returns = false;
    let budget = 20000;
    while (work.length > 0 && !returns) {
      let off = work.pop()!;
      while (off >= 0 && !seen.has(off) && (this.mark[off] & Mark.Insn) !== 0) {
        if (--budget < 0) {
          returns = true;
          break;
        }
        seen.add(off);
        if (off !== start && (this.mark[off] & Mark.Function) !== 0) break; // another function
        const f = this.flow[off];
        const next = off + this.len[off];
        if (f === InsnFlow.Return || f === InsnFlow.IndirectJump) {
          returns = true;
          break;
        }
        if (f === InsnFlow.Stop) break;
        if (f === InsnFlow.Jump || f === InsnFlow.CondJump) {
          const t = this.space.toOffset(this.target[off]);
          if (t >= 0 && (this.mark[t] & Mark.Function) !== 0 && t !== start) {
            // A tail call: returns if the callee does.
            if (this.mayReturn(this.target[off])) {
              returns = true;
              break;
            }
          } else if (t >= 0) work.push(t);
          if (f === InsnFlow.Jump) break;
        } else if (f === InsnFlow.Call && ((this.mark[off] & Mark.NoReturnCall) !== 0 || !this.mayReturn(this.target[off]))) {
          break;
        }
        off = next;
      }
    }
    this.returning.set(entry, returns ? 1 : 0);
    return returns;
  }

  private removeBranchSource(targetOff: number, from: number): void {
    const cur = this.branchSources.get(targetOff);
    if (cur === from) this.branchSources.delete(targetOff);
    else if (Array.isArray(cur)) {
      const i = cur.indexOf(from);
      if (i >= 0) cur.splice(i, 1);
      if (cur.length === 0) this.branchSources.delete(targetOff);
    }
  }

  private addBranchSource(targetOff: number, from: number): void {
    const cur = this.branchSources.get(targetOff);
    if (cur === undefined) this.branchSources.set(targetOff, from);
    else if (typeof cur === 'number') {
      if (cur !== from) this.branchSources.set(targetOff, [cur, from]);
    } else if (!cur.includes(from)) cur.push(from);
  }

  // -------------------------------------------------------------------------
  // Seeds.

  private addFunction(addr: number, origin: number): void {
    const off = this.space.toOffset(addr);
    if (off < 0 || (this.mark[off] & Mark.Exec) === 0) return;
    this.functionOrigins.set(addr, (this.functionOrigins.get(addr) ?? 0) | origin);
    this.mark[off] |= Mark.Function | Mark.Leader;
    this.work.push(off);
  }

  private addLeader(off: number, extra = 0): void {
    if (off < 0 || off >= this.len.length || (this.mark[off] & Mark.Exec) === 0) return;
    this.mark[off] |= Mark.Leader | extra;
    this.work.push(off);
  }

  private seedTrusted(): void {
    const elf = this.elf;
    if (elf.entry !== 0) this.addFunction(elf.entry, FunctionOrigin.Entry);
    for (const name of ['.init', '.fini']) {
      const s = this.eb.section(name);
      if (s && (s.flags & SHF_EXECINSTR) !== 0) this.addFunction(s.addr, FunctionOrigin.InitFini);
    }
    for (const s of elf.symbols) {
      if ((s.type === STT_FUNC || s.type === STT_GNU_IFUNC) && s.value !== 0) this.addFunction(s.value, FunctionOrigin.Symbol);
    }
    for (const s of this.dynamicSymbols) {
      if (s.shndx === 0 || s.value === 0 || (s.type !== STT_FUNC && s.type !== STT_GNU_IFUNC)) continue;
      if ((s.bind === STB_GLOBAL || s.bind === STB_WEAK) && s.visibility === 0) {
        this.addFunction(s.value, FunctionOrigin.Export | FunctionOrigin.Symbol);
      }
    }
    for (const sec of this.eb.sections) {
      if (sec.type !== SHT_INIT_ARRAY && sec.type !== SHT_FINI_ARRAY && sec.type !== SHT_PREINIT_ARRAY) continue;
      const step = this.eb.is64 ? 8 : 4;
      // By count, not by address: past 2^53 an address plus a step is the same number.
      for (let k = 0, n = Math.floor(sec.size / step); k < n; k++) {
        const v = this.pointerAt(sec.addr + k * step);
        if (Number.isFinite(v)) this.addFunction(v, FunctionOrigin.InitFini);
      }
    }
    for (const a of this.unwind.fdeStarts) this.addFunction(a, FunctionOrigin.EhFrame);
    for (const a of this.unwind.landingPads) this.addLeader(this.space.toOffset(a), Mark.LandingPad);
    for (const p of this.plt) this.addFunction(p.address, FunctionOrigin.Plt);
  }

  /** Link-time value of each relocated pointer word (RELATIVE, RELR, 64, GLOB_DAT, IRELATIVE). */
  relocatedWords(): Map<number, number> {
    const out = new Map<number, number>();
    const is64 = this.eb.is64;
    for (const a of readRelrAddresses(this.eb)) {
      const v = this.eb.wordAt(a);
      if (Number.isFinite(v)) out.set(a, v);
    }
    for (const r of this.relocations) {
      const kind = isPointerRelocation(is64, r.type);
      if (kind === 'relative' || kind === 'irelative') out.set(r.offset, r.addend);
      else if (kind === 'symbol') {
        const sym = this.dynamicSymbols[r.symIndex];
        if (sym && sym.shndx !== 0) out.set(r.offset, sym.value + r.addend);
      }
    }
    return out;
  }

  /**
   * Code pointers from constants in code, relocated data words and (in
   * non-PIC executables, which have no relocations for them) aligned data
   * words: seeds and {@link Mark.Pointer}. Scanned words that land inside a
   * known function only get the mark: a constant that happens to look like
   * a code address must not split blocks.
   */
  private seedPointers(): void {
    const refs = this.codeRefs;
    const trusted: number[] = [];
    for (let i = 1; i < refs.length; i += 2) trusted.push(refs.data[i]);
    for (const v of this.relocated.values()) {
      if (!this.isCode(v)) continue;
      this.dataPointers.push(v);
      trusted.push(v);
    }
    const scanned: number[] = [];
    if (this.elf.type === ET_EXEC) {
      const step = this.eb.is64 ? 8 : 4;
      for (const sec of this.eb.sections) {
        if ((sec.flags & SHF_ALLOC) === 0 || (sec.flags & SHF_EXECINSTR) !== 0 || sec.type === SHT_NOBITS) continue;
        if (/^\.(eh_frame|gcc_except_table|got\.plt|note|interp|gnu|dynsym|dynstr|rela|rel\.|hash|comment)/.test(sec.name)) continue;
        // Word-aligned offsets into the section, by count (addresses past 2^53 do not step).
        const skip = (step - (sec.addr % step)) % step;
        for (let k = 0, n = Math.floor(Math.max(0, sec.size - skip) / step); k < n; k++) {
          const v = this.eb.word(sec.offset + skip + k * step);
          if (this.isCode(v)) {
            this.dataPointers.push(v);
            scanned.push(v);
          }
        }
      }
    }
    for (const [list, isTrusted] of [[trusted, true], [scanned, false]] as const) {
      for (const p of list) {
        const off = this.space.toOffset(p);
        if (off < 0 || (this.mark[off] & Mark.Exec) === 0) continue;
        this.mark[off] |= Mark.Pointer;
        if ((this.mark[off] & Mark.Function) !== 0) continue;
        const inside = this.insideKnownFunction(p);
        if (!inside && (this.mark[off] & Mark.Covered) === 0) this.addFunction(p, FunctionOrigin.Pointer);
        else if (!inside && (this.mark[off] & Mark.Insn) !== 0 && isTrusted) this.addFunction(p, FunctionOrigin.Pointer);
        else if ((this.mark[off] & Mark.Insn) !== 0) this.addLeader(off); // computed-goto label
      }
    }
  }

  /**
   * A table read without a bound before all the code was decoded may have
   * run on into the next table, which a `lea` found later (in a gap) names:
   * read each unbounded table again, drop the edges to the entries it no
   * longer has, and recognise again the jumps not recovered, whose slices
   * may have crossed such an edge (an entry of one table, read past its
   * end, landing inside another switch's dispatch).
   */
  private refineUnboundedTables(): void {
    let dropped = false;
    for (let k = 0; k < this.jumpTables.length; k++) {
      const t = this.jumpTables[k]!;
      if (t.bounded || t.source !== 'table') continue;
      const again = this.slicer.recognise(t.jumpAddress);
      if (again === null || again.source !== 'table') continue;
      const kept = new Set(again.targets);
      const had = new Set(t.targets);
      const from = this.space.toOffset(t.jumpAddress);
      for (const x of t.targets) {
        if (kept.has(x)) continue;
        this.removeBranchSource(this.space.toOffset(x), from);
        dropped = true;
      }
      for (const x of again.targets) {
        const o = this.space.toOffset(x);
        if (!had.has(x) && o >= 0) this.addBranchSource(o, from);
      }
      this.jumpTables[k] = again;
    }
    if (!dropped) return;
    const redo = [...this.unrecovered];
    this.unrecovered.clear();
    for (const off of redo) {
      const addr = this.space.toAddress(off);
      const k = this.jumpTables.findIndex((t) => t.jumpAddress === addr);
      if (k >= 0) this.jumpTables.splice(k, 1);
      this.retried.add(off);
      this.recogniseTable(off);
    }
    this.runToFixpoint();
  }

  /** Gaps no seed reached: descend from the first non-padding byte, low-confidence. */
  private sweepGaps(): void {
    const span = this.len.length;
    this.lowConfidence = true;
    let off = 0;
    while (off < span) {
      const m = this.mark[off];
      if ((m & Mark.Exec) === 0 || (m & Mark.Covered) !== 0) {
        off++;
        continue;
      }
      // Skip padding: nops, int3, zero bytes.
      if (this.bytesAreZero(off)) {
        off++;
        continue;
      }
      const len = this.decodeRaw(off);
      if (len === 0) {
        this.mark[off] |= Mark.Bad;
        off++;
        continue;
      }
      if (NOP_CODE[this.ins.code] === 1) {
        off += len;
        continue;
      }
      this.stats.gapSeeds++;
      const addr = this.space.toAddress(off);
      // Inside a known function it is an unreached part of it, not a function of its own.
      if (this.insideKnownFunction(addr)) this.addLeader(off);
      else this.addFunction(addr, FunctionOrigin.Gap);
      this.runToFixpoint();
      if ((this.mark[off] & Mark.Covered) === 0) off++;
    }
    this.lowConfidence = false;
  }

  private bytesAreZero(off: number): boolean {
    // `00 00` decodes as `add [rax], al`; runs of zeros are fill, not code.
    const b = this.code;
    return b[off] === 0 && (off + 1 >= b.length || b[off + 1] === 0);
  }

  // -------------------------------------------------------------------------
  // PLT and IFUNC.

  /** Decode the PLT sections linearly and name each stub by its GOT slot's relocation. */
  private readPlt(): void {
    const is64 = this.eb.is64;
    const slotName = new Map<number, string>();
    const slotResolver = new Map<number, number>();
    const ifuncNames = new Map<number, string>();
    for (const s of this.elf.symbols) if (s.type === STT_GNU_IFUNC) ifuncNames.set(s.value, s.name);
    for (const r of this.relocations) {
      const sym = this.dynamicSymbols[r.symIndex];
      if (isJumpSlot(is64, r.type) || isPointerRelocation(is64, r.type) === 'symbol') {
        if (sym && sym.name) slotName.set(r.offset, baseName(sym.name));
      } else if (isPointerRelocation(is64, r.type) === 'irelative') {
        slotName.set(r.offset, ifuncNames.get(r.addend) ?? this.elf.symbolize(r.addend)?.name ?? '');
        slotResolver.set(r.offset, r.addend);
      }
    }
    for (const sec of this.eb.sections) {
      if (!(sec.name === '.plt' || sec.name === '.plt.sec' || sec.name === '.plt.got' || sec.name === '.iplt')) continue;
      if ((sec.flags & SHF_EXECINSTR) === 0) continue;
      const entSize = sec.entsize > 0 ? sec.entsize : 16;
      let off = this.space.toOffset(sec.addr);
      if (off < 0) continue;
      const end = Math.min(off + sec.size, this.space.regionEnd(off));
      while (off < end) {
        const len = this.decodeRaw(off);
        if (len === 0) {
          off++;
          continue;
        }
        const ins = this.ins;
        if (CODE_FLOW[ins.code] === InsnFlow.IndirectJump && ins.opCount === 1 && ins.op0Kind === OpKind.Memory) {
          let slot = NaN;
          if (ins.isIpRelMemoryOperand) slot = Number(BigInt.asIntN(64, ins.ipRelMemoryAddress));
          else if (!is64) {
            // i386 PIC stubs: jmp *slot@GOT(%ebx); the GOT base is .got.plt's address.
            const got = this.eb.section('.got.plt');
            const disp = Number(BigInt.asIntN(32, ins.memoryDisplacement & 0xffffffffn));
            slot = got && ins.memoryBase !== 0 ? got.addr + disp : disp >>> 0;
          }
          const addr = this.space.toAddress(off);
          const entry = sec.addr + Math.floor((addr - sec.addr) / entSize) * entSize;
          const name = slotName.get(slot) ?? '';
          if (name !== '' || entry !== sec.addr) {
            this.plt.push({ address: entry, jumpAddress: addr, gotSlot: slot, name, section: sec.name, resolver: slotResolver.get(slot) ?? NaN });
          }
          // Lazy-binding tail (`push n; jmp plt0`): the GOT slot points there until bound.
          const tail = off + len;
          if (tail < end && (this.space.toAddress(tail) - sec.addr) % entSize !== 0) this.addLeader(tail);
        }
        off += len;
      }
    }
    this.plt.sort((a, b) => a.address - b.address);
  }

  /**
   * What each IFUNC resolver can return: the code addresses it loads as
   * constants (`lea impl(%rip), %rax` per choice, as glibc's selectors are
   * compiled). The dynamic linker stores one of them in the GOT slot.
   */
  private readIfuncs(): void {
    const resolvers = new Set<number>();
    for (const s of this.elf.symbols) if (s.type === STT_GNU_IFUNC && s.value !== 0) resolvers.add(s.value);
    for (const s of this.dynamicSymbols) if (s.type === STT_GNU_IFUNC && s.shndx !== 0 && s.value !== 0) resolvers.add(s.value);
    for (const p of this.plt) if (Number.isFinite(p.resolver)) resolvers.add(p.resolver);
    if (resolvers.size === 0) return;
    const refs = this.codeRefs;
    const sorted = [...resolvers].sort((a, b) => a - b);
    const byResolver = new Map<number, Set<number>>(sorted.map((r) => [r, new Set<number>()]));
    for (let i = 0; i < refs.length; i += 2) {
      const at = refs.data[i];
      const v = refs.data[i + 1];
      // The resolver whose range holds the instruction.
      const k = lastAtOrBelow(sorted, at);
      if (k < 0) continue;
      const r = sorted[k];
      const range = this.knownFunctionRange(at);
      const end = range !== null && range[0] === r ? range[1] : r + IFUNC_RESOLVER_SPAN;
      if (at < end && this.functionOrigins.has(v)) byResolver.get(r)!.add(v);
    }
    for (const [resolver, targets] of byResolver) {
      if (targets.size > 0) this.ifuncs.push({ resolver, targets: [...targets].sort((a, b) => a - b) });
    }
  }

  // -------------------------------------------------------------------------
  // Descent.

  /** Decode at span offset `off` into `this.ins`; the length, or 0 if invalid. */
  private decodeRaw(off: number): number {
    const dec = this.decoder;
    if (this.nextPos !== off) {
      dec.position = off;
      dec.ip = BigInt(this.space.toAddress(off));
    }
    dec.decodeOut(this.ins);
    if (this.ins.code === Code.INVALID) {
      this.nextPos = -1;
      return 0;
    }
    const len = this.ins.length;
    this.nextPos = off + len;
    return len;
  }

  /**
   * Empty the work list, then recognise pending jump tables; repeat until
   * nothing is new. Jumps not recovered are tried again once their
   * function has more known paths (a switch inside a case of another).
   */
  private runToFixpoint(): void {
    for (;;) {
      this.stats.rounds++;
      while (this.work.length > 0) this.descend(this.work.pop());
      if (this.pendingJumps.length === 0) {
        if (this.retryJumps.length === 0 || !this.progressSinceRetry) break;
        this.progressSinceRetry = false;
        for (const j of this.retryJumps.splice(0)) this.pendingJumps.push(j);
      }
      const jumps = this.pendingJumps.toArray();
      this.pendingJumps.length = 0;
      for (const j of jumps) this.recogniseTable(j);
    }
  }

  /** Decode the chain of instructions from `off` until it ends or meets decoded code. */
  private descend(first: number): void {
    const len = this.len;
    const flowA = this.flow;
    const mark = this.mark;
    const low = this.lowConfidence ? Mark.LowConfidence : 0;
    let off = first;
    // Where the straight-line run to `off` starts: no other path enters it (as far as known).
    let runStart = first;
    let regionEnd = this.space.regionEnd(off);
    while (off >= 0 && off < regionEnd) {
      const m = mark[off];
      if ((m & Mark.Insn) !== 0 || (m & Mark.Bad) !== 0) return;
      if ((m & Mark.Leader) !== 0) runStart = off;
      if ((m & Mark.Exec) === 0) return;
      const n = this.decodeRaw(off);
      if (n === 0 || off + n > regionEnd) {
        mark[off] |= Mark.Bad;
        return;
      }
      const ins = this.ins;
      const code = ins.code;
      const flow = CODE_FLOW[code];
      len[off] = n;
      flowA[off] = flow;
      mark[off] |= Mark.Insn | low;
      for (let i = 0; i < n; i++) mark[off + i] |= Mark.Covered;
      const ref = CODE_REF[code];
      if (ref !== 0) this.recordRef(off, ref);
      const next = off + n;
      switch (flow) {
        case InsnFlow.Next:
          off = next;
          continue;
        case InsnFlow.CondJump: {
          const t = this.branchTarget(off);
          if (t >= 0) this.addBranchSource(t, off);
          this.addLeader(t);
          if (next < regionEnd) mark[next] |= Mark.Leader;
          off = next;
          continue;
        }
        case InsnFlow.Jump: {
          const t = this.branchTarget(off);
          if (t >= 0) this.addBranchSource(t, off);
          this.addLeader(t);
          if (next < regionEnd) mark[next] |= Mark.Leader;
          return;
        }
        case InsnFlow.Call: {
          const t = this.branchTarget(off);
          const addr = this.target[off];
          if (t >= 0 && (mark[t] & Mark.Exec) !== 0) this.addFunction(addr, FunctionOrigin.CallTarget);
          if (next >= regionEnd) return;
          mark[next] |= Mark.Leader | Mark.ReturnSite;
          if (this.noReturnStarts.has(addr) || (this.statusExitStarts.has(addr) && this.exitsWithStatus(runStart, off))) {
            mark[off] |= Mark.NoReturnCall;
            return;
          }
          off = next;
          continue;
        }
        case InsnFlow.IndirectCall:
          if (next >= regionEnd) return;
          mark[next] |= Mark.Leader | Mark.ReturnSite;
          off = next;
          continue;
        case InsnFlow.IndirectJump:
          if ((mark[off] & Mark.Plt) === 0) this.pendingJumps.push(off);
          if (next < regionEnd) mark[next] |= Mark.Leader;
          return;
        default:
          // Return, Stop
          if (next < regionEnd) mark[next] |= Mark.Leader;
          return;
      }
    }
  }

  /** Record the direct branch target of the instruction just decoded at `off`; its span offset, or -1 outside the code. */
  private branchTarget(off: number): number {
    const addr = Number(this.ins.nearBranch64);
    this.target[off] = addr;
    return this.space.toOffset(addr);
  }

  private recordRef(off: number, kind: number): void {
    const ins = this.ins;
    let v = NaN;
    if (kind === 1) {
      if (ins.isIpRelMemoryOperand) v = Number(BigInt.asIntN(64, ins.ipRelMemoryAddress));
      else if (!this.eb.is64 && ins.memoryBase === 0 && ins.memoryIndex === 0) v = Number(ins.memoryDisplacement & 0xffffffffn);
    } else if (kind === 2) {
      if (ins.op1Kind !== OpKind.Memory) v = Number(BigInt.asIntN(64, ins.immediate(1)));
    } else {
      v = Number(BigInt.asIntN(64, ins.immediate(0)));
    }
    if (kind === 1 && !ins.isIpRelMemoryOperand && ins.memoryBase === Register.None && ins.memoryIndex !== Register.None) {
      // An indexed operand with an absolute base: the table `T(,%idx,8)`.
      v = Number(this.eb.is64 ? BigInt.asIntN(64, ins.memoryDisplacement) : ins.memoryDisplacement & 0xffffffffn);
    }
    if (!this.isCode(v)) {
      if (kind === 1 && Number.isFinite(v) && this.isReadOnly(v)) this.dataRefs.add(v);
      return;
    }
    this.codeRefs.push(this.space.toAddress(off));
    this.codeRefs.push(v);
  }

  private recogniseTable(off: number): void {
    let table = this.slicer.recognise(this.space.toAddress(off));
    if ((table === null || table.source === 'indexed') && !this.retried.has(off)) {
      // Not recovered yet: try once more when the fixpoint has found more paths.
      this.retried.add(off);
      this.retryJumps.push(off);
      return;
    }
    if (table === null || table.source === 'indexed') {
      // Still not: perhaps only paths from this jump's own cases (not decoded
      // from it yet) stand in the way. Their entries, as a sample.
      const guess = this.slicer.recognise(this.space.toAddress(off), true);
      if (guess !== null && guess.source === 'table') table = guess;
    }
    if (table === null || table.source === 'indexed') this.unrecovered.add(off);
    else this.unrecovered.delete(off);
    if (table === null) return;
    this.jumpTables.push(table);
    this.progressSinceRetry = true;
    // Only a proven set drives decoding: the entries of an unbounded table
    // past its real end are other data, and decoding them would invent code.
    for (const t of table.targets) {
      const o = this.space.toOffset(t);
      if (o < 0) continue;
      this.addBranchSource(o, off);
      if (table.bounded) this.addLeader(o, Mark.JumpTableTarget);
    }
  }

  /**
   * Offset of the decoded instruction that ends at offset `o`, or -1. Where
   * decoding overlapped (bytes read as two different instructions), the one
   * that starts inside no other instruction and is not a gap-sweep guess wins.
   */
  private previousOffset(o: number): number {
    let best = -1;
    let bestScore = -1;
    for (let p = o - 1; p >= 0 && p >= o - 15; p--) {
      if ((this.mark[p] & Mark.Insn) === 0 || p + this.len[p] !== o) continue;
      const score = ((this.mark[p] & Mark.LowConfidence) === 0 ? 2 : 0) + (this.insideOtherInstruction(p) ? 0 : 1);
      if (score > bestScore) {
        best = p;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * True if `addr` lies in a part split off the function around `owner`:
   * gcc's `.cold` parts (on by default at -O2, and with profile feedback,
   * as Debian builds CPython) have an unwind entry of their own, and a
   * local `.cold` symbol where symbols are kept, but nothing calls them,
   * exports them or takes their address. The hot part enters them by
   * jumps, with its registers live, or through a jump table only. So a
   * range that starts at such an entry, and that no direct jump from
   * anywhere but the owner's range enters, is part of the owner's function.
   */
  private inSplitPartOf(addr: number, owner: number): boolean {
    const part = this.knownFunctionRange(addr);
    const home = this.knownFunctionRange(owner);
    if (part === null || home === null || part[0] === home[0]) return false;
    if (((this.functionOrigins.get(part[0]) ?? 0) & REACHED_ORIGINS) !== 0) return false;
    const key = `${part[0]}:${home[0]}`;
    const known = this.splitParts.get(key);
    if (known !== undefined) return known;
    let owned = part[1] - part[0] <= MAX_SPLIT_PART;
    for (let a = part[0]; a < part[1] && owned; a++) {
      const o = this.space.toOffset(a);
      const src = o < 0 ? undefined : this.branchSources.get(o);
      if (src === undefined) continue;
      for (const b of typeof src === 'number' ? [src] : src) {
        const from = this.space.toAddress(b);
        const inside = (from >= part[0] && from < part[1]) || (from >= home[0] && from < home[1]);
        if (!inside && !this.isGuess(b)) {
          owned = false;
          break;
        }
      }
    }
    this.splitParts.set(key, owned);
    return owned;
  }

  /**
   * True if the straight-line run [runStart, call) last sets the first
   * argument's register to a constant other than 0 (`mov $1, %edi`): a call
   * to glibc's `error` with a non-zero status exits. Its header declares it
   * so (bits/error.h: `__error_noreturn` when the status is a constant not
   * 0), so gcc places other code right after such a call.
   */
  private exitsWithStatus(runStart: number, call: number): boolean {
    const ins = this.statusIns;
    let found = false;
    for (let o = runStart; o < call && this.len[o] > 0; o += this.len[o]) {
      this.decodeDetail(o, ins);
      if (ins.isStringInstruction) found = false;
      if (ins.op0Kind !== OpKind.Register || !FIRST_ARG_REGISTERS.has(ins.op0Register)) continue;
      const code = ins.code;
      found = (code === Code.Mov_r32_imm32 || code === Code.Mov_rm32_imm32 || code === Code.Mov_rm64_imm32) && ins.immediate32 !== 0;
    }
    return found;
  }

  /** Decode the instruction at offset `o` into `ins` with every detail (operands, immediates). */
  private decodeDetail(o: number, ins: Instruction): void {
    this.detailDecoder.position = o;
    this.detailDecoder.ip = BigInt(this.space.toAddress(o));
    this.detailDecoder.decodeOut(ins);
  }

  /** Is the instruction at offset `s` a guess: gap-sweep code, or bytes inside another decoded instruction? */
  private isGuess(s: number): boolean {
    return (this.mark[s] & Mark.LowConfidence) !== 0 || this.insideOtherInstruction(s);
  }

  /** True if offset `p` lies inside the bytes of another decoded instruction. */
  private insideOtherInstruction(p: number): boolean {
    for (let q = p - 1; q >= 0 && q >= p - 14; q--) if ((this.mark[q] & Mark.Insn) !== 0 && q + this.len[q] > p) return true;
    return false;
  }

  /** Address of the decoded instruction that ends at `addr`, or NaN. */
  previous(addr: number): number {
    const o = this.space.toOffset(addr);
    const p = o < 0 ? -1 : this.previousOffset(o);
    return p < 0 ? NaN : this.space.toAddress(p);
  }
}

/** A symbol name without its version suffix (`puts@GLIBC_2.2.5` is `puts`). */
export function baseName(name: string): string {
  const at = name.indexOf('@');
  return at < 0 ? name : name.slice(0, at);
}

/** Disassemble the ELF file bytes. */
export function disassembleElf(bytes: Uint8Array, elf: ElfFile, options?: DisassemblyOptions): Disassembly {
  return new Disassembly(new ElfBytes(bytes, elf), options);
}
