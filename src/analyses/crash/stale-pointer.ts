/**
 * Use after free through a dangling pointer: a load at t reads a heap
 * object that was freed before t, through a pointer that the program held
 * before that free. Whether the memory was handed out again (and filled
 * with other data) or still holds the allocator's metadata, the bad value
 * comes from reading freed memory; the free is where the object died
 * under the pointer.
 *
 * A pointer's birth is found by following its value backward through plain
 * copies (register moves, stores and loads at recovered addresses, push and
 * pop) to the instruction that made it (a malloc's result, an lea, ...).
 * A pointer born after the free (the new allocation's own result) is not
 * dangling, even at the same address.
 */
import { Mnemonic } from '../../flow/iced.js';
import type { HeapChunk } from './heap-chunks.js';
import { GPR_COUNT, RSP, type InsnFacts } from './instruction-facts.js';
import type { ReverseExecution } from './reverse-execution.js';

/** What the walk needs of the taint's context. */
export interface PointerContext {
  facts: readonly (InsnFacts | null)[];
  rev: ReverseExecution;
  /** First window index the walk may reach. */
  from: number;
  chunks: readonly HeapChunk[];
}

/** Copies followed back, and instructions walked, per pointer. */
const MAX_HOPS = 256;
const MAX_WALK = 1_000_000;

type Location = { reg: number } | { addr: number };

/**
 * The window index where the 64-bit value in `reg` before t was made, -1 if
 * it was already there at the window's start, or null when a copy on the
 * way cannot be followed (an unrecovered address).
 */
export function pointerBirth(ctx: PointerContext, t: number, reg: number): number | null {
  const { facts, rev } = ctx;
  let loc: Location = { reg };
  let hops = 0;
  for (let u = t - 1, walked = 0; u >= ctx.from && walked < MAX_WALK; u--, walked++) {
    const f = facts[u];
    if (f === null) return null;
    if ('reg' in loc) {
      if (!f.regsWritten.includes(loc.reg)) continue;
      if (++hops > MAX_HOPS) return null;
      const d = f.ops[0];
      const s = f.ops[1];
      if (f.mnemonic === Mnemonic.Mov && d?.kind === 'reg' && d.ref.size === 8 && s?.kind === 'reg' && s.ref.size === 8 && s.ref.reg < GPR_COUNT) {
        loc = { reg: s.ref.reg };
      } else if (f.mnemonic === Mnemonic.Mov && d?.kind === 'reg' && d.ref.size === 8 && s?.kind === 'mem') {
        const A = rev.addr[u];
        if (Number.isNaN(A)) return null;
        loc = { addr: A };
      } else if (f.stack === 'pop' && !f.isRet && d?.kind === 'reg' && d.ref.reg === loc.reg) {
        const S = rev.stackAddr[u];
        if (Number.isNaN(S)) return null;
        loc = { addr: S };
      } else {
        return u;
      }
    } else {
      const X = loc.addr;
      const overlaps = (a: number, size: number): boolean => !Number.isNaN(a) && a < X + 8 && X < a + size;
      const m = f.mem;
      const blk = rev.block(u);
      if (blk !== null && overlaps(blk.dst, blk.n)) return u;
      if (f.stack === 'push' && overlaps(rev.stackAddr[u], 8)) {
        if (++hops > MAX_HOPS) return null;
        const s = f.ops[0];
        if (f.mnemonic === Mnemonic.Push && s?.kind === 'reg' && s.ref.size === 8 && s.ref.reg !== RSP && rev.stackAddr[u] === X) loc = { reg: s.ref.reg };
        else return u;
        continue;
      }
      if (m === null || !m.write || !overlaps(rev.addr[u], m.size)) continue;
      if (++hops > MAX_HOPS) return null;
      const s = f.ops[1];
      if (f.mnemonic === Mnemonic.Mov && m.size === 8 && rev.addr[u] === X && s?.kind === 'reg' && s.ref.size === 8 && s.ref.reg < GPR_COUNT) loc = { reg: s.ref.reg };
      else return u;
    }
  }
  return -1;
}

/**
 * The heap object that the load at t, through the pointer in `reg`, reads
 * after it was freed, or null. Only objects allocated and freed by the
 * program's calls in the window count; the pointer must be older than the
 * free.
 */
export function danglingRead(ctx: PointerContext, t: number, reg: number, addr: number): HeapChunk | null {
  if (reg < 0 || reg >= GPR_COUNT || reg === RSP || Number.isNaN(addr)) return null;
  const freed = ctx.chunks.filter((c) => addr >= c.start && addr < c.end && c.freedAt >= 0 && c.freedAt < t);
  if (freed.length === 0) return null;
  const birth = pointerBirth(ctx, t, reg);
  if (birth === null) return null;
  // The latest free the pointer outlived.
  let hit: HeapChunk | null = null;
  for (const c of freed) if (birth < c.freedAt && (hit === null || c.freedAt > hit.freedAt)) hit = c;
  return hit;
}
