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
 * The pieces: the register file by point (register-timeline.ts), call/ret
 * pairs (call-return-pairs.ts), register relations (register-relations.ts),
 * the two directions of the instruction semantics (forward-semantics.ts,
 * inverse-semantics.ts), the memory of a pass (memory-overlay.ts) and
 * movs/stos blocks (string-blocks.ts); this file runs the passes.
 *
 * Aliasing: a store whose address stays unknown may have written anywhere.
 * The passes assume it did not (POMP's working hypothesis); the times of
 * such stores are kept in {@link unresolvedStores} so that conclusions
 * that depend on memory across them can say so.
 */
import { Mnemonic } from '../../flow/iced.js';
import type { CoreFile } from '../../sources/core-file.js';
import { CALLEE_SAVED, CallReturnPairs } from './call-return-pairs.js';
import { implicitResults, resultOf, signedOverflow } from './forward-semantics.js';
import { GPR_COUNT, RBP, RSP, type InsnFacts, type MemOperand } from './instruction-facts.js';
import { loadedValue, memoryBefore, undoRegisters } from './inverse-semantics.js';
import { MemoryOverlay } from './memory-overlay.js';
import { RegisterRelations } from './register-relations.js';
import { M64, mask, RegisterTimeline } from './register-timeline.js';
import { doBlock, stringRegisters, undoBlock, type StringBlock } from './string-blocks.js';
import { syscallWrites, type SyscallWrite } from './syscall-effects.js';

export type { StringBlock } from './string-blocks.js';

const GPR_ORDER = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;

export class ReverseExecution {
  readonly n: number;
  /** Register values by program point. */
  private readonly regs: RegisterTimeline;
  /** Address of the explicit memory operand at t (NaN: unknown). */
  readonly addr: Float64Array;
  /** Address of the implicit stack slot at t (push/call: rsp-8, pop/ret: rsp, leave: rbp). */
  readonly stackAddr: Float64Array;
  /** movs/stos blocks by t, once their destination and length are known. */
  private readonly blocks: (StringBlock | null)[];
  private readonly memRead: (bigint | null)[];
  private readonly memWrite: (bigint | null)[];
  private readonly stackRead: (bigint | null)[];
  private readonly stackWrite: (bigint | null)[];
  private readonly pairs: CallReturnPairs;
  readonly fsBase: bigint;
  /** In the backward pass: whether memory not yet written back still holds the core's bytes. */
  private coreHolds = true;
  /** Whether the backward pass reads memory at all (off in the first, registers-only round). */
  private memoryFromCore = true;

  constructor(
    readonly facts: readonly (InsnFacts | null)[],
    readonly core: CoreFile,
    /** True for code of a library: its calls are assumed to keep the callee-saved registers (SysV ABI). */
    isLibrary: (ip: number) => boolean = () => false,
    /**
     * The last instruction did not run: it faulted (a fault leaves the state
     * as it was before the faulting instruction, SDM Vol. 3, 6.5), or it is
     * the one after a system call that sent the signal. The core is then the
     * state before it, not after it.
     */
    private readonly lastDidNotRun = false,
  ) {
    const n = facts.length;
    this.n = n;
    this.pairs = new CallReturnPairs(facts, isLibrary);
    this.fsBase = core.reg('fs_base');
    this.regs = new RegisterTimeline(n, this.fsBase);
    this.regs.markZeroExtended(facts);
    this.addr = new Float64Array(n).fill(NaN);
    this.stackAddr = new Float64Array(n).fill(NaN);
    this.blocks = new Array(n).fill(null);
    this.memRead = new Array(n).fill(null);
    this.memWrite = new Array(n).fill(null);
    this.stackRead = new Array(n).fill(null);
    this.stackWrite = new Array(n).fill(null);
    for (let r = 0; r < GPR_COUNT; r++) this.regs.set(n, r, core.reg(GPR_ORDER[r]));
    if (lastDidNotRun && n > 0) for (let r = 0; r < GPR_COUNT; r++) this.regs.set(n - 1, r, core.reg(GPR_ORDER[r]));
  }

  /** Whether instruction t changed nothing: the last one, when it did not run. */
  private didNotRun(t: number): boolean {
    return this.lastDidNotRun && t === this.n - 1;
  }

  /** Values found twice that disagree (registers, and register relations that do not hold). */
  get conflicts(): number {
    return this.regs.conflicts;
  }

  /** First conflicts as t * 100 + register (diagnostics). */
  get conflictAt(): readonly number[] {
    return this.regs.conflictAt;
  }

  /** Alternate backward and forward passes until nothing new is learned (at most `rounds` each). */
  run(rounds = 4): void {
    const rel = new RegisterRelations(this.facts, this.pairs);
    // A first round on registers alone: memory read back from the core before the stores' addresses are
    // known would take bytes a later store wrote for what an earlier one did (a value kept for good).
    this.memoryFromCore = false;
    this.backward();
    rel.resolve(this.regs);
    this.forward();
    rel.resolve(this.regs);
    this.memoryFromCore = true;
    for (let i = 0; i < rounds; i++) {
      this.regs.changed = 0;
      this.backward();
      rel.resolve(this.regs);
      this.forward();
      rel.resolve(this.regs);
      if (this.regs.changed === 0) break;
    }
    this.backward();
  }

  /** Register `r` (0..15) before instruction t, or null. */
  reg(t: number, r: number): bigint | null {
    return this.regs.reg(t, r);
  }

  /** The exact effective address of instruction t's memory operand (`addr[t]` is a number: past 2^53 it rounds), or null. */
  exactAddress(t: number, m: MemOperand): bigint | null {
    return this.regs.effectiveAddress(t, m);
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
    return this.facts[t]?.string == null ? null : this.blocks[t];
  }

  /**
   * The user memory the syscall at t writes: none (null), a range, or
   * 'anywhere' for an unknown number or unrecovered arguments.
   */
  syscallWrites(t: number): SyscallWrite {
    return syscallWrites(this.reg(t, 0), (r) => this.reg(t, r), this.reg(t + 1, 0));
  }

  /**
   * True if the arithmetic at t overflowed its operand size (signed), with
   * every operand known; false if it did not; null if that is not known.
   */
  overflowed(t: number): boolean | null {
    const f = this.facts[t];
    return f === null ? null : signedOverflow(this.regs, t, f, this.memRead[t]);
  }

  private computeAddresses(t: number, f: InsnFacts): void {
    if (f.mem !== null && Number.isNaN(this.addr[t])) {
      const a = this.regs.effectiveAddress(t, f.mem);
      this.addr[t] = a === null ? NaN : Number(a);
    }
    if (f.stack !== null && Number.isNaN(this.stackAddr[t])) this.stackAddr[t] = this.regs.stackSlot(t, f.stack);
  }

  private stringBlock(t: number, f: InsnFacts): void {
    const blk = stringRegisters(this.regs, t, f);
    if (blk !== null) this.blocks[t] = blk;
  }

  /**
   * A call and the ret that comes back to its fall-through: rsp after the
   * ret is rsp before the call (the ret popped the slot the call pushed; a
   * callee that moved the stack would make the values disagree, which
   * counts as a conflict).
   */
  private pairRsp(t: number): void {
    const c = this.pairs.callOf[t];
    if (c < 0) return;
    // Library functions are trusted to follow the ABI; the program's own are the suspects.
    for (const r of this.pairs.callsLibrary(c) ? [RSP, ...CALLEE_SAVED] : [RSP]) {
      const after = this.regs.reg(t + 1, r);
      const before = this.regs.reg(c, r);
      if (after !== null) this.regs.set(c, r, after);
      else if (before !== null) this.regs.set(t + 1, r, before);
    }
  }

  // ---- backward ---------------------------------------------------------

  /** Memory before the store now being undone: the overlay, else the core's bytes while they hold; nothing in the registers-only round. */
  private readBack(ov: MemoryOverlay, a: number, size: number): bigint | null {
    if (!this.memoryFromCore) return null;
    return ov.read(a, size, (x) => (this.coreHolds ? this.core.byte(x) : -1));
  }

  /**
   * Registers an instruction does not write keep their value; written ones
   * are undone where they can be. Memory is the core's, with each write
   * undone and each load teaching the loaded bytes.
   */
  private backward(): void {
    const ov = new MemoryOverlay();
    const regs = this.regs;
    // Before a syscall that may write any memory, the core's bytes no longer hold: only what loads teach does.
    this.coreHolds = true;
    for (let t = this.n - 1; t >= 0; t--) {
      const f = this.facts[t];
      const a = t;
      const b = t + 1;
      if (f === null) continue;
      if (this.didNotRun(t)) {
        // Its operands' addresses are the core's; nothing of it is to undo.
        this.computeAddresses(t, f);
        continue;
      }
      if (f.isRet) this.pairRsp(t);
      regs.carryUnwritten(f, b, a);
      undoRegisters(regs, t, f, this.memRead[t]);
      this.computeAddresses(t, f);
      if (f.string !== null) {
        this.stringBlock(t, f);
        undoBlock(ov, this.block(t), this.core);
        continue;
      }
      if (f.mnemonic === Mnemonic.Syscall) {
        // Bytes the kernel wrote held something unknown before; a syscall whose writes are not known ends the core's validity.
        const w = this.syscallWrites(t);
        if (w === 'anywhere') {
          this.coreHolds = false;
          ov.clear();
        } else if (w !== null) ov.forget(w.addr, w.n);
      }
      // Memory, undone.
      const m = f.mem;
      if (m !== null && (m.read || m.write) && !f.unmodelledMemory) {
        const A = this.addr[t];
        if (m.write) {
          const after = this.readBack(ov, A, m.size);
          if (after !== null) this.memWrite[t] ??= after;
          const before = after === null ? null : memoryBefore(regs, t, f, after);
          ov.store(A, m.size, before);
          if (m.read && before !== null) this.memRead[t] ??= before;
        } else if (m.read) {
          const v = this.readBack(ov, A, m.size) ?? loadedValue(regs, t, f);
          if (v !== null) {
            this.memRead[t] ??= v;
            if (m.size <= 8) ov.store(A, m.size, v);
          }
        }
      }
      const S = this.stackAddr[t];
      if (f.stack === 'push') {
        const after = this.readBack(ov, S, 8);
        if (after !== null) this.stackWrite[t] ??= after;
        ov.store(S, 8, null);
        if (after !== null && f.mnemonic === Mnemonic.Push && f.ops[0]?.kind === 'reg' && f.ops[0].ref.size === 8 && f.ops[0].ref.reg !== RSP) {
          regs.set(a, f.ops[0].ref.reg, after);
        }
      } else if (f.stack === 'pop' || f.stack === 'leave') {
        let v = this.readBack(ov, S, 8);
        if (v === null) {
          if (f.mnemonic === Mnemonic.Pop && f.ops[0]?.kind === 'reg' && f.ops[0].ref.size === 8) v = regs.reg(b, f.ops[0].ref.reg);
          else if (f.stack === 'leave') v = regs.reg(b, RBP);
          else if (f.isRet && t + 1 < this.n && this.facts[t + 1] !== null) v = BigInt(this.facts[t + 1]!.ip);
        }
        if (v !== null) {
          this.stackRead[t] ??= v;
          ov.store(S, 8, v);
        }
      }
      // A stored register is what memory holds after the store.
      if (m !== null && m.write && !m.read && f.mnemonic === Mnemonic.Mov && f.ops[1]?.kind === 'reg') {
        const w = this.memWrite[t];
        const ref = f.ops[1].ref;
        if (w !== null && ref.size === 8) regs.set(a, ref.reg, w);
        else if (w !== null && ref.size === 4 && ref.shift === 0) regs.setLow32(a, ref.reg, w);
      }
    }
  }

  // ---- forward ----------------------------------------------------------

  /**
   * The usual semantics of the common integer instructions, with memory from
   * the writes seen so far and from what the backward pass learned.
   */
  private forward(): void {
    const ov = new MemoryOverlay();
    const regs = this.regs;
    const unknown = (): number => -1;
    for (let t = 0; t < this.n; t++) {
      const f = this.facts[t];
      if (f === null) continue;
      if (this.didNotRun(t)) {
        this.computeAddresses(t, f);
        continue;
      }
      if (f.isRet) this.pairRsp(t);
      const a = t;
      const b = t + 1;
      regs.carryUnwritten(f, a, b);
      this.computeAddresses(t, f);
      if (f.string !== null) {
        this.stringBlock(t, f);
        doBlock(ov, this.block(t), f.string.width, regs.reg(t, 0));
        continue;
      }
      // The kernel may write user memory (read, fstat...).
      if (f.mnemonic === Mnemonic.Syscall) {
        const w = this.syscallWrites(t);
        if (w === 'anywhere') ov.clear();
        else if (w !== null) ov.forget(w.addr, w.n);
      }
      const m = f.mem;
      const A = this.addr[t];
      // A store that may have gone anywhere: nothing remembered from before it still holds.
      if (m !== null && m.write && (Number.isNaN(A) || f.unmodelledMemory)) ov.clear();
      let memIn: bigint | null = null;
      if (m !== null && m.read && !f.unmodelledMemory) {
        memIn = ov.read(A, m.size, unknown) ?? this.memRead[t];
        if (memIn !== null) this.memRead[t] ??= memIn;
      }
      const S = this.stackAddr[t];
      switch (f.stack) {
        case 'push': {
          const rsp = regs.reg(a, RSP);
          if (rsp !== null) regs.set(b, RSP, (rsp - 8n) & M64);
          let v: bigint | null = null;
          if (f.isCall) v = BigInt(f.ip + f.size);
          else if (f.ops[0]?.kind === 'reg') v = regs.readRef(a, f.ops[0].ref);
          else if (f.ops[0]?.kind === 'imm') v = f.ops[0].value & M64;
          else if (f.ops[0]?.kind === 'mem') v = memIn;
          if (v !== null) this.stackWrite[t] ??= v;
          ov.store(S, 8, v);
          continue;
        }
        case 'pop': {
          const rsp = regs.reg(a, RSP);
          const extra = f.isRet && f.ops[0]?.kind === 'imm' ? f.ops[0].value : 0n;
          if (rsp !== null) regs.set(b, RSP, (rsp + 8n + extra) & M64);
          const v = ov.read(S, 8, unknown) ?? this.stackRead[t];
          if (v !== null) this.stackRead[t] ??= v;
          if (!f.isRet && f.ops[0]?.kind === 'reg' && v !== null) regs.writeRef(b, f.ops[0].ref, v);
          continue;
        }
        case 'leave': {
          const rbp = regs.reg(a, RBP);
          if (rbp !== null) regs.set(b, RSP, (rbp + 8n) & M64);
          const v = ov.read(S, 8, unknown) ?? this.stackRead[t];
          if (v !== null) {
            this.stackRead[t] ??= v;
            regs.set(b, RBP, v);
          }
          continue;
        }
      }
      const result = resultOf(regs, t, f, memIn);
      const d = f.ops[0];
      if (d?.kind === 'reg') {
        if (result !== null) regs.writeRef(b, d.ref, result);
      } else if (d?.kind === 'mem' && m !== null && m.write && !f.unmodelledMemory) {
        if (result !== null) this.memWrite[t] ??= result & mask(m.size);
        ov.store(A, m.size, result === null ? this.memWrite[t] : result & mask(m.size));
      } else if (m !== null && m.write) {
        ov.store(A, m.size, null);
      }
      implicitResults(regs, t, f);
    }
  }
}
