/**
 * movs/stos (rep or not) as one block write: [rdi, rdi + count * width),
 * copied from rsi (movs) or filled from rax (stos). The SysV ABI keeps DF
 * clear at calls and returns, so the string instructions of compiled code
 * and libc move up: rdi (and rsi for movs) advance by count * width and a
 * rep leaves rcx 0.
 */
import type { CoreFile } from '../../sources/core-file.js';
import { RDI, RSI, type InsnFacts } from './instruction-facts.js';
import type { MemoryOverlay } from './memory-overlay.js';
import { M64, type RegisterTimeline } from './register-timeline.js';

const RCX = 1;
/** The largest movs/stos block modelled byte by byte (a hostile rcx must not exhaust memory). */
const MAX_BLOCK = 1 << 20;

/** The bytes a movs/stos at one point wrote: [dst, dst+n), copied from [src, src+n) (movs) or filled (stos). */
export interface StringBlock {
  op: 'movs' | 'stos';
  dst: number;
  /** movs: the source; NaN for stos or when rsi is unknown. */
  src: number;
  n: number;
}

/**
 * The registers of the movs/stos at t, both ways (rcx, rdi, rsi before and
 * after it), and the block it wrote when its destination and length are
 * known.
 */
export function stringRegisters(regs: RegisterTimeline, t: number, f: InsnFacts): StringBlock | null {
  const string = f.string!;
  const w = BigInt(string.width);
  const b = t + 1;
  const moved = string.op === 'movs' ? [RDI, RSI] : [RDI];
  if (string.rep) regs.set(b, RCX, 0n);
  let count = string.rep ? regs.reg(t, RCX) : 1n;
  for (const r of moved) {
    const before = regs.reg(t, r);
    const after = regs.reg(b, r);
    if (count === null && before !== null && after !== null && w > 0n) {
      count = ((after - before) & M64) / w;
      if (string.rep) regs.set(t, RCX, count);
    }
  }
  if (count === null) return null;
  for (const r of moved) {
    const before = regs.reg(t, r);
    const after = regs.reg(b, r);
    if (before !== null) regs.set(b, r, (before + count * w) & M64);
    else if (after !== null) regs.set(t, r, (after - count * w) & M64);
  }
  const dst = regs.reg(t, RDI);
  const n = count * w;
  if (dst === null || n > BigInt(MAX_BLOCK)) return null;
  const src = string.op === 'movs' ? regs.reg(t, RSI) : null;
  return { op: string.op, dst: Number(dst), src: src === null ? NaN : Number(src), n: Number(n) };
}

/**
 * A block write, undone: before it the destination is unknown; a movs's
 * source held, before it, what the destination holds after (when they do
 * not overlap). An unknown block may have written anywhere: nothing known
 * survives.
 */
export function undoBlock(ov: MemoryOverlay, blk: StringBlock | null, core: CoreFile): void {
  if (blk === null) {
    ov.clear();
    return;
  }
  const copied: number[] = [];
  const overlap = !Number.isNaN(blk.src) && blk.src < blk.dst + blk.n && blk.dst < blk.src + blk.n;
  for (let i = 0; i < blk.n; i++) {
    if (blk.op === 'movs' && !Number.isNaN(blk.src) && !overlap) copied.push(ov.get(blk.dst + i) ?? core.byte(blk.dst + i));
    ov.set(blk.dst + i, -1);
  }
  for (let i = 0; i < copied.length; i++) if (copied[i] >= 0) ov.set(blk.src + i, copied[i]);
}

/** A block write, forward: bytes copied in order (rep movsb's overlapping semantics), or the fill value of `width` bytes from rax. */
export function doBlock(ov: MemoryOverlay, blk: StringBlock | null, width: number, rax: bigint | null): void {
  if (blk === null) {
    ov.clear();
    return;
  }
  for (let i = 0; i < blk.n; i++) {
    let v = -1;
    if (blk.op === 'movs') v = Number.isNaN(blk.src) ? -1 : ov.get(blk.src + i) ?? -1;
    else if (rax !== null) v = Number((rax >> BigInt((i % width) * 8)) & 0xffn);
    ov.set(blk.dst + i, v);
  }
}
