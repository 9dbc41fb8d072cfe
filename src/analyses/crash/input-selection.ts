/**
 * Address dependences of the faulting value (POMP and REPT follow both a
 * value's data and the address it was loaded from): the value a crash used
 * was loaded from memory, through a pointer that may itself have been
 * loaded. When the element read was chosen by an index or offset computed
 * from input (`objs[i]`, `table + i`), the object the program used was
 * picked by that input: a type confusion, or a lookup past what the table
 * holds, has its root cause there and not where the value was made.
 *
 * 1. The load chain: from the faulting value back through copies (moves,
 *    loads, stores, push/pop) and, at each load, through its base register
 *    (the pointer it read through) and the pointer operand of pointer
 *    arithmetic (add, sub, lea). Anything that computes ends a path.
 * 2. At each load's index register, and at each offset added to a pointer
 *    on the chain: the offset's backward data slice (every operand, values
 *    not pointers) reaches input when it reaches bytes a system call wrote
 *    (read, recvfrom...), a value made inside the program's call of one of
 *    libc's readers (scanf, fgets, read: library-routines.ts readsInput), or
 *    bytes on the stack above where the window starts that no traced
 *    instruction wrote (at exec, the kernel's argv, environment and
 *    auxiliary vector). A slice that ends in constants, in the program's
 *    own images or where reverse execution lost an address chose nothing
 *    from input that this can show.
 *
 * Selections rank after the value's origins (taint.ts): both are causes,
 * and which one is the bug depends on what the program meant.
 */
import { Mnemonic } from '../../flow/iced.js';
import { GPR_COUNT, RSP, regName, type InsnFacts, type MemOperand } from './instruction-facts.js';
import { hex } from '../finding.js';
import type { FaultSpec, TaintContext, TaintStep } from './taint-context.js';

/** Selections named at most (the nearest to the crash first). */
const MAX_SELECTIONS = 2;

const COPIES = new Set<Mnemonic>([
  Mnemonic.Mov, Mnemonic.Movzx, Mnemonic.Movsx, Mnemonic.Movsxd, Mnemonic.Movq, Mnemonic.Movd, Mnemonic.Xchg, Mnemonic.Push, Mnemonic.Pop,
]);

/**
 * Loads (or pointer additions) on the faulting value's load chain whose
 * address an input-derived index chose, as steps appended to `steps` (whose
 * step 0 is the crash); returns their indices, nearest to the crash first.
 */
export function inputSelections(ctx: TaintContext, fault: FaultSpec, steps: TaintStep[]): number[] {
  const { facts, rev } = ctx;
  const n = facts.length;
  const regs = new Map<number, number>();
  const mem = new Map<number, number>();
  const out: number[] = [];
  for (const r of fault.regs) if (r !== RSP && r < GPR_COUNT) regs.set(r, 0);
  if (fault.mem !== null) for (let i = 0; i < fault.mem.size; i++) mem.set(fault.mem.addr + i, 0);
  /** A load's or an address computation's offsets at t: a selection when one comes from input. */
  const select = (t: number, offsets: number[], next: number, what: string, noun: string): void => {
    for (const r of offsets) {
      if (out.length >= MAX_SELECTIONS || r < 0 || r >= GPR_COUNT || r === RSP) continue;
      const source = inputSource(ctx, t, r);
      if (source === null) continue;
      const v = rev.reg(t, r);
      steps.push({ t, kind: 'selection', what: `${what}: the ${noun} ${regName(r)}${v === null ? '' : ` = ${BigInt.asIntN(64, v)}`} comes from input (${source}), so input chose the object the crash used`, next });
      out.push(steps.length - 1);
      return;
    }
  };
  const crash = facts[n - 1];
  // The crash instruction's own load (a call or jump through memory): its address registers lead on.
  if (crash?.mem?.read && fault.mem !== null && rev.addr[n - 1] === fault.mem.addr && crash.mem.seg === null) {
    const { pointer, offsets } = splitAddress(ctx, n - 1, crash.mem);
    select(n - 1, offsets, 0, `the crash reads its target at ${hex(fault.mem.addr)}`, 'index');
    if (pointer >= 0 && pointer !== RSP) regs.set(pointer, 0);
  }
  for (let t = n - 2; t >= ctx.from && (regs.size > 0 || mem.size > 0) && out.length < MAX_SELECTIONS; t--) {
    const f = facts[t];
    if (f === null) break;
    let next = -1;
    for (const r of f.regsWritten) {
      const s = regs.get(r);
      if (s !== undefined) {
        next = Math.max(next, s);
        regs.delete(r);
      }
    }
    const A = rev.addr[t];
    const written = f.mem?.write && !Number.isNaN(A) ? { addr: A, size: f.mem.size } : f.stack === 'push' && !Number.isNaN(rev.stackAddr[t]) ? { addr: rev.stackAddr[t], size: 8 } : null;
    if (written !== null) {
      for (let i = 0; i < written.size; i++) {
        const s = mem.get(written.addr + i);
        if (s !== undefined) {
          next = Math.max(next, s);
          mem.delete(written.addr + i);
        }
      }
    }
    if (next < 0 || f.isCall) continue;
    const id = steps.length;
    const m = f.mem;
    const src = f.mnemonic === Mnemonic.Push ? f.ops[0] : f.ops[1];
    if (f.stack === 'pop' && !f.isRet) {
      if (Number.isNaN(rev.stackAddr[t])) continue;
      steps.push({ t, kind: 'copy', what: `popped from the stack slot ${hex(rev.stackAddr[t])}`, next });
      for (let i = 0; i < 8; i++) mem.set(rev.stackAddr[t] + i, id);
    } else if (COPIES.has(f.mnemonic) && src?.kind === 'reg') {
      steps.push({ t, kind: 'copy', what: `copied from ${regName(src.ref.reg)}`, next });
      if (src.ref.reg !== RSP) regs.set(src.ref.reg, id);
    } else if (COPIES.has(f.mnemonic) && src?.kind === 'mem' && m !== null && m.read && m.seg === null) {
      // An address reverse execution could not recover still has the registers it was made of.
      steps.push({ t, kind: 'copy', what: Number.isNaN(A) ? 'loaded from an address reverse execution could not recover' : `loaded from ${hex(A)}`, next });
      if (!Number.isNaN(A)) for (let i = 0; i < Math.max(1, m.size); i++) mem.set(A + i, id);
      const { pointer, offsets } = splitAddress(ctx, t, m);
      select(t, offsets, next, Number.isNaN(A) ? 'reads through an index' : `reads ${hex(A)} through an index`, 'index');
      if (pointer >= 0 && pointer !== RSP) regs.set(pointer, id);
    } else if ((f.mnemonic === Mnemonic.Add || f.mnemonic === Mnemonic.Sub || f.mnemonic === Mnemonic.Lea) && f.ops[0]?.kind === 'reg' && f.ops[0].ref.size === 8) {
      // Pointer arithmetic: the operand that points into mapped memory leads on; the others are offsets into it.
      const lea = f.mnemonic === Mnemonic.Lea;
      const operands = (lea ? [m!.base, m!.index] : [f.ops[0].ref.reg, src?.kind === 'reg' ? src.ref.reg : -1]).filter((r) => r >= 0 && r < GPR_COUNT);
      if (lea && m!.base < 0) {
        // [index*scale + table]: the displacement is the table (a non-PIE global), the index the offset; without one, a scaled index.
        if (m!.disp !== 0n) select(t, operands, next, `indexes the table at ${hex(Number(m!.disp))}`, 'index');
        continue;
      }
      // A constant offset (a field: add rax, 8; lea rax, [rax+8]) leaves the one register as the pointer.
      const pointers = operands.length === 1 ? operands : operands.filter((r) => r === RSP || isPointer(ctx, rev.reg(t, r)));
      if (pointers.length !== 1) continue;
      steps.push({ t, kind: 'copy', what: `computes a pointer from ${regName(pointers[0])}`, next });
      select(t, operands.filter((r) => r !== pointers[0]), next, `adds an offset to the pointer in ${regName(pointers[0])}`, 'offset');
      if (pointers[0] !== RSP) regs.set(pointers[0], id);
    }
  }
  return out;
}

/**
 * Which register of a memory operand is the pointer and which are offsets
 * into what it points to. A scaled register is an offset. With scale 1 the
 * encoding does not say (gcc -O0 reads \`table[i]\` as [offset + table] as
 * well as [table + offset]): the one whose value points into mapped memory
 * is the pointer; if values do not settle it, the base. No pointer (-1):
 * the displacement is the table, every register an offset.
 */
function splitAddress(ctx: TaintContext, t: number, m: MemOperand): { pointer: number; offsets: number[] } {
  const valid = (r: number): boolean => r >= 0 && r < GPR_COUNT;
  const base = valid(m.base) ? m.base : -1;
  const index = valid(m.index) ? m.index : -1;
  if (base < 0) return { pointer: -1, offsets: index < 0 ? [] : [index] };
  if (index < 0) return { pointer: base, offsets: [] };
  if (m.scale === 1 && base !== RSP && !isPointer(ctx, ctx.rev.reg(t, base)) && isPointer(ctx, ctx.rev.reg(t, index))) return { pointer: index, offsets: [base] };
  return { pointer: base, offsets: [index] };
}

/** A value that points into mapped memory (a small integer or an unknown value does not). */
function isPointer(ctx: TaintContext, v: bigint | null): boolean {
  return v !== null && v >= 0x10000n && v < 1n << 53n && ctx.isMapped(Number(v));
}

/** Bound on the bytes and registers one slice may hold (a slice that grows past it is given up). */
const MAX_SLICE = 1 << 16;

/**
 * Where the value of register `reg` at t came from, when its backward data
 * slice reaches input: the system call that wrote the bytes, or the stack
 * above the window's start. Null when it ends in constants or in memory the
 * program's images hold.
 *
 * A store whose address reverse execution could not recover (one through a
 * pointer taken from a va_list, say: scanf's conversions) is taken as the
 * writer of tainted bytes when it stores exactly their value, as loaded,
 * and no other run of tainted bytes holds it: the nearest such store.
 */
export function inputSource(ctx: TaintContext, t: number, reg: number): string | null {
  const { facts, rev } = ctx;
  const regs = new Set<number>([reg]);
  /** Tainted bytes, with the value each held when the slice took it up (-1: unknown). */
  const mem = new Map<number, number>();
  const taintBytes = (addr: number, size: number, value: bigint | null): void => {
    for (let i = 0; i < size; i++) mem.set(addr + i, value === null || size > 8 ? -1 : Number((value >> BigInt(i * 8)) & 0xffn));
  };
  for (let u = t - 1; u >= ctx.from && (regs.size > 0 || mem.size > 0); u--) {
    const f = facts[u];
    if (f === null) return null;
    if (f.mnemonic === Mnemonic.Syscall) {
      const w = rev.syscallWrites(u);
      if (w !== null && w !== 'anywhere') for (const a of mem.keys()) if (a >= w.addr && a < w.addr + w.n) return `the ${w.name} system call`;
    }
    if (f.string !== null) {
      const b = rev.block(u);
      if (b === null) continue;
      let hit = false;
      for (const [a, e] of [...mem]) {
        if (a < b.dst || a >= b.dst + b.n) continue;
        mem.delete(a);
        hit = true;
        if (b.op === 'movs') mem.set(b.src + (a - b.dst), e);
      }
      if (hit && b.op === 'stos') regs.add(0);
      continue;
    }
    let hit = false;
    for (const r of f.regsWritten) if (regs.delete(r)) hit = true;
    const A = f.mem?.write ? rev.addr[u] : f.stack === 'push' ? rev.stackAddr[u] : NaN;
    const size = f.mem?.write ? f.mem.size : 8;
    if (!Number.isNaN(A)) {
      for (let i = 0; i < size; i++) if (mem.delete(A + i)) hit = true;
    } else if (f.mem?.write && f.mnemonic === Mnemonic.Mov) {
      const run = storedRun(ctx, u, f, mem);
      if (run !== null) {
        for (let i = 0; i < size; i++) mem.delete(run + i);
        hit = true;
      }
    }
    if (!hit || f.isCall) continue;
    // Made inside the program's call of a reader of input (scanf's conversion, fgets's copy): input, whatever its internals.
    const reader = ctx.callerOf[u] >= 0 ? ctx.inputCall(ctx.callerOf[u]) : null;
    if (reader !== null) return `the call of ${reader}`;
    for (const r of sliceSources(f)) if (r !== RSP) regs.add(r);
    const m = f.mem;
    if (f.stack === 'pop' && !f.isRet) {
      if (!Number.isNaN(rev.stackAddr[u])) taintBytes(rev.stackAddr[u], 8, rev.stackValue(u));
    } else if (m?.read && f.mnemonic !== Mnemonic.Lea && !Number.isNaN(rev.addr[u])) {
      taintBytes(rev.addr[u], Math.max(1, m.size), rev.readValue(u));
    }
    if (regs.size + mem.size > MAX_SLICE) return null;
  }
  if (ctx.initialStack === null) return null;
  const { start, end } = ctx.initialStack;
  for (const a of mem.keys()) if (a >= start && a < end) return 'bytes on the stack before the window, as the program\'s arguments and environment';
  return null;
}

/** The one run of tainted bytes whose loaded value the `mov` store at u (address unknown) stores, or null. */
function storedRun(ctx: TaintContext, u: number, f: InsnFacts, mem: Map<number, number>): number | null {
  const size = f.mem!.size;
  if (size < 1 || size > 8) return null;
  const src = f.ops[1];
  let w = ctx.rev.writeValue(u);
  if (w === null && src?.kind === 'imm') w = src.value;
  if (w === null && src?.kind === 'reg' && src.ref.reg < GPR_COUNT) {
    const full = ctx.rev.reg(u, src.ref.reg);
    w = full === null ? null : full >> BigInt(src.ref.shift * 8);
  }
  if (w === null) return null;
  let found: number | null = null;
  for (const a of mem.keys()) {
    // Runs start where the byte below is not tainted (a variable's first byte).
    if (mem.has(a - 1)) continue;
    let same = true;
    for (let i = 0; i < size && same; i++) same = mem.get(a + i) === Number((w >> BigInt(i * 8)) & 0xffn);
    if (!same || mem.has(a + size)) continue;
    if (found !== null) return null;
    found = a;
  }
  return found;
}

/** The registers whose values an instruction's result is made of: its operands, not the base of the address it reads. */
function sliceSources(f: InsnFacts): number[] {
  const src = f.ops[1];
  if (f.mnemonic === Mnemonic.Mov && src?.kind === 'imm') return [];
  if ((f.mnemonic === Mnemonic.Xor || f.mnemonic === Mnemonic.Sub) && src?.kind === 'reg' && f.ops[0]?.kind === 'reg' && src.ref.reg === f.ops[0].ref.reg) return [];
  const m = f.mem;
  if (m === null || f.mnemonic === Mnemonic.Lea) return f.regsRead;
  // A value read from a table by an index depends on the index; the base only says where the table is,
  // and a store's address says nothing of the value it stores.
  return f.regsRead.filter((r) => (r !== m.base && r !== m.index) || (m.read && r === m.index));
}
