/**
 * Dormant code, step 4: symbolic execution of the path from a library call
 * to a guard, and past the guard to the region's target; solving for call
 * results that flip the guard (and satisfy every further condition on the
 * way to the target at once).
 *
 * Where the concrete values come from (the recording holds control flow
 * only): the shim's snapshot run (snapshot.ts) gives the caller's exact
 * state right after a library call returned: the callee-saved registers,
 * rsp, the result, and the readable memory. From there this executor runs
 * the program's own instructions: the main executable's and those of its own
 * shared libraries (code-space.ts; module-code.ts decodes them from the ELF
 * files with iced-x86), with the call's outputs as symbols (slice.ts says which) and
 * everything else concrete. Each value carries its concrete shadow, so on
 * the recorded part of the path (up to the guard) branches follow what the
 * program really did, and branches that depend on a symbol add a path
 * constraint. At the guard the constraint is flipped. After it, the
 * executor follows the static CFG path from the guard's region side to the
 * target block; every conditional branch on it adds its condition.
 *
 * Calls on the way: the source calls add new symbols; strcmp & co. are
 * modelled exactly; the program's own functions (in the main executable, or
 * exported by or inside one of its own libraries) are entered on the
 * recorded part, and a return from a library leads back into its caller;
 * any other call is assumed to leave memory alone and to return an
 * unknown value. A constraint that depends on an unknown value, an
 * instruction the executor does not implement, a symbolic address that is
 * not unique, a solver timeout: each ends the attempt with a reason, never
 * with a claim.
 */
import { ConditionCode, Register, RegisterExt } from '../../flow/iced.js';
import type { CodeSpace } from './code-space.js';
import { decodeAt, type Decoded } from './module-code.js';
import type { CallSnapshot } from './snapshot.js';
import {
  applyPureModel,
  applySourceModel,
  extractByte,
  isPureModel,
  symbolNames,
  type BV,
  type ModelHost,
  type SliceStep,
  type SourceCall,
  type SourceSymbol,
  type SymbolRole,
  type Val,
  type Z3,
  type Z3Bool,
} from './slice.js';
import { asBitVec, conditionOf, type Cond, type FlagKind, type Flags } from './flag-conditions.js';
import { Unsolved } from './unsolved.js';
import { checkWithin, DEFAULT_SOLVER_TIMEOUT_MS } from './z3-context.js';

/** The constant a value query names (no symbol of ours is spelt with a '!'). */
const QUERIED_VALUE = 'ptscope!queried';

interface MemByte {
  c: number;
  e: BV | null;
  u: boolean;
}

const GPR64 = [Register.RAX, Register.RCX, Register.RDX, Register.RBX, Register.RSP, Register.RBP, Register.RSI, Register.RDI, Register.R8, Register.R9, Register.R10, Register.R11, Register.R12, Register.R13, Register.R14, Register.R15];
const ARG_REGS = [7, 6, 2, 1, 9, 8];
const CALLER_SAVED = [0, 1, 2, 6, 7, 8, 9, 10, 11];
const FAKE_BASE = 0x7e0000000000;

function mask(bits: number): bigint {
  return (1n << BigInt(bits)) - 1n;
}

function signed(c: bigint, bits: number): bigint {
  return BigInt.asIntN(bits, c);
}

/** What a solved attempt found. */
export interface Solution {
  /** Each symbol the constraints mention, with its solved value. */
  assignments: Array<{ symbol: SourceSymbol; value: bigint }>;
  calls: SourceCall[];
  /** Constraints in SMT-LIB form, for reports. */
  constraints: string[];
  slice: SliceStep[];
}

export interface ExecPlan {
  snapshot: CallSnapshot;
  /** All snapshots (to give later source calls their observed results). */
  snapshots: CallSnapshot[];
  /** Link-time address of the guard's conditional branch. */
  guardIp: number;
  /** The region side of the guard. */
  regionSide: 'taken' | 'not-taken';
  /** Link-time block starts from the region entry to the target (inclusive). */
  path: number[];
  maxSteps?: number;
  timeoutMs?: number;
}


/**
 * Where a solution stops short of the target: the path block (link-time
 * start) whose conditions the recording cannot decide yet, and why. A
 * re-run with the partial solution's call results executes up to that
 * block and observes what this run could not (iterative rounds, dormant.ts).
 */
export interface PartialReach {
  /** Link-time address of the block, in module {@link module}. */
  block: number;
  /** '' for the main executable, else the library's file name (code-space.ts). */
  module: string;
  reason: string;
}

/** The result of running a plan: solved (to the target, or part of the way), or why not. */
export type ExecResult =
  | { solved: true; solution: Solution; partial: PartialReach | null }
  | { solved: false; reason: string; reached: boolean };

/** Runs one plan. */
export class SymbolicExecutor implements ModelHost {
  private readonly regs: Val[] = [];
  private readonly xmm: Val[] = [];
  private readonly mem = new Map<number, MemByte>();
  private flags: Flags;
  private readonly constraints: Z3Bool[] = [];
  private readonly calls: SourceCall[] = [];
  private readonly symbols = new Map<string, SourceSymbol>();
  private readonly slice: SliceStep[] = [];
  private unknownCount = 0;
  private fakeCount = 0;
  private readonly decodeCache = new Map<number, Decoded>();
  /** Load bias of the main executable in the snapshot run. */
  private readonly bias: number;
  /** Load bias of each module of the code space in the snapshot run (NaN: not loaded). */
  private readonly biases: number[];
  /** The module of the snapshot's caller (the executor starts there). */
  private readonly startModule: number;
  private readonly canary: bigint;
  private mode: 'recorded' | 'continuation' = 'recorded';
  private currentSnapshot: CallSnapshot | null;
  observedResult: bigint | null = null;

  private get timeoutMs(): number {
    return this.plan.timeoutMs ?? DEFAULT_SOLVER_TIMEOUT_MS;
  }

  constructor(readonly z3: Z3, private readonly space: CodeSpace, private readonly plan: ExecPlan) {
    const s = plan.snapshot;
    this.bias = s.bias;
    this.biases = space.biasesIn(s);
    this.startModule = space.callerOf(s);
    if (this.startModule < 0 || Number.isNaN(this.biases[this.startModule])) throw new Unsolved(`${s.name}() was called from a module whose code the recording does not hold`);
    this.canary = s.args[4] ?? 0n;
    this.currentSnapshot = s;
    for (let i = 0; i < 16; i++) this.regs.push(this.unknown(`${regName(i)}@start`));
    for (let i = 0; i < 16; i++) this.xmm.push(this.unknown(`xmm${i}@start`));
    const saved = [3, 5, 12, 13, 14, 15];
    saved.forEach((r, k) => (this.regs[r] = { c: s.calleeSaved[k], e: null, u: false }));
    this.regs[4] = { c: BigInt(s.rspAtEntry + 8), e: null, u: false };
    this.flags = { kind: 'unknown', a: this.regs[0], b: this.regs[0], r: this.regs[0], bits: 64, cfKnown: false };
    // The snapshot's own call: its outputs become symbols.
    this.observedResult = s.result;
    this.args = s.args.slice(0, 4);
    const model = applySourceModel(s.name, s.site, space.modules[this.startModule].tag, s.occurrence, this);
    if (model === null) throw new Unsolved(`${s.name} is not a modelled call`);
    this.calls.push(model.call);
    this.regs[0] = model.rax;
  }

  // ---- ModelHost ----------------------------------------------------------

  private args: bigint[] = [];

  arg(i: number): Val {
    return i < this.args.length ? { c: this.args[i], e: null, u: false } : this.regs[ARG_REGS[i]];
  }

  argString(i: number): string | null {
    const p = Number(this.arg(i).c);
    if (p === 0) return null;
    const out: number[] = [];
    for (let k = 0; k < 256; k++) {
      const b = this.readByte(p + k);
      if (b.e !== null || b.u) return null;
      if (b.c === 0n) break;
      out.push(Number(b.c));
    }
    return Buffer.from(out).toString('latin1');
  }

  symbol(call: SourceCall, suffix: string, bits: number, role: SymbolRole, observed: bigint): Val {
    const name = `${call.name}@${call.site.toString(16)}#${this.calls.length}.${suffix}`;
    const sym: SourceSymbol = { name, bits, role, call, observed };
    call.symbols.push(sym);
    this.symbols.set(name, sym);
    return { c: observed, e: this.z3.BitVec.const(name, bits) as BV, u: false };
  }

  observedByte(addr: number): number {
    const s = this.currentSnapshot;
    return s === null ? -1 : s.memory.byte(addr);
  }

  fakeAddress(): number {
    return FAKE_BASE + 0x1000 * this.fakeCount++;
  }

  readByte(addr: number): Val {
    const m = this.mem.get(addr);
    if (m !== undefined) return { c: BigInt(m.c), e: m.e, u: m.u };
    const b = this.baseByte(addr);
    if (b >= 0) return { c: BigInt(b), e: null, u: false };
    const v = this.unknown(`mem@0x${addr.toString(16)}`, 8);
    this.mem.set(addr, { c: 0, e: v.e, u: true });
    return v;
  }

  writeByte(addr: number, v: Val): void {
    this.mem.set(addr, { c: Number(v.c & 0xffn), e: v.e, u: v.u });
  }

  // ---- state --------------------------------------------------------------

  private baseByte(addr: number): number {
    const b = this.plan.snapshot.memory.byte(addr);
    if (b >= 0) return b;
    const m = this.moduleAt(addr);
    return m < 0 ? -1 : this.space.modules[m].code.byte(addr - this.biases[m]);
  }

  /** The module of the code space holding run-time address `a`, or -1. */
  private moduleAt(a: number): number {
    for (let i = 0; i < this.biases.length; i++) {
      if (!Number.isNaN(this.biases[i]) && this.space.modules[i].code.contains(a - this.biases[i])) return i;
    }
    return -1;
  }

  /** Run-time `ip` as its module and link-time address, for the slice and reports. */
  private where(ip: number): { ip: number; module: string } {
    const m = this.moduleAt(ip);
    return m < 0 ? { ip, module: '?' } : { ip: ip - this.biases[m], module: this.space.modules[m].tag };
  }

  /** Run-time `ip` as text: `0x11f9` in the main executable, `libcheck.so:0x11f9` in a library. */
  private at(ip: number): string {
    const w = this.where(ip);
    return w.module === '' ? `0x${w.ip.toString(16)}` : `${w.module}:0x${w.ip.toString(16)}`;
  }

  private unknown(what: string, bits = 64): Val {
    return { c: 0n, e: this.z3.BitVec.const(`unknown!${this.unknownCount++}!${what}`, bits) as BV, u: true };
  }

  private ex(v: Val, bits: number): BV {
    return asBitVec(this.z3, v, bits);
  }

  private readReg(r: Register): Val {
    if (RegisterExt.isXMM(r)) return this.xmm[r - Register.XMM0];
    const full = RegisterExt.fullRegister(r);
    const idx = GPR64.indexOf(full);
    if (idx < 0) throw new Unsolved(`register ${Register[r]} is not modelled`);
    const v = this.regs[idx];
    const size = RegisterExt.size(r);
    const high = r === Register.AH || r === Register.CH || r === Register.DH || r === Register.BH;
    const shift = high ? 8 : 0;
    const bits = size * 8;
    if (bits === 64) return v;
    return {
      c: (v.c >> BigInt(shift)) & mask(bits),
      e: v.e === null ? null : (v.e.extract(shift + bits - 1, shift) as BV),
      u: v.u,
    };
  }

  private writeReg(r: Register, v: Val): void {
    if (RegisterExt.isXMM(r)) {
      this.xmm[r - Register.XMM0] = v;
      return;
    }
    const full = RegisterExt.fullRegister(r);
    const idx = GPR64.indexOf(full);
    if (idx < 0) throw new Unsolved(`register ${Register[r]} is not modelled`);
    const size = RegisterExt.size(r);
    if (size === 8) {
      this.regs[idx] = v;
      return;
    }
    if (size === 4) {
      this.regs[idx] = { c: v.c & mask(32), e: v.e === null ? null : (v.e.zeroExt(32) as BV), u: v.u };
      return;
    }
    const high = r === Register.AH || r === Register.CH || r === Register.DH || r === Register.BH;
    const shift = high ? 8 : 0;
    const bits = size * 8;
    const old = this.regs[idx];
    const c = (old.c & ~(mask(bits) << BigInt(shift))) | ((v.c & mask(bits)) << BigInt(shift));
    let e: BV | null = null;
    if (old.e !== null || v.e !== null) {
      const o = this.ex(old, 64);
      const parts: BV[] = [];
      if (shift + bits < 64) parts.push(o.extract(63, shift + bits) as BV);
      parts.push(this.ex(v, bits));
      if (shift > 0) parts.push(o.extract(shift - 1, 0) as BV);
      e = parts.length === 1 ? parts[0] : (this.z3.Concat(...parts) as BV);
    }
    this.regs[idx] = { c, e, u: old.u || v.u };
  }

  private readMem(addr: number, size: number): Val {
    const bytes: Val[] = [];
    for (let i = 0; i < size; i++) bytes.push(this.readByte(addr + i));
    let c = 0n;
    for (let i = size - 1; i >= 0; i--) c = (c << 8n) | bytes[i].c;
    const u = bytes.some((b) => b.u);
    if (bytes.every((b) => b.e === null)) return { c, e: null, u };
    const parts = bytes.map((b) => this.ex(b, 8)).reverse();
    return { c, e: parts.length === 1 ? parts[0] : (this.z3.Concat(...parts) as BV), u };
  }

  private writeMem(addr: number, size: number, v: Val): void {
    for (let i = 0; i < size; i++) this.writeByte(addr + i, extractByte(this.z3, v, i));
  }

  // ---- decoding -------------------------------------------------------------

  private decode(ip: number): Decoded {
    let d = this.decodeCache.get(ip);
    if (d === undefined) {
      const m = this.moduleAt(ip);
      if (m < 0) throw new Unsolved(`execution left the program's own code at 0x${ip.toString(16)}`);
      d = decodeAt(this.space.modules[m].code, ip, this.biases[m]);
      this.decodeCache.set(ip, d);
    }
    return d;
  }

  // ---- operands ---------------------------------------------------------------

  private async address(d: Decoded): Promise<number> {
    if (d.memSeg === Register.FS || d.memSeg === Register.GS) return NaN;
    let c = d.memDisp;
    let e: BV | null = null;
    let u = false;
    const add = (v: Val, scale: bigint): void => {
      c += v.c * scale;
      if (v.e !== null) {
        const t = scale === 1n ? v.e : (v.e.mul(this.z3.BitVec.val(scale, 64)) as BV);
        e = e === null ? t : (e.add(t) as BV);
      }
      u ||= v.u;
    };
    if (d.memBase !== Register.None) add(this.readReg(d.memBase), 1n);
    if (d.memIndex !== Register.None) add(this.readReg(d.memIndex), BigInt(d.memScale));
    c &= mask(64);
    if (e === null) return Number(c);
    if (u) throw new Unsolved(`address of ${d.text} depends on an unknown value`);
    const full = (e as BV).add(this.z3.BitVec.val(d.memDisp & mask(64), 64)) as BV;
    if (this.mode === 'recorded') return Number(c);
    return Number(await this.uniqueValue(full, d.text));
  }

  /** The one value `e` can take under the constraints so far; else Unsolved. */
  private async uniqueValue(e: BV, what: string): Promise<bigint> {
    const s = new this.z3.Solver();
    for (const k of this.constraints) s.add(k);
    // The value travels to the solver process as a named constant equal to `e`.
    const bits = e.sort.size();
    s.add(this.z3.BitVec.const(QUERIED_VALUE, bits).eq(e));
    const first = await checkWithin(s, this.timeoutMs, [{ name: QUERIED_VALUE, bits }]);
    if (first.answer !== 'sat') throw new Unsolved(`no value fits the constraints before ${what}`);
    const v = first.values.get(QUERIED_VALUE)!;
    s.add(e.neq(this.z3.BitVec.val(v, bits)));
    if ((await checkWithin(s, this.timeoutMs)).answer !== 'unsat') throw new Unsolved(`symbolic pointer in ${what} can take several values`);
    return v;
  }

  private async read(d: Decoded, i: number, size: number): Promise<Val> {
    const op = d.ops[i];
    if (op.kind === 'reg') return this.readReg(op.reg);
    if (op.kind === 'imm') return { c: op.imm & mask(size * 8), e: null, u: false };
    if (op.kind === 'mem') {
      if (d.memSeg === Register.FS && d.memBase === Register.None && d.memDisp === 0x28n && this.canary !== 0n) {
        return { c: this.canary & mask(size * 8), e: null, u: false };
      }
      const a = await this.address(d);
      if (Number.isNaN(a)) return this.unknown(`${Register[d.memSeg]}:[0x${d.memDisp.toString(16)}]`, size * 8);
      return this.readMem(a, size);
    }
    return { c: op.imm, e: null, u: false };
  }

  private async write(d: Decoded, i: number, size: number, v: Val): Promise<void> {
    const op = d.ops[i];
    if (op.kind === 'reg') return this.writeReg(op.reg, v);
    if (op.kind === 'mem') {
      const a = await this.address(d);
      if (Number.isNaN(a)) return;
      return this.writeMem(a, size, v);
    }
    throw new Unsolved(`cannot write operand ${i} of ${d.text}`);
  }

  private sizeOf(d: Decoded, i: number): number {
    const op = d.ops[i];
    if (op.kind === 'reg' || op.kind === 'mem') return op.size;
    return d.ops[0].size;
  }

  // ---- arithmetic ---------------------------------------------------------------

  private bin(a: Val, b: Val, bits: number, c: (x: bigint, y: bigint) => bigint, e: (x: BV, y: BV) => BV): Val {
    const m = mask(bits);
    return {
      c: c(a.c & m, b.c & m) & m,
      e: a.e === null && b.e === null ? null : e(this.ex(a, bits), this.ex(b, bits)),
      u: a.u || b.u,
    };
  }

  private setFlags(kind: FlagKind, a: Val, b: Val, r: Val, bits: number, cfKnown = true): void {
    this.flags = { kind, a, b, r, bits, cfKnown };
  }

  private cond(cc: ConditionCode): Cond {
    return conditionOf(this.z3, this.flags, cc, () => this.z3.Bool.const(`unknown!${this.unknownCount++}!flags`));
  }

  // ---- execution ---------------------------------------------------------------

  private rip = 0;

  /** Run the plan: to the guard on the recorded path, flip it, then along the path to the target. */
  async run(): Promise<ExecResult> {
    const plan = this.plan;
    this.rip = plan.snapshot.site + this.biases[this.startModule];
    const guard = plan.guardIp + this.bias;
    const maxSteps = plan.maxSteps ?? 20000;
    let steps = 0;
    try {
      // Recorded part: follow the concrete shadows up to the guard.
      while (this.rip !== guard) {
        if (++steps > maxSteps) return { solved: false, reason: `the guard was not reached within ${maxSteps} instructions of ${plan.snapshot.name}()`, reached: false };
        this.visited.add(this.rip);
        const ok = await this.step(null);
        if (!ok) return { solved: false, reason: `the program left the path before the guard (after ${plan.snapshot.name}())`, reached: false };
      }
      const d = this.decode(this.rip);
      const taken = this.cond(d.cc);
      const wantTaken = plan.regionSide === 'taken';
      if (taken.c === wantTaken && !taken.u) return { solved: false, reason: 'the snapshot run took the region side of the guard (it ran differently from the recording)', reached: true };
      if (taken.e === null) return this.flipLastFork(`the guard does not depend on ${plan.snapshot.name}() on the recorded path`);
      if (taken.u) return { solved: false, reason: `the guard depends on a value the recording cannot model (${unknownsOf(taken.e.sexpr()).join(', ')})`, reached: true };
      this.slice.push({ ...this.where(d.ip), text: d.text });
      this.constraints.push(wantTaken ? taken.e : taken.e.not());
      // A branch on the recorded path may rule the flip out (an inlined
      // compare that stopped at the first differing byte): go the other way there first.
      if (!(await this.satisfiable())) {
        this.constraints.pop();
        return this.flipLastFork('the guard cannot flip with the recorded path\'s conditions');
      }
      this.mode = 'continuation';
      this.lastRecordedIndex = this.currentSnapshot?.index ?? -1;
      this.currentSnapshot = null;
      this.rip = (wantTaken ? Number(d.ops[0].imm) : d.next);
      // Continuation: along the static path to the target.
      const path = plan.path.map((a) => a + this.bias);
      this.pathIndex = 0;
      if (path[0] !== this.rip) return { solved: false, reason: 'the path does not start at the guard\'s region side', reached: true };
      const target = path[path.length - 1];
      while (this.rip !== target) {
        if (++steps > maxSteps) return { solved: false, reason: 'the target was not reached within the step budget', reached: true };
        while (this.pathIndex + 1 < path.length && this.rip === path[this.pathIndex + 1]) this.pathIndex++;
        const next = this.pathIndex + 1 < path.length ? path[this.pathIndex + 1] : target;
        const ok = await this.step(next);
        if (!ok) return this.solvePartial('the path to the target leaves the function');
      }
    } catch (e) {
      if (!(e instanceof Unsolved)) throw e;
      if (this.mode === 'continuation') return this.solvePartial(e.message);
      return { solved: false, reason: e.message, reached: false };
    }
    return this.solve(null);
  }

  /** Branches on the recorded path whose condition depends on a symbol, in order. */
  private readonly recordedForks: Array<{ at: string; constraint: number; cond: Z3Bool; taken: boolean; otherSide: number; otherRip: number }> = [];
  /** Run-time addresses of the instructions the recorded part executed. */
  private readonly visited = new Set<number>();

  /**
   * The guard's condition is concrete on the recorded path (or cannot flip
   * under its conditions), but an earlier branch on it depended on a call's
   * result (getenv returned NULL, so the string compare that decides the
   * guard never ran): take the other side of the last such branch that can
   * be taken, as a partial solution. The re-run goes that way, and the next
   * round sees the guard depend on the call.
   *
   * Branches whose other side the recorded path never ran come first: the
   * other side of a loop's exit test is the loop body the path ran already
   * (a line read, then the end of the file), and taking it again only adds
   * an iteration, while the compare inside the body whose other side sets
   * the guard's flag never ran.
   */
  private async flipLastFork(reason: string): Promise<ExecResult> {
    if (this.recordedForks.length === 0) return { solved: false, reason: reason.replace(' on the recorded path', ''), reached: true };
    const all = [...this.constraints];
    let last: ExecResult | null = null;
    const latestFirst = [...this.recordedForks].reverse();
    const order = [...latestFirst.filter((f) => !this.visited.has(f.otherRip)), ...latestFirst.filter((f) => this.visited.has(f.otherRip))];
    for (const fork of order) {
      this.constraints.splice(0, this.constraints.length, ...all.slice(0, fork.constraint), fork.taken ? fork.cond.not() : fork.cond);
      last = await this.solve({ block: fork.otherSide, module: this.where(fork.otherRip).module, reason: `${reason}; first the other side of the branch at ${fork.at}` });
      if (last.solved) return last;
    }
    return last!;
  }

  /** True if the constraints so far can hold together. */
  private async satisfiable(): Promise<boolean> {
    const s = new this.z3.Solver();
    for (const k of this.constraints) s.add(k);
    return (await checkWithin(s, this.timeoutMs)).answer !== 'unsat';
  }

  /** Index in the plan's path of the last block entered after the guard. */
  private pathIndex = 0;

  /**
   * The continuation stopped before the target: solve what was gathered up
   * to the path block it stopped in (the guard flip and every condition
   * before that block), so that a re-run gets that far.
   */
  private async solvePartial(reason: string): Promise<ExecResult> {
    const block = this.plan.path[this.pathIndex];
    const res = await this.solve({ block, module: '', reason });
    if (res.solved) return res;
    return { solved: false, reason: `${reason}; and ${res.reason}`, reached: true };
  }

  private async solve(partial: PartialReach | null): Promise<ExecResult> {
    const z = this.z3;
    const s = new z.Solver();
    const texts: string[] = [];
    for (const k of this.constraints) {
      const text = k.sexpr();
      const unk = unknownsOf(text);
      if (unk.length > 0) return { solved: false, reason: `a condition on the way depends on values the recording cannot model (${unk.join(', ')})`, reached: true };
      s.add(k);
      texts.push(text);
    }
    // Value ranges of some results (rand: 0..RAND_MAX).
    for (const call of this.calls) {
      const range = (call as SourceCall & { range?: [bigint, bigint] }).range;
      const ret = call.symbols.find((x) => x.role.kind === 'ret');
      if (range && ret) {
        const v = z.BitVec.const(ret.name, ret.bits);
        s.add(v.uge(z.BitVec.val(range[0], ret.bits)), v.ule(z.BitVec.val(range[1], ret.bits)));
      }
    }
    const used = new Set<string>();
    for (const t of texts) for (const n of symbolNames(t)) used.add(n);
    const queried: SourceSymbol[] = [];
    for (const name of used) {
      const sym = this.symbols.get(name);
      if (sym !== undefined) queried.push(sym);
    }
    const r = await checkWithin(s, this.timeoutMs, queried.map(({ name, bits }) => ({ name, bits })));
    if (r.answer === 'unknown') return { solved: false, reason: 'the solver gave up (timeout)', reached: true };
    if (r.answer === 'unsat') return { solved: false, reason: 'no call results satisfy every condition on the way (unsat)', reached: true };
    const assignments: Solution['assignments'] = queried.map((sym) => ({ symbol: sym, value: r.values.get(sym.name)! }));
    // String results: the bytes the model leaves free up to the first NUL become NUL.
    return { solved: true, partial, solution: { assignments, calls: this.calls.filter((c) => c.symbols.some((x) => used.has(x.name))), constraints: texts, slice: this.slice } };
  }

  /**
   * Execute one instruction. `next`: in continuation mode, the block the
   * path goes to after this one (decides symbolic branches). Returns false
   * if execution left the expected path.
   */
  private async step(next: number | null): Promise<boolean> {
    const d = this.decode(this.rip);
    const z = this.z3;
    let tainted = false;
    const note = (v: Val): Val => {
      if (v.e !== null && !v.u) tainted = true;
      return v;
    };
    const sz = (i: number): number => this.sizeOf(d, i);
    let fall = d.next;
    const m = d.mnemonic;
    switch (m) {
      case 'Nop':
      case 'Endbr64':
      case 'Endbr32':
      case 'Prefetchnta':
      case 'Prefetcht0':
        break;
      case 'Mov':
      case 'Movabs': {
        const n = sz(0);
        await this.write(d, 0, n, note(await this.read(d, 1, n)));
        break;
      }
      case 'Movzx':
      case 'Movsx':
      case 'Movsxd': {
        const n = sz(0);
        const k = sz(1);
        const v = await this.read(d, 1, k);
        const ext = n - k;
        const isSigned = m !== 'Movzx';
        const c = isSigned ? BigInt.asUintN(n * 8, signed(v.c, k * 8)) : v.c;
        const e = v.e === null || ext <= 0 ? v.e : ((isSigned ? v.e.signExt(ext * 8) : v.e.zeroExt(ext * 8)) as BV);
        await this.write(d, 0, n, note({ c, e, u: v.u }));
        break;
      }
      case 'Cdqe':
      case 'Cwde':
      case 'Cbw': {
        const from = m === 'Cdqe' ? Register.EAX : m === 'Cwde' ? Register.AX : Register.AL;
        const to = m === 'Cdqe' ? Register.RAX : m === 'Cwde' ? Register.EAX : Register.AX;
        const v = this.readReg(from);
        const k = RegisterExt.size(from) * 8;
        const n = RegisterExt.size(to) * 8;
        this.writeReg(to, note({ c: BigInt.asUintN(n, signed(v.c, k)), e: v.e === null ? null : (v.e.signExt(n - k) as BV), u: v.u }));
        break;
      }
      case 'Cdq':
      case 'Cqo': {
        const bits = m === 'Cdq' ? 32 : 64;
        const v = this.readReg(m === 'Cdq' ? Register.EAX : Register.RAX);
        const c = signed(v.c, bits) < 0n ? mask(bits) : 0n;
        const e = v.e === null ? null : (v.e.shr(bits - 1) as BV);
        this.writeReg(m === 'Cdq' ? Register.EDX : Register.RDX, note({ c, e, u: v.u }));
        break;
      }
      case 'Lea': {
        const save = this.mode;
        this.mode = 'recorded'; // an address computation, not a memory access
        let c = d.memDisp;
        let e: BV | null = null;
        let u = false;
        for (const [r, scale] of [[d.memBase, 1n], [d.memIndex, BigInt(d.memScale)]] as const) {
          if (r === Register.None) continue;
          const v = this.readReg(r);
          c += v.c * scale;
          u ||= v.u;
          if (v.e !== null) {
            const t = scale === 1n ? v.e : (v.e.mul(z.BitVec.val(scale, 64)) as BV);
            e = e === null ? t : (e.add(t) as BV);
          }
        }
        this.mode = save;
        const n = sz(0);
        const full: Val = { c: c & mask(64), e: e === null ? null : ((e as BV).add(z.BitVec.val(d.memDisp & mask(64), 64)) as BV), u };
        this.writeReg(d.ops[0].reg, note(n === 8 ? full : { c: full.c & mask(n * 8), e: full.e === null ? null : (full.e.extract(n * 8 - 1, 0) as BV), u }));
        break;
      }
      case 'Add':
      case 'Sub':
      case 'Cmp':
      case 'And':
      case 'Or':
      case 'Xor':
      case 'Test': {
        const n = sz(0);
        const bits = n * 8;
        const a = await this.read(d, 0, n);
        const b = await this.read(d, 1, n);
        let r: Val;
        if (m === 'Xor' && d.ops[0].kind === 'reg' && d.ops[1].kind === 'reg' && d.ops[0].reg === d.ops[1].reg) r = { c: 0n, e: null, u: false };
        else if (m === 'Add') r = this.bin(a, b, bits, (x, y) => x + y, (x, y) => x.add(y) as BV);
        else if (m === 'Sub' || m === 'Cmp') r = this.bin(a, b, bits, (x, y) => x - y, (x, y) => x.sub(y) as BV);
        else if (m === 'And' || m === 'Test') r = this.bin(a, b, bits, (x, y) => x & y, (x, y) => x.and(y) as BV);
        else if (m === 'Or') r = this.bin(a, b, bits, (x, y) => x | y, (x, y) => x.or(y) as BV);
        else r = this.bin(a, b, bits, (x, y) => x ^ y, (x, y) => x.xor(y) as BV);
        note(r);
        this.setFlags(m === 'Add' ? 'add' : m === 'Sub' || m === 'Cmp' ? 'sub' : 'logic', a, b, r, bits);
        if (m !== 'Cmp' && m !== 'Test') await this.write(d, 0, n, r);
        break;
      }
      case 'Inc':
      case 'Dec':
      case 'Neg':
      case 'Not': {
        const n = sz(0);
        const bits = n * 8;
        const a = await this.read(d, 0, n);
        const one: Val = { c: 1n, e: null, u: false };
        const zero: Val = { c: 0n, e: null, u: false };
        let r: Val;
        if (m === 'Inc') {
          r = this.bin(a, one, bits, (x, y) => x + y, (x, y) => x.add(y) as BV);
          this.setFlags('add', a, one, r, bits, false);
        } else if (m === 'Dec') {
          r = this.bin(a, one, bits, (x, y) => x - y, (x, y) => x.sub(y) as BV);
          this.setFlags('sub', a, one, r, bits, false);
        } else if (m === 'Neg') {
          r = this.bin(zero, a, bits, (x, y) => x - y, (x, y) => x.sub(y) as BV);
          this.setFlags('sub', zero, a, r, bits);
        } else {
          r = { c: ~a.c & mask(bits), e: a.e === null ? null : (a.e.not() as BV), u: a.u };
        }
        await this.write(d, 0, n, note(r));
        break;
      }
      case 'Shl':
      case 'Sal':
      case 'Shr':
      case 'Sar': {
        const n = sz(0);
        const bits = n * 8;
        const a = await this.read(d, 0, n);
        const cnt = d.ops.length > 1 ? await this.read(d, 1, 1) : { c: 1n, e: null, u: false };
        if (cnt.e !== null || cnt.u) throw new Unsolved(`symbolic shift count in ${d.text}`);
        const k = cnt.c & (bits === 64 ? 63n : 31n);
        let r: Val;
        if (m === 'Shl' || m === 'Sal') r = { c: (a.c << k) & mask(bits), e: a.e === null ? null : (a.e.shl(z.BitVec.val(k, bits)) as BV), u: a.u };
        else if (m === 'Shr') r = { c: (a.c & mask(bits)) >> k, e: a.e === null ? null : (a.e.lshr(z.BitVec.val(k, bits)) as BV), u: a.u };
        else r = { c: BigInt.asUintN(bits, signed(a.c, bits) >> k), e: a.e === null ? null : (a.e.shr(z.BitVec.val(k, bits)) as BV), u: a.u };
        if (k !== 0n) this.setFlags('logic', r, r, r, bits);
        await this.write(d, 0, n, note(r));
        break;
      }
      case 'Imul': {
        if (d.ops.length === 1) throw new Unsolved(`one-operand imul at ${this.at(d.ip)} is not modelled`);
        const n = sz(0);
        const bits = n * 8;
        const a = await this.read(d, d.ops.length === 3 ? 1 : 0, n);
        const b = await this.read(d, d.ops.length === 3 ? 2 : 1, n);
        const r = this.bin(a, b, bits, (x, y) => x * y, (x, y) => x.mul(y) as BV);
        this.flags = { kind: 'unknown', a: r, b: r, r, bits, cfKnown: false };
        await this.write(d, 0, n, note(r));
        break;
      }
      case 'Push': {
        const v = await this.read(d, 0, 8);
        const sp = this.regs[4].c - 8n;
        this.regs[4] = { c: sp, e: null, u: false };
        this.writeMem(Number(sp), 8, v);
        break;
      }
      case 'Pop': {
        const sp = this.regs[4].c;
        const v = this.readMem(Number(sp), 8);
        this.regs[4] = { c: sp + 8n, e: null, u: false };
        await this.write(d, 0, 8, v);
        break;
      }
      case 'Leave': {
        const bp = this.regs[5];
        if (bp.e !== null || bp.u) throw new Unsolved('leave with a symbolic frame pointer');
        this.regs[5] = this.readMem(Number(bp.c), 8);
        this.regs[4] = { c: bp.c + 8n, e: null, u: false };
        break;
      }
      case 'Xchg': {
        const n = sz(0);
        const a = await this.read(d, 0, n);
        const b = await this.read(d, 1, n);
        await this.write(d, 0, n, b);
        await this.write(d, 1, n, a);
        break;
      }
      case 'Pxor':
      case 'Xorps':
      case 'Vpxor':
      case 'Vxorps': {
        const regs = d.ops.map((o) => o.reg);
        if (!(d.ops.every((o) => o.kind === 'reg') && regs.slice(1).every((r) => r === regs[d.ops.length - 1]))) throw new Unsolved(`${d.text} is not modelled`);
        this.writeReg(regs[0], { c: 0n, e: null, u: false });
        break;
      }
      case 'Movaps':
      case 'Movups':
      case 'Movdqa':
      case 'Movdqu':
      case 'Movq':
      case 'Movd': {
        const n = d.ops[0].kind === 'mem' ? d.memSize : d.ops[1].kind === 'mem' ? d.memSize : Math.min(d.ops[0].size, d.ops[1].size);
        const v = await this.read(d, 1, n);
        await this.write(d, 0, n, v);
        break;
      }
      case 'Call':
        fall = await this.call(d, next);
        break;
      case 'Ret': {
        const sp = this.regs[4].c;
        const to = this.readMem(Number(sp), 8);
        if (to.e !== null || to.u) throw new Unsolved('return address is not concrete');
        if (this.moduleAt(Number(to.c)) < 0) return false;
        this.regs[4] = { c: sp + 8n + (d.ops.length > 0 ? d.ops[0].imm : 0n), e: null, u: false };
        if (this.mode === 'continuation') return false;
        fall = Number(to.c);
        break;
      }
      case 'Jmp': {
        if (d.ops[0].kind !== 'branch') throw new Unsolved(`indirect jump ${d.text} on the path`);
        fall = Number(d.ops[0].imm);
        break;
      }
      case 'Hlt':
      case 'Ud2':
      case 'Int3':
        return false;
      default:
        if (d.isJcc) {
          const cond = this.cond(d.cc);
          const target = Number(d.ops[0].imm);
          let taken: boolean;
          if (this.mode === 'recorded' || next === null) {
            if (cond.u) throw new Unsolved(`a branch before the guard (${this.at(d.ip)}) depends on a value the recording cannot model`);
            taken = cond.c;
            if (cond.e !== null) {
              this.recordedForks.push({ at: this.at(d.ip), constraint: this.constraints.length, cond: cond.e, taken, otherSide: this.where(taken ? d.next : target).ip, otherRip: taken ? d.next : target });
              this.constraints.push(taken ? cond.e : cond.e.not());
              this.slice.push({ ...this.where(d.ip), text: d.text });
            }
          } else {
            if (next !== target && next !== d.next) return false;
            if (cond.u) throw new Unsolved(`the branch at ${this.at(d.ip)} depends on values the recording cannot model (${cond.e === null ? 'flags' : unknownsOf(cond.e.sexpr()).join(', ')})`);
            taken = next === target && (target !== d.next || cond.c);
            if (cond.e !== null) {
              this.constraints.push(taken ? cond.e : cond.e.not());
              this.slice.push({ ...this.where(d.ip), text: d.text });
            } else if (cond.c !== taken) throw new Unsolved(`the path to the target needs the other side of the concrete branch at ${this.at(d.ip)}`);
          }
          fall = taken ? target : d.next;
          break;
        }
        if (m.startsWith('Set') && d.cc !== ConditionCode.None) {
          const cond = this.cond(d.cc);
          const v: Val = { c: cond.c ? 1n : 0n, e: cond.e === null ? null : (z.If(cond.e, z.BitVec.val(1, 8), z.BitVec.val(0, 8)) as BV), u: cond.u };
          await this.write(d, 0, 1, note(v));
          break;
        }
        if (m.startsWith('Cmov') && d.cc !== ConditionCode.None) {
          const n = sz(0);
          const cond = this.cond(d.cc);
          const a = await this.read(d, 0, n);
          const b = await this.read(d, 1, n);
          let v: Val;
          if (cond.e === null) v = cond.c ? b : a;
          else v = { c: cond.c ? b.c : a.c, e: z.If(cond.e, this.ex(b, n * 8), this.ex(a, n * 8)) as BV, u: a.u || b.u || cond.u };
          await this.write(d, 0, n, note(v));
          break;
        }
        throw new Unsolved(`instruction '${d.text}' at ${this.at(d.ip)} is not modelled`);
    }
    if (tainted) this.slice.push({ ...this.where(d.ip), text: d.text });
    this.rip = fall;
    return true;
  }

  /**
   * After the guard, concrete shadows of symbolic values are stale: a
   * pointer argument must be the one value the constraints allow.
   */
  private async resolveArgs(name: string): Promise<void> {
    for (let i = 0; i < 4; i++) {
      const v = this.regs[ARG_REGS[i]];
      if (v.e === null || v.u) continue;
      try {
        this.regs[ARG_REGS[i]] = { c: await this.uniqueValue(v.e, `argument ${i} of ${name}()`), e: null, u: false };
      } catch (e) {
        if (!(e instanceof Unsolved) || isPureModel(name)) throw e;
      }
    }
  }

  /** A call on the path; returns where execution continues. */
  private async call(d: Decoded, next: number | null): Promise<number> {
    let target: number;
    let name: string | null = null;
    const op = d.ops[0];
    // The caller's module: its PLT and GOT name the imports it calls.
    const from = this.moduleAt(d.ip);
    const fromCode = this.space.modules[from].code;
    const fromBias = this.biases[from];
    if (op.kind === 'branch') {
      target = Number(op.imm);
    } else {
      const t = await this.read(d, 0, 8);
      if (t.e !== null || t.u) throw new Unsolved(`indirect call with an unknown target: ${d.text}`);
      target = Number(t.c);
      // call [GOT slot] (-fno-plt): the slot names the import.
      if (op.kind === 'mem') {
        const slot = (await this.address(d)) - fromBias;
        const plt = fromCode.cfg.plt.find((p) => p.gotSlot === slot);
        if (plt) name = plt.name;
      }
    }
    if (name === null) {
      const link = target - fromBias;
      const plt = fromCode.contains(link) ? fromCode.cfg.pltAt(link) : null;
      if (plt !== null) name = plt.name;
    }
    const retSite = d.next;
    const retLink = retSite - fromBias;
    const fromTag = this.space.modules[from].tag;
    // An import that one of the program's own libraries defines: on the recorded part, run it.
    const own = name !== null && this.mode === 'recorded' && !isPureModel(name) ? this.space.exportOf(name) : null;
    if (own !== null && !Number.isNaN(this.biases[own.module])) return this.enter(own.link + this.biases[own.module], retSite);
    if (name !== null) {
      const saved = this.args;
      this.args = [];
      if (this.mode === 'continuation') await this.resolveArgs(name);
      const snapshot =
        this.mode === 'recorded'
          ? this.plan.snapshots.find((s) => s.index > (this.currentSnapshot?.index ?? -1) && s.site === retLink && this.space.callerOf(s) === from) ?? null
          : null;
      if (snapshot !== null) this.currentSnapshot = snapshot;
      this.observedResult = snapshot?.result ?? (this.mode === 'recorded' ? null : 0n);
      let rax: Val | null = null;
      if (isPureModel(name)) {
        rax = applyPureModel(name, this);
      } else {
        const occurrence = snapshot?.occurrence ?? (this.mode === 'continuation' ? this.nextOccurrence(name, retLink, from) : 0);
        const model = this.mode === 'recorded' && snapshot === null ? null : applySourceModel(name, retLink, fromTag, occurrence, this);
        if (model !== null) {
          this.calls.push(model.call);
          rax = model.rax;
        }
      }
      this.args = saved;
      for (const r of CALLER_SAVED) this.regs[r] = this.unknown(`${regName(r)} after ${name}()`);
      this.regs[0] = rax ?? this.unknown(`result of ${name}()`);
      this.flags = { kind: 'unknown', a: this.regs[0], b: this.regs[0], r: this.regs[0], bits: 64, cfKnown: false };
      return retSite;
    }
    // The program's own function (in any of its modules): on the recorded part, run it.
    if (this.mode === 'recorded' && this.moduleAt(target) >= 0) return this.enter(target, retSite);
    // Anything else: assume it leaves memory alone; its result is unknown.
    void next;
    for (const r of CALLER_SAVED) this.regs[r] = this.unknown(`${regName(r)} after call ${this.at(target)}`);
    this.flags = { kind: 'unknown', a: this.regs[0], b: this.regs[0], r: this.regs[0], bits: 64, cfKnown: false };
    return retSite;
  }

  /** The last snapshot the recorded part used, when the continuation began. */
  private lastRecordedIndex = -1;
  /** The occurrence the continuation gave each call site last, by `name module site`. */
  private readonly continuationOccurrences = new Map<string, number>();

  /**
   * Which call at its site a call on the continuation is (snapshot.ts):
   * one past the last the snapshot run made there up to the guard, or past
   * the continuation's own previous call there. 0 if the shim did not count.
   */
  private nextOccurrence(name: string, site: number, module: number): number {
    const key = `${name} ${module} ${site}`;
    let last = this.continuationOccurrences.get(key);
    if (last === undefined) {
      last = 0;
      for (const s of this.plan.snapshots) {
        if (s.index > this.lastRecordedIndex) break;
        if (s.name === name && s.site === site && this.space.callerOf(s) === module) {
          if (s.occurrence === 0) return 0;
          last = Math.max(last, s.occurrence);
        }
      }
    }
    this.continuationOccurrences.set(key, last + 1);
    return last + 1;
  }

  /** Enter a function at run-time `target`: push the return address, continue there. */
  private enter(target: number, retSite: number): number {
    const sp = this.regs[4].c - 8n;
    this.regs[4] = { c: sp, e: null, u: false };
    this.writeMem(Number(sp), 8, { c: BigInt(retSite), e: null, u: false });
    return target;
  }
}

function regName(i: number): string {
  return Register[GPR64[i]].toLowerCase();
}

function unknownsOf(sexpr: string): string[] {
  const out = new Set<string>();
  for (const m of sexpr.matchAll(/\|unknown!\d+!([^|]*)\||unknown!\d+!([^\s)|]+)/g)) out.add(m[1] ?? m[2]);
  return [...out];
}
