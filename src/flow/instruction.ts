/**
 * One decoded instruction and its classification, as the flow decoders see it
 * (libipt's `pt_insn` plus `pt_insn_ext`, and the predicates of pt_insn.c).
 *
 * The classification mirrors libipt's pt_ild.c, not the disassembler's view:
 * - `loop`, `loope`, `loopne`, `jcxz`/`jecxz`/`jrcxz` are conditional jumps
 *   (they produce a TNT bit);
 * - `int`, `int3`, `into`, `int1`, `syscall`, `sysenter`, `vmcall` and far
 *   `call` are far calls; `iret`, far `ret`, `sysexit`, `sysret`,
 *   `vmlaunch`, `vmresume`, `uiret`, `erets`, `eretu` are far returns;
 * - `call`/`jmp` with a relative displacement are direct (`isDirect`), with
 *   `target = ip + size + displacement` computed in 64 bits without
 *   truncation to the operand size (as pt_insn_next_ip does); a direct call
 *   with displacement 0 ("call next", used to read the IP) is an ordinary
 *   direct call: libipt gives it no special class, and the decoders handle it
 *   through return compression like any other call;
 * - APX `jmpabs` (REX2 0xa1 with a 64-bit absolute target) is the one
 *   instruction of class `Indirect`: its target is encoded, but the trace
 *   reports it with a TIP like an indirect jump;
 * - `mov cr3`, `vmptrld` and `ptwrite` keep class `Other`/`Ptwrite` and are
 *   told apart by {@link InsnKind}; `xbegin`/`xend`/`xabort` are `Other`
 *   (TSX state changes come from MODE.TSX packets, not from the code);
 * - VEX/EVEX-encoded instructions are always `Other`.
 */
import { ErrorCode } from '../packets/errors.js';
import type { MappedSection } from './image.js';

import { ExecMode } from '../packets/exec-mode.js';
export { ExecMode, execModeBits } from '../packets/exec-mode.js';

/** libipt's `pt_insn_class` (2.1 numbering: ptic_unknown is 0, ptic_indirect 10). */
export enum InsnClass {
  /** Not decoded, or could not be decoded. */
  Unknown = 0,
  /** Not a branch. */
  Other = 1,
  /** Near call (direct or indirect). */
  Call = 2,
  /** Near return. */
  Return = 3,
  /** Near unconditional jump (direct or indirect). */
  Jump = 4,
  /** Near conditional jump, including loop and jrcxz. */
  CondJump = 5,
  /** Far call, software interrupt, syscall, sysenter, vmcall. */
  FarCall = 6,
  /** Far return, iret, sysret, sysexit, vmlaunch, vmresume, uiret, erets, eretu. */
  FarReturn = 7,
  /** Far jump. */
  FarJump = 8,
  /** PTWRITE. */
  Ptwrite = 9,
  /** Jump whose target comes from the trace even though it is encoded (jmpabs). */
  Indirect = 10,
}

const CLASS_NAMES = [
  'unknown', 'other', 'near call', 'near return', 'near jump', 'cond jump',
  'far call', 'far return', 'far jump', 'ptwrite', 'indirect',
];

/** ptxed's name for a class (visualize_iclass). */
export function insnClassName(c: InsnClass): string {
  return CLASS_NAMES[c] ?? 'undefined';
}

/**
 * The exact instruction where it matters to the flow decoders (libipt's
 * `pti_inst` in pt_insn_ext), plus a few kinds that only analyses use
 * (Xbegin..Hlt; libipt has no entry for those).
 */
export enum InsnKind {
  None = 0,
  CallE8, // call rel
  CallFFr2, // call r/m (near indirect)
  CallFFr3, // call m16:xx (far indirect)
  Call9A, // call ptr16:xx (far direct)
  JmpE9, // jmp rel16/32
  JmpEB, // jmp rel8
  JmpFFr4, // jmp r/m (near indirect)
  JmpFFr5, // jmp m16:xx (far indirect)
  JmpEA, // jmp ptr16:xx (far direct)
  Jmpabs, // APX jmpabs imm64
  Jcc,
  JrCXZ,
  Loop,
  LoopE,
  LoopNE,
  RetC3, // ret
  RetC2, // ret imm16
  RetCB, // retf
  RetCA, // retf imm16
  Int,
  Int3,
  Int1,
  Into,
  Iret,
  Syscall,
  Sysenter,
  Sysexit,
  Sysret,
  Vmcall,
  Vmlaunch,
  Vmresume,
  Vmptrld,
  MovCr3,
  Ptwrite,
  Uiret,
  Erets,
  Eretu,
  // Not used by libipt's decoders; for analyses.
  Xbegin,
  Xend,
  Xabort,
  Mwait,
  Stac,
  Clac,
  Hlt,
  Ud,
}

/**
 * A decoded instruction. Decoders own one instance and overwrite it on every
 * call, so the hot loop allocates nothing; use {@link copyInstruction} to keep one.
 */
export class InstructionInfo {
  /** Address (signed-double representation, see address-space.ts). */
  ip = 0;
  /** Length in bytes (1..15). */
  size = 0;
  mode: ExecMode = ExecMode.Unknown;
  iclass: InsnClass = InsnClass.Unknown;
  kind: InsnKind = InsnKind.None;
  /** For Call, Jump and CondJump: true if the target is encoded as a displacement. */
  isDirect = false;
  /** For direct branches: the signed displacement from the next instruction. */
  displacement = 0;
  /** For direct branches: ip + size + displacement. Otherwise 0. */
  target = 0;
  /**
   * True if the instruction continues past the end of its section and the
   * rest was read from the next mapping (libipt's `truncated`).
   */
  truncated = false;
  /** Set by the flow decoders: executed speculatively inside a transaction. */
  speculative = false;
  /** The mapping that holds the first byte, or null. */
  section: MappedSection | null = null;
  /** The image section identifier of that mapping (0 if none). */
  isid = 0;
  /**
   * The instruction bytes are `rawBuffer[rawOffset .. rawOffset + size)`: a
   * view into the image's buffer (or the decoder's scratch buffer for
   * truncated instructions), valid until the next decode.
   */
  rawBuffer: Uint8Array = EMPTY;
  rawOffset = 0;

  /** The instruction bytes as a new view (allocates; for output). */
  raw(): Uint8Array {
    return this.rawBuffer.subarray(this.rawOffset, this.rawOffset + this.size);
  }

  /** Byte `i` of the instruction. */
  byte(i: number): number {
    return this.rawBuffer[this.rawOffset + i];
  }

  /** Address of the next instruction in memory. */
  get nextIp(): number {
    return this.ip + this.size;
  }
}

const EMPTY = new Uint8Array(0);

/** A detached copy of `src` (its bytes copied too). */
export function copyInstruction(src: InstructionInfo, dst: InstructionInfo = new InstructionInfo()): InstructionInfo {
  assignInstruction(dst, src);
  dst.rawBuffer = src.raw().slice();
  dst.rawOffset = 0;
  return dst;
}

/** libipt's pt_insn_changes_cpl: may change the privilege level. */
export function insnChangesCpl(insn: InstructionInfo): boolean {
  switch (insn.kind) {
    case InsnKind.Int:
    case InsnKind.Int3:
    case InsnKind.Int1:
    case InsnKind.Into:
    case InsnKind.Iret:
    case InsnKind.Syscall:
    case InsnKind.Sysenter:
    case InsnKind.Sysexit:
    case InsnKind.Sysret:
      return true;
    default:
      return false;
  }
}

/** libipt's pt_insn_changes_cr3. */
export function insnChangesCr3(insn: InstructionInfo): boolean {
  return insn.kind === InsnKind.MovCr3;
}

/** libipt's pt_insn_is_branch. */
export function insnIsBranch(insn: InstructionInfo): boolean {
  const c = insn.iclass;
  return c !== InsnClass.Other && c !== InsnClass.Ptwrite && c !== InsnClass.Unknown;
}

/** libipt's pt_insn_is_far_branch. */
export function insnIsFarBranch(insn: InstructionInfo): boolean {
  const c = insn.iclass;
  return c === InsnClass.FarCall || c === InsnClass.FarReturn || c === InsnClass.FarJump;
}

/** libipt's pt_insn_binds_to_pip: a PIP (CR3 change) may bind to this instruction. */
export function insnBindsToPip(insn: InstructionInfo): boolean {
  const k = insn.kind;
  if (k === InsnKind.MovCr3 || k === InsnKind.Vmlaunch || k === InsnKind.Vmresume) return true;
  return insnIsFarBranch(insn);
}

/** libipt's pt_insn_binds_to_vmcs: a VMCS packet may bind to this instruction. */
export function insnBindsToVmcs(insn: InstructionInfo): boolean {
  const k = insn.kind;
  if (k === InsnKind.Vmptrld || k === InsnKind.Vmlaunch || k === InsnKind.Vmresume) return true;
  return insnIsFarBranch(insn);
}

/** libipt's pt_insn_is_ptwrite. */
export function insnIsPtwrite(insn: InstructionInfo): boolean {
  return insn.iclass === InsnClass.Ptwrite;
}

/**
 * libipt's pt_insn_next_ip: the address of the next instruction when the code
 * alone tells it (non-branches, direct call and jump), else NaN: the trace
 * must tell (conditional, indirect, far branches, returns) or the instruction
 * was not decoded; {@link insnNextIpError} says which. (IPs may be negative,
 * see address-space.ts, so errors cannot share the return value.)
 */
export function insnNextIp(insn: InstructionInfo): number {
  switch (insn.iclass) {
    case InsnClass.Other:
    case InsnClass.Ptwrite:
      return insn.ip + insn.size;
    case InsnClass.Call:
    case InsnClass.Jump:
      return insn.isDirect ? insn.target : NaN;
    default:
      return NaN;
  }
}

/** Why {@link insnNextIp} gave NaN: `-ErrorCode.BadInsn` if not decoded, else `-ErrorCode.BadQuery`. */
export function insnNextIpError(insn: InstructionInfo): number {
  return insn.iclass === InsnClass.Unknown ? -ErrorCode.BadInsn : -ErrorCode.BadQuery;
}

/** libipt's pt_insn_is_iret: the instructions an IRET event (CFE) binds to. */
export function insnIsIret(insn: InstructionInfo): boolean {
  const k = insn.kind;
  return k === InsnKind.Iret || k === InsnKind.Sysret || k === InsnKind.Sysexit || k === InsnKind.Erets || k === InsnKind.Eretu;
}

/** libipt's pt_insn_is_vmentry: VMLAUNCH, VMRESUME. */
export function insnIsVmentry(insn: InstructionInfo): boolean {
  return insn.kind === InsnKind.Vmlaunch || insn.kind === InsnKind.Vmresume;
}

/** libipt's pt_insn_is_uiret. */
export function insnIsUiret(insn: InstructionInfo): boolean {
  return insn.kind === InsnKind.Uiret;
}

/** libipt's pt_insn_is_swint: INT n, INT3, INT1, INTO. */
export function insnIsSwint(insn: InstructionInfo): boolean {
  const k = insn.kind;
  return k === InsnKind.Int || k === InsnKind.Int3 || k === InsnKind.Int1 || k === InsnKind.Into;
}

/** libipt's pt_insn_is_syscall: SYSCALL, SYSENTER. */
export function insnIsSyscall(insn: InstructionInfo): boolean {
  return insn.kind === InsnKind.Syscall || insn.kind === InsnKind.Sysenter;
}

/**
 * Copy `src` into `dst` without copying its bytes (`dst` views the same
 * buffer): C struct assignment of a pt_insn, for the decoders' scratch
 * instructions.
 */
export function assignInstruction(dst: InstructionInfo, src: InstructionInfo): InstructionInfo {
  dst.ip = src.ip;
  dst.size = src.size;
  dst.mode = src.mode;
  dst.iclass = src.iclass;
  dst.kind = src.kind;
  dst.isDirect = src.isDirect;
  dst.displacement = src.displacement;
  dst.target = src.target;
  dst.truncated = src.truncated;
  dst.speculative = src.speculative;
  dst.section = src.section;
  dst.isid = src.isid;
  dst.rawBuffer = src.rawBuffer;
  dst.rawOffset = src.rawOffset;
  return dst;
}
