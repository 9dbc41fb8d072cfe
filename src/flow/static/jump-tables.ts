/**
 * Switch jump tables behind an indirect `jmp`, in the shapes gcc emits for
 * x86 (and clang mostly shares):
 *
 * - position-independent, 4-byte entries relative to the table:
 *     cmp   $N, %idx ; ja default
 *     lea   T(%rip), %base
 *     movslq (%base,%idx,4), %r
 *     add   %base, %r
 *     jmp   *%r
 * - absolute, pointer-sized entries (non-PIC code):
 *     cmp $N, %idx ; ja default ; jmp *T(,%idx,8)
 *   or `mov T(,%idx,8), %r ; jmp *%r`.
 *
 * The table's length comes from the bounds check that guards the index:
 * `cmp $N, idx` followed by `ja` (N + 1 entries) or `jae` (N entries), with
 * register copies (`mov %eax, %edx`) followed back to the compared register,
 * or an `and $mask, idx`. Without a bound the table is read while its
 * entries point into code (at most {@link UNBOUNDED_LIMIT}) and is marked
 * unbounded, so a policy can tell a proven set from a guessed one.
 *
 * Only straight-line code before the jump is examined: the walk back stops
 * at calls, returns and unconditional jumps, which end the data flow.
 */
import { Instruction, Mnemonic, OpKind, Register, RegisterExt } from 'iced-x86';
import type { ElfBytes } from './elf-tables.js';

/** A recognised jump table. Addresses are link-time addresses. */
export interface JumpTable {
  /** The indirect jump that uses the table. */
  jumpAddress: number;
  tableAddress: number;
  /** 4 (relative offsets) or the pointer size (absolute addresses). */
  entrySize: number;
  /** Entries are offsets added to {@link tableAddress} (else absolute addresses). */
  relative: boolean;
  /** Number of entries read. */
  count: number;
  /** True if {@link count} comes from a bounds check in the code. */
  bounded: boolean;
  /** Target of each entry, in table order (duplicates kept). */
  targets: number[];
}

/** What the recogniser needs from the disassembler. */
export interface JumpTableContext {
  /** Decode the instruction at `addr` into `ins` (ip set); false if none is known there. */
  decodeAt(addr: number, ins: Instruction): boolean;
  /** Address of the decoded instruction that ends exactly at `addr`, or NaN. */
  previous(addr: number): number;
  /** Address of the nearest decoded instruction below `addr` (skipping undecoded bytes), or NaN. */
  previousAny(addr: number): number;
  /** True if `addr` is in an executable section. */
  isCode(addr: number): boolean;
  /** [start, end) of the symbol or FDE range around `addr`, or null. */
  functionRange(addr: number): [number, number] | null;
  readonly data: ElfBytes;
}

/** How many instructions before the jump are examined. */
const LOOK_BACK = 24;
/** Most entries read from a table whose bound was not found. */
export const UNBOUNDED_LIMIT = 512;
/** Largest bound believed: a larger compare is not a switch guard. */
const MAX_BOUND = 1 << 16;

/** The operands of one instruction that the patterns look at. */
interface Insn {
  addr: number;
  mnemonic: Mnemonic;
  op0Kind: OpKind;
  op0: Register;
  op1Kind: OpKind;
  op1: Register;
  memBase: Register;
  memIndex: Register;
  memScale: number;
  /** Displacement, or the absolute address for RIP-relative operands. */
  memDisp: number;
  imm: number;
}

const full = (r: Register): Register => (r === Register.None ? r : RegisterExt.fullRegister(r));

function snapshot(ins: Instruction, addr: number): Insn {
  const op0Kind = ins.opCount > 0 ? ins.op0Kind : OpKind.Register;
  const op1Kind = ins.opCount > 1 ? ins.op1Kind : OpKind.Register;
  const hasMem = op0Kind === OpKind.Memory || op1Kind === OpKind.Memory;
  const isImm = (k: OpKind) =>
    k === OpKind.Immediate8 ||
    k === OpKind.Immediate16 ||
    k === OpKind.Immediate32 ||
    k === OpKind.Immediate8to32 ||
    k === OpKind.Immediate8to64 ||
    k === OpKind.Immediate32to64 ||
    k === OpKind.Immediate64 ||
    k === OpKind.Immediate8to16;
  let imm = NaN;
  if (ins.opCount > 1 && isImm(op1Kind)) imm = Number(BigInt.asIntN(64, ins.immediate(1)));
  return {
    addr,
    mnemonic: ins.mnemonic,
    op0Kind,
    op0: op0Kind === OpKind.Register && ins.opCount > 0 ? full(ins.op0Register) : Register.None,
    op1Kind,
    op1: op1Kind === OpKind.Register && ins.opCount > 1 ? full(ins.op1Register) : Register.None,
    // RIP-relative operands carry the absolute address in memDisp, so they count as base-less.
    memBase: hasMem && ins.memoryBase !== Register.RIP && ins.memoryBase !== Register.EIP ? full(ins.memoryBase) : Register.None,
    memIndex: hasMem ? full(ins.memoryIndex) : Register.None,
    memScale: hasMem ? ins.memoryIndexScale : 0,
    memDisp: hasMem ? Number(BigInt.asIntN(64, ins.memoryDisplacement)) : 0,
    imm,
  };
}

/** Mnemonics that write their first (register) operand. */
const WRITERS = new Set<Mnemonic>([
  Mnemonic.Mov, Mnemonic.Movsxd, Mnemonic.Movzx, Mnemonic.Movsx, Mnemonic.Lea, Mnemonic.Add,
  Mnemonic.Sub, Mnemonic.And, Mnemonic.Or, Mnemonic.Xor, Mnemonic.Shl, Mnemonic.Shr, Mnemonic.Sar,
  Mnemonic.Imul, Mnemonic.Pop, Mnemonic.Neg, Mnemonic.Not, Mnemonic.Inc, Mnemonic.Dec,
  Mnemonic.Cmovb, Mnemonic.Cmovae, Mnemonic.Cmova, Mnemonic.Cmovbe, Mnemonic.Xchg,
]);

function writesReg(i: Insn, reg: Register): boolean {
  return i.op0Kind === OpKind.Register && i.op0 === reg && WRITERS.has(i.mnemonic);
}

/** Index (into `back`, 0 = nearest) of the last write of `reg` from `from` on, or -1. */
function findDef(back: Insn[], from: number, reg: Register): number {
  for (let k = from; k < back.length; k++) if (writesReg(back[k], reg)) return k;
  return -1;
}

/**
 * Recognise the jump table used by the indirect jump at `jumpAddr`.
 * `scratch` is a reusable iced Instruction.
 */
export function recogniseJumpTable(ctx: JumpTableContext, jumpAddr: number, scratch: Instruction): JumpTable | null {
  if (!ctx.decodeAt(jumpAddr, scratch)) return null;
  const jmp = snapshot(scratch, jumpAddr);
  const ptrSize = ctx.data.is64 ? 8 : 4;

  // The straight-line instructions before the jump, nearest first.
  const back: Insn[] = [];
  let at = jumpAddr;
  while (back.length < LOOK_BACK) {
    const prev = ctx.previous(at);
    if (Number.isNaN(prev) || !ctx.decodeAt(prev, scratch)) break;
    const m = scratch.mnemonic;
    if (m === Mnemonic.Call || m === Mnemonic.Ret || m === Mnemonic.Jmp) break;
    back.push(snapshot(scratch, prev));
    at = prev;
  }

  let table = NaN;
  let relative = false;
  /** For relative tables: the address entries are added to. */
  let relBase = NaN;
  let indexReg = Register.None;
  /** Position in `back` of the table load; the bound is searched beyond it. */
  let loadPos = -1;

  if (jmp.op0Kind === OpKind.Memory) {
    // jmp *T(,%idx,8) or jmp *(%base,%idx,8) with base = lea T.
    if (jmp.memIndex === Register.None || jmp.memScale !== ptrSize) return null;
    indexReg = jmp.memIndex;
    if (jmp.memBase === Register.None) table = jmp.memDisp;
    else table = leaValue(ctx, back, 0, jmp.memBase, scratch) + jmp.memDisp;
    loadPos = -1; // the load is the jump itself
  } else if (jmp.op0Kind === OpKind.Register) {
    const target = jmp.op0;
    const d1 = findDef(back, 0, target);
    if (d1 < 0) return null;
    const i1 = back[d1];
    if (i1.mnemonic === Mnemonic.Add && i1.op1Kind === OpKind.Register) {
      // add %base, %r (or add %r, %base): one side is movslq (T,%idx,4), the
      // other the address the entries are relative to (T itself for gcc's
      // switches; a code label for glibc's computed-goto tables).
      const a = findDef(back, d1 + 1, i1.op0);
      const b = findDef(back, d1 + 1, i1.op1);
      const isLoad = (k: number) => k >= 0 && back[k].memScale === 4 && back[k].memIndex !== Register.None &&
        (back[k].mnemonic === Mnemonic.Movsxd || back[k].mnemonic === Mnemonic.Mov);
      let loadAt: number;
      let otherReg: Register;
      if (isLoad(a)) [loadAt, otherReg] = [a, i1.op1];
      else if (isLoad(b)) [loadAt, otherReg] = [b, i1.op0];
      else return null;
      const load = back[loadAt];
      table = load.memBase === Register.None ? load.memDisp : leaValue(ctx, back, loadAt + 1, load.memBase, scratch) + load.memDisp;
      relBase = leaValue(ctx, back, d1 + 1, otherReg, scratch);
      relative = true;
      indexReg = load.memIndex;
      loadPos = loadAt;
    } else if ((i1.mnemonic === Mnemonic.Mov || i1.mnemonic === Mnemonic.Movsxd) && i1.op1Kind === OpKind.Memory) {
      if (i1.memIndex === Register.None) return null;
      indexReg = i1.memIndex;
      if (i1.memScale === ptrSize && i1.mnemonic === Mnemonic.Mov) {
        // mov T(,%idx,8), %r — or with a lea'd base.
        if (i1.memBase === Register.None) table = i1.memDisp;
        else table = leaValue(ctx, back, d1 + 1, i1.memBase, scratch) + i1.memDisp;
      } else return null;
      loadPos = d1;
    } else return null;
  } else return null;

  if (!Number.isFinite(table) || ctx.data.fileOffset(table, 4) < 0) return null;
  if (relative && !Number.isFinite(relBase)) return null;
  const bound = findBound(back, loadPos + 1, indexReg);
  const bounded = bound > 0;
  const limit = bounded ? bound : UNBOUNDED_LIMIT;
  const entrySize = relative ? 4 : ptrSize;
  // An unbounded table ends where its entries stop pointing into the jump's function.
  const range = bounded ? null : ctx.functionRange(jumpAddr);
  const targets: number[] = [];
  for (let i = 0; i < limit; i++) {
    const off = ctx.data.fileOffset(table + i * entrySize, entrySize);
    if (off < 0) break;
    const t = relative ? relBase + ctx.data.i32(off) : ctx.data.word(off);
    const ok = ctx.isCode(t) && (range === null || (t >= range[0] && t < range[1]));
    if (!ok) {
      if (bounded) continue; // a bad entry in a proven table: skip it, keep the rest
      break;
    }
    targets.push(t);
  }
  if (targets.length === 0) return null;
  return {
    jumpAddress: jumpAddr,
    tableAddress: table,
    entrySize,
    relative,
    count: bounded ? bound : targets.length,
    bounded,
    targets,
  };
}

/** How many instructions {@link leaValue} searches back past the straight-line window. */
const FAR_LOOK_BACK = 2048;

/**
 * The constant `reg` holds from a `lea X(%rip), reg`: the nearest one in the
 * straight-line window, else (for bases hoisted out of a loop) the nearest
 * earlier one at lower addresses within the jump's function. NaN if none.
 */
function leaValue(ctx: JumpTableContext, back: Insn[], from: number, reg: Register, scratch: Instruction): number {
  const d = findDef(back, from, reg);
  if (d >= 0) return back[d].mnemonic === Mnemonic.Lea && back[d].memBase === Register.None ? back[d].memDisp : NaN;
  if (back.length === 0) return NaN;
  const range = ctx.functionRange(back[0].addr);
  let at = back[back.length - 1].addr;
  for (let n = 0; n < FAR_LOOK_BACK; n++) {
    const prev = ctx.previousAny(at);
    if (Number.isNaN(prev) || (range !== null && prev < range[0]) || !ctx.decodeAt(prev, scratch)) return NaN;
    if (scratch.opCount > 0 && scratch.op0Kind === OpKind.Register && full(scratch.op0Register) === reg) {
      if (scratch.mnemonic === Mnemonic.Lea && scratch.isIpRelMemoryOperand) return Number(BigInt.asIntN(64, scratch.ipRelMemoryAddress));
      if (WRITERS.has(scratch.mnemonic)) return NaN;
    }
    at = prev;
  }
  return NaN;
}

/**
 * The number of table entries the guard allows: `cmp $N, idx; ja` gives
 * N + 1, `jae` gives N, `and $M, idx` gives M + 1. 0 if not found.
 */
function findBound(back: Insn[], from: number, indexReg: Register): number {
  let reg = indexReg;
  for (let k = from; k < back.length; k++) {
    const i = back[k];
    if (i.mnemonic === Mnemonic.Cmp && i.op0Kind === OpKind.Register && i.op0 === reg && Number.isFinite(i.imm)) {
      // The guard is the conditional jump right after the compare (nearer the table load).
      const guard = k > 0 ? back[k - 1] : null;
      if (guard === null || guard.mnemonic !== Mnemonic.Ja && guard.mnemonic !== Mnemonic.Jae) {
        if (guard !== null && guard.mnemonic === Mnemonic.Jbe) continue;
        return 0;
      }
      const n = guard.mnemonic === Mnemonic.Ja ? i.imm + 1 : i.imm;
      return n > 0 && n <= MAX_BOUND ? n : 0;
    }
    if (writesReg(i, reg)) {
      if ((i.mnemonic === Mnemonic.Mov || i.mnemonic === Mnemonic.Movzx || i.mnemonic === Mnemonic.Movsxd) &&
        i.op1Kind === OpKind.Register) {
        reg = i.op1; // a copy: follow the source
        continue;
      }
      if (i.mnemonic === Mnemonic.And && Number.isFinite(i.imm) && i.imm >= 0 && i.imm < MAX_BOUND) return i.imm + 1;
      return 0;
    }
  }
  return 0;
}
