/**
 * The target set of an indirect `jmp`, recovered by backward slicing over
 * the decoded code: where did the jump's register (or memory operand) get
 * its value, on every path that reaches the jump inside its function?
 *
 * Recognised shapes (gcc and clang emit the same ones on x86):
 * - a relative table, 4-byte signed entries added to a base (`-fPIC`/PIE
 *   switches; glibc's `&&label - &&base` computed gotos):
 *     lea T(%rip), %b ; movslq (%b,%idx,4), %r ; add %b, %r ; jmp *%r
 *   (the `lea` may be hoisted out of a loop into a callee-saved register,
 *   many blocks and calls before the jump; entries may be negative);
 * - an absolute table of pointers (non-PIC switches, `&&label` tables as in
 *   CPython's ceval, tables of function pointers for tail-call dispatch):
 *     jmp *T(,%idx,8)   or   mov T(,%idx,8), %r ; jmp *%r
 *   (in PIC code the entries are RELATIVE relocations: read through them);
 * - a constant: `lea L(%rip), %r ; jmp *%r`, or a pointer in read-only data
 *   (a GOT slot of `-fno-plt`: `jmp *f@GOTPCREL(%rip)`).
 *
 * A table's address may also be kept in a stack slot of the function's
 * frame (`mov (%rsp), %rdi ; mov (%rdi,%rdx,8), %rdx ; jmp *%rdx`: CPython's
 * ceval built as a shared library spills the `lea` of its label table):
 * the slot's value is that of every store to it on the paths back,
 * following the stack pointer through pushes, pops and adjustments.
 * Stores through other registers are assumed not to reach the frame's
 * spill slots. A value that only goes round a loop of copies (a register
 * spilled to the slot and loaded back) adds nothing.
 *
 * The table's length comes from the guard on the index along every path to
 * the table load: `cmp $N, idx` with `ja`/`jae` (fall-through side) or
 * `jbe`/`jb` (taken side), through register copies and zero extensions, or
 * `and $M, idx`, or a zero-extended byte (256 entries: an opcode). A table
 * whose guard is missing on some path is read while its entries point into
 * the jump's function (its `.cold` part included) or at function entries, at most
 * {@link UNBOUNDED_LIMIT} and never into an object the code names on its
 * own (another table), and is marked unbounded: its set is a lower
 * bound, and a target outside it cannot be judged (detectors say
 * "unchecked"). A jump whose target comes from an indexed load from a table
 * that could not be located is returned as `source: 'indexed'` with no
 * targets, for the same reason.
 */
import { Instruction, InstructionInfoFactory, MemorySize, MemorySizeExt, Mnemonic, OpAccess, OpKind, Register, RegisterExt } from '../iced.js';

/** A recovered target set of one indirect jump. Addresses are link-time addresses. */
export interface JumpTable {
  /** The indirect jump. */
  jumpAddress: number;
  /** Table address (NaN for a constant or an unlocated table). */
  tableAddress: number;
  /** 4 (relative offsets), the pointer size (absolute addresses), 0 (constant). */
  entrySize: number;
  /** Entries are offsets added to a base address (else absolute addresses). */
  relative: boolean;
  /** Number of entries (bounded), or entries read (unbounded). */
  count: number;
  /** True if the set is complete: every path to the jump bounds the index (or the target is a constant). */
  bounded: boolean;
  /** Target of each entry, in table order (duplicates kept). */
  targets: number[];
  /**
   * 'table': a located table; 'constant': constant targets; 'import': a
   * GOT slot of an imported function (`jmp *f@GOTPCREL(%rip)`, see
   * {@link importName}: resolved like a PLT stub); 'indexed': an indexed
   * load from a table that could not be located (no targets).
   */
  source: 'table' | 'constant' | 'import' | 'indexed';
  /** For `source: 'import'`: the imported symbol (no version). */
  importName?: string;
}

/** What the slicer needs from the disassembler. */
export interface SliceContext {
  readonly is64: boolean;
  /** Decode the instruction at `addr` into `ins` (ip set); false if no instruction was decoded there. */
  decodeAt(addr: number, ins: Instruction): boolean;
  /**
   * Instructions that may run right before `addr`, appended to `out` as
   * pairs (address, how): how = 0 falls through into `addr`, 1 branches to
   * it, 2 both (a conditional jump to the next instruction).
   */
  predecessors(addr: number, out: number[]): void;
  isCode(addr: number): boolean;
  /** [start, end) of the symbol or FDE range around `addr`, or null. */
  functionRange(addr: number): [number, number] | null;
  /** True if `addr` lies in a part split off the function around `owner`: a `.cold` part that only that function enters (by jumps, or through its table). */
  inSplitPartOf(addr: number, owner: number): boolean;
  isFunctionStart(addr: number): boolean;
  /**
   * What an instruction without predecessors is: 'entry' (a function entry,
   * or code reached through a pointer, a table or the unwinder: its values
   * come from elsewhere) or 'dead' (nothing reaches it, e.g. the jump after a
   * call that never returns).
   */
  originOf(addr: number): 'entry' | 'dead';
  /**
   * True if nothing known reaches `addr` (no branch but from gap-sweep
   * guesses, no table, pointer or function start): the case of a table
   * not recovered yet, say (see {@link JumpSlicer.recognise}'s `guess`).
   */
  isUnreached(addr: number): boolean;
  /** Pointer-sized word at link-time `addr`, through relocations; NaN if not file-backed. */
  pointerAt(addr: number): number;
  /** Signed 32-bit word at link-time `addr`; NaN if not file-backed. */
  i32At(addr: number): number;
  /** Byte at link-time `addr`; NaN if not file-backed. */
  u8At(addr: number): number;
  /** True if `addr` is file-backed and not writable at run time (read-only data, or RELRO). */
  isReadOnly(addr: number): boolean;
  /** True if an instruction names read-only data at `addr` (a `lea` of it, say): another object starts there. */
  startsDataObject(addr: number): boolean;
  /** The imported symbol whose address the dynamic linker stores at `addr` (a GOT slot), or null. */
  importAt(addr: number): string | null;
}

/** Most entries read from a table whose bound was not found. */
export const UNBOUNDED_LIMIT = 512;
/** Largest bound believed: a larger compare is not a switch guard. */
const MAX_BOUND = 1 << 16;
/** Instructions one backward walk may visit. */
const WALK_BUDGET = 20000;
/** Depth of nested value queries (a base of a base of ...). */
const MAX_DEPTH = 6;

/** The operands of one instruction that the slicer looks at (cached per address). */
interface Insn {
  addr: number;
  size: number;
  mnemonic: Mnemonic;
  isCall: boolean;
  isCondJump: boolean;
  op0Kind: OpKind;
  op0: Register;
  op1Kind: OpKind;
  op1: Register;
  /** Size in bytes of the register written as operand 0, or of operand 1's register. */
  op0Size: number;
  op1Size: number;
  memBase: Register;
  memIndex: Register;
  memScale: number;
  /** Displacement, or the absolute address for RIP-relative operands. */
  memDisp: number;
  memSize: number;
  imm: number;
  /** The instruction writes some arithmetic flag. */
  setsFlags: boolean;
  /** Full GPRs written, as a bit set over {@link gprBit}. */
  writes: number;
  /**
   * The stack bytes the instruction writes, relative to the stack pointer
   * before it: [stackWrite, stackWrite + stackWriteSize); NaN if none;
   * Infinity if it writes through the stack pointer some other way (an
   * index register, two writes).
   */
  stackWrite: number;
  stackWriteSize: number;
  /** How the instruction moves the stack pointer, as the code after it sees it (a call: 0); NaN if not known. */
  rspDelta: number;
}

const GPR64 = [
  Register.RAX, Register.RCX, Register.RDX, Register.RBX, Register.RSP, Register.RBP, Register.RSI, Register.RDI,
  Register.R8, Register.R9, Register.R10, Register.R11, Register.R12, Register.R13, Register.R14, Register.R15,
];
const GPR32 = [Register.EAX, Register.ECX, Register.EDX, Register.EBX, Register.ESP, Register.EBP, Register.ESI, Register.EDI];

/** Bit of a full register among the 16 GPRs, or 0 for anything else. */
function gprBit(r: Register): number {
  let i = GPR64.indexOf(r);
  if (i < 0) i = GPR32.indexOf(r);
  return i < 0 ? 0 : 1 << i;
}

/** Registers a call preserves (System V: rbx, rbp, r12-r15; i386: ebx, esi, edi, ebp). */
const CALLEE_SAVED_64 = gprBit(Register.RBX) | gprBit(Register.RBP) | gprBit(Register.R12) | gprBit(Register.R13) | gprBit(Register.R14) | gprBit(Register.R15);
const CALLEE_SAVED_32 = gprBit(Register.EBX) | gprBit(Register.EBP) | gprBit(Register.ESI) | gprBit(Register.EDI);

const full = (r: Register): Register => (r === Register.None ? r : RegisterExt.fullRegister(r));

function isImmediate(k: OpKind): boolean {
  return (
    k === OpKind.Immediate8 || k === OpKind.Immediate16 || k === OpKind.Immediate32 || k === OpKind.Immediate8to32 ||
    k === OpKind.Immediate8to64 || k === OpKind.Immediate32to64 || k === OpKind.Immediate64 || k === OpKind.Immediate8to16
  );
}

const COND_JUMPS = new Set<Mnemonic>([
  Mnemonic.Ja, Mnemonic.Jae, Mnemonic.Jb, Mnemonic.Jbe, Mnemonic.Je, Mnemonic.Jne, Mnemonic.Jg, Mnemonic.Jge, Mnemonic.Jl,
  Mnemonic.Jle, Mnemonic.Jo, Mnemonic.Jno, Mnemonic.Jp, Mnemonic.Jnp, Mnemonic.Js, Mnemonic.Jns,
]);

/** A value the slicer can name. */
type Value =
  | { k: 'const'; v: number }
  /** The address of an imported function (read from its GOT slot). */
  | { k: 'import'; name: string }
  /** A load from a table: [table + index * scale], `size` bytes, sign-extended or not. */
  | { k: 'load'; table: number; index: Register; at: number; scale: number; size: number; signed: boolean }
  /** An indexed load whose table address is not a constant. */
  | { k: 'indexed' }
  | { k: 'sum'; terms: Value[] }
  /** Different values on different paths (tail-duplicated dispatch). */
  | { k: 'alt'; values: Value[] }
  /** The query itself, reached again through copies (a loop): no value of its own. */
  | { k: 'cycle' }
  | { k: 'unknown' };

const UNKNOWN: Value = { k: 'unknown' };
const CYCLE: Value = { k: 'cycle' };

/** What holds a table index: a register, or (reg None) the memory slot [memBase + memDisp] it is loaded from. */
interface IndexKey {
  reg: Register;
  memBase: Register;
  /** The slot's index register (None: [memBase + memDisp]) and scale. */
  memIndex: Register;
  memScale: number;
  memDisp: number;
}

/** The index held in register `reg`. */
const inRegister = (reg: Register): IndexKey => ({ reg, memBase: Register.None, memIndex: Register.None, memScale: 0, memDisp: 0 });

/** The index held in the memory slot operand 1 of `i` reads. */
const inSlot = (i: Insn): IndexKey => ({ reg: Register.None, memBase: i.memBase, memIndex: i.memIndex, memScale: i.memIndex === Register.None ? 0 : i.memScale, memDisp: i.memDisp });

/** Backward slicing over one module's decoded code. Create once per module; it caches decoded instructions. */
export class JumpSlicer {
  private readonly cache = new Map<number, Insn | null>();
  private readonly infoFactory = new InstructionInfoFactory();
  private readonly callerSaved: number;
  private readonly preds: number[] = [];
  /** During a guessing {@link recognise}: paths from code nothing known reaches are left out. */
  private guessing = false;

  constructor(
    private readonly ctx: SliceContext,
    private readonly scratch: Instruction,
  ) {
    this.callerSaved = ~(ctx.is64 ? CALLEE_SAVED_64 : CALLEE_SAVED_32) & 0xffff;
  }

  dispose(): void {
    this.infoFactory.free();
  }

  /**
   * The target set of the indirect jump at `jumpAddr`, or null if nothing
   * could be recovered. With `guess`, paths that start in code nothing
   * known reaches are left out: a switch inside a loop whose cases loop
   * back is otherwise never recovered, since its cases are reached only
   * through the table being recovered. Such a set is returned as a sample
   * (`bounded` false), never as complete.
   */
  recognise(jumpAddr: number, guess = false): JumpTable | null {
    this.guessing = guess;
    try {
      const t = this.recogniseNow(jumpAddr);
      return guess && t !== null && t.bounded ? { ...t, bounded: false } : t;
    } finally {
      this.guessing = false;
    }
  }

  private recogniseNow(jumpAddr: number): JumpTable | null {
    const jmp = this.insn(jumpAddr);
    if (jmp === null) return null;
    let target: Value;
    if (jmp.op0Kind === OpKind.Memory) target = this.memoryValue(jmp, jumpAddr, this.ctx.is64 ? 8 : 4, false, 0);
    else if (jmp.op0Kind === OpKind.Register) target = this.valueBefore(jmp.op0, jumpAddr, 0);
    else return null;
    return this.tableOf(jumpAddr, target);
  }

  // -------------------------------------------------------------------------
  // Turning the target's value into a set.

  private tableOf(jumpAddr: number, target: Value): JumpTable | null {
    if (target.k === 'alt') {
      const parts = target.values.map((v) => this.tableOf(jumpAddr, v));
      if (parts.some((p) => p === null)) return null;
      const all = parts as JumpTable[];
      if (all.some((p) => p.source === 'indexed' || p.source === 'import')) return { ...all.find((p) => p.source === 'indexed' || p.source === 'import')!, targets: [], source: 'indexed' };
      return {
        jumpAddress: jumpAddr,
        tableAddress: all.find((p) => p.source === 'table')?.tableAddress ?? NaN,
        entrySize: Math.max(...all.map((p) => p.entrySize)),
        relative: all.some((p) => p.relative),
        count: all.reduce((n, p) => n + p.count, 0),
        bounded: all.every((p) => p.bounded),
        targets: all.flatMap((p) => p.targets),
        source: all.some((p) => p.source === 'table') ? 'table' : 'constant',
      };
    }
    const ptr = this.ctx.is64 ? 8 : 4;
    if (target.k === 'import') {
      return { jumpAddress: jumpAddr, tableAddress: NaN, entrySize: 0, relative: false, count: 1, bounded: true, targets: [], source: 'import', importName: target.name };
    }
    if (target.k === 'const') {
      if (!this.ctx.isCode(target.v)) return null;
      return { jumpAddress: jumpAddr, tableAddress: NaN, entrySize: 0, relative: false, count: 1, bounded: true, targets: [target.v], source: 'constant' };
    }
    if (target.k === 'load' && target.size === ptr && target.scale === ptr) return this.readTable(jumpAddr, target, false, 0);
    if (target.k === 'sum' && target.terms.length === 2) {
      const [a, b] = target.terms;
      const load = a.k === 'load' ? a : b.k === 'load' ? b : null;
      const base = a.k === 'const' ? a : b.k === 'const' ? b : null;
      if (load !== null && base !== null && load.size === 4 && load.scale === 4 && load.signed) return this.readTable(jumpAddr, load, true, base.v);
    }
    if (target.k === 'sum' && target.terms.length === 2) {
      // A constant in read-only data plus something unknown (an entry
      // loaded earlier and spilled, say): a relative table at the constant.
      const [a, b] = target.terms;
      const base = a.k === 'const' ? a : b.k === 'const' ? b : null;
      if (base !== null && !this.ctx.isCode(base.v) && this.ctx.isReadOnly(base.v)) {
        const t = this.readTable(jumpAddr, { k: 'load', table: base.v, index: Register.None, at: jumpAddr, scale: 4, size: 4, signed: true }, true, base.v);
        if (t !== null && t.targets.length > 0) return t;
      }
    }
    if (target.k === 'indexed' || (target.k === 'sum' && target.terms.some((t) => t.k === 'indexed' || t.k === 'load'))) {
      return { jumpAddress: jumpAddr, tableAddress: NaN, entrySize: 0, relative: false, count: 0, bounded: false, targets: [], source: 'indexed' };
    }
    return null;
  }

  private readTable(jumpAddr: number, load: Extract<Value, { k: 'load' }>, relative: boolean, relBase: number): JumpTable | null {
    const ctx = this.ctx;
    const { bound, proven } = load.index === Register.None ? { bound: 0, proven: false } : this.boundOf(load.index, load.at);
    const entry = (i: number): number => {
      const at = load.table + i * load.scale;
      return relative ? relBase + ctx.i32At(at) : ctx.pointerAt(at);
    };
    const range = ctx.functionRange(jumpAddr);
    const looksLikeTarget = (t: number) =>
      ctx.isCode(t) && ((range !== null && t >= range[0] && t < range[1]) || ctx.isFunctionStart(t) || ctx.inSplitPartOf(t, jumpAddr));
    let targets: number[] = [];
    let complete = false;
    if (bound > 0 && proven) {
      // Bounded by a compare: every entry is a case; bad ones (unreachable cases) are skipped.
      for (let i = 0; i < bound; i++) {
        const t = entry(i);
        if (Number.isFinite(t) && ctx.isCode(t)) targets.push(t);
      }
      complete = true;
    } else if (bound > 0) {
      // Bounded only by the index's width (a byte: an opcode): every entry
      // must be code, or it is a shorter table followed by other data.
      for (let i = 0; i < bound; i++) {
        const t = entry(i);
        if (!(Number.isFinite(t) && ctx.isCode(t))) break;
        targets.push(t);
      }
      complete = targets.length === bound;
      if (!complete) targets = [];
    }
    if (!complete) {
      // Unbounded: read while the entries look like this jump's targets,
      // up to where an object the code names on its own (another table) starts.
      for (let i = 0; i < UNBOUNDED_LIMIT; i++) {
        if (i > 0 && ctx.startsDataObject(load.table + i * load.scale)) break;
        const t = entry(i);
        if (!(Number.isFinite(t) && looksLikeTarget(t))) break;
        targets.push(t);
      }
    }
    // A table in writable data may change at run time: its entries are a sample, not the set.
    const bounded = complete && ctx.isReadOnly(load.table);
    if (targets.length === 0) {
      return { jumpAddress: jumpAddr, tableAddress: load.table, entrySize: 0, relative, count: 0, bounded: false, targets: [], source: 'indexed' };
    }
    return {
      jumpAddress: jumpAddr,
      tableAddress: load.table,
      entrySize: relative ? 4 : load.size,
      relative,
      count: targets.length,
      bounded,
      targets,
      source: 'table',
    };
  }

  // -------------------------------------------------------------------------
  // Values.

  /** The value of memory operand `i` as a load of `size` bytes. */
  private memoryValue(i: Insn, at: number, size: number, signed: boolean, depth: number): Value {
    if (i.memIndex !== Register.None) {
      const base = i.memBase === Register.None ? { k: 'const' as const, v: 0 } : this.valueBefore(i.memBase, at, depth + 1);
      if (base.k === 'alt' && base.values.every((b) => b.k === 'const')) {
        return { k: 'alt', values: base.values.map((b) => ({ k: 'load' as const, table: (b as { v: number }).v + i.memDisp, index: i.memIndex, at, scale: i.memScale, size, signed })) };
      }
      if (base.k !== 'const') return { k: 'indexed' };
      return { k: 'load', table: base.v + i.memDisp, index: i.memIndex, at, scale: i.memScale, size, signed };
    }
    if (i.memBase === Register.RSP && size === 8 && this.ctx.is64) return this.slotValue(i.memDisp, at, depth + 1);
    if (i.memBase === Register.None && size === (this.ctx.is64 ? 8 : 4) && this.ctx.isReadOnly(i.memDisp)) {
      // A pointer in read-only data: a GOT slot, a const function pointer.
      const name = this.ctx.importAt(i.memDisp);
      if (name !== null) return { k: 'import', name };
      const p = this.ctx.pointerAt(i.memDisp);
      if (Number.isFinite(p) && p !== 0) return { k: 'const', v: p };
    }
    return UNKNOWN;
  }

  /** The value `reg` holds right before the instruction at `at`, merged over every path. */
  private valueBefore(reg: Register, at: number, depth: number): Value {
    if (depth > MAX_DEPTH) return UNKNOWN;
    const bit = gprBit(reg);
    if (bit === 0) return UNKNOWN;
    return this.once(`r${reg}@${at}`, () => {
      const defs = this.reachingDefs(bit, at);
      if (defs === null || defs.length === 0) return UNKNOWN;
      return merged(defs.map((d) => () => this.valueOfDef(reg, d, depth)));
    });
  }

  /** The pointer-sized stack slot [rsp + disp] right before `at`, merged over every path. */
  private slotValue(disp: number, at: number, depth: number): Value {
    if (depth > MAX_DEPTH) return UNKNOWN;
    return this.once(`s${disp}@${at}`, () => {
      const stores = this.reachingStores(disp, at);
      if (stores === null || stores.length === 0) return UNKNOWN;
      return merged(
        stores.map((p) => () => {
          const i = this.insn(p)!;
          if (isImmediate(i.op1Kind)) return { k: 'const', v: i.imm };
          return this.valueBefore(i.op1, p, depth + 1);
        }),
      );
    });
  }

  /** Queries being answered: one met again is a loop of copies ({@link CYCLE}). */
  private readonly inProgress = new Set<string>();

  private once(key: string, answer: () => Value): Value {
    if (this.inProgress.has(key)) return CYCLE;
    this.inProgress.add(key);
    try {
      return answer();
    } finally {
      this.inProgress.delete(key);
    }
  }

  /**
   * The 8-byte stores (`mov %r, d(%rsp)` or of an immediate) that last
   * write the stack slot [rsp + disp] on the paths reaching `at`; null when
   * some path writes part of it otherwise, moves the stack pointer in a way
   * not known, reaches the function's entry, or the walk's budget ends.
   */
  private reachingStores(disp: number, at: number): number[] | null {
    // The walk depends on the code only: a loop of copies asks it again and again.
    const key = `${disp}@${at}`;
    const known = this.storesCache.get(key);
    if (known !== undefined) return known;
    const found = this.walkStores(disp, at);
    this.storesCache.set(key, found);
    return found;
  }

  private readonly storesCache = new Map<string, number[] | null>();

  /** {@link reachingStores}, walked. */
  private walkStores(disp: number, at: number): number[] | null {
    return this.walkBack(at, disp, true, (i, d) => {
      if (i.stackWrite === Infinity) return null;
      if (Number.isNaN(i.stackWrite) || !(i.stackWrite < d + 8 && d < i.stackWrite + i.stackWriteSize)) return false;
      // It writes the slot: only a whole 8-byte store of a register or an immediate names its value.
      const store = i.mnemonic === Mnemonic.Mov && i.op0Kind === OpKind.Memory && i.stackWrite === d && i.stackWriteSize === 8;
      if (!store || !(i.op1Kind === OpKind.Register || isImmediate(i.op1Kind)) || (i.op1Kind === OpKind.Register && gprBit(i.op1) === 0)) return null;
      return true;
    });
  }

  /** What the instruction at `d` leaves in `reg` (which it writes). */
  private valueOfDef(reg: Register, d: number, depth: number): Value {
    const i = this.insn(d);
    if (i === null || i.op0Kind !== OpKind.Register || i.op0 !== reg) return UNKNOWN;
    switch (i.mnemonic) {
      case Mnemonic.Lea:
        if (i.memBase === Register.None && i.memIndex === Register.None) return { k: 'const', v: i.memDisp };
        if (i.memScale === 1 && i.memIndex !== Register.None) {
          const terms = [this.valueBefore(i.memIndex, d, depth + 1)];
          if (i.memBase !== Register.None) terms.push(this.valueBefore(i.memBase, d, depth + 1));
          if (i.memDisp !== 0) terms.push({ k: 'const', v: i.memDisp });
          return sum(terms);
        }
        return UNKNOWN;
      case Mnemonic.Mov:
      case Mnemonic.Movsxd:
      case Mnemonic.Movzx:
        if (isImmediate(i.op1Kind)) return { k: 'const', v: i.op0Size === 4 ? i.imm >>> 0 : i.imm };
        if (i.op1Kind === OpKind.Register) return i.op1Size >= 4 ? this.valueBefore(i.op1, d, depth + 1) : UNKNOWN;
        if (i.op1Kind === OpKind.Memory) return this.memoryValue(i, d, i.memSize, i.mnemonic === Mnemonic.Movsxd, depth);
        return UNKNOWN;
      case Mnemonic.Add: {
        const own = this.valueBefore(reg, d, depth + 1);
        if (isImmediate(i.op1Kind)) return sum([own, { k: 'const', v: i.imm }]);
        if (i.op1Kind === OpKind.Register) return sum([own, this.valueBefore(i.op1, d, depth + 1)]);
        return UNKNOWN;
      }
      default:
        return UNKNOWN;
    }
  }

  /**
   * The instructions that last write register `bit` on the paths reaching
   * `at` (within the function); null when some path reaches a call that
   * clobbers it, the function's entry, or the walk's budget.
   */
  private reachingDefs(bit: number, at: number): number[] | null {
    return this.walkBack(at, 0, false, (i) => ((i.writes & bit) !== 0 ? true : i.isCall && (bit & this.callerSaved) !== 0 ? null : false));
  }

  /**
   * Walk back from `at` over every path inside the function to the
   * instructions `isDef` keeps (true), through those it passes (false);
   * null when it gives up at one (null), when a path reaches the
   * function's entry, or at the walk's budget. With `followStack`, `disp`
   * names a stack slot [rsp + disp] and is carried back through each
   * instruction's move of the stack pointer (one it cannot follow gives
   * up); `isDef` sees it as the instruction before it names it.
   */
  private walkBack(at: number, disp: number, followStack: boolean, isDef: (i: Insn, disp: number) => boolean | null): number[] | null {
    const out: number[] = [];
    // Nearly always one slot offset per instruction: a number key, a string only beside it.
    const seenAt = new Map<number, number>();
    const seen = new Set<string>();
    const work: Array<{ at: number; disp: number }> = [{ at, disp }];
    // isDef never walks, so the walks share one array.
    const preds = this.preds;
    let budget = WALK_BUDGET;
    while (work.length > 0) {
      const cur = work.pop()!;
      preds.length = 0;
      this.ctx.predecessors(cur.at, preds);
      if (preds.length === 0) {
        if (this.ctx.originOf(cur.at) === 'dead') continue; // no path comes this way
        if (this.guessing && this.ctx.isUnreached(cur.at)) continue;
        return null; // an entry: the value comes from the caller
      }
      for (let k = 0; k < preds.length; k += 2) {
        const p = preds[k];
        const i = this.insn(p);
        if (i === null) return null;
        let d = cur.disp;
        if (followStack) {
          if (Number.isNaN(i.rspDelta)) return null;
          d += i.rspDelta;
        }
        const first = seenAt.get(p);
        if (first === d) continue;
        if (first === undefined) seenAt.set(p, d);
        else {
          const id = `${p}:${d}`;
          if (seen.has(id)) continue;
          seen.add(id);
        }
        if (--budget < 0) return null;
        const def = isDef(i, d);
        if (def === null) return null;
        if (def) out.push(p);
        else work.push({ at: p, disp: d });
      }
    }
    return out;
  }

  // -------------------------------------------------------------------------
  // Bounds.

  /**
   * Entries the guards allow for index register `index` at the load at
   * `loadAt`: the largest over every path (0 if some path has no guard).
   */
  private boundOf(index: Register, loadAt: number, depth = 0): { bound: number; proven: boolean } {
    const b = this.walkBound(index, loadAt, depth);
    return { bound: Math.abs(b), proven: b > 0 };
  }

  /** 1 + the largest byte of the table `movzx reg, byte [base + idx]` reads, over the index's proven range; 0 if unknown. */
  private byteTableBound(i: Insn, depth: number): number {
    if (depth >= 2) return 0;
    const base = i.memBase === Register.None ? { k: 'const' as const, v: 0 } : this.valueBefore(i.memBase, i.addr, depth + 1);
    if (base.k !== 'const') return 0;
    const inner = this.boundOf(i.memIndex, i.addr, depth + 1);
    if (!inner.proven || inner.bound === 0) return 0;
    let max = -1;
    for (let k = 0; k < inner.bound; k++) {
      const v = this.ctx.u8At(base.v + i.memDisp + k);
      if (!Number.isFinite(v)) return 0;
      max = Math.max(max, v);
    }
    return max + 1;
  }

  /** {@link boundOf} as one number: negative when only a zero extension bounds some path. */
  private walkBound(index: Register, loadAt: number, depth: number): number {
    const seen = new Set<string>();
    let weak = false;
    // Work items: where, what holds the index (a register, or a memory slot
    // [memBase + memIndex * memScale + memDisp] it was loaded from), and
    // the bound a zero extension implies so far.
    const work: { at: number; key: IndexKey; ext: number }[] = [{ at: loadAt, key: inRegister(full(index)), ext: Infinity }];
    let best = 0;
    let budget = WALK_BUDGET;
    const preds: number[] = [];
    /** A path ends without a guard: only a zero extension may bound it. */
    const unguarded = (ext: number): boolean => {
      if (!(ext <= 256)) return false;
      best = Math.max(best, ext);
      weak = true;
      return true;
    };
    while (work.length > 0) {
      const { at: cur, key, ext } = work.pop()!;
      preds.length = 0;
      this.ctx.predecessors(cur, preds);
      if (preds.length === 0) {
        if (this.ctx.originOf(cur) === 'dead') continue;
        if (this.guessing && this.ctx.isUnreached(cur)) continue;
        if (!unguarded(ext)) return 0;
        continue;
      }
      for (let k = 0; k < preds.length; k += 2) {
        const p = preds[k];
        const how = preds[k + 1];
        const id = `${p}:${key.reg}:${key.memBase}:${key.memIndex}:${key.memScale}:${key.memDisp}:${ext}`;
        if (seen.has(id)) continue;
        seen.add(id);
        if (--budget < 0) return 0;
        const i = this.insn(p);
        if (i === null) return 0;
        if (i.isCondJump) {
          const n = this.guardBound(i, how, key);
          if (n > 0) best = Math.max(best, Math.min(n, ext));
          else work.push({ at: p, key, ext });
          continue;
        }
        const watched = key.reg !== Register.None ? gprBit(key.reg) : gprBit(key.memBase) | gprBit(key.memIndex);
        if ((i.writes & watched) === 0) {
          if (i.isCall && (key.reg === Register.None || (watched & this.callerSaved) !== 0)) {
            if (!unguarded(ext)) return 0;
            continue;
          }
          work.push({ at: p, key, ext });
          continue;
        }
        // The index is written here: a copy, a zero extension or a load goes on, a mask ends the path.
        if (key.reg === Register.RAX && (i.mnemonic === Mnemonic.Cdqe || i.mnemonic === Mnemonic.Cwde)) {
          work.push({ at: p, key, ext }); // cltq: the same value, sign-extended
          continue;
        }
        if (key.reg !== Register.None && i.op0Kind === OpKind.Register && i.op0 === key.reg) {
          const m = i.mnemonic;
          if ((m === Mnemonic.Mov || m === Mnemonic.Movzx || m === Mnemonic.Movsxd) && i.op1Kind === OpKind.Register) {
            const e = m === Mnemonic.Movzx && i.op1Size === 1 ? 256 : ext;
            work.push({ at: p, key: inRegister(i.op1), ext: Math.min(ext, e) });
            continue;
          }
          if (m === Mnemonic.And && Number.isFinite(i.imm) && i.imm >= 0 && i.imm < MAX_BOUND) {
            best = Math.max(best, Math.min(i.imm + 1, ext));
            continue;
          }
          if (m === Mnemonic.Movzx && i.op1Kind === OpKind.Memory && i.memSize === 1 && i.memIndex !== Register.None && i.memScale === 1) {
            // A byte from a table indexed by a bounded register (glibc's
            // printf: a character class, then the class's case): the
            // largest byte the reachable entries hold.
            const n = this.byteTableBound(i, depth);
            if (n > 0) {
              best = Math.max(best, Math.min(n, ext));
              continue;
            }
          }
          if ((m === Mnemonic.Mov || m === Mnemonic.Movzx) && i.op1Kind === OpKind.Memory && i.memBase !== Register.None) {
            // Loaded from a slot, indexed or not: a guard may compare the slot
            // itself (`cmpb $14, (%r13,%rsi); ja; movzbl (%r13,%rsi), %eax`).
            const e = m === Mnemonic.Movzx && i.memSize === 1 ? 256 : ext;
            work.push({ at: p, key: inSlot(i), ext: Math.min(ext, e) });
            continue;
          }
        }
        if (!unguarded(ext)) return 0;
      }
    }
    return weak ? -best : best;
  }

  /**
   * The bound a conditional jump puts on the index on the side we came
   * from (`how`: 0 fall-through, 1 taken): ja/jae falling through or
   * jbe/jb taken, after a `cmp` of the index (or a copy of it, or the
   * memory slot it is loaded from) with N; movs and leas may sit between
   * the compare and the jump. 0 if it says nothing.
   */
  private guardBound(j: Insn, how: number, key: IndexKey): number {
    const m = j.mnemonic;
    let inclusive: boolean;
    if ((m === Mnemonic.Ja && how === 0) || (m === Mnemonic.Jbe && how === 1)) inclusive = true;
    else if ((m === Mnemonic.Jae && how === 0) || (m === Mnemonic.Jb && how === 1)) inclusive = false;
    else return 0;
    const c = this.flagSetter(j.addr);
    if (c === null || c.mnemonic !== Mnemonic.Cmp || !Number.isFinite(c.imm)) return 0;
    let size: number;
    if (key.reg !== Register.None) {
      if (c.op0Kind !== OpKind.Register) return 0;
      if (c.op0 !== key.reg && !this.copiesAt(c.op0, key.reg, c.addr)) return 0;
      size = c.op0Size;
    } else {
      if (c.op0Kind !== OpKind.Memory || c.memBase !== key.memBase || c.memDisp !== key.memDisp || c.memIndex !== key.memIndex) return 0;
      if (key.memIndex !== Register.None && c.memScale !== key.memScale) return 0;
      size = c.memSize;
    }
    const imm = size === 4 ? c.imm >>> 0 : size === 2 ? c.imm & 0xffff : size === 1 ? c.imm & 0xff : c.imm;
    const n = inclusive ? imm + 1 : imm;
    return n > 0 && n <= MAX_BOUND ? n : 0;
  }

  /** The instruction whose flags the conditional jump at `at` tests: the nearest flag writer on its fall-through path. */
  private flagSetter(at: number): Insn | null {
    const preds: number[] = [];
    let cur = at;
    for (let n = 0; n < 8; n++) {
      preds.length = 0;
      this.ctx.predecessors(cur, preds);
      let prev = NaN;
      for (let k = 0; k < preds.length; k += 2) if (preds[k + 1] !== 1) prev = preds[k];
      if (Number.isNaN(prev)) return null;
      const i = this.insn(prev);
      if (i === null || i.isCall || i.isCondJump) return null;
      if (i.setsFlags) return i;
      cur = prev;
    }
    return null;
  }

  /**
   * True if `a` and `b` hold the same value right before `at`: going back
   * along the fall-through path, the nearest write of either is a register
   * copy between them (`mov %rsi, %rcx; cmp $N, %rsi`: the compare bounds
   * %rcx too).
   */
  private copiesAt(a: Register, b: Register, at: number): boolean {
    const preds: number[] = [];
    let cur = at;
    for (let n = 0; n < 16; n++) {
      preds.length = 0;
      this.ctx.predecessors(cur, preds);
      let prev = NaN;
      for (let k = 0; k < preds.length; k += 2) if (preds[k + 1] !== 1) prev = preds[k];
      if (Number.isNaN(prev)) return false;
      const i = this.insn(prev);
      if (i === null || i.isCall) return false;
      const w = i.writes & (gprBit(a) | gprBit(b));
      if (w !== 0) {
        const copy = (i.mnemonic === Mnemonic.Mov || i.mnemonic === Mnemonic.Movsxd || i.mnemonic === Mnemonic.Movzx) && i.op0Kind === OpKind.Register && i.op1Kind === OpKind.Register;
        return copy && ((i.op0 === a && i.op1 === b) || (i.op0 === b && i.op1 === a));
      }
      cur = prev;
    }
    return false;
  }

  // -------------------------------------------------------------------------

  private insn(addr: number): Insn | null {
    const cached = this.cache.get(addr);
    if (cached !== undefined) return cached;
    const ins = this.scratch;
    let out: Insn | null = null;
    if (this.ctx.decodeAt(addr, ins)) out = snapshot(ins, addr, this.infoFactory);
    this.cache.set(addr, out);
    return out;
  }
}

function snapshot(ins: Instruction, addr: number, factory: InstructionInfoFactory): Insn {
  const op0Kind = ins.opCount > 0 ? ins.op0Kind : OpKind.Register;
  const op1Kind = ins.opCount > 1 ? ins.op1Kind : OpKind.Register;
  const hasMem = op0Kind === OpKind.Memory || op1Kind === OpKind.Memory;
  const op0Raw = op0Kind === OpKind.Register && ins.opCount > 0 ? ins.op0Register : Register.None;
  const op1Raw = op1Kind === OpKind.Register && ins.opCount > 1 ? ins.op1Register : Register.None;
  let writes = 0;
  const info = factory.info(ins);
  const used = info.usedRegisters();
  for (const u of used) {
    if (isWrite(u.access as OpAccess)) writes |= gprBit(full(u.register));
    u.free();
  }
  let stackWrite = NaN;
  let stackWriteSize = 0;
  for (const u of info.usedMemory()) {
    if (isWrite(u.access as OpAccess) && full(u.base) === Register.RSP) {
      const size = MemorySizeExt.size(u.memorySize);
      if (u.index !== Register.None || !Number.isNaN(stackWrite) || !(size > 0)) stackWrite = Infinity;
      else {
        stackWrite = Number(BigInt.asIntN(64, u.displacement));
        stackWriteSize = size;
      }
    }
    u.free();
  }
  info.free();
  const ripRel = hasMem && (ins.memoryBase === Register.RIP || ins.memoryBase === Register.EIP);
  const m = ins.mnemonic;
  return {
    addr,
    size: ins.length,
    mnemonic: m,
    isCall: m === Mnemonic.Call,
    isCondJump: COND_JUMPS.has(m),
    op0Kind,
    op0: full(op0Raw),
    op1Kind,
    op1: full(op1Raw),
    op0Size: op0Raw === Register.None ? 0 : RegisterExt.size(op0Raw),
    op1Size: op1Raw === Register.None ? 0 : RegisterExt.size(op1Raw),
    memBase: hasMem && !ripRel ? full(ins.memoryBase) : Register.None,
    memIndex: hasMem ? full(ins.memoryIndex) : Register.None,
    memScale: hasMem ? ins.memoryIndexScale : 0,
    memDisp: hasMem ? (ripRel ? Number(BigInt.asIntN(64, ins.ipRelMemoryAddress)) : Number(BigInt.asIntN(64, ins.memoryDisplacement))) : 0,
    memSize: hasMem ? memorySizeOf(ins) : 0,
    imm: ins.opCount > 1 && isImmediate(op1Kind) ? Number(BigInt.asIntN(64, ins.immediate(1))) : NaN,
    setsFlags: ins.rflagsModified !== 0,
    writes,
    stackWrite,
    stackWriteSize,
    rspDelta: (writes & gprBit(Register.RSP)) === 0 ? 0 : rspDeltaOf(ins),
  };
}

function isWrite(a: OpAccess): boolean {
  return a === OpAccess.Write || a === OpAccess.CondWrite || a === OpAccess.ReadWrite || a === OpAccess.ReadCondWrite;
}

/** How an instruction that writes the stack pointer moves it, as the code after it sees it; NaN if not known. */
function rspDeltaOf(ins: Instruction): number {
  const m = ins.mnemonic;
  if (m === Mnemonic.Call) return 0; // the callee's return takes its address back off
  if (m === Mnemonic.Push || m === Mnemonic.Pop) return ins.stackPointerIncrement !== 0 ? ins.stackPointerIncrement : NaN;
  const toRsp = ins.opCount === 2 && ins.op0Kind === OpKind.Register && full(ins.op0Register) === Register.RSP;
  if (toRsp && isImmediate(ins.op1Kind)) {
    const imm = Number(BigInt.asIntN(64, ins.immediate(1)));
    if (m === Mnemonic.Sub) return -imm;
    if (m === Mnemonic.Add) return imm;
  }
  if (toRsp && m === Mnemonic.Lea && full(ins.memoryBase) === Register.RSP && ins.memoryIndex === Register.None) return Number(BigInt.asIntN(64, ins.memoryDisplacement));
  return NaN;
}

/** Bytes the memory operand reads (1, 2, 4 or 8 for the loads that matter here). */
function memorySizeOf(ins: Instruction): number {
  const m = ins.mnemonic;
  if (m === Mnemonic.Movzx || m === Mnemonic.Movsx) return ins.memorySize === MEM_BYTE_U || ins.memorySize === MEM_BYTE_S ? 1 : 2;
  if (m === Mnemonic.Movsxd) return 4;
  if (ins.opCount > 0 && ins.op0Kind === OpKind.Register) return RegisterExt.size(ins.op0Register);
  return 8;
}

const MEM_BYTE_U = MemorySize.UInt8;
const MEM_BYTE_S = MemorySize.Int8;

function sum(raw: Value[]): Value {
  // Arithmetic on a value that goes round a loop is not a copy of it.
  const terms = raw.map((t) => (t.k === 'cycle' ? UNKNOWN : t));
  const flat: Value[] = [];
  let c = 0;
  let hasConst = false;
  // A sum with a table load in it whose other parts are unknown is still a table dispatch;
  // a constant plus one unknown is kept (the constant may be a table: see tableOf).
  const tableLike = terms.some((t) => t.k === 'load' || t.k === 'indexed');
  const unknowns = terms.filter((t) => t.k === 'unknown' || t.k === 'alt').length;
  if (unknowns > 0 && !tableLike && !(unknowns === 1 && terms.length === 2 && terms.some((t) => t.k === 'const'))) return UNKNOWN;
  for (const t of terms) {
    if (t.k === 'unknown' || t.k === 'alt') {
      if (tableLike) return { k: 'indexed' };
      flat.push(UNKNOWN);
      continue;
    }
    if (t.k === 'sum') {
      for (const u of t.terms) {
        if (u.k === 'const') {
          c += u.v;
          hasConst = true;
        } else flat.push(u);
      }
    } else if (t.k === 'const') {
      c += t.v;
      hasConst = true;
    } else flat.push(t);
  }
  if (flat.length === 0) return { k: 'const', v: c };
  if (hasConst) flat.push({ k: 'const', v: c });
  return flat.length === 1 ? flat[0] : { k: 'sum', terms: flat };
}

function sameValue(a: Value, b: Value): boolean {
  if (a.k !== b.k) return false;
  switch (a.k) {
    case 'const':
      return a.v === (b as typeof a).v;
    case 'import':
      return a.name === (b as typeof a).name;
    case 'load': {
      const o = b as typeof a;
      return a.table === o.table && a.scale === o.scale && a.size === o.size && a.signed === o.signed && a.at === o.at;
    }
    case 'sum': {
      const o = b as typeof a;
      return a.terms.length === o.terms.length && a.terms.every((t, i) => sameValue(t, o.terms[i]));
    }
    case 'alt': {
      const o = b as typeof a;
      return a.values.length === o.values.length && a.values.every((t, i) => sameValue(t, o.values[i]));
    }
    default:
      return true;
  }
}

/**
 * One value from the values on each path (evaluated in turn, stopping at
 * the first unknown): 'alt' for a few different ones. A path that only
 * brings the query's own value round a loop ({@link CYCLE}) adds nothing;
 * if every path does, the result is that cycle.
 */
function merged(paths: Array<() => Value>): Value {
  const values: Value[] = [];
  let cycles = 0;
  for (const path of paths) {
    const v = path();
    if (v.k === 'unknown') return UNKNOWN;
    if (v.k === 'cycle') {
      cycles++;
      continue;
    }
    for (const x of v.k === 'alt' ? v.values : [v]) if (!values.some((y) => sameValue(x, y))) values.push(x);
  }
  if (values.length === 0) return cycles > 0 ? CYCLE : UNKNOWN;
  if (values.length === 1) return values[0];
  return values.length <= 8 ? { k: 'alt', values } : UNKNOWN;
}
