/**
 * Reverse execution (REPT, OSDI 2018; POMP, USENIX Security 2017): the
 * trace gives the executed instructions, the core gives the registers and
 * memory at the end; this recovers register values and memory addresses at
 * earlier points.
 *
 * Values live per program point: `state t` is the register file before
 * instruction t (t = n is the core). Passes alternate:
 * - backward (t = n-1 .. 0): registers an instruction does not write keep
 *   their value; written ones are recovered where the operation can be
 *   inverted (add/sub/xor with a known operand, inc/dec/neg/not, push/pop/
 *   call/ret/leave on rsp, `lea r, [r+d]`); a register moved to another or
 *   stored to memory is recovered from the destination. Memory is the
 *   core's, with each write undone (its bytes become unknown before the
 *   write, unless the write can be inverted) and each load teaching the
 *   loaded bytes.
 * - forward (t = 0 .. n-1): the usual semantics of the common integer
 *   instructions, with memory from the writes seen so far and from what
 *   the backward pass learned.
 * movs/stos (rep or not) are modelled as one block write from rdi, rsi and
 * rcx; a syscall makes the bytes it writes unknown before it
 * (syscall-effects.ts), or all memory when its effect is not known. A
 * first round uses registers only, so that the core's memory is read back
 * once the stores' addresses are known.
 * Values found by both must agree; a disagreement is counted (a core that
 * does not belong to the trace, or a bug here) and the first value kept.
 * Anything not modelled is unknown: no value is ever guessed.
 *
 * Aliasing: a store whose address stays unknown may have written anywhere.
 * The passes assume it did not (POMP's working hypothesis); the times of
 * such stores are kept in {@link unresolvedStores} so that conclusions
 * that depend on memory across them can say so.
 */
import { Mnemonic } from 'iced-x86';
import type { CoreFile } from '../../sources/core-file.js';
import { GPR_COUNT, RBP, RDI, RSI, RSP, type InsnFacts, type Operand, type RegRef } from './instruction-facts.js';
import { syscallWrites, type SyscallWrite } from './syscall-effects.js';

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

const M64 = (1n << 64n) - 1n;
/** rbx, rbp, r12..r15. */
const CALLEE_SAVED = [3, 5, 12, 13, 14, 15];

function mask(size: number): bigint {
  return size >= 8 ? M64 : (1n << BigInt(size * 8)) - 1n;
}

function sext(v: bigint, size: number): bigint {
  return BigInt.asUintN(64, BigInt.asIntN(size * 8, v));
}

/** The memory contents at one point of a pass: byte -> value, -1 for unknown. */
type Overlay = Map<number, number>;

export class ReverseExecution {
  readonly n: number;
  /** Register values by program point: (n + 1) * 16. */
  private readonly vals: BigUint64Array;
  private readonly known: Uint8Array;
  /** Address of the explicit memory operand at t (NaN: unknown). */
  readonly addr: Float64Array;
  /** Address of the implicit stack slot at t (push/call: rsp-8, pop/ret: rsp, leave: rbp). */
  readonly stackAddr: Float64Array;
  /** movs/stos blocks: destination, source and length at t (NaN: unknown). */
  private readonly blockDst: Float64Array;
  private readonly blockSrc: Float64Array;
  private readonly blockLen: Float64Array;
  private readonly memRead: (bigint | null)[];
  private readonly memWrite: (bigint | null)[];
  private readonly stackRead: (bigint | null)[];
  private readonly stackWrite: (bigint | null)[];
  conflicts = 0;
  /** First conflicts as t * 100 + register (diagnostics). */
  readonly conflictAt: number[] = [];
  private changed = 0;
  private readonly conflictingSymbols = new Set<number>();
  readonly fsBase: bigint;
  /** In the backward pass: whether memory not yet written back still holds the core's bytes. */
  private coreHolds = true;
  /** Whether the backward pass reads memory at all (off in the first, registers-only round). */
  private memoryFromCore = true;

  /** For a ret at t whose target is the fall-through of the call at c: pairs[t] = c, else -1. */
  private readonly retToCall: Int32Array;

  constructor(
    readonly facts: readonly (InsnFacts | null)[],
    readonly core: CoreFile,
    /** True for code of a library: its calls are assumed to keep the callee-saved registers (SysV ABI). */
    private readonly isLibrary: (ip: number) => boolean = () => false,
  ) {
    const n = facts.length;
    this.retToCall = new Int32Array(n).fill(-1);
    const calls: number[] = [];
    for (let t = 0; t < n; t++) {
      const f = facts[t];
      if (f?.isCall) calls.push(t);
      else if (f?.isRet && t + 1 < n && calls.length > 0) {
        // Unwind to the call this ret returns to (frames left by longjmp & co. are skipped).
        const target = facts[t + 1]?.ip;
        let k = calls.length - 1;
        while (k >= 0 && facts[calls[k]]!.ip + facts[calls[k]]!.size !== target) k--;
        if (k >= 0) {
          this.retToCall[t] = calls[k];
          calls.length = k;
        }
      }
    }
    this.n = n;
    this.vals = new BigUint64Array((n + 1) * GPR_COUNT);
    this.known = new Uint8Array((n + 1) * GPR_COUNT);
    this.addr = new Float64Array(n).fill(NaN);
    this.stackAddr = new Float64Array(n).fill(NaN);
    this.blockDst = new Float64Array(n).fill(NaN);
    this.blockSrc = new Float64Array(n).fill(NaN);
    this.blockLen = new Float64Array(n).fill(NaN);
    this.memRead = new Array(n).fill(null);
    this.memWrite = new Array(n).fill(null);
    this.stackRead = new Array(n).fill(null);
    this.stackWrite = new Array(n).fill(null);
    this.fsBase = core.reg('fs_base');
    const order = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
    for (let r = 0; r < GPR_COUNT; r++) this.set(n, r, core.reg(order[r]));
  }

  /** The call at c enters a library, directly or through a PLT stub (`jmp [got]`). */
  private callsLibrary(c: number): boolean {
    const callee = this.facts[c + 1];
    if (!callee) return false;
    if (this.isLibrary(callee.ip)) return true;
    return callee.mnemonic === Mnemonic.Jmp && callee.mem !== null && callee.mem.base < 0 && callee.mem.index < 0;
  }

  /** Alternate backward and forward passes until nothing new is learned (at most `rounds` each). */
  run(rounds = 4): void {
    const rel = this.relations();
    // A first round on registers alone: memory read back from the core before the stores' addresses are
    // known would take bytes a later store wrote for what an earlier one did (a value kept for good).
    this.memoryFromCore = false;
    this.backward();
    this.resolveRelations(rel);
    this.forward();
    this.resolveRelations(rel);
    this.memoryFromCore = true;
    for (let i = 0; i < rounds; i++) {
      this.changed = 0;
      this.backward();
      this.resolveRelations(rel);
      this.forward();
      this.resolveRelations(rel);
      if (this.changed === 0) break;
    }
    this.backward();
  }

  /**
   * Register relations that hold whatever the values are: "register r at
   * point t = symbol + offset", from moves, push/pop pairs on the same
   * stack slot, add/sub/lea with constants, and call/ret pairs (rsp; the
   * callee-saved registers for library callees). One known value of a
   * symbol gives all its points: this is what carries the frame pointer
   * and the stack pointer across frames whose registers the plain passes
   * cannot undo (leave, and rbp saved and restored by a callee).
   */
  private relations(): { sym: Int32Array; off: BigInt64Array } {
    const n = this.n;
    const sym = new Int32Array((n + 1) * GPR_COUNT);
    const off = new BigInt64Array((n + 1) * GPR_COUNT);
    let next = 0;
    for (let r = 0; r < GPR_COUNT; r++) sym[r] = next++;
    const slots = new Map<string, [number, bigint]>();
    const callAt: number[] = new Array(n).fill(-1);
    for (let t = 0; t < n; t++) if (this.retToCall[t] >= 0) callAt[t] = this.retToCall[t];
    const key = (k: number, d: bigint): string => `${sym[k]}:${off[k] + d}`;
    for (let t = 0; t < n; t++) {
      const f = this.facts[t];
      const a = t * GPR_COUNT;
      const b = (t + 1) * GPR_COUNT;
      for (let r = 0; r < GPR_COUNT; r++) {
        sym[b + r] = sym[a + r];
        off[b + r] = off[a + r];
      }
      if (f === null) {
        for (let r = 0; r < GPR_COUNT; r++) sym[b + r] = next++;
        continue;
      }
      const fresh = new Set(f.regsWritten.filter((r) => r < GPR_COUNT));
      const keep = (r: number, from: number, d: bigint): void => {
        sym[b + r] = sym[from];
        off[b + r] = off[from] + d;
        fresh.delete(r);
      };
      const d = f.ops[0];
      const s = f.ops[1];
      switch (f.mnemonic) {
        case Mnemonic.Push:
        case Mnemonic.Call:
          keep(RSP, a + RSP, -8n);
          if (f.mnemonic === Mnemonic.Push && d?.kind === 'reg' && d.ref.size === 8) slots.set(key(a + RSP, -8n), [sym[a + d.ref.reg], off[a + d.ref.reg]]);
          else slots.delete(key(a + RSP, -8n));
          break;
        case Mnemonic.Pop:
          if (d?.kind === 'reg' && d.ref.reg !== RSP) {
            keep(RSP, a + RSP, 8n);
            const v = slots.get(key(a + RSP, 0n));
            if (v !== undefined && d.ref.size === 8) {
              sym[b + d.ref.reg] = v[0];
              off[b + d.ref.reg] = v[1];
              fresh.delete(d.ref.reg);
            }
          }
          break;
        case Mnemonic.Ret: {
          const c = callAt[t];
          if (c >= 0) {
            keep(RSP, c * GPR_COUNT + RSP, 0n);
            if (this.callsLibrary(c)) for (const r of CALLEE_SAVED) keep(r, c * GPR_COUNT + r, 0n);
          }
          break;
        }
        case Mnemonic.Leave: {
          keep(RSP, a + RBP, 8n);
          const v = slots.get(key(a + RBP, 0n));
          if (v !== undefined) {
            sym[b + RBP] = v[0];
            off[b + RBP] = v[1];
            fresh.delete(RBP);
          }
          break;
        }
        case Mnemonic.Mov:
          if (d?.kind === 'reg' && d.ref.size === 8 && s?.kind === 'reg' && s.ref.size === 8 && s.ref.reg < GPR_COUNT) keep(d.ref.reg, a + s.ref.reg, 0n);
          break;
        case Mnemonic.Add:
        case Mnemonic.Sub:
          if (d?.kind === 'reg' && d.ref.size === 8 && s?.kind === 'imm') keep(d.ref.reg, a + d.ref.reg, f.mnemonic === Mnemonic.Add ? BigInt.asIntN(64, s.value) : -BigInt.asIntN(64, s.value));
          break;
        case Mnemonic.Lea:
          if (d?.kind === 'reg' && d.ref.size === 8 && f.mem !== null && f.mem.base >= 0 && f.mem.index < 0) keep(d.ref.reg, a + f.mem.base, f.mem.disp);
          break;
      }
      for (const r of fresh) sym[b + r] = next++;
    }
    return { sym, off };
  }

  private resolveRelations(rel: { sym: Int32Array; off: BigInt64Array }): void {
    const value = new Map<number, bigint>();
    const total = (this.n + 1) * GPR_COUNT;
    for (let k = 0; k < total; k++) {
      if (!this.known[k]) continue;
      const base = (this.vals[k] - BigInt.asUintN(64, rel.off[k])) & M64;
      const have = value.get(rel.sym[k]);
      if (have === undefined) value.set(rel.sym[k], base);
      else if (have !== base && !this.conflictingSymbols.has(rel.sym[k])) {
        // Two values for one relation: some relation does not hold here (or the core is not this run's); drop it.
        this.conflictingSymbols.add(rel.sym[k]);
        this.conflicts++;
      }
    }
    for (let k = 0; k < total; k++) {
      if (this.known[k]) continue;
      const base = value.get(rel.sym[k]);
      if (base === undefined || this.conflictingSymbols.has(rel.sym[k])) continue;
      this.set(Math.floor(k / GPR_COUNT), k % GPR_COUNT, (base + BigInt.asUintN(64, rel.off[k])) & M64);
    }
  }

  /** Register `r` (0..15) before instruction t, or null. */
  reg(t: number, r: number): bigint | null {
    const k = t * GPR_COUNT + r;
    return this.known[k] ? this.vals[k] : null;
  }

  /** The value the explicit memory operand at t read / wrote (up to 8 bytes), or null. */
  readValue(t: number): bigint | null {
    return this.memRead[t];
  }

  writeValue(t: number): bigint | null {
    return this.memWrite[t];
  }

  stackValue(t: number): bigint | null {
    return this.stackWrite[t] ?? this.stackRead[t];
  }

  /** Times of stores whose address is unknown (or that this model does not follow). */
  unresolvedStores(): number[] {
    const out: number[] = [];
    for (let t = 0; t < this.n; t++) {
      const f = this.facts[t];
      if (f === null) continue;
      if ((f.mem?.write && Number.isNaN(this.addr[t])) || (f.unmodelledMemory && f.mem?.write) || (f.string !== null && this.block(t) === null)) out.push(t);
    }
    return out;
  }

  /** The block a movs/stos at t wrote, or null if it is not one or its registers are unknown. */
  block(t: number): StringBlock | null {
    const f = this.facts[t];
    if (f?.string == null || Number.isNaN(this.blockDst[t]) || Number.isNaN(this.blockLen[t])) return null;
    return { op: f.string.op, dst: this.blockDst[t], src: this.blockSrc[t], n: this.blockLen[t] };
  }

  /** The element count of a movs/stos at t: rcx before it when repeated, else 1. */
  private repeatCount(t: number, f: InsnFacts): bigint | null {
    return f.string!.rep ? this.reg(t, RCX) : 1n;
  }

  /**
   * movs/stos registers, both ways. The SysV ABI keeps DF clear at calls and
   * returns, so the string instructions of compiled code and libc move up:
   * rdi (and rsi for movs) advance by count * width and a rep leaves rcx 0.
   */
  private stringRegisters(t: number, f: InsnFacts): void {
    const w = BigInt(f.string!.width);
    const b = t + 1;
    const moved = f.string!.op === 'movs' ? [RDI, RSI] : [RDI];
    if (f.string!.rep) this.set(b, RCX, 0n);
    let count = this.repeatCount(t, f);
    for (const r of moved) {
      const before = this.reg(t, r);
      const after = this.reg(b, r);
      if (count === null && before !== null && after !== null && w > 0n) {
        count = ((after - before) & M64) / w;
        if (f.string!.rep) this.set(t, RCX, count);
      }
    }
    if (count === null) return;
    for (const r of moved) {
      const before = this.reg(t, r);
      const after = this.reg(b, r);
      if (before !== null) this.set(b, r, (before + count * w) & M64);
      else if (after !== null) this.set(t, r, (after - count * w) & M64);
    }
    const dst = this.reg(t, RDI);
    const n = count * w;
    if (dst !== null && n <= BigInt(MAX_BLOCK)) {
      this.blockDst[t] = Number(dst);
      this.blockLen[t] = Number(n);
      const src = f.string!.op === 'movs' ? this.reg(t, RSI) : null;
      if (src !== null) this.blockSrc[t] = Number(src);
    }
  }

  // ---- state ------------------------------------------------------------

  private set(t: number, r: number, v: bigint): void {
    const k = t * GPR_COUNT + r;
    if (this.known[k]) {
      if (this.vals[k] !== v) {
        this.conflicts++;
        if (this.conflictAt.length < 20) this.conflictAt.push(t * 100 + r);
      }
      return;
    }
    this.known[k] = 1;
    this.vals[k] = v;
    this.changed++;
  }

  private readRef(t: number, ref: RegRef): bigint | null {
    if (ref.reg < 0 || ref.reg >= GPR_COUNT) return null;
    const full = this.reg(t, ref.reg);
    if (full === null) return null;
    return (full >> BigInt(ref.shift * 8)) & mask(ref.size);
  }

  /** Write `v` into register part `ref` at point t (after an instruction), given the old full value at t-1. */
  private writeRef(t: number, ref: RegRef, v: bigint): void {
    if (ref.reg < 0 || ref.reg >= GPR_COUNT) return;
    v &= mask(ref.size);
    if (ref.size === 8) this.set(t, ref.reg, v);
    else if (ref.size === 4) this.set(t, ref.reg, v);
    else {
      const old = this.reg(t - 1, ref.reg);
      if (old === null) return;
      const sh = BigInt(ref.shift * 8);
      const m = mask(ref.size) << sh;
      this.set(t, ref.reg, (old & ~m & M64) | (v << sh));
    }
  }

  private address(t: number, f: InsnFacts): number {
    const a = this.addressBig(t, f);
    return a === null ? NaN : Number(a);
  }

  private addressBig(t: number, f: InsnFacts): bigint | null {
    const m = f.mem!;
    let a = m.disp;
    if (m.base >= 0) {
      const b = this.reg(t, m.base);
      if (b === null) return null;
      a += b;
    }
    if (m.index >= 0) {
      const x = this.reg(t, m.index);
      if (x === null) return null;
      a += x * BigInt(m.scale);
    }
    if (m.seg === 'fs') a += this.fsBase;
    else if (m.seg === 'gs') return null;
    return BigInt.asUintN(64, a);
  }

  private computeAddresses(t: number, f: InsnFacts): void {
    if (f.mem !== null && Number.isNaN(this.addr[t])) this.addr[t] = this.address(t, f);
    if (f.stack !== null && Number.isNaN(this.stackAddr[t])) {
      if (f.stack === 'leave') {
        const rbp = this.reg(t, RBP);
        if (rbp !== null) this.stackAddr[t] = Number(rbp);
      } else {
        const rsp = this.reg(t, RSP);
        if (rsp !== null) this.stackAddr[t] = Number(f.stack === 'push' ? rsp - 8n : rsp);
      }
    }
  }

  // ---- memory overlays --------------------------------------------------

  private readBack(ov: Overlay, a: number, size: number): bigint | null {
    if (!this.memoryFromCore || Number.isNaN(a) || size > 8 || size === 0) return null;
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      let x = ov.get(a + i);
      if (x === undefined) x = this.coreHolds ? this.core.byte(a + i) : -1;
      if (x < 0) return null;
      v = (v << 8n) | BigInt(x);
    }
    return v;
  }

  private readFwd(ov: Map<number, number>, a: number, size: number): bigint | null {
    if (Number.isNaN(a) || size > 8 || size === 0) return null;
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const x = ov.get(a + i);
      if (x === undefined || x < 0) return null;
      v = (v << 8n) | BigInt(x);
    }
    return v;
  }

  private store(ov: Overlay, a: number, size: number, v: bigint | null): void {
    if (Number.isNaN(a)) return;
    for (let i = 0; i < size; i++) ov.set(a + i, v === null || size > 8 ? -1 : Number((v >> BigInt(i * 8)) & 0xffn));
  }

  // ---- backward ---------------------------------------------------------

  /**
   * A call and the ret that comes back to its fall-through: rsp after the
   * ret is rsp before the call (the ret popped the slot the call pushed; a
   * callee that moved the stack would make the values disagree, which
   * counts as a conflict).
   */
  private pairRsp(t: number): void {
    const c = this.retToCall[t];
    if (c < 0) return;
    const after = this.reg(t + 1, RSP);
    const before = this.reg(c, RSP);
    if (after !== null) this.set(c, RSP, after);
    else if (before !== null) this.set(t + 1, RSP, before);
    // Library functions are trusted to follow the ABI; the program's own are the suspects.
    if (this.callsLibrary(c)) {
      for (const r of CALLEE_SAVED) {
        const x = this.reg(t + 1, r);
        const y = this.reg(c, r);
        if (x !== null) this.set(c, r, x);
        else if (y !== null) this.set(t + 1, r, y);
      }
    }
  }

  private backward(): void {
    const ov: Overlay = new Map();
    // Before a syscall that may write any memory, the core's bytes no longer hold: only what loads teach does.
    this.coreHolds = true;
    for (let t = this.n - 1; t >= 0; t--) {
      const f = this.facts[t];
      const a = t;
      const b = t + 1;
      if (f === null) continue;
      if (f.isRet) this.pairRsp(t);
      for (let r = 0; r < GPR_COUNT; r++) {
        if (!f.regsWritten.includes(r)) {
          const v = this.reg(b, r);
          if (v !== null) this.set(a, r, v);
        }
      }
      this.invertRegisters(t, f);
      this.computeAddresses(t, f);
      if (f.string !== null) {
        this.stringRegisters(t, f);
        this.undoBlock(ov, t);
        continue;
      }
      if (f.mnemonic === Mnemonic.Syscall) {
        // Bytes the kernel wrote held something unknown before; a syscall whose writes are not known ends the core's validity.
        const w = this.syscallWrites(t);
        if (w === 'anywhere') {
          this.coreHolds = false;
          ov.clear();
        } else if (w !== null) for (let i = 0; i < w.n; i++) ov.set(w.addr + i, -1);
      }
      // Memory, undone.
      const m = f.mem;

      if (m !== null && (m.read || m.write) && !f.unmodelledMemory) {
        const A = this.addr[t];
        if (m.write) {
          const after = this.readBack(ov, A, m.size);
          if (after !== null) this.memWrite[t] ??= after;
          const before = after === null ? null : this.invertMemory(t, f, after);
          this.store(ov, A, m.size, before);
          if (m.read && before !== null) this.memRead[t] ??= before;
        } else if (m.read) {
          let v = this.readBack(ov, A, m.size);
          if (v === null) v = this.loadedValue(t, f);
          if (v !== null) {
            this.memRead[t] ??= v;
            if (m.size <= 8) this.store(ov, A, m.size, v);
          }
        }
      }
      const S = this.stackAddr[t];
      if (f.stack === 'push') {
        const after = this.readBack(ov, S, 8);
        if (after !== null) this.stackWrite[t] ??= after;
        this.store(ov, S, 8, null);
        if (after !== null && f.mnemonic === Mnemonic.Push && f.ops[0]?.kind === 'reg' && f.ops[0].ref.size === 8 && f.ops[0].ref.reg !== RSP) {
          this.set(a, f.ops[0].ref.reg, after);
        }
      } else if (f.stack === 'pop' || f.stack === 'leave') {
        let v = this.readBack(ov, S, 8);
        if (v === null) {
          if (f.mnemonic === Mnemonic.Pop && f.ops[0]?.kind === 'reg' && f.ops[0].ref.size === 8) v = this.reg(b, f.ops[0].ref.reg);
          else if (f.stack === 'leave') v = this.reg(b, RBP);
          else if (f.isRet && t + 1 < this.n && this.facts[t + 1] !== null) v = BigInt(this.facts[t + 1]!.ip);
        }
        if (v !== null) {
          this.stackRead[t] ??= v;
          this.store(ov, S, 8, v);
        }
      }
      // A stored register is what memory holds after the store.
      if (m !== null && m.write && !m.read && f.mnemonic === Mnemonic.Mov && f.ops[1]?.kind === 'reg') {
        const w = this.memWrite[t];
        const ref = f.ops[1].ref;
        if (w !== null && ref.size === 8) this.set(a, ref.reg, w);
      }
    }
  }

  /**
   * Before a block write its destination is unknown; a movs's source held,
   * before it, what the destination holds after (when they do not overlap).
   * An unknown block may have written anywhere: nothing known survives.
   */
  private undoBlock(ov: Overlay, t: number): void {
    const blk = this.block(t);
    if (blk === null) {
      ov.clear();
      return;
    }
    const copied: number[] = [];
    const overlap = !Number.isNaN(blk.src) && blk.src < blk.dst + blk.n && blk.dst < blk.src + blk.n;
    for (let i = 0; i < blk.n; i++) {
      if (blk.op === 'movs' && !Number.isNaN(blk.src) && !overlap) {
        const v = ov.get(blk.dst + i) ?? this.core.byte(blk.dst + i);
        copied.push(v);
      }
      ov.set(blk.dst + i, -1);
    }
    for (let i = 0; i < copied.length; i++) if (copied[i] >= 0) ov.set(blk.src + i, copied[i]);
  }

  /** A block write, forward: bytes copied in order (rep movsb's overlapping semantics), or the fill value. */
  private doBlock(ov: Overlay, t: number): void {
    const blk = this.block(t);
    if (blk === null) {
      ov.clear();
      return;
    }
    const w = this.facts[t]!.string!.width;
    const rax = this.reg(t, 0);
    for (let i = 0; i < blk.n; i++) {
      let v = -1;
      if (blk.op === 'movs') v = Number.isNaN(blk.src) ? -1 : ov.get(blk.src + i) ?? -1;
      else if (rax !== null) v = Number((rax >> BigInt((i % w) * 8)) & 0xffn);
      ov.set(blk.dst + i, v);
    }
  }

  /**
   * The user memory the syscall at t writes: none (null), a range, or
   * 'anywhere' for an unknown number or unrecovered arguments.
   */
  syscallWrites(t: number): SyscallWrite {
    return syscallWrites(this.reg(t, 0), (r) => this.reg(t, r));
  }

  /** Register values before t from those after, where the operation can be undone. */
  private invertRegisters(t: number, f: InsnFacts): void {
    const a = t;
    const b = t + 1;
    const rspB = this.reg(b, RSP);
    switch (f.mnemonic) {
      case Mnemonic.Push:
      case Mnemonic.Call:
        if (rspB !== null) this.set(a, RSP, (rspB + 8n) & M64);
        return;
      case Mnemonic.Pop:
        if (rspB !== null && !(f.ops[0]?.kind === 'reg' && f.ops[0].ref.reg === RSP)) this.set(a, RSP, (rspB - 8n) & M64);
        return;
      case Mnemonic.Ret: {
        const extra = f.ops[0]?.kind === 'imm' ? f.ops[0].value : 0n;
        if (rspB !== null) this.set(a, RSP, (rspB - 8n - extra) & M64);
        return;
      }
      case Mnemonic.Leave:
        if (rspB !== null) this.set(a, RBP, (rspB - 8n) & M64);
        return;
    }
    const d = f.ops[0];
    if (d?.kind !== 'reg' || d.ref.size !== 8 || d.ref.reg >= GPR_COUNT) return;
    const r = d.ref.reg;
    const after = this.reg(b, r);
    const s = f.ops[1];
    const other = (): bigint | null => {
      if (s === undefined) return null;
      if (s.kind === 'imm') return s.value;
      if (s.kind === 'reg' && s.ref.reg !== r && s.ref.size === 8) return this.reg(a, s.ref.reg);
      if (s.kind === 'mem') return this.memRead[t];
      return null;
    };
    switch (f.mnemonic) {
      case Mnemonic.Add: {
        const o = other();
        if (after !== null && o !== null) this.set(a, r, (after - o) & M64);
        return;
      }
      case Mnemonic.Sub: {
        const o = other();
        if (after !== null && o !== null) this.set(a, r, (after + o) & M64);
        return;
      }
      case Mnemonic.Xor: {
        if (s?.kind === 'reg' && s.ref.reg === r) return;
        const o = other();
        if (after !== null && o !== null) this.set(a, r, (after ^ o) & M64);
        return;
      }
      case Mnemonic.Inc:
        if (after !== null) this.set(a, r, (after - 1n) & M64);
        return;
      case Mnemonic.Dec:
        if (after !== null) this.set(a, r, (after + 1n) & M64);
        return;
      case Mnemonic.Not:
        if (after !== null) this.set(a, r, ~after & M64);
        return;
      case Mnemonic.Neg:
        if (after !== null) this.set(a, r, -after & M64);
        return;
      case Mnemonic.Lea: {
        const m = f.mem!;
        if (after !== null && m.base === r && m.index < 0) this.set(a, r, (after - m.disp) & M64);
        return;
      }
      case Mnemonic.Mov:
        if (after !== null && s?.kind === 'reg' && s.ref.size === 8 && s.ref.reg !== r && s.ref.reg < GPR_COUNT) {
          this.set(a, s.ref.reg, after);
          this.set(b, s.ref.reg, after);
        }
        return;
    }
  }

  /** Memory before a read-modify-write at t, from the value after it, or null. */
  private invertMemory(t: number, f: InsnFacts, after: bigint): bigint | null {
    const size = f.mem!.size;
    const mk = mask(size);
    const s = f.ops[1];
    const o = s?.kind === 'imm' ? s.value : s?.kind === 'reg' ? this.readRef(t, s.ref) : null;
    switch (f.mnemonic) {
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

  /** The value a plain load at t put into its destination (known after t). */
  private loadedValue(t: number, f: InsnFacts): bigint | null {
    const d = f.ops[0];
    if (f.mnemonic !== Mnemonic.Mov || d?.kind !== 'reg' || f.ops[1]?.kind !== 'mem') return null;
    if (d.ref.size !== f.mem!.size) return null;
    return this.readRef(t + 1, d.ref);
  }

  // ---- forward ----------------------------------------------------------

  private forward(): void {
    const ov = new Map<number, number>();
    for (let t = 0; t < this.n; t++) {
      const f = this.facts[t];
      if (f === null) continue;
      if (f.isRet) this.pairRsp(t);
      const a = t;
      const b = t + 1;
      for (let r = 0; r < GPR_COUNT; r++) {
        if (!f.regsWritten.includes(r)) {
          const v = this.reg(a, r);
          if (v !== null) this.set(b, r, v);
        }
      }
      this.computeAddresses(t, f);
      if (f.string !== null) {
        this.stringRegisters(t, f);
        this.doBlock(ov, t);
        continue;
      }
      // The kernel may write user memory (read, fstat...).
      if (f.mnemonic === Mnemonic.Syscall) {
        const w = this.syscallWrites(t);
        if (w === 'anywhere') ov.clear();
        else if (w !== null) for (let i = 0; i < w.n; i++) ov.set(w.addr + i, -1);
      }
      const m = f.mem;
      const A = this.addr[t];
      // A store that may have gone anywhere: nothing remembered from before it still holds.
      if (m !== null && m.write && (Number.isNaN(A) || f.unmodelledMemory)) ov.clear();
      let memIn: bigint | null = null;
      if (m !== null && m.read && !f.unmodelledMemory) {
        memIn = this.readFwd(ov, A, m.size) ?? this.memRead[t];
        if (memIn !== null) this.memRead[t] ??= memIn;
      }
      const S = this.stackAddr[t];
      switch (f.stack) {
        case 'push': {
          const rsp = this.reg(a, RSP);
          if (rsp !== null) this.set(b, RSP, (rsp - 8n) & M64);
          let v: bigint | null = null;
          if (f.isCall) v = BigInt(f.ip + f.size);
          else if (f.ops[0]?.kind === 'reg') v = this.readRef(a, f.ops[0].ref);
          else if (f.ops[0]?.kind === 'imm') v = f.ops[0].value & M64;
          else if (f.ops[0]?.kind === 'mem') v = memIn;
          if (v !== null) this.stackWrite[t] ??= v;
          this.store(ov, S, 8, v);
          continue;
        }
        case 'pop': {
          const rsp = this.reg(a, RSP);
          const extra = f.isRet && f.ops[0]?.kind === 'imm' ? f.ops[0].value : 0n;
          if (rsp !== null) this.set(b, RSP, (rsp + 8n + extra) & M64);
          const v = this.readFwd(ov, S, 8) ?? this.stackRead[t];
          if (v !== null) this.stackRead[t] ??= v;
          if (!f.isRet && f.ops[0]?.kind === 'reg' && v !== null) this.writeRef(b, f.ops[0].ref, v);
          continue;
        }
        case 'leave': {
          const rbp = this.reg(a, RBP);
          if (rbp !== null) this.set(b, RSP, (rbp + 8n) & M64);
          const v = this.readFwd(ov, S, 8) ?? this.stackRead[t];
          if (v !== null) {
            this.stackRead[t] ??= v;
            this.set(b, RBP, v);
          }
          continue;
        }
      }
      const result = this.compute(t, f, memIn);
      const d = f.ops[0];
      if (d?.kind === 'reg') {
        if (result !== null) this.writeRef(b, d.ref, result);
      } else if (d?.kind === 'mem' && m !== null && m.write && !f.unmodelledMemory) {
        if (result !== null) this.memWrite[t] ??= result & mask(m.size);
        this.store(ov, A, m.size, result === null ? this.memWrite[t] : result & mask(m.size));
      } else if (m !== null && m.write) {
        this.store(ov, A, m.size, null);
      }
      this.extraWrites(t, f);
    }
  }

  /** Implicit register results (cdq, cqo, cdqe...). */
  private extraWrites(t: number, f: InsnFacts): void {
    const b = t + 1;
    const rax = this.reg(t, 0);
    if (rax === null) return;
    switch (f.mnemonic) {
      case Mnemonic.Cdqe:
        this.set(b, 0, sext(rax & 0xffffffffn, 4));
        return;
      case Mnemonic.Cwde:
        this.set(b, 0, sext(rax & 0xffffn, 2) & 0xffffffffn);
        return;
      case Mnemonic.Cdq:
        this.set(b, 2, (rax & 0x80000000n) !== 0n ? 0xffffffffn : 0n);
        return;
      case Mnemonic.Cqo:
        this.set(b, 2, (rax & (1n << 63n)) !== 0n ? M64 : 0n);
        return;
    }
  }

  /** The value written to operand 0 by instruction t, or null if unknown or not modelled. */
  compute(t: number, f: InsnFacts, memIn: bigint | null): bigint | null {
    const d = f.ops[0];
    if (d === undefined) return null;
    const size = d.kind === 'reg' ? d.ref.size : d.kind === 'mem' ? d.size : 0;
    if (size === 0 || size > 8) return null;
    const mk = mask(size);
    const val = (o: Operand | undefined): bigint | null => {
      if (o === undefined) return null;
      if (o.kind === 'reg') return this.readRef(t, o.ref);
      if (o.kind === 'imm') return o.value & M64;
      if (o.kind === 'mem') return memIn;
      return null;
    };
    const s = f.ops[1];
    switch (f.mnemonic) {
      case Mnemonic.Mov: {
        const v = val(s);
        return v === null ? null : v & mk;
      }
      case Mnemonic.Movzx: {
        return val(s);
      }
      case Mnemonic.Movsx:
      case Mnemonic.Movsxd: {
        const v = val(s);
        const ss = s?.kind === 'reg' ? s.ref.size : s?.kind === 'mem' ? s.size : 0;
        return v === null || ss === 0 ? null : sext(v, ss) & mk;
      }
      case Mnemonic.Lea: {
        const a = this.addressBig(t, f);
        return a === null ? null : a & mk;
      }
      case Mnemonic.Xor:
      case Mnemonic.Sub:
        if (d.kind === 'reg' && s?.kind === 'reg' && s.ref.reg === d.ref.reg && s.ref.shift === d.ref.shift) return 0n;
        break;
      case Mnemonic.And:
        if (s?.kind === 'imm' && (s.value & mk) === 0n) return 0n;
        break;
      case Mnemonic.Or:
        if (s?.kind === 'imm' && (s.value & mk) === mk) return mk;
        break;
    }
    const x = d.kind === 'mem' ? memIn : val(d);
    if (x === null) return null;
    const y = val(s);
    switch (f.mnemonic) {
      case Mnemonic.Add:
        return y === null ? null : (x + y) & mk;
      case Mnemonic.Sub:
        return y === null ? null : (x - y) & mk;
      case Mnemonic.And:
        return y === null ? null : x & y & mk;
      case Mnemonic.Or:
        return y === null ? null : (x | y) & mk;
      case Mnemonic.Xor:
        return y === null ? null : (x ^ y) & mk;
      case Mnemonic.Inc:
        return (x + 1n) & mk;
      case Mnemonic.Dec:
        return (x - 1n) & mk;
      case Mnemonic.Neg:
        return -x & mk;
      case Mnemonic.Not:
        return ~x & mk;
      case Mnemonic.Shl:
      case Mnemonic.Sal:
        return y === null ? null : (x << (y & (size === 8 ? 63n : 31n))) & mk;
      case Mnemonic.Shr:
        return y === null ? null : (x >> (y & (size === 8 ? 63n : 31n))) & mk;
      case Mnemonic.Sar:
        return y === null ? null : BigInt.asUintN(size * 8, BigInt.asIntN(size * 8, x) >> (y & (size === 8 ? 63n : 31n)));
      case Mnemonic.Imul: {
        if (f.ops.length === 3) {
          const z = val(f.ops[2]);
          return y === null || z === null ? null : BigInt.asUintN(size * 8, BigInt.asIntN(size * 8, y) * BigInt.asIntN(size * 8, z));
        }
        if (f.ops.length === 2) return y === null ? null : BigInt.asUintN(size * 8, BigInt.asIntN(size * 8, x) * BigInt.asIntN(size * 8, y));
        return null;
      }
      default:
        return null;
    }
  }

  /**
   * True if the arithmetic at t overflowed its operand size (signed), with
   * every operand known; false if it did not; null if that is not known.
   */
  overflowed(t: number): boolean | null {
    const f = this.facts[t];
    if (f === null) return null;
    const d = f.ops[0];
    const size = d?.kind === 'reg' ? d.ref.size : d?.kind === 'mem' ? d.size : 0;
    if (size === 0 || size > 8) return null;
    const memIn = this.memRead[t];
    const val = (o: Operand | undefined): bigint | null =>
      o === undefined ? null : o.kind === 'reg' ? this.readRef(t, o.ref) : o.kind === 'imm' ? o.value & M64 : o.kind === 'mem' ? memIn : null;
    const bits = size * 8;
    const signed = (v: bigint): bigint => BigInt.asIntN(bits, v);
    let x: bigint | null;
    let y: bigint | null;
    if (f.mnemonic === Mnemonic.Imul && f.ops.length === 3) {
      x = val(f.ops[1]);
      y = val(f.ops[2]);
    } else {
      x = val(d);
      y = val(f.ops[1]);
    }
    if (x === null || y === null) return null;
    let exact: bigint;
    switch (f.mnemonic) {
      case Mnemonic.Add:
        exact = signed(x) + signed(y);
        break;
      case Mnemonic.Sub:
        exact = signed(x) - signed(y);
        break;
      case Mnemonic.Imul:
        exact = signed(x) * signed(y);
        break;
      case Mnemonic.Shl:
      case Mnemonic.Sal:
        exact = signed(x) * (1n << (y & 63n));
        break;
      default:
        return null;
    }
    return exact !== BigInt.asIntN(bits, exact);
  }
}
