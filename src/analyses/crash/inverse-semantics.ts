/**
 * Undoing instructions: the values before an instruction from those after
 * it, where the operation can be inverted (add/sub/xor with a known
 * operand, inc/dec/neg/not, push/pop/call/ret/leave on rsp, `lea r, [r+d]`,
 * a register moved to another). The backward half of reverse execution.
 */
import { Mnemonic } from '../../flow/iced.js';
import { GPR_COUNT, RBP, RSP, type InsnFacts } from './instruction-facts.js';
import { M32, M64, mask, type RegisterTimeline } from './register-timeline.js';

/** The value after `op` applied with operand `o`, undone; null when `op` is not invertible or `o` is needed and unknown. */
function undo(op: Mnemonic, after: bigint, o: bigint | null, mk: bigint): bigint | null {
  switch (op) {
    case Mnemonic.Add:
      return o === null ? null : (after - o) & mk;
    case Mnemonic.Sub:
      return o === null ? null : (after + o) & mk;
    case Mnemonic.Xor:
      return o === null ? null : (after ^ o) & mk;
    case Mnemonic.Inc:
      return (after - 1n) & mk;
    case Mnemonic.Dec:
      return (after + 1n) & mk;
    case Mnemonic.Not:
      return ~after & mk;
    case Mnemonic.Neg:
      return -after & mk;
    default:
      return null;
  }
}

/** Registers at point t from those at t + 1, where instruction f can be undone; `memIn` is what its memory operand read. */
export function undoRegisters(regs: RegisterTimeline, t: number, f: InsnFacts, memIn: bigint | null): void {
  const a = t;
  const b = t + 1;
  const rspB = regs.reg(b, RSP);
  switch (f.mnemonic) {
    case Mnemonic.Push:
    case Mnemonic.Call:
      if (rspB !== null) regs.set(a, RSP, (rspB + 8n) & M64);
      return;
    case Mnemonic.Pop:
      if (rspB !== null && !(f.ops[0]?.kind === 'reg' && f.ops[0].ref.reg === RSP)) regs.set(a, RSP, (rspB - 8n) & M64);
      return;
    case Mnemonic.Ret: {
      const extra = f.ops[0]?.kind === 'imm' ? f.ops[0].value : 0n;
      if (rspB !== null) regs.set(a, RSP, (rspB - 8n - extra) & M64);
      return;
    }
    case Mnemonic.Leave:
      if (rspB !== null) regs.set(a, RBP, (rspB - 8n) & M64);
      return;
  }
  const d = f.ops[0];
  if (d?.kind === 'reg' && d.ref.size === 4 && d.ref.shift === 0 && d.ref.reg < GPR_COUNT) return undo32(regs, t, f, d.ref.reg, memIn);
  if (d?.kind !== 'reg' || d.ref.size !== 8 || d.ref.reg >= GPR_COUNT) return;
  const r = d.ref.reg;
  const after = regs.reg(b, r);
  if (after === null) return;
  const s = f.ops[1];
  switch (f.mnemonic) {
    case Mnemonic.Lea: {
      const m = f.mem!;
      if (m.base === r && m.index < 0) regs.set(a, r, (after - m.disp) & M64);
      return;
    }
    case Mnemonic.Mov:
      if (s?.kind === 'reg' && s.ref.size === 8 && s.ref.reg !== r && s.ref.reg < GPR_COUNT) {
        regs.set(a, s.ref.reg, after);
        regs.set(b, s.ref.reg, after);
      }
      return;
    case Mnemonic.Xor:
      // xor r, r is a zeroing idiom: the value before is lost.
      if (s?.kind === 'reg' && s.ref.reg === r) return;
      break;
  }
  let o: bigint | null = null;
  if (s?.kind === 'imm') o = s.value;
  else if (s?.kind === 'reg' && s.ref.reg !== r && s.ref.size === 8) o = regs.reg(a, s.ref.reg);
  else if (s?.kind === 'mem') o = memIn;
  const before = undo(f.mnemonic, after, o, M64);
  if (before !== null) regs.set(a, r, before);
}

/**
 * {@link undoRegisters} for a 32-bit destination `r`: what is undone is the
 * low 32 bits of a register before t, which give the whole register where
 * its upper half is known to be zero (RegisterTimeline.setLow32). An
 * address computed by LEA keeps its low 32 bits whatever the address size.
 */
function undo32(regs: RegisterTimeline, t: number, f: InsnFacts, r: number, memIn: bigint | null): void {
  const a = t;
  const b = t + 1;
  const full = regs.reg(b, r);
  if (full === null) return;
  const after = full & M32;
  const s = f.ops[1];
  switch (f.mnemonic) {
    case Mnemonic.Lea: {
      const m = f.mem!;
      if (m.index >= 0 || m.base < 0 || m.base >= GPR_COUNT) return;
      const v = (after - m.disp) & M32;
      regs.setLow32(a, m.base, v);
      // A base other than the destination is not written: the same after.
      if (m.base !== r) regs.setLow32(b, m.base, v);
      return;
    }
    case Mnemonic.Mov:
      if (s?.kind === 'reg' && s.ref.size === 4 && s.ref.shift === 0 && s.ref.reg < GPR_COUNT) {
        regs.setLow32(a, s.ref.reg, after);
        if (s.ref.reg !== r) regs.setLow32(b, s.ref.reg, after);
      }
      return;
    case Mnemonic.Xor:
      if (s?.kind === 'reg' && s.ref.reg === r) return;
      break;
  }
  let o: bigint | null = null;
  if (s?.kind === 'imm') o = s.value & M32;
  else if (s?.kind === 'reg' && s.ref.reg !== r && s.ref.size === 4) o = regs.readRef(a, s.ref);
  else if (s?.kind === 'mem') o = memIn;
  const before = undo(f.mnemonic, after, o, M32);
  if (before !== null) regs.setLow32(a, r, before);
}

/** Memory before a read-modify-write at t, from the value after it, or null. */
export function memoryBefore(regs: RegisterTimeline, t: number, f: InsnFacts, after: bigint): bigint | null {
  const s = f.ops[1];
  const o = s?.kind === 'imm' ? s.value : s?.kind === 'reg' ? regs.readRef(t, s.ref) : null;
  return undo(f.mnemonic, after, o, mask(f.mem!.size));
}

/** The value a plain load at t put into its destination register (known after t). */
export function loadedValue(regs: RegisterTimeline, t: number, f: InsnFacts): bigint | null {
  const d = f.ops[0];
  if (f.mnemonic !== Mnemonic.Mov || d?.kind !== 'reg' || f.ops[1]?.kind !== 'mem') return null;
  if (d.ref.size !== f.mem!.size) return null;
  return regs.readRef(t + 1, d.ref);
}
