/**
 * What the end of a translation block does to the trace: the class of its
 * last instruction, as libipt's instruction decoder sees it (qemu ends a TB
 * at every branch, so only the last instruction can be one). Decoded with
 * iced-x86 from the bytes qemu logged, once per translation.
 */
import { Code, Decoder, DecoderOptions, FlowControl, Instruction, OpKind, Register } from '../../flow/iced.js';

export enum BranchKind {
  /** Not a branch: execution falls through (or the TB was cut short). */
  None = 0,
  /** Jcc, loop, jrcxz: one TNT bit. */
  CondJump,
  /** Direct near jmp: nothing in the trace. */
  DirectJump,
  /** Direct near call: nothing in the trace; pushes for return compression. */
  DirectCall,
  /** Indirect near jmp: TIP. */
  IndirectJump,
  /** Indirect near call: TIP; pushes for return compression. */
  IndirectCall,
  /** Near ret: a compressed taken TNT bit, or TIP. */
  Return,
  /** syscall, sysenter, int n, int3, into, int1: to the kernel, so TIP.PGD with the IP suppressed. */
  ToKernel,
  /** Far call/jmp/ret, iret: TIP. */
  FarBranch,
}

export interface BlockEnd {
  kind: BranchKind;
  /** Target of a direct branch (DirectJump, DirectCall, CondJump), else 0. */
  target: number;
  /** For DirectCall: false for `call $+0` (a call to the next instruction), which libipt does not push. */
  pushes: boolean;
  /** The instruction is a rep-prefixed string instruction (qemu runs each iteration as a TB execution). */
  repString: boolean;
}

const TO_KERNEL = new Set<Code>([Code.Syscall, Code.Sysenter, Code.Int_imm8, Code.Int3, Code.Into, Code.Int1]);

let instr: Instruction | null = null;

/** A translation block's instructions, decoded from its bytes. */
export interface DecodedBlock {
  ips: Float64Array;
  sizes: Uint8Array;
  end: BlockEnd;
  firstIsRep: boolean;
}

/**
 * Split a TB's bytes (starting at `pc`) into instructions and classify the
 * last. qemu's own disassembly in the log is not used: it can lose the
 * instruction boundaries (it prints `.byte` and resynchronises) while the
 * bytes are always complete.
 */
export function decodeBlock(pc: number, bytes: Uint8Array): DecodedBlock | null {
  const dec = new Decoder(64, bytes, DecoderOptions.None);
  if (instr === null) instr = new Instruction();
  const ips: number[] = [];
  const sizes: number[] = [];
  let off = 0;
  try {
    while (off < bytes.length) {
      dec.decodeOut(instr);
      if (instr.isInvalid && instr.length === 0) return null;
      ips.push(pc + off);
      sizes.push(instr.length);
      off += instr.length;
    }
  } finally {
    dec.free();
  }
  if (off !== bytes.length || ips.length === 0) return null;
  const n = ips.length;
  const lastOff = off - sizes[n - 1];
  const end = classifyInstruction(bytes.subarray(lastOff), ips[n - 1]);
  const firstIsRep = n === 1 ? end.repString : classifyInstruction(bytes.subarray(0, sizes[0]), pc).repString;
  return { ips: Float64Array.from(ips), sizes: Uint8Array.from(sizes), end, firstIsRep };
}


/** Classify the instruction `bytes` at `ip` (64-bit mode). */
export function classifyInstruction(bytes: Uint8Array, ip: number): BlockEnd {
  const dec = new Decoder(64, bytes, DecoderOptions.None);
  dec.ip = BigInt(ip);
  if (instr === null) instr = new Instruction();
  dec.decodeOut(instr);
  const res: BlockEnd = { kind: BranchKind.None, target: 0, pushes: false, repString: false };
  try {
    if (instr.isInvalid) return res;
    res.repString = instr.isStringInstruction && (instr.hasRepPrefix || instr.hasRepePrefix || instr.hasRepnePrefix);
    const code = instr.code;
    if (TO_KERNEL.has(code)) {
      res.kind = BranchKind.ToKernel;
      return res;
    }
    switch (instr.flowControl) {
      case FlowControl.ConditionalBranch:
        res.kind = BranchKind.CondJump;
        res.target = Number(instr.nearBranch64);
        break;
      case FlowControl.UnconditionalBranch:
        if (instr.isJmpFar) res.kind = BranchKind.FarBranch;
        else {
          res.kind = BranchKind.DirectJump;
          res.target = Number(instr.nearBranch64);
        }
        break;
      case FlowControl.IndirectBranch:
        res.kind = instr.isJmpFarIndirect ? BranchKind.FarBranch : BranchKind.IndirectJump;
        break;
      case FlowControl.Call:
        if (instr.isCallFar) res.kind = BranchKind.FarBranch;
        else {
          res.kind = BranchKind.DirectCall;
          res.target = Number(instr.nearBranch64);
          res.pushes = res.target !== ip + instr.length;
        }
        break;
      case FlowControl.IndirectCall:
        if (instr.isCallFarIndirect) res.kind = BranchKind.FarBranch;
        else {
          res.kind = BranchKind.IndirectCall;
          res.pushes = true;
        }
        break;
      case FlowControl.Return:
        res.kind = code === Code.Retnq || code === Code.Retnq_imm16 || code === Code.Retnw || code === Code.Retnw_imm16
          ? BranchKind.Return
          : BranchKind.FarBranch;
        break;
      case FlowControl.Interrupt:
        // iret and friends.
        res.kind = BranchKind.FarBranch;
        break;
      default:
        break;
    }
    return res;
  } finally {
    dec.free();
  }
}

/**
 * Which instruction of a TB (at `pc`, `bytes`) most likely raised a data
 * fault at address `addr`: the first one that touches memory, skipping
 * those whose only memory operand is a fixed address (absolute or
 * RIP-relative) on another page. Exact when that instruction's fixed
 * address is on the faulting page, or when it is the only candidate.
 * Returns index -1 when no instruction can fault.
 */
export function locateDataFault(pc: number, bytes: Uint8Array, addr: number): { index: number; exact: boolean } {
  const dec = new Decoder(64, bytes, DecoderOptions.None);
  dec.ip = BigInt(pc);
  if (instr === null) instr = new Instruction();
  const page = Math.floor(addr / 4096);
  let first = -1;
  let firstExact = false;
  let candidates = 0;
  try {
    for (let i = 0, off = 0; off < bytes.length; i++) {
      dec.decodeOut(instr);
      if (instr.length === 0) break;
      off += instr.length;
      let mem = instr.isStackInstruction || instr.isStringInstruction;
      let staticMatch = false;
      for (let k = 0; k < instr.opCount; k++) {
        if (instr.opKind(k) !== OpKind.Memory) {
          if (instr.opKind(k) >= OpKind.MemorySegSI && instr.opKind(k) < OpKind.Memory) mem = true;
          continue;
        }
        if (instr.isIpRelMemoryOperand) {
          if (Math.floor(Number(instr.ipRelMemoryAddress) / 4096) === page) staticMatch = mem = true;
        } else if (instr.memoryBase === Register.None && instr.memoryIndex === Register.None) {
          if (Math.floor(Number(BigInt.asUintN(64, instr.memoryDisplacement)) / 4096) === page) staticMatch = mem = true;
        } else {
          mem = true;
        }
      }
      if (!mem) continue;
      candidates++;
      if (first < 0) {
        first = i;
        firstExact = staticMatch;
      }
    }
  } finally {
    dec.free();
  }
  return { index: first, exact: first >= 0 && (firstExact || candidates === 1) };
}
