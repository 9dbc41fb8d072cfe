/**
 * ptxed's `--check`: re-decode each reported instruction from its raw bytes
 * and compare the flow decoder's classification with the disassembler's own
 * idea of the instruction (ptxed's check_insn/check_block, which use XED;
 * here iced-x86's mnemonic, independent of our classification tables in
 * instruction-decoder.ts). Problems are returned as ptxed-style lines.
 *
 * A debugging aid: it decodes every instruction again and allocates, so it
 * is only run when asked for.
 */
import { Decoder, DecoderOptions, Instruction, Mnemonic } from './iced.js';
import { formatIpShort } from './address-space.js';
import { execModeBits, ExecMode, InsnClass, InsnKind, insnClassName, insnNextIp, type InstructionInfo } from './instruction.js';

/** The classes that fit a mnemonic (ptxed's check_insn_iclass table); `indirect` fits every branch. */
function classesFor(m: Mnemonic, far: boolean): InsnClass[] {
  if (far) return m === Mnemonic.Call ? [InsnClass.FarCall, InsnClass.Indirect] : [InsnClass.FarJump, InsnClass.Indirect];
  switch (m) {
    case Mnemonic.Call:
      return [InsnClass.Call, InsnClass.Indirect];
    case Mnemonic.Ret:
      return [InsnClass.Return, InsnClass.Indirect];
    case Mnemonic.Jmp:
      return [InsnClass.Jump, InsnClass.Indirect];
    case Mnemonic.Ja:
    case Mnemonic.Jae:
    case Mnemonic.Jb:
    case Mnemonic.Jbe:
    case Mnemonic.Je:
    case Mnemonic.Jg:
    case Mnemonic.Jge:
    case Mnemonic.Jl:
    case Mnemonic.Jle:
    case Mnemonic.Jne:
    case Mnemonic.Jno:
    case Mnemonic.Jnp:
    case Mnemonic.Jns:
    case Mnemonic.Jo:
    case Mnemonic.Jp:
    case Mnemonic.Js:
    case Mnemonic.Jcxz:
    case Mnemonic.Jecxz:
    case Mnemonic.Jrcxz:
    case Mnemonic.Loop:
    case Mnemonic.Loope:
    case Mnemonic.Loopne:
      return [InsnClass.CondJump];
    case Mnemonic.Int:
    case Mnemonic.Int1:
    case Mnemonic.Int3:
    case Mnemonic.Into:
    case Mnemonic.Syscall:
    case Mnemonic.Sysenter:
    case Mnemonic.Vmcall:
      return [InsnClass.FarCall, InsnClass.Indirect];
    case Mnemonic.Iret:
    case Mnemonic.Iretd:
    case Mnemonic.Iretq:
    case Mnemonic.Retf:
    case Mnemonic.Sysexit:
    case Mnemonic.Sysret:
    case Mnemonic.Uiret:
    case Mnemonic.Vmlaunch:
    case Mnemonic.Vmresume:
    case Mnemonic.Erets:
    case Mnemonic.Eretu:
      return [InsnClass.FarReturn, InsnClass.Indirect];
    case Mnemonic.Ptwrite:
      return [InsnClass.Ptwrite];
    default:
      return [InsnClass.Other];
  }
}

/** iced's mnemonic of the decoded instruction, or null if the bytes do not decode. */
function decodeMnemonic(
  raw: Uint8Array,
  mode: ExecMode,
  ip: number,
): { mnemonic: Mnemonic; far: boolean; length: number } | null {
  const dec = new Decoder(execModeBits(mode), raw, DecoderOptions.None);
  const ins = new Instruction();
  try {
    dec.decodeOut(ins);
    if (ins.isInvalid) return null;
    // iced names near and far CALL/JMP alike; XED (and ptxed) tells them apart.
    const far = ins.isCallFar || ins.isCallFarIndirect || ins.isJmpFar || ins.isJmpFarIndirect;
    return { mnemonic: ins.mnemonic, far, length: ins.length };
  } catch {
    return null;
  } finally {
    void ip;
    ins.free();
    dec.free();
  }
}

function mnemonicName(m: Mnemonic): string {
  return (Mnemonic[m] ?? String(m)).toLowerCase();
}

/** ptxed's check_insn for one reported instruction at trace offset `offset`. */
export function checkInsn(insn: InstructionInfo, offset: number, out: string[]): void {
  const where = `[${offset.toString(16)}, ${formatIpShort(insn.ip)}: `;
  if (insn.isid <= 0) out.push(where + 'check error: bad isid]');
  checkDecode(insn.raw(), insn.mode, insn.ip, insn.iclass, insn.kind, where, out);
}

function checkDecode(
  raw: Uint8Array,
  mode: ExecMode,
  ip: number,
  iclass: InsnClass,
  kind: InsnKind,
  where: string,
  out: string[],
): number {
  // APX jmpabs is not known to iced-x86 1.21; our decoder recognizes it itself.
  if (kind === InsnKind.Jmpabs) {
    if (iclass !== InsnClass.Jump && iclass !== InsnClass.Indirect) {
      out.push(`${where}iclass error: iclass: ${insnClassName(iclass)}, decoder iclass: jmpabs]`);
    }
    return raw.length;
  }
  const d = decodeMnemonic(raw, mode, ip);
  if (d === null) {
    out.push(where + 'decode error: invalid instruction]');
    return 0;
  }
  if (iclass !== InsnClass.Unknown && !classesFor(d.mnemonic, d.far).includes(iclass)) {
    out.push(`${where}iclass error: iclass: ${insnClassName(iclass)}, decoder iclass: ${d.far ? 'far ' : ''}${mnemonicName(d.mnemonic)}]`);
  }
  return d.length;
}

/**
 * ptxed's check_block: each instruction of the block decodes, each one
 * leads to the next (sequentially or by a direct jump or call, the only
 * branches inside a block), and the last one has the block's class.
 * `fetch` decodes the instruction at an address (null if unmapped).
 */
export function checkBlock(
  block: { ips: Float64Array; ninsn: number; endIp: number; mode: ExecMode; iclass: InsnClass; isid: number },
  offset: number,
  fetch: (ip: number) => InstructionInfo | null,
  out: string[],
): void {
  const n = block.ninsn;
  if (n === 0) return;
  const at = (ip: number): string => `[${offset.toString(16)}, ${formatIpShort(ip)}: `;
  if (block.isid <= 0) out.push(at(block.ips[0]!) + 'check error: bad isid]');
  for (let i = 0; i < n; i++) {
    const ip = block.ips[i]!;
    const insn = fetch(ip);
    if (insn === null) {
      out.push(at(ip) + 'fetch error: no memory mapped at this address]');
      return;
    }
    const isLast = i === n - 1;
    const len = checkDecode(insn.raw(), block.mode, ip, isLast ? block.iclass : InsnClass.Unknown, insn.kind, at(ip), out);
    if (len === 0) return;
    if (isLast) break;
    const next = insnNextIp(insn);
    if (next !== block.ips[i + 1]) {
      out.push(`${at(ip)}error: did not reach end: ${formatIpShort(block.endIp)}]`);
      return;
    }
  }
}
