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
 * overflowed; else the first origins of pass 1, then the loads on the bad
 * value's way whose address an index from input chose (input-selection.ts).
 */
import { Mnemonic } from '../../flow/iced.js';
import { GPR_COUNT, RBP, RDI, REG_COUNT, RSP, regName, type InsnFacts } from './instruction-facts.js';
import type { LibraryCall } from './library-routines.js';
import type { HeapChunk } from './heap-chunks.js';
import { hex } from '../finding.js';
import type { FaultSpec, StepKind, TaintContext, TaintStep } from './taint-context.js';
import { inputSelections } from './input-selection.js';
import { danglingRead } from './stale-pointer.js';

export type { FaultSpec, HeapChunk, StepKind, TaintContext, TaintStep } from './taint-context.js';

export interface TaintResult {
  /** What the verdict depends on about stores whose address reverse execution could not recover. */
  aliasing: AliasAccount;
  steps: TaintStep[];
  /** Step indices of the root-cause set, best first. */
  rootCauses: number[];
  /** Things the walk could not establish, with the window index where it happened. */
  notes: { t: number; text: string }[];
  /** The pass that produced the root causes (1: values, 2: with addresses), or 0 for none. */
  pass: number;
}

/** Stores with unresolved addresses met while memory was tainted, by how each was settled. */
export interface AliasAccount {
  /** Excluded: the bytes it stores are not the tainted bytes' values (known from the core). */
  byValue: number;
  /** Excluded: every tainted byte lies in a heap object allocated after it. */
  byHeapLayout: number;
  /** Not excluded: assumed not to write the tainted bytes. */
  assumed: number;
}

const COPY_MNEMONICS = new Set<Mnemonic>([
  Mnemonic.Mov, Mnemonic.Movzx, Mnemonic.Movsx, Mnemonic.Movsxd, Mnemonic.Movdqu, Mnemonic.Movdqa, Mnemonic.Movups, Mnemonic.Movaps,
  Mnemonic.Movq, Mnemonic.Movd, Mnemonic.Vmovdqu, Mnemonic.Vmovdqa, Mnemonic.Vmovups, Mnemonic.Vmovaps, Mnemonic.Movlpd, Mnemonic.Movhpd,
  Mnemonic.Movsd, Mnemonic.Movss, Mnemonic.Push, Mnemonic.Pop, Mnemonic.Xchg, Mnemonic.Cmove, Mnemonic.Cmovne, Mnemonic.Cmovb,
  Mnemonic.Cmovae, Mnemonic.Cmova, Mnemonic.Cmovbe, Mnemonic.Cmovl, Mnemonic.Cmovge, Mnemonic.Cmovg, Mnemonic.Cmovle, Mnemonic.Cmovs, Mnemonic.Cmovns,
  Mnemonic.Vmovdqu8, Mnemonic.Vmovdqu64,
]);

const ARITH = new Set<Mnemonic>([Mnemonic.Add, Mnemonic.Sub, Mnemonic.Imul, Mnemonic.Shl, Mnemonic.Sal, Mnemonic.Lea, Mnemonic.Inc, Mnemonic.Dec, Mnemonic.Neg]);

class TaintSet {
  readonly regs = new Int32Array(REG_COUNT).fill(-1);
  readonly mem = new Map<number, number>();
  /** The value a tainted byte held where the walk took it up (from the core through reverse execution), if known. */
  readonly expect = new Map<number, number>();

  /** Taint [addr, addr+size) and remember its bytes, little-endian, when known. */
  taintValue(addr: number, size: number, step: number, value: bigint | null): void {
    this.taintMem(addr, size, step);
    if (value === null || size > 8) return;
    for (let i = 0; i < size; i++) this.expect.set(addr + i, Number((value >> BigInt(i * 8)) & 0xffn));
  }

  untaintMem(addr: number): void {
    this.mem.delete(addr);
    this.expect.delete(addr);
  }

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

/** Root causes that end the walk: memory written or read where the program had no object. */
const DEFINITE = new Set<StepKind>(['out-of-bounds', 'use-after-free']);

export function backwardTaint(ctx: TaintContext, fault: FaultSpec): TaintResult {
  const first = walk(ctx, fault, false);
  if (first.rootCauses.length > 0 && DEFINITE.has(first.steps[first.rootCauses[0]].kind)) return { ...first, pass: 1 };
  const second = walk(ctx, fault, true);
  if (second.rootCauses.length > 0 && DEFINITE.has(second.steps[second.rootCauses[0]].kind)) {
    return { ...second, notes: [...first.notes, ...second.notes], pass: 2 };
  }
  // No corruption: where the value was made (pass 1) may be a valid value of another object; a load
  // on its way whose address input chose picked that object, and is a root cause after the origins.
  const selected = inputSelections(ctx, fault, first.steps);
  if (selected.length === 0) return { ...first, pass: first.rootCauses.length > 0 ? 1 : 0 };
  const notes = first.notes;
  if (first.rootCauses.length === 0) notes.push({ t: ctx.facts.length - 1, text: 'the walk found no origin of the value the crash used: the root cause named is the load that input chose it by' });
  return { ...first, notes, rootCauses: [...first.rootCauses, ...selected], pass: first.rootCauses.length > 0 ? 1 : 2 };
}

function walk(ctx: TaintContext, fault: FaultSpec, followAddresses: boolean): TaintResult {
  const { facts, rev } = ctx;
  const n = facts.length;
  const steps: TaintStep[] = [{ t: n - 1, kind: 'crash', what: fault.what, next: -1 }];
  const notes: { t: number; text: string }[] = [];
  const taint = new TaintSet();
  for (const r of fault.regs) taint.taintReg(r, 0);
  if (fault.mem !== null) taint.taintValue(fault.mem.addr, fault.mem.size, 0, fault.mem.value ?? null);
  const origins: number[] = [];
  const oob: number[] = [];
  const aliasing: AliasAccount = { byValue: 0, byHeapLayout: 0, assumed: 0 };
  /** A load at t through the pointer in `reg` that reads a freed object (stale-pointer.ts): its free is the root cause. */
  const dangling = (t: number, reg: number, addr: number, next: number): boolean => {
    const c = danglingRead(ctx, t, reg, addr);
    if (c === null) return false;
    const reused = ctx.chunks.some((o) => o !== c && o.start === c.start && o.allocatedAt > c.freedAt && o.allocatedAt < t);
    steps.push({
      t: c.freedAt,
      kind: 'use-after-free',
      what: `frees the object at ${hex(c.start)} (${c.end - c.start} bytes); a pointer made before this free reads it at ${hex(addr)} later${reused ? ', after the memory was allocated again' : ''}`,
      next,
    });
    oob.push(steps.length - 1);
    return true;
  };
  const crashInsn = facts[n - 1];
  if (fault.mem !== null && crashInsn !== null && crashInsn.mem?.read && rev.addr[n - 1] === fault.mem.addr && dangling(n - 1, crashInsn.mem.base, fault.mem.addr, 0)) {
    return { steps, rootCauses: oob, notes, pass: 0, aliasing };
  }
  let unresolvedNoted = 0;
  const callEndingAt = new Map<number, LibraryCall>();
  for (const lc of ctx.libraryCalls) if (lc.ret - 1 > lc.call) callEndingAt.set(lc.ret - 1, lc);
  /** A store at t whose address is unknown: can it have written the tainted memory? */
  const unresolvedStore = (t: number, f: InsnFacts): void => {
    if (taint.mem.size === 0) return;
    const why = aliasExcluded(ctx, t, f, taint);
    if (why === 'value') aliasing.byValue++;
    else if (why === 'heap') aliasing.byHeapLayout++;
    else {
      aliasing.assumed++;
      if (unresolvedNoted < 3) {
        unresolvedNoted++;
        notes.push({ t, text: `store with an unresolved address (${f.text}): assumed not to write the tainted memory` });
      }
    }
  };
  /** The registers a summarised call leaves: its result, and the caller-saved ones it may clobber (SysV ABI). */
  const libraryCallResults = (lc: LibraryCall): void => {
    const hit = CALLER_SAVED.filter((r) => taint.regs[r] >= 0);
    if (hit.length === 0) return;
    const next = Math.max(...hit.map((r) => taint.regs[r]));
    for (const r of hit) taint.regs[r] = -1;
    const id = steps.length;
    if (hit.length === 1 && hit[0] === 0 && RETURNS_DESTINATION.has(lc.routine)) {
      steps.push({ t: lc.call, kind: 'copy', what: `${lc.routine} returns its destination, passed in rdi`, next });
      taint.taintReg(RDI, id);
    } else {
      steps.push({ t: lc.call, kind: 'origin', what: `${lc.routine} returns or clobbers ${hit.map(regName).join(', ')}`, next });
      origins.push(id);
    }
  };
  /** A block write (summarised library call or movs/stos) at t; true when it ends the walk. */
  const block = (t: number, b: Block): boolean => {
    const hit: number[] = [];
    let hitStep = -1;
    for (const [a, st] of taint.mem) {
      if (a >= b.dst && a < b.dst + b.n) {
        hit.push(a);
        hitStep = Math.max(hitStep, st);
      }
    }
    if (hit.length === 0) return false;
    hit.sort((x, y) => x - y);
    const id = steps.length;
    const range = `[${hex(b.dst)}, ${hex(b.dst + b.n)})`;
    const why = blockOutOfBounds(ctx, t, b, hit);
    if (why !== null) {
      steps.push({ t, kind: 'out-of-bounds', what: `${b.label} writes ${b.n} bytes to ${range}: ${why}`, next: hitStep });
      oob.push(id);
      for (const o of overflowsInAddress(ctx, t, true)) {
        steps.push({ t: o, kind: 'overflow', what: `integer overflow in the computation of the copy's destination or length (${facts[o]!.text})`, next: id });
        oob.push(steps.length - 1);
      }
      return true;
    }
    const copied = Number.isNaN(b.src) ? [] : hit.filter((a) => a - b.dst < b.n - b.zeros);
    for (const a of hit) {
      const e = taint.expect.get(a);
      taint.untaintMem(a);
      if (copied.includes(a)) {
        taint.taintMem(b.src + (a - b.dst), 1, id);
        if (e !== undefined) taint.expect.set(b.src + (a - b.dst), e);
      }
    }
    if (copied.length > 0) {
      steps.push({ t, kind: 'copy', what: `${b.label} copies ${range} from ${hex(b.src)}`, next: hitStep });
    } else {
      steps.push({ t, kind: 'origin', what: `${b.label} ${b.fill !== null ? `fills ${range} with the byte ${hex(b.fill)}` : `makes the bytes of ${range}`}`, next: hitStep });
      origins.push(id);
    }
    return false;
  };

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
    const lc = callEndingAt.get(t);
    if (lc !== undefined) {
      libraryCallResults(lc);
      if (block(lc.call, { dst: lc.dst, n: lc.n, src: lc.src, zeros: lc.zeros, fill: lc.fill, label: lc.routine, pointer: lc.dst })) break;
      for (const a of lc.assumes) notes.push({ t: lc.call, text: a });
      t = lc.call;
      continue;
    }
    if (f.mnemonic === Mnemonic.Syscall) {
      const w = rev.syscallWrites(t);
      if (w === 'anywhere') unresolvedStore(t, f);
      else if (w !== null && block(t, { dst: w.addr, n: w.n, src: NaN, zeros: 0, fill: null, label: `the ${w.name} system call`, pointer: w.addr })) break;
    }
    if (f.string !== null) {
      const blk = rev.block(t);
      if (blk === null) unresolvedStore(t, f);
      else if (block(t, { dst: blk.dst, n: blk.n, src: blk.op === 'movs' ? blk.src : NaN, zeros: 0, fill: blk.op === 'stos' ? Number((rev.reg(t, 0) ?? -1n) & 0xffn) : null, label: f.text, pointer: blk.dst })) break;
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
        unresolvedStore(t, f);
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
    if (memHit !== null) for (let i = 0; i < memHit.size; i++) taint.untaintMem(memHit.addr + i);
    if (stackHit) for (let i = 0; i < 8; i++) taint.untaintMem(rev.stackAddr[t] + i);

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
      if (!Number.isNaN(rev.stackAddr[t])) taint.taintValue(rev.stackAddr[t], 8, id, rev.stackValue(t));
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
          taint.taintValue(A, Math.max(1, m!.size), id, rev.readValue(t));
          steps.push({ t, kind: 'copy', what: `loaded from ${hex(A)}${isFreed(ctx, A, t) ? ' (freed heap memory)' : ''}`, next: hitStep });
          if (dangling(t, m!.base, A, id)) break;
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
      // (As a bigint: a constant past 2^53, text used as a pointer say, would round as a number.)
      what = `writes the constant 0x${BigInt.asUintN(64, v).toString(16)}`;
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
  return { steps, rootCauses, notes, pass: 0, aliasing };
}

/** A block of bytes written at once: a summarised call, or a movs/stos. */
interface Block {
  dst: number;
  n: number;
  /** Where the copied bytes came from, or NaN when the block makes them. */
  src: number;
  /** Trailing bytes that are zeros, not copied. */
  zeros: number;
  fill: number | null;
  label: string;
  /** The pointer the block was written through (its destination argument). */
  pointer: number;
}

/** rax, rcx, rdx, rsi, rdi, r8-r11 and every vector register: what a call may change (SysV ABI). */
const CALLER_SAVED = [0, 1, 2, 6, 7, 8, 9, 10, 11, ...Array.from({ length: REG_COUNT - GPR_COUNT }, (_, i) => GPR_COUNT + i)];
const RETURNS_DESTINATION = new Set(['memcpy', 'memmove', 'memset', 'strcpy', 'strncpy', 'strcat']);

/**
 * Why a block write at t is out of bounds for the object its pointer
 * meant, given the tainted bytes it wrote (`hit`), or null.
 */
function blockOutOfBounds(ctx: TaintContext, t: number, b: Block, hit: number[]): string | null {
  for (const s of ctx.controlSlots) {
    if (t > s.from && t < s.to && hit.some((a) => a >= s.addr && a < s.addr + 8)) {
      return `it overwrites the live ${s.what} at ${hex(s.addr)}: a stack buffer overflow`;
    }
  }
  const own = chunkAt(ctx, b.pointer, t);
  if (own !== null && hit.some((a) => a < own.start || a >= own.end)) {
    const target = chunkAt(ctx, hit[0], t);
    const into = target !== null && target !== own ? `, into the heap object at ${hex(target.start)}` : '';
    return `past the end of the heap object at ${hex(own.start)} (${own.end - own.start} bytes)${into}: a heap overflow`;
  }
  if (own === null) {
    const target = chunkAt(ctx, hit[0], t);
    if (target !== null && !(b.pointer >= target.start && b.pointer < target.end)) {
      return `into the heap object at ${hex(target.start)} through a pointer outside it: a heap overflow`;
    }
  }
  const slot = overwrittenCodePointer(ctx, t, hit, true);
  if (slot !== null) return slot;
  return null;
}

/**
 * A crash through a code pointer: the tainted bytes held, before t, a code
 * address that a traced store put there (a function pointer). Data that
 * replaces it is the corruption, even inside one object (a field overflow),
 * where heap bounds see nothing.
 */
function overwrittenCodePointer(ctx: TaintContext, t: number, hit: number[], block = false): string | null {
  if (!ctx.badTarget || hit.length === 0) return null;
  const { facts, rev } = ctx;
  const lo = hit[0];
  const hi = hit[hit.length - 1] + 1;
  for (let u = t - 1; u >= ctx.from; u--) {
    const f = facts[u];
    if (f === null || f.mem === null || !f.mem.write) continue;
    const A = rev.addr[u];
    if (Number.isNaN(A) || A >= hi || A + f.mem.size <= lo) continue;
    // The most recent earlier store to these bytes decides.
    const v = rev.writeValue(u);
    if (f.mem.size === 8 && v !== null && ctx.isCode(Number(v))) {
      return `it overwrites the code pointer ${hex(Number(v))} stored at ${hex(A)} (${instructionsBefore(t, u)} earlier) with data`;
    }
    return null;
  }
  // No earlier store to the slot in the window: it was made before the
  // window, or by another thread (a worker's trace starts at its creation).
  // A copy or string routine that put the data the branch then took as its
  // target ran over the slot: what a program copies into a code pointer
  // on purpose is a code address.
  if (block) return `it writes the data the crashing branch takes as its target over ${hex(lo)}, where no earlier store is traced (made before the window or by another thread)`;
  return null;
}

function instructionsBefore(t: number, u: number): string {
  return `${t - u} instructions`;
}

/**
 * Can a store at t whose address is unknown have written the tainted
 * bytes? 'value': no, none of the bytes it stores is the value a tainted
 * byte held afterwards (known from the core through reverse execution);
 * 'heap': no, every tainted byte lies in a heap object allocated after it
 * (assuming the program read none of that object before writing it);
 * null: it may have.
 */
function aliasExcluded(ctx: TaintContext, t: number, f: InsnFacts, taint: TaintSet): 'value' | 'heap' | null {
  const { rev } = ctx;
  let inLaterObjects = true;
  for (const a of taint.mem.keys()) {
    const c = chunkAt(ctx, a, ctx.facts.length);
    if (c === null || c.allocatedAt <= t) {
      inLaterObjects = false;
      break;
    }
  }
  if (inLaterObjects) return 'heap';
  const size = f.mem?.size ?? 0;
  if (size === 0 || size > 8) return null;
  const src = f.ops[1];
  let w: bigint | null = rev.writeValue(t);
  if (w === null && f.mnemonic === Mnemonic.Mov) {
    if (src?.kind === 'imm') w = src.value;
    else if (src?.kind === 'reg' && src.ref.reg < GPR_COUNT) {
      const full = rev.reg(t, src.ref.reg);
      w = full === null ? null : full >> BigInt(src.ref.shift * 8);
    }
  }
  if (w === null) return null;
  const bytes = new Set<number>();
  for (let i = 0; i < size; i++) bytes.add(Number((w >> BigInt(i * 8)) & 0xffn));
  for (const a of taint.mem.keys()) {
    const e = taint.expect.get(a);
    if (e === undefined || bytes.has(e)) return null;
  }
  return 'value';
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
  const hit: number[] = [];
  for (let i = 0; i < w.size; i++) hit.push(w.addr + i);
  const target = chunkAt(ctx, w.addr, t);
  const p = pointerProvenance(ctx, t);
  if (target !== null && p !== null) {
    const own = chunkAt(ctx, p, t);
    if (own !== null && own !== target) {
      return `writes ${hex(w.addr)} in the heap object at ${hex(target.start)}, through a pointer to the object at ${hex(own.start)} (${own.end - own.start} bytes): a heap overflow`;
    }
  }
  const global = globalOverflow(ctx, t, w);
  if (global !== null) return global;
  const code = overwrittenCodePointer(ctx, t, hit);
  return code === null ? null : `writes ${hex(w.addr)}: ${code}`;
}

/**
 * A store indexed from a global or static variable that lands outside it:
 * the address is computed from the variable (the base register holds an
 * address in it, or, without a base register, the displacement is one) and
 * the bytes written are not in it.
 */
function globalOverflow(ctx: TaintContext, t: number, w: { addr: number; size: number }): string | null {
  const m = ctx.facts[t]!.mem;
  if (m === null || m.seg !== null || (m.base < 0 && m.index < 0)) return null;
  let anchor = NaN;
  if (m.base >= 0 && m.base < GPR_COUNT) {
    const v = ctx.rev.reg(t, m.base);
    if (v !== null) anchor = Number(v);
  } else if (m.base < 0) anchor = Number(m.disp);
  if (Number.isNaN(anchor)) return null;
  const own = ctx.dataObjectAt(anchor);
  if (own === null || (w.addr >= own.start && w.addr + w.size <= own.end)) return null;
  const into = ctx.dataObjectAt(w.addr);
  const what = into !== null && into !== own && into.name !== own.name ? `, into \`${into.name}\`` : '';
  return `writes ${hex(w.addr)}, past the global \`${own.name}\` (${own.end - own.start} bytes) its address is computed from${what}: a global buffer overflow`;
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
function overflowsInAddress(ctx: TaintContext, t: number, isCallOfCopy = false): number[] {
  const { facts, rev } = ctx;
  const f = facts[t]!;
  const regs = new Set<number>();
  const mem = new Set<number>();
  if (isCallOfCopy) {
    // A summarised call at t: its destination and length arguments.
    for (const r of [RDI, 6, 2]) regs.add(r);
  } else if (ctx.callerOf[t] >= 0) {
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
