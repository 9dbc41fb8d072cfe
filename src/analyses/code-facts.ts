/**
 * Facts about code that the detectors ask of the memory image at run time,
 * answered by decoding the traced image itself (no static analysis needed):
 *
 * - {@link CodeFacts.isCallPreceded}: the instruction just before an address
 *   is a call that ends exactly there (kBouncer's test for a legitimate
 *   return target). Calls are 2..15 bytes; every start is tried, so the
 *   check accepts any encoding (prefixes, SIB, displacements).
 * - {@link CodeFacts.gadgetAt}: decode the straight-line instructions at an
 *   address (to tell a sigreturn trampoline from an SROP gadget).
 *
 * Answers are cached per address: the same few return sites recur.
 */
import type { Asid } from '../flow/address-space.js';
import { ANY_ASID } from '../flow/address-space.js';
import type { Image } from '../flow/image.js';
import type { TimelineCursor } from '../flow/image-timeline.js';
import { InstructionDecoder, instructionDecoderFor } from '../flow/instruction-decoder.js';
import { ExecMode, InsnClass, InsnKind, InstructionInfo } from '../flow/instruction.js';

/** isCallPreceded results besides true/false. */
export const NOT_MAPPED = -1;

export class CodeFacts {
  private decoder: InstructionDecoder;
  private readonly insn = new InstructionInfo();
  private readonly callPreceded = new Map<number, number>();
  /**
   * Where the flow stands: the trace offset of what the detectors are
   * judging. With an image timeline (code rewritten while it ran), the facts
   * come from the image of that part of the trace, not from the stream's
   * image (each address's last version).
   */
  position: (() => number) | null = null;
  private readonly cursor: TimelineCursor<Image> | null;
  private part = -1;
  /** The image the facts are read from now. */
  private current: Image;

  constructor(
    readonly image: Image,
    readonly mode: ExecMode = ExecMode.Bit64,
    readonly asid: Asid = ANY_ASID,
  ) {
    this.current = image;
    this.decoder = new InstructionDecoder(image);
    this.cursor = image.timeline?.cursor() ?? null;
  }

  /** With a timeline: move to the part of the trace at {@link position}. */
  private follow(): void {
    if (this.cursor === null || this.position === null) return;
    const k = this.image.timeline!.indexAt(this.position());
    if (k === this.part) return;
    this.part = k;
    this.current = this.cursor.imageFor(k);
    // The image's shared decoder: its caches are per source (bytes that never change), so they stay
    // valid as the cursor's image grows; a decoder per part would copy every window into iced's memory again.
    this.decoder = instructionDecoderFor(this.current);
    this.callPreceded.clear();
  }

  /** 1 if a call instruction ends exactly at `ip`, 0 if not, {@link NOT_MAPPED} if `ip` is not in the image. */
  isCallPreceded(ip: number): number {
    this.follow();
    const cached = this.callPreceded.get(ip);
    if (cached !== undefined) return cached;
    let result = 0;
    if (this.current.find(ip, this.asid) === null) {
      result = NOT_MAPPED;
    } else {
      const insn = this.insn;
      for (let len = 2; len <= 15; len++) {
        if (this.decoder.decode(insn, ip - len, this.mode, this.asid) < 0) continue;
        if (insn.size === len && insn.iclass === InsnClass.Call) {
          result = 1;
          break;
        }
      }
    }
    if (this.callPreceded.size > 1 << 20) this.callPreceded.clear();
    this.callPreceded.set(ip, result);
    return result;
  }

  /**
   * The target of the direct call that ends exactly at `ip` (the call whose
   * return address `ip` is), or NaN if no direct call ends there.
   */
  directCallBefore(ip: number): number {
    this.follow();
    const insn = this.insn;
    for (let len = 5; len <= 15; len++) {
      if (this.decoder.decode(insn, ip - len, this.mode, this.asid) < 0) continue;
      if (insn.size === len && insn.iclass === InsnClass.Call && insn.isDirect) return insn.target;
    }
    return NaN;
  }

  /**
   * True if the straight-line code from `start` up to the instruction at
   * `end` loads the stack pointer from memory (`mov rsp, [..]`): what a
   * nonlocal goto does before its jump (GCC's and clang's
   * __builtin_longjmp restore the frame and stack pointers from the
   * buffer, then jump to the saved label). Stops at a branch or after
   * 32 instructions.
   */
  loadsStackPointer(start: number, end: number): boolean {
    this.follow();
    const insn = this.insn;
    let at = start;
    for (let i = 0; i < 32 && at < end; i++) {
      if (this.decoder.decode(insn, at, this.mode, this.asid) < 0) return false;
      if (insn.iclass !== InsnClass.Other) return false;
      if (/^mov rsp, qword ptr \[/.test(this.decoder.disassemble(insn))) return true;
      at += insn.size;
    }
    return false;
  }

  /** True if `ip` is mapped in the image. */
  isMapped(ip: number): boolean {
    this.follow();
    return this.current.find(ip, this.asid) !== null;
  }

  /**
   * Up to `max` instructions from `ip` in program order, stopping after the
   * first branch. Detached copies (for evidence). Empty if unmapped.
   */
  straightLine(ip: number, max: number): { ip: number; size: number; iclass: InsnClass; kind: InsnKind; text: string }[] {
    this.follow();
    const out: { ip: number; size: number; iclass: InsnClass; kind: InsnKind; text: string }[] = [];
    const insn = this.insn;
    let at = ip;
    for (let i = 0; i < max; i++) {
      if (this.decoder.decode(insn, at, this.mode, this.asid) < 0) break;
      out.push({ ip: at, size: insn.size, iclass: insn.iclass, kind: insn.kind, text: this.decoder.disassemble(insn) });
      if (insn.iclass !== InsnClass.Other && insn.iclass !== InsnClass.Ptwrite) break;
      at += insn.size;
    }
    return out;
  }

  /** Disassembly of the instruction at `ip`, or '' if it cannot be decoded. */
  disassembleAt(ip: number): string {
    this.follow();
    if (this.decoder.decode(this.insn, ip, this.mode, this.asid) < 0) return '';
    return this.decoder.disassemble(this.insn);
  }

  /**
   * True if the code at `ip` is a sigreturn trampoline: `mov eax/rax, 15`
   * (rt_sigreturn) then `syscall` (glibc's __restore_rt, the kernel vDSO's).
   */
  isSigreturnTrampoline(ip: number): boolean {
    const insns = this.straightLine(ip, 3);
    if (insns.length < 2) return false;
    const last = insns[insns.length - 1];
    if (last.kind !== InsnKind.Syscall) return false;
    return insns.slice(0, -1).some((i) => /^mov (e|r)ax, 0xf$/.test(i.text));
  }
}
