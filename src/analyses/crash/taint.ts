/**
 * Backward taint from the faulting operand to the instructions that made
 * the bad value (POMP's backward analysis, over the values that reverse
 * execution recovered).
 *
 * The walk goes from the crash back through the window. A location
 * (register, memory byte) is tainted while its value still matters; an
 * instruction that writes a tainted location becomes a step of the chain,
 * untaints what it wrote and taints what it read:
 * - a copy (mov, movzx/sx, push/pop, SSE moves) passes the taint to its
 *   source;
 * - anything that computes (arithmetic, lea, constants, unmodelled
 *   instructions) is an *origin*: the bad value was made there;
 * - a store that is out of bounds for its object ends the walk: it is the
 *   root cause (a store over a live return address or saved frame pointer;
 *   a store into a heap chunk other than the one its pointer came from).
 *
 * Pass 1 follows values only. If it finds no out-of-bounds store, pass 2
 * also follows the address registers of the loads on the way (a bad frame
 * pointer makes a good load read the wrong slot). Root-cause candidates:
 * out-of-bounds stores first, with any arithmetic in their address that
 * overflowed; else the first origin of pass 1.
 */
import { Mnemonic } from 'iced-x86';
import { GPR_COUNT, RBP, RDI, REG_COUNT, RSP, regName, type InsnFacts } from './instruction-facts.js';
import type { ReverseExecution } from './reverse-execution.js';

export type StepKind = 'crash' | 'copy' | 'origin' | 'out-of-bounds' | 'overflow';

export interface TaintStep {
  /** Index in the window. */
  t: number;
  kind: StepKind;
  /** What this step did with the bad value, in words. */
  what: string;
  /** The step this one feeds (toward the crash), or -1. */
  next: number;
}

export interface FaultSpec {
  /** Registers whose value is the bad value at the crash instruction. */
  regs: number[];
  /** Memory bytes holding the bad value at the crash instruction. */
  mem: { addr: number; size: number } | null;
  what: string;
  /**
   * Where the faulting slot's address came from, for pass 2: the
   * instruction at window index t set rsp from these registers (leave,
   * `mov rsp, rbp`), so a bad frame pointer there moved the slot.
   */
  slotAddressFrom?: { t: number; regs: number[] };
}

export interface HeapChunk {
  start: number;
  end: number;
  allocatedAt: number;
  freedAt: number;
}

export interface TaintContext {
  facts: readonly (InsnFacts | null)[];
  rev: ReverseExecution;
  /** First index the walk may reach (after the last gap). */
  from: number;
  /** For each t: the window index of the call in the main executable that (transitively) reached t, or -1 when t is in the main executable. */
  callerOf: Int32Array;
  chunks: HeapChunk[];
  /** Live control slots (return addresses, saved rbp) as [address, from t, to t). */
  controlSlots: { addr: number; from: number; to: number; what: string }[];
}

export interface TaintResult {
  steps: TaintStep[];
  /** Step indices of the root-cause set, best first. */
  rootCauses: number[];
  /** Things the walk could not establish, with the window index where it happened. */
  notes: { t: number; text: string }[];
  /** The pass that produced the root causes (1: values, 2: with addresses), or 0 for none. */
  pass: number;
}

const COPY_MNEMONICS = new Set<Mnemonic>([
  Mnemonic.Mov, Mnemonic.Movzx, Mnemonic.Movsx, Mnemonic.Movsxd, Mnemonic.Movdqu, Mnemonic.Movdqa, Mnemonic.Movups, Mnemonic.Movaps,
  Mnemonic.Movq, Mnemonic.Movd, Mnemonic.Vmovdqu, Mnemonic.Vmovdqa, Mnemonic.Vmovups, Mnemonic.Vmovaps, Mnemonic.Movlpd, Mnemonic.Movhpd,
  Mnemonic.Movsd, Mnemonic.Movss, Mnemonic.Push, Mnemonic.Pop, Mnemonic.Xchg, Mnemonic.Cmove, Mnemonic.Cmovne, Mnemonic.Cmovb,
  Mnemonic.Cmovae, Mnemonic.Cmova, Mnemonic.Cmovbe, Mnemonic.Cmovl, Mnemonic.Cmovge, Mnemonic.Cmovg, Mnemonic.Cmovle, Mnemonic.Cmovs, Mnemonic.Cmovns,
  Mnemonic.Vmovdqu8, Mnemonic.Vmovdqu64,
]);

const ARITH = new Set<Mnemonic>([Mnemonic.Add, Mnemonic.Sub, Mnemonic.Imul, Mnemonic.Shl, Mnemonic.Sal, Mnemonic.Lea, Mnemonic.Inc, Mnemonic.Dec, Mnemonic.Neg]);

function hex(v: number): string {
  return '0x' + v.toString(16);
}

class TaintSet {
  readonly regs = new Int32Array(REG_COUNT).fill(-1);
  readonly mem = new Map<number, number>();

  taintReg(r: number, step: number): void {
    if (r < 0 || r === RSP) return;
    this.regs[r] = step;
  }

  taintMem(addr: number, size: number, step: number): void {
    for (let i = 0; i < size; i++) this.mem.set(addr + i, step);
  }

  get empty(): boolean {
    return this.mem.size === 0 && this.regs.every((x) => x < 0);
  }
}

export function backwardTaint(ctx: TaintContext, fault: FaultSpec): TaintResult {
  const first = walk(ctx, fault, false);
  if (first.rootCauses.length > 0 && first.steps[first.rootCauses[0]].kind === 'out-of-bounds') return { ...first, pass: 1 };
  const second = walk(ctx, fault, true);
  if (second.rootCauses.length > 0 && second.steps[second.rootCauses[0]].kind === 'out-of-bounds') {
    return { ...second, notes: [...first.notes, ...second.notes], pass: 2 };
  }
  return { ...first, pass: first.rootCauses.length > 0 ? 1 : 0 };
}

function walk(ctx: TaintContext, fault: FaultSpec, followAddresses: boolean): TaintResult {
  const { facts, rev } = ctx;
  const n = facts.length;
  const steps: TaintStep[] = [{ t: n - 1, kind: 'crash', what: fault.what, next: -1 }];
  const notes: { t: number; text: string }[] = [];
  const taint = new TaintSet();
  for (const r of fault.regs) taint.taintReg(r, 0);
  if (fault.mem !== null) taint.taintMem(fault.mem.addr, fault.mem.size, 0);
  const origins: number[] = [];
  const oob: number[] = [];
  let unresolvedNoted = 0;

  for (let t = n - 2; t >= ctx.from; t--) {
    if (followAddresses && fault.slotAddressFrom && t === fault.slotAddressFrom.t - 1) {
      const id = steps.length;
      steps.push({ t: fault.slotAddressFrom.t, kind: 'copy', what: `sets the stack pointer from ${fault.slotAddressFrom.regs.map(regName).join(', ')}: the slot the crash read depends on it`, next: 0 });
      for (const r of fault.slotAddressFrom.regs) taint.taintReg(r, id);
    }
    if (taint.empty && !(followAddresses && fault.slotAddressFrom && t >= fault.slotAddressFrom.t - 1)) break;
    const f = facts[t];
    if (f === null) {
      notes.push({ t, text: 'an instruction could not be decoded here; the walk stops' });
      break;
    }
    // What of the tainted state does t write?
    let hitStep = -1;
    const hitRegs: number[] = [];
    for (const r of f.regsWritten) {
      if (r !== RSP && taint.regs[r] >= 0) {
        hitRegs.push(r);
        hitStep = Math.max(hitStep, taint.regs[r]);
      }
    }
    let memHit: { addr: number; size: number } | null = null;
    const m = f.mem;
    if (m !== null && m.write) {
      const A = rev.addr[t];
      if (Number.isNaN(A)) {
        if (taint.mem.size > 0 && unresolvedNoted < 3) {
          unresolvedNoted++;
          notes.push({ t, text: `store with an unresolved address (${f.text}): assumed not to write the tainted memory` });
        }
      } else {
        for (let i = 0; i < m.size; i++) {
          const s = taint.mem.get(A + i);
          if (s !== undefined) {
            memHit = { addr: A, size: m.size };
            hitStep = Math.max(hitStep, s);
          }
        }
      }
    }
    let stackHit = false;
    if (f.stack === 'push') {
      const S = rev.stackAddr[t];
      if (!Number.isNaN(S)) {
        for (let i = 0; i < 8; i++) {
          const s = taint.mem.get(S + i);
          if (s !== undefined) {
            stackHit = true;
            hitStep = Math.max(hitStep, s);
          }
        }
      }
    }
    if (hitStep < 0) continue;

    // Untaint what was written.
    for (const r of hitRegs) {
      const d = f.ops[0];
      const partial = d?.kind === 'reg' && d.ref.reg === r && d.ref.size < 4;
      if (!partial) taint.regs[r] = -1;
    }
    if (memHit !== null) for (let i = 0; i < memHit.size; i++) taint.mem.delete(memHit.addr + i);
    if (stackHit) for (let i = 0; i < 8; i++) taint.mem.delete(rev.stackAddr[t] + i);

    const id = steps.length;
    const src = f.ops[1];

    // A store out of bounds for its object ends the walk.
    if (memHit !== null || (stackHit && f.mnemonic !== Mnemonic.Call && f.mnemonic !== Mnemonic.Push)) {
      const why = outOfBounds(ctx, t, memHit ?? { addr: rev.stackAddr[t], size: 8 });
      if (why !== null) {
        steps.push({ t, kind: 'out-of-bounds', what: why, next: hitStep });
        oob.push(id);
        for (const o of overflowsInAddress(ctx, t)) {
          steps.push({ t: o, kind: 'overflow', what: `integer overflow in the computation of the store's address (${facts[o]!.text})`, next: id });
          oob.push(steps.length - 1);
        }
        break;
      }
    }

    if (f.isCall && stackHit) {
      steps.push({ t, kind: 'origin', what: 'the return address was pushed by this call and not overwritten afterwards', next: hitStep });
      origins.push(id);
      continue;
    }
    const isCopy = COPY_MNEMONICS.has(f.mnemonic) && !(src?.kind === 'imm') && !(f.mnemonic === Mnemonic.Push && f.ops[0]?.kind === 'imm');
    if (f.stack === 'pop' && !f.isRet) {
      steps.push({ t, kind: 'copy', what: `popped from the stack slot ${hex(rev.stackAddr[t])}`, next: hitStep });
      if (!Number.isNaN(rev.stackAddr[t])) taint.taintMem(rev.stackAddr[t], 8, id);
      else notes.push({ t, text: 'pop from an unknown stack address: the walk loses this value' });
      continue;
    }
    if (f.stack === 'leave' && hitRegs.includes(RBP)) {
      steps.push({ t, kind: 'copy', what: `frame pointer restored from ${hex(rev.stackAddr[t])}`, next: hitStep });
      if (!Number.isNaN(rev.stackAddr[t])) taint.taintMem(rev.stackAddr[t], 8, id);
      continue;
    }
    if (isCopy) {
      const from = f.mnemonic === Mnemonic.Push ? f.ops[0] : src;
      if (from?.kind === 'reg') {
        taint.taintReg(from.ref.reg, id);
        steps.push({ t, kind: 'copy', what: `copied from ${regName(from.ref.reg)}`, next: hitStep });
      } else if (from?.kind === 'mem') {
        const A = rev.addr[t];
        if (!Number.isNaN(A)) {
          taint.taintMem(A, Math.max(1, m!.size), id);
          steps.push({ t, kind: 'copy', what: `loaded from ${hex(A)}${isFreed(ctx, A, t) ? ' (freed heap memory)' : ''}`, next: hitStep });
        } else {
          steps.push({ t, kind: 'copy', what: 'loaded from an address reverse execution could not recover', next: hitStep });
          notes.push({ t, text: `load from an unresolved address (${f.text}): the walk loses this value` });
        }
        if (followAddresses && m !== null) {
          if (m.base >= 0 && m.base !== RSP && m.base < GPR_COUNT) taint.taintReg(m.base, id);
          if (m.index >= 0 && m.index < GPR_COUNT) taint.taintReg(m.index, id);
        }
      } else {
        steps.push({ t, kind: 'copy', what: 'copied', next: hitStep });
      }
      continue;
    }
    // Arithmetic that left the value as one of its operands (x + 0, lea [x+0]) passes it on.
    const d0 = f.ops[0];
    if ((f.mnemonic === Mnemonic.Add || f.mnemonic === Mnemonic.Sub || f.mnemonic === Mnemonic.Lea) && d0?.kind === 'reg' && d0.ref.size === 8) {
      const res = rev.reg(t + 1, d0.ref.reg);
      const operands = f.mnemonic === Mnemonic.Lea ? [m!.base, m!.index] : [d0.ref.reg, src?.kind === 'reg' ? src.ref.reg : -1];
      const same = res === null || (f.mnemonic === Mnemonic.Lea && m!.disp !== 0n) ? [] : operands.filter((r) => r >= 0 && r < GPR_COUNT && rev.reg(t, r) === res);
      const others = operands.filter((r) => r >= 0 && r < GPR_COUNT && !same.includes(r));
      if (same.length > 0 && others.every((r) => rev.reg(t, r) === 0n)) {
        for (const r of same) taint.taintReg(r, id);
        steps.push({ t, kind: 'copy', what: `passes the value of ${same.map(regName).join(' and ')} on unchanged`, next: hitStep });
        continue;
      }
    }
    // Everything else makes the value.
    const zeroing = (f.mnemonic === Mnemonic.Xor || f.mnemonic === Mnemonic.Sub) && src?.kind === 'reg' && f.ops[0]?.kind === 'reg' && src.ref.reg === f.ops[0].ref.reg;
    let what: string;
    if (zeroing || src?.kind === 'imm' && f.mnemonic === Mnemonic.Mov) {
      const v = zeroing ? 0n : (src as { value: bigint }).value;
      what = `writes the constant ${hex(Number(BigInt.asUintN(64, v)))}`;
    } else if (ARITH.has(f.mnemonic)) {
      const ov = rev.overflowed(t);
      what = `computes the value (${f.name.toLowerCase()})${ov ? ', with a signed overflow' : ''}`;
    } else {
      what = `produces the value (${f.name.toLowerCase()}: not followed further)`;
    }
    steps.push({ t, kind: 'origin', what, next: hitStep });
    origins.push(id);
    // Keep following arithmetic on pointers that live on: the origins of its operands rank lower.
    if (!zeroing && ARITH.has(f.mnemonic) && origins.length < 4) {
      for (const r of f.regsRead) if (r !== RSP) taint.taintReg(r, id);
      if (m !== null && m.read && !Number.isNaN(rev.addr[t])) taint.taintMem(rev.addr[t], m.size, id);
    }
  }
  // The first origins on each path from the crash: no other origin lies between them and the crash.
  const firstOrigins = origins.filter((i) => {
    for (let j = steps[i].next; j >= 0; j = steps[j].next) if (steps[j].kind === 'origin') return false;
    return true;
  });
  const rootCauses = oob.length > 0 ? oob : firstOrigins.slice(0, 3);
  return { steps, rootCauses, notes, pass: 0 };
}

function isFreed(ctx: TaintContext, addr: number, t: number): boolean {
  return ctx.chunks.some((c) => addr >= c.start && addr < c.end && c.freedAt >= 0 && c.freedAt < t);
}

function chunkAt(ctx: TaintContext, addr: number, t: number): HeapChunk | null {
  let best: HeapChunk | null = null;
  for (const c of ctx.chunks) {
    if (addr >= c.start && addr < c.end && c.allocatedAt <= t && (best === null || c.allocatedAt > best.allocatedAt)) best = c;
  }
  return best;
}

/** Why the store at t to [addr, addr+size) is out of bounds for its object, or null. */
function outOfBounds(ctx: TaintContext, t: number, w: { addr: number; size: number }): string | null {
  const f = ctx.facts[t]!;
  if (f.isCall || f.mnemonic === Mnemonic.Push) return null;
  for (const s of ctx.controlSlots) {
    if (t > s.from && t < s.to && s.addr < w.addr + w.size && w.addr < s.addr + 8) {
      return `writes ${hex(w.addr)}, the live ${s.what} of a frame: a stack buffer overflow`;
    }
  }
  const target = chunkAt(ctx, w.addr, t);
  const p = pointerProvenance(ctx, t);
  if (target !== null && p !== null) {
    const own = chunkAt(ctx, p, t);
    if (own !== null && own !== target) {
      return `writes ${hex(w.addr)} in the heap object at ${hex(target.start)}, through a pointer to the object at ${hex(own.start)} (${own.end - own.start} bytes): a heap overflow`;
    }
  }
  return null;
}

/**
 * The pointer a store at t goes through: in a library call, its first
 * argument (rdi at the call); in the program, the base register traced back
 * through moves, adds and lea to the pointer it was loaded as.
 */
function pointerProvenance(ctx: TaintContext, t: number): number | null {
  const { rev, facts } = ctx;
  const c = ctx.callerOf[t];
  if (c >= 0) {
    const v = rev.reg(c, RDI);
    return v === null ? null : Number(v);
  }
  const m = facts[t]!.mem;
  if (m === null) return null;
  // The operand of an address computation that points into a known heap object.
  const pointerAmong = (u: number, regs: number[]): number | null => {
    for (const r of regs) {
      if (r < 0 || r >= GPR_COUNT) continue;
      const v = rev.reg(u, r);
      if (v !== null && chunkAt(ctx, Number(v), u) !== null) return Number(v);
    }
    return null;
  };
  // The address itself points into the object written; where the pointer came from says which object was meant.
  const direct = pointerAmong(t, [m.base, m.index]);
  let regs = [m.base, m.index].filter((r) => r >= 0);
  for (let u = t - 1; u >= Math.max(ctx.from, t - 40) && regs.length > 0; u--) {
    const f = facts[u];
    if (f === null) break;
    const hit = regs.filter((r) => f.regsWritten.includes(r));
    if (hit.length === 0) continue;
    const d = f.ops[0];
    const s = f.ops[1];
    const rest = regs.filter((r) => !hit.includes(r));
    if (f.mnemonic === Mnemonic.Mov && s?.kind === 'reg') regs = [...rest, s.ref.reg];
    else if (f.mnemonic === Mnemonic.Mov && s?.kind === 'mem') {
      const v = rev.readValue(u);
      if (v !== null && chunkAt(ctx, Number(v), u) !== null) return Number(v);
      regs = rest;
    } else if ((f.mnemonic === Mnemonic.Add || f.mnemonic === Mnemonic.Sub) && d?.kind === 'reg') {
      const p = pointerAmong(u, [d.ref.reg, s?.kind === 'reg' ? s.ref.reg : -1]);
      if (p !== null) return p;
      regs = [...rest, d.ref.reg, ...(s?.kind === 'reg' ? [s.ref.reg] : [])];
    } else if (f.mnemonic === Mnemonic.Lea && f.mem !== null) {
      const p = pointerAmong(u, [f.mem.base, f.mem.index]);
      if (p !== null) return p;
      regs = [...rest, f.mem.base, f.mem.index].filter((r) => r >= 0);
    } else regs = rest;
  }
  return direct;
}

/** Arithmetic with a signed overflow among the instructions that computed the address of the store at t. */
function overflowsInAddress(ctx: TaintContext, t: number): number[] {
  const { facts, rev } = ctx;
  const f = facts[t]!;
  const regs = new Set<number>();
  const mem = new Set<number>();
  if (ctx.callerOf[t] >= 0) {
    // In a library call: the arguments of the call into it.
    for (const r of [RDI, 6, 2]) regs.add(r);
    t = ctx.callerOf[t];
  } else if (f.mem !== null) {
    if (f.mem.base >= 0) regs.add(f.mem.base);
    if (f.mem.index >= 0) regs.add(f.mem.index);
  }
  regs.delete(RSP);
  regs.delete(RBP);
  const out: number[] = [];
  for (let u = t - 1; u >= Math.max(ctx.from, t - 200) && (regs.size > 0 || mem.size > 0); u--) {
    const g = facts[u];
    if (g === null) break;
    let hit = g.regsWritten.some((r) => regs.has(r));
    const A = rev.addr[u];
    if (g.mem?.write && !Number.isNaN(A)) for (let i = 0; i < g.mem.size; i++) if (mem.has(A + i)) hit = true;
    if (!hit) continue;
    for (const r of g.regsWritten) regs.delete(r);
    if (g.mem?.write && !Number.isNaN(A)) for (let i = 0; i < g.mem.size; i++) mem.delete(A + i);
    if (rev.overflowed(u) === true) out.push(u);
    for (const r of g.regsRead) if (r !== RSP && r !== RBP && r < GPR_COUNT) regs.add(r);
    if (g.mem?.read && !Number.isNaN(A) && g.mnemonic !== Mnemonic.Lea) for (let i = 0; i < g.mem.size; i++) mem.add(A + i);
  }
  return out;
}
