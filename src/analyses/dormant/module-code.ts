/**
 * One module's code for the symbolic executor (the main executable or one
 * of the program's own libraries, code-space.ts): its bytes by
 * link-time address (from the ELF file's PT_LOAD segments) and its
 * instructions decoded with iced-x86 into the operands the executor models.
 */
import { readFileSync } from 'node:fs';
import { ConditionCode, Decoder, DecoderOptions, Formatter, FormatterSyntax, MemorySizeExt, Mnemonic, OpKind, Register, RegisterExt } from '../../flow/iced.js';
import { ElfFile } from '../../flow/elf.js';
import type { ModuleCfg } from '../../flow/static/cfg.js';
import { Unsolved } from './unsolved.js';

/** The code of one module, by link-time address. */
export class ModuleCode {
  private readonly bytes: Buffer;
  private readonly segments: { vaddr: number; end: number; offset: number; filesz: number }[];
  constructor(readonly file: string, readonly cfg: ModuleCfg) {
    this.bytes = readFileSync(file);
    const elf = ElfFile.parse(this.bytes, file);
    this.segments = elf.segments.filter((s) => s.type === 1).map((s) => ({ vaddr: s.vaddr, end: s.vaddr + s.memsz, offset: s.offset, filesz: s.filesz }));
  }

  /** The byte at link-time address `a`, or -1. */
  byte(a: number): number {
    for (const s of this.segments) {
      if (a < s.vaddr || a >= s.end) continue;
      const o = a - s.vaddr;
      return o < s.filesz ? this.bytes[s.offset + o] : 0;
    }
    return -1;
  }

  contains(a: number): boolean {
    return a >= this.cfg.linkBase && a < this.cfg.linkEnd;
  }
}

export interface Operand {
  kind: 'reg' | 'imm' | 'mem' | 'branch';
  reg: Register;
  imm: bigint;
  size: number;
}

export interface Decoded {
  ip: number;
  next: number;
  mnemonic: string;
  cc: ConditionCode;
  ops: Operand[];
  memBase: Register;
  memIndex: Register;
  memScale: number;
  memDisp: bigint;
  memSeg: Register;
  memSize: number;
  text: string;
  isJcc: boolean;
}

let formatter: Formatter | null = null;
function FORMATTER(): Formatter {
  formatter ??= new Formatter(FormatterSyntax.Intel);
  return formatter;
}

/** The instruction at run-time `ip` of `code` loaded `bias` above its link-time addresses; Unsolved when it cannot be modelled. */
export function decodeAt(code: ModuleCode, ip: number, bias: number): Decoded {
  const link = ip - bias;
  if (!code.contains(link)) throw new Unsolved(`execution left the module at 0x${ip.toString(16)}`);
  const raw = new Uint8Array(15);
  for (let i = 0; i < 15; i++) raw[i] = Math.max(0, code.byte(link + i));
  const dec = new Decoder(64, raw, DecoderOptions.None);
  dec.ip = BigInt(link);
  const insn = dec.decode();
  try {
    if (insn.isInvalid) throw new Unsolved(`invalid instruction at 0x${link.toString(16)}`);
    const ops: Operand[] = [];
    const memSize = insn.memorySize === 0 ? 0 : MemorySizeExt.size(insn.memorySize);
    for (let i = 0; i < insn.opCount; i++) {
      const k = insn.opKind(i);
      if (k === OpKind.Register) ops.push({ kind: 'reg', reg: insn.opRegister(i), imm: 0n, size: RegisterExt.size(insn.opRegister(i)) });
      else if (k === OpKind.Memory) ops.push({ kind: 'mem', reg: Register.None, imm: 0n, size: memSize });
      else if (k === OpKind.NearBranch64 || k === OpKind.NearBranch32 || k === OpKind.NearBranch16) {
        ops.push({ kind: 'branch', reg: Register.None, imm: insn.nearBranchTarget + BigInt(bias), size: 8 });
      } else if (
        k === OpKind.Immediate8 || k === OpKind.Immediate16 || k === OpKind.Immediate32 || k === OpKind.Immediate64 ||
        k === OpKind.Immediate8to16 || k === OpKind.Immediate8to32 || k === OpKind.Immediate8to64 || k === OpKind.Immediate32to64
      ) {
        ops.push({ kind: 'imm', reg: Register.None, imm: insn.immediate(i), size: 0 });
      } else {
        throw new Unsolved(`operand kind ${OpKind[k]} of ${FORMATTER().format(insn)} is not modelled`);
      }
    }
    const isRip = insn.memoryBase === Register.RIP;
    const d: Decoded = {
      ip,
      next: ip + insn.length,
      mnemonic: Mnemonic[insn.mnemonic],
      cc: insn.conditionCode,
      ops,
      memBase: isRip ? Register.None : insn.memoryBase,
      memIndex: insn.memoryIndex,
      memScale: insn.memoryIndexScale,
      memDisp: isRip ? insn.memoryDisplacementU64 + BigInt(bias) : BigInt.asIntN(64, insn.memoryDisplacementU64),
      memSeg: insn.memorySegment,
      memSize,
      text: FORMATTER().format(insn),
      isJcc: insn.isJccShortOrNear,
    };
    return d;
  } finally {
    insn.free();
    dec.free();
  }
}
