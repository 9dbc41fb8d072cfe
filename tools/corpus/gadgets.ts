/**
 * Code-reuse gadget finder for the exploit corpus: scans the executable
 * sections of an ELF file (as mapped by src/flow/elf.ts) with our
 * instruction decoder and lists every short instruction sequence that ends
 * in a control transfer an attacker can chain:
 * - `ret` (ROP), `syscall` (SROP and plain system calls);
 * - `jmp reg` / `jmp [reg+disp]` (JOP), `call reg` / `call [reg+disp]` (COP).
 *
 * Gadgets start at every byte offset, so unaligned sequences hidden inside
 * longer instructions are found too (the classic Shacham-style backward
 * scan): for every terminator, each start up to `maxBytes` before it is
 * decoded forward and kept if it reaches the terminator exactly, through at
 * most `maxInsns - 1` non-branch instructions (a `syscall` may be one of
 * them: it comes back to the next instruction).
 *
 * Text is ptxed-style Intel syntax (InstructionDecoder.disassemble), with
 * instructions joined by "; ", which is what chain builders match against.
 */
import { ANY_ASID } from '../../src/flow/address-space.js';
import { ElfFile, loadElf } from '../../src/flow/elf.js';
import { Image } from '../../src/flow/image.js';
import { InstructionDecoder } from '../../src/flow/instruction-decoder.js';
import { ExecMode, InsnClass, InsnKind, InstructionInfo } from '../../src/flow/instruction.js';
import { ByteSourceCache } from '../../src/flow/section.js';

const SHF_EXECINSTR = 0x4;
const SHT_NOBITS = 8;

/** How a gadget transfers control to the next one. */
export type GadgetEnd = 'ret' | 'syscall' | 'jmp-reg' | 'jmp-mem' | 'call-reg' | 'call-mem';

export interface Gadget {
  /** Run-time address of the first instruction. */
  address: number;
  /** Disassembly of each instruction, the terminator last. */
  insns: string[];
  /** `insns` joined with "; ". */
  text: string;
  end: GadgetEnd;
  /** Module the gadget lives in (file base name). */
  module: string;
}

export interface GadgetScanOptions {
  /** Load address of the lowest PT_LOAD segment (0: link-time addresses). */
  base?: number;
  /** Longest gadget in instructions, terminator included (default 6). */
  maxInsns?: number;
  /** Furthest start before the terminator, in bytes (default 24). */
  maxBytes?: number;
}

const REG_TARGET = /^(jmp|call) (r(?:[a-d]x|[sd]i|[sb]p|[89]|1[0-5]))$/;
const MEM_TARGET = /^(jmp|call) qword ptr \[(r(?:[a-d]x|[sd]i|[sb]p|[89]|1[0-5]))(?:\+0x[0-9a-f]+)?\]$/;

/** All gadgets in the executable sections of `path`, sorted by address. */
export function findGadgets(path: string, options: GadgetScanOptions = {}): Gadget[] {
  const maxInsns = options.maxInsns ?? 6;
  const maxBytes = options.maxBytes ?? 24;
  const image = new Image(path);
  const loaded = loadElf(image, new ByteSourceCache(), path, options.base ?? 0);
  const decoder = new InstructionDecoder(image);
  const module = path.slice(path.lastIndexOf('/') + 1);
  const insn = new InstructionInfo();
  const texts = new Map<number, string>();
  const textAt = (ip: number): string => {
    let t = texts.get(ip);
    if (t === undefined) {
      decoder.decode(insn, ip, ExecMode.Bit64, ANY_ASID);
      t = decoder.disassemble(insn);
      texts.set(ip, t);
    }
    return t;
  };

  const gadgets: Gadget[] = [];
  try {
    for (const sec of execSections(loaded.elf)) {
      const begin = sec.addr + loaded.loadOffset;
      const end = begin + sec.size;
      for (let t = begin; t < end; t++) {
        if (decoder.decode(insn, t, ExecMode.Bit64, ANY_ASID) < 0) continue;
        const kind = terminatorKind(insn, () => textAt(t));
        if (kind === null) continue;
        for (let s = t; s >= Math.max(begin, t - maxBytes); s--) {
          const body = bodyBetween(decoder, insn, s, t, maxInsns - 1);
          if (body === null) continue;
          const insns = body.map(textAt);
          insns.push(textAt(t));
          gadgets.push({ address: s, insns, text: insns.join('; '), end: kind, module });
        }
      }
    }
  } finally {
    decoder.dispose();
  }
  gadgets.sort((a, b) => a.address - b.address);
  return gadgets;
}

function execSections(elf: ElfFile) {
  return elf.sections.filter((s) => (s.flags & SHF_EXECINSTR) !== 0 && s.type !== SHT_NOBITS && s.size > 0);
}

function terminatorKind(insn: InstructionInfo, text: () => string): GadgetEnd | null {
  switch (insn.kind) {
    case InsnKind.RetC3:
      return 'ret';
    case InsnKind.Syscall:
      return 'syscall';
    case InsnKind.JmpFFr4:
    case InsnKind.CallFFr2: {
      const t = text();
      const reg = REG_TARGET.exec(t);
      if (reg) return reg[1] === 'jmp' ? 'jmp-reg' : 'call-reg';
      const mem = MEM_TARGET.exec(t);
      if (mem) return mem[1] === 'jmp' ? 'jmp-mem' : 'call-mem';
      return null;
    }
    default:
      return null;
  }
}

/**
 * Addresses of the instructions from `start` up to (not including) `term`
 * if they decode to at most `max` non-branch instructions that end exactly
 * at `term`; otherwise null.
 */
function bodyBetween(decoder: InstructionDecoder, insn: InstructionInfo, start: number, term: number, max: number): number[] | null {
  const body: number[] = [];
  let ip = start;
  while (ip < term) {
    if (body.length === max) return null;
    if (decoder.decode(insn, ip, ExecMode.Bit64, ANY_ASID) < 0) return null;
    // A system call returns to the next instruction: `syscall; ret` is one gadget.
    if (insn.iclass !== InsnClass.Other && insn.kind !== InsnKind.Syscall) return null;
    body.push(ip);
    ip += insn.size;
  }
  return ip === term ? body : null;
}

/** Gadget lookup by the shape of its text. */
export class GadgetSet {
  constructor(readonly gadgets: readonly Gadget[]) {}

  /** All gadgets whose whole text matches `pattern`, shortest first, then lowest address. */
  all(pattern: RegExp): Gadget[] {
    const anchored = new RegExp(`^(?:${pattern.source})$`);
    return this.gadgets
      .filter((g) => anchored.test(g.text))
      .sort((a, b) => a.insns.length - b.insns.length || a.address - b.address);
  }

  /** The shortest gadget matching `pattern`; throws if there is none. */
  find(pattern: RegExp, what = pattern.source): Gadget {
    const hit = this.all(pattern)[0];
    if (!hit) throw new Error(`no gadget for ${what} in ${this.gadgets[0]?.module ?? 'an empty gadget set'}`);
    return hit;
  }

  /**
   * The shortest `pop r1; ...; pop rN; ret` gadget that pops `reg` (and only
   * pops): the workhorse of a ROP chain that loads registers.
   */
  popper(reg: string): Gadget {
    const pops = this.gadgets.filter(
      (g) => g.end === 'ret' && g.insns.length > 1 && g.insns.slice(0, -1).every((i) => /^pop r\w+$/.test(i)) && g.insns.includes(`pop ${reg}`) && g.insns.at(-1) === 'ret',
    );
    pops.sort((a, b) => a.insns.length - b.insns.length || a.address - b.address);
    if (pops.length === 0) throw new Error(`no "pop ${reg}; ...; ret" gadget in ${this.gadgets[0]?.module ?? 'an empty gadget set'}`);
    return pops[0];
  }
}
