/**
 * What reverse execution and taint need to know about one static
 * instruction, decoded once per address with iced-x86: its operands, its
 * explicit memory operand, the stack access it implies (push, pop, call,
 * ret, leave), and the registers it reads and writes (iced's
 * InstructionInfoFactory, reduced to full registers).
 *
 * Registers are numbered 0..15 for the general registers in encoding order
 * (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15) and 16..47 for the
 * vector registers (zmm0..31, which cover xmm/ymm); only the general ones
 * carry values, the vector ones carry taint.
 */
import { Decoder, DecoderOptions, Formatter, FormatterSyntax, InstructionInfoFactory, MemorySizeExt, Mnemonic, OpAccess, OpKind, Register, RegisterExt } from '../../flow/iced.js';

export const GPR_COUNT = 16;
export const REG_COUNT = 48;
export const RSP = 4;
export const RBP = 5;
export const RAX = 0;
export const RDX = 2;
export const RDI = 7;
export const RSI = 6;

export const GPR_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];

export function regName(r: number): string {
  return r < GPR_COUNT ? GPR_NAMES[r] : `xmm${r - GPR_COUNT}`;
}

/** A register operand: full register index, byte offset (1 for ah..bh) and size in bytes. */
export interface RegRef {
  reg: number;
  shift: number;
  size: number;
}

export type Operand =
  | { kind: 'reg'; ref: RegRef }
  | { kind: 'mem'; size: number }
  | { kind: 'imm'; value: bigint }
  | { kind: 'branch'; target: number }
  | { kind: 'other' };

export interface MemOperand {
  base: number; // full reg index or -1
  index: number; // full reg index or -1
  scale: number;
  disp: bigint;
  /** fs or gs based: needs the segment base. */
  seg: 'fs' | 'gs' | null;
  size: number;
  read: boolean;
  write: boolean;
}

export interface InsnFacts {
  ip: number;
  size: number;
  mnemonic: Mnemonic;
  name: string;
  text: string;
  ops: Operand[];
  /** The explicit memory operand (lea: the address computation only, read=write=false). */
  mem: MemOperand | null;
  /** Implicit stack access: bytes at rsp-8 (push, call) or rsp (pop, ret, leave: rbp) after the rsp adjustment. */
  stack: 'push' | 'pop' | 'leave' | null;
  regsRead: number[];
  regsWritten: number[];
  isCall: boolean;
  isRet: boolean;
  /** String instructions and other memory accesses this model does not follow. */
  unmodelledMemory: boolean;
  /**
   * movs/stos (SDM Vol. 2B, MOVS and STOS): element size in bytes and whether
   * a rep prefix repeats it rcx times. Their accesses ([rsi] read, [rdi]
   * written) are not in `mem`: reverse execution models them as one block.
   */
  string: { op: 'movs' | 'stos'; width: number; rep: boolean } | null;
}

let formatter: Formatter | null = null;
let infoFactory: InstructionInfoFactory | null = null;

/** Full register index of an iced register, or -1 (rip, flags, segment, mask...). */
export function fullIndex(r: Register): number {
  if (r === Register.None) return -1;
  const full = RegisterExt.fullRegister(r);
  if (full >= Register.RAX && full <= Register.R15) return full - Register.RAX;
  if (full >= Register.ZMM0 && full <= Register.ZMM31) return GPR_COUNT + (full - Register.ZMM0);
  return -1;
}

export function regRef(r: Register): RegRef {
  const high = r === Register.AH || r === Register.CH || r === Register.DH || r === Register.BH;
  const reg = high ? r - Register.AH : fullIndex(r);
  return { reg, shift: high ? 1 : 0, size: RegisterExt.size(r) };
}

/** Decode `bytes` (up to 15) at `ip`; null if they are not a valid instruction. */
export function decodeFacts(ip: number, bytes: Uint8Array): InsnFacts | null {
  const dec = new Decoder(64, bytes, DecoderOptions.None);
  dec.ip = BigInt(ip);
  const insn = dec.decode();
  try {
    if (insn.isInvalid) return null;
    formatter ??= new Formatter(FormatterSyntax.Intel);
    infoFactory ??= new InstructionInfoFactory();
    const m = insn.mnemonic;
    const ops: Operand[] = [];
    const memSize = insn.memorySize === 0 ? 0 : MemorySizeExt.size(insn.memorySize);
    for (let i = 0; i < insn.opCount; i++) {
      const k = insn.opKind(i);
      if (k === OpKind.Register) ops.push({ kind: 'reg', ref: regRef(insn.opRegister(i)) });
      else if (k === OpKind.Memory) ops.push({ kind: 'mem', size: memSize });
      else if (k === OpKind.NearBranch64 || k === OpKind.NearBranch32 || k === OpKind.NearBranch16) ops.push({ kind: 'branch', target: Number(insn.nearBranchTarget) });
      else if (
        k === OpKind.Immediate8 || k === OpKind.Immediate16 || k === OpKind.Immediate32 || k === OpKind.Immediate64 ||
        k === OpKind.Immediate8to16 || k === OpKind.Immediate8to32 || k === OpKind.Immediate8to64 || k === OpKind.Immediate32to64 ||
        k === OpKind.Immediate8_2nd
      ) ops.push({ kind: 'imm', value: insn.immediate(i) });
      else ops.push({ kind: 'other' });
    }
    const info = infoFactory.info(insn);
    const regsRead = new Set<number>();
    const regsWritten = new Set<number>();
    for (const u of info.usedRegisters()) {
      const idx = fullIndex(u.register);
      const acc = u.access as OpAccess;
      u.free();
      if (idx < 0) continue;
      if (acc === OpAccess.Read || acc === OpAccess.CondRead || acc === OpAccess.ReadWrite || acc === OpAccess.ReadCondWrite) regsRead.add(idx);
      if (acc === OpAccess.Write || acc === OpAccess.CondWrite || acc === OpAccess.ReadWrite || acc === OpAccess.ReadCondWrite) regsWritten.add(idx);
    }
    let mem: MemOperand | null = null;
    let unmodelledMemory = false;
    let memAccesses = 0;
    for (const u of info.usedMemory()) {
      const acc = u.access as OpAccess;
      const base = u.base as Register;
      const seg = u.segment as Register;
      const rawIndex = u.index as Register;
      const entry: MemOperand = {
        base: base === Register.RIP ? -1 : fullIndex(base),
        index: fullIndex(rawIndex),
        scale: u.scale,
        disp: BigInt.asIntN(64, u.displacement),
        seg: seg === Register.FS ? 'fs' : seg === Register.GS ? 'gs' : null,
        size: u.memorySize === 0 ? 0 : MemorySizeExt.size(u.memorySize),
        read: acc === OpAccess.Read || acc === OpAccess.CondRead || acc === OpAccess.ReadWrite || acc === OpAccess.ReadCondWrite,
        write: acc === OpAccess.Write || acc === OpAccess.CondWrite || acc === OpAccess.ReadWrite || acc === OpAccess.ReadCondWrite,
      };
      u.free();
      // The implicit stack slot of push/pop/call/ret is modelled by `stack`.
      if (base === Register.RSP && isStackOp(m) && rawIndex === Register.None) continue;
      memAccesses++;
      if (memAccesses === 1) mem = entry;
      else unmodelledMemory = true;
    }
    info.free();
    // The kernel's results: rax, and rcx/r11 clobbered by syscall itself.
    if (m === Mnemonic.Syscall) for (const r of [0, 1, 11]) regsWritten.add(r);
    if (m === Mnemonic.Lea) {
      mem = {
        base: insn.memoryBase === Register.RIP ? -1 : fullIndex(insn.memoryBase),
        index: fullIndex(insn.memoryIndex),
        scale: insn.memoryIndexScale,
        disp: BigInt.asIntN(64, insn.memoryDisplacementU64),
        seg: null,
        size: 0,
        read: false,
        write: false,
      };
    }
    const stringOp: 'movs' | 'stos' | null = m === Mnemonic.Movsb || m === Mnemonic.Movsw || m === Mnemonic.Movsq || (m === Mnemonic.Movsd && insn.isStringInstruction) ? 'movs'
      : m === Mnemonic.Stosb || m === Mnemonic.Stosw || m === Mnemonic.Stosd || m === Mnemonic.Stosq ? 'stos' : null;
    const string = stringOp === null ? null : { op: stringOp, width: memSize, rep: insn.hasRepPrefix || insn.hasRepePrefix };
    if (string !== null) {
      mem = null;
      unmodelledMemory = false;
    } else if (insn.hasRepPrefix || insn.hasRepePrefix || insn.hasRepnePrefix) {
      if (mem !== null && (m === Mnemonic.Movsb || m === Mnemonic.Movsq || m === Mnemonic.Movsd || m === Mnemonic.Stosb || m === Mnemonic.Stosq || m === Mnemonic.Stosd || m === Mnemonic.Cmpsb || m === Mnemonic.Scasb)) unmodelledMemory = true;
    }
    if (m === Mnemonic.Leave) mem = null;
    if (memSize > 8 && mem !== null) mem.size = memSize;
    const stack = m === Mnemonic.Push || m === Mnemonic.Call ? 'push' : m === Mnemonic.Pop || m === Mnemonic.Ret ? 'pop' : m === Mnemonic.Leave ? 'leave' : null;
    return {
      ip,
      size: insn.length,
      mnemonic: m,
      name: Mnemonic[m],
      text: formatter.format(insn),
      ops,
      mem,
      stack,
      regsRead: [...regsRead],
      regsWritten: [...regsWritten],
      isCall: m === Mnemonic.Call,
      isRet: m === Mnemonic.Ret,
      unmodelledMemory,
      string,
    };
  } finally {
    insn.free();
    dec.free();
  }
}

function isStackOp(m: Mnemonic): boolean {
  return m === Mnemonic.Push || m === Mnemonic.Pop || m === Mnemonic.Call || m === Mnemonic.Ret || m === Mnemonic.Leave;
}
