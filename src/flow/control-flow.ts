/**
 * The control-flow stream every analysis consumes: the instruction decoder's
 * output reduced to control transfers (source → target, with their kind),
 * the gaps and events between them, and decode errors.
 *
 * Analyses never see packets. The walker drives an {@link InsnDecoder}
 * through the whole trace (resyncing at the next PSB after an error, like
 * ptxed) and calls each {@link FlowConsumer} in turn. Nothing is allocated
 * per instruction or per transfer: consumers get plain numbers and the
 * decoder's reusable instruction/event structs.
 *
 * When no consumer asks for every instruction, the walker reads blocks
 * instead (the instruction decoder's own {@link BlockDecoder}, set to end
 * blocks at every branch), which moves through the code by cached runs:
 * each block's last instruction is its only possible transfer, so the
 * callbacks are the same, in the same order, as instruction by instruction.
 */
import { ErrorCode } from '../packets/errors.js';
import { EventType, PtEvent } from '../events/event.js';
import { Status } from '../events/status.js';
import { Block } from './block-decoder.js';
import type { InsnDecoder } from './insn-decoder.js';
import { InsnClass, InstructionInfo } from './instruction.js';
import type { TaskContext, TaskSwitcher } from './task-switch.js';
import { LastInsnMemo, lastClass, lastIsDirect, lastSize } from './last-insn-memo.js';

/** What kind of control transfer a {@link FlowConsumer.onTransfer} reports. */
export enum TransferKind {
  /** `call rel`. */
  DirectCall = 0,
  /** `call r/m`. */
  IndirectCall,
  /** Near `ret`. */
  Return,
  /** `jmp rel`. */
  DirectJump,
  /** `jmp r/m`. */
  IndirectJump,
  /** A conditional branch that was taken. */
  CondTaken,
  /** A conditional branch that fell through. */
  CondNotTaken,
  /** syscall, sysenter, int n, far call, vmcall. */
  FarCall,
  /** iret, sysret, far ret, vmresume... */
  FarReturn,
  /** Far jump. */
  FarJump,
  /** An asynchronous transfer (interrupt, signal delivery, exception) between two instructions. */
  Async,
}

export const TRANSFER_NAMES: readonly string[] = [
  'call', 'icall', 'ret', 'jmp', 'ijmp', 'jcc-taken', 'jcc-not-taken', 'far-call', 'far-ret', 'far-jmp', 'async',
];

/** True for transfers whose target comes from data (what CFI and ROP checks look at). */
export function isIndirect(kind: TransferKind): boolean {
  return kind === TransferKind.IndirectCall || kind === TransferKind.IndirectJump || kind === TransferKind.Return;
}

/** Why the walker saw no instructions for a while. */
export enum GapKind {
  /** Tracing was disabled (TIP.PGD: a syscall into the kernel, a filter boundary) and later resumed. */
  Disabled = 0,
  /** The trace overflowed (OVF): some execution is missing. */
  Overflow,
  /** A decode error; the walker resynced at the next PSB. */
  Error,
}

/**
 * A consumer of the control-flow stream. Every callback is optional.
 * Addresses are numbers (see flow/address-space.ts); `to` is NaN when the
 * target is unknown (tracing got disabled at the transfer).
 */
export interface FlowConsumer {
  /**
   * A control transfer out of the instruction at `from` (`size` bytes) to
   * `to`. `insnsBefore` counts the instructions executed since the previous
   * transfer, the branch included (a gadget's length, for ROP heuristics).
   * `cr3` is the address space (NaN when unknown).
   */
  onTransfer?(kind: TransferKind, from: number, to: number, size: number, insnsBefore: number, cr3: number): void;
  /** Every executed instruction (only asked for when a consumer needs it, e.g. coverage). */
  onInstruction?(insn: InstructionInfo): void;
  /** A decoder event (enable, disable, overflow, paging, exec mode, ptwrite, power, ...). */
  onEvent?(ev: PtEvent): void;
  /** The stream lost continuity: analyses must not pair a call before a gap with a return after it. */
  onGap?(kind: GapKind, offset: number): void;
  /** A decode error at trace offset `offset` with the last known `ip`. */
  onError?(code: number, offset: number, ip: number): void;
  /** The end of the trace. */
  onEnd?(): void;
  /**
   * A per-CPU stream moved to another task (task-switch.ts): what follows,
   * up to the next call, is that thread's. Before the first call the task
   * is the stream's own (or unknown).
   */
  onTask?(task: TaskContext): void;
}

/**
 * What a walk leaves open at its end, for a walk of the next piece of the
 * same trace (src/flow/parallel): the branch whose target is the next
 * instruction, the instructions since the last transfer, and the CR3.
 */
export interface WalkCarry {
  pendingKind: number;
  pendingIp: number;
  pendingSize: number;
  pendingCount: number;
  sinceTransfer: number;
  cr3: number;
}

/** Counts from one walk. */
export interface FlowStats {
  instructions: number;
  transfers: number;
  errors: number;
  gaps: number;
}

/** The transfer an instruction of class `iclass` makes, or -1 for none. */
function classify(iclass: InsnClass, isDirect: boolean): TransferKind | -1 {
  switch (iclass) {
    case InsnClass.Call:
      return isDirect ? TransferKind.DirectCall : TransferKind.IndirectCall;
    case InsnClass.Return:
      return TransferKind.Return;
    case InsnClass.Jump:
      return isDirect ? TransferKind.DirectJump : TransferKind.IndirectJump;
    case InsnClass.CondJump:
      return TransferKind.CondTaken;
    case InsnClass.FarCall:
      return TransferKind.FarCall;
    case InsnClass.FarReturn:
      return TransferKind.FarReturn;
    case InsnClass.FarJump:
      return TransferKind.FarJump;
    default:
      return -1;
  }
}

/** Thrown to end a piece's walk (runPiece's stopAt), caught there. */
const STOP = new Error('stop');
/** Thrown to leave a pausable walk at a task switch (see {@link ControlFlowWalker.step}). */
const PAUSE = new Error('pause');

/** Drives an instruction decoder over a whole trace and feeds consumers. */
export class ControlFlowWalker {
  private readonly insn = new InstructionInfo();
  private readonly block = new Block();
  private readonly last = new InstructionInfo();
  /** Each block's last instruction, remembered by its end address. */
  private readonly lastInsns = new LastInsnMemo();
  private readonly ev = new PtEvent();
  private readonly transferSinks: FlowConsumer[];
  private readonly insnSinks: FlowConsumer[];
  private readonly eventSinks: FlowConsumer[];
  private readonly gapSinks: FlowConsumer[];
  private readonly errorSinks: FlowConsumer[];
  private readonly taskSinks: FlowConsumer[];
  /** Who runs on a per-CPU stream (set before {@link run}); null for one thread's stream. */
  tasks: TaskSwitcher | null = null;
  /** {@link step}: the switch the walk paused before, to apply when it goes on. */
  private pendingTask: TaskContext | null = null;
  /** {@link step}: the decoder status to go on with; NaN when not paused. */
  private resumeStatus = NaN;
  private stepping = false;
  private started = false;

  /** The branch waiting for its target (the next instruction's IP). */
  private pendingKind = -1;
  private pendingIp = 0;
  private pendingSize = 0;
  private pendingCount = 0;
  private sinceTransfer = 0;
  private cr3 = NaN;
  /** Where a piece's walk ends: before the first event this accepts (runPiece). */
  private stopAt: (() => boolean) | null = null;
  /** The counts of the piece being walked, as they stand (runPiece). */
  walked: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };

  constructor(
    private readonly decoder: InsnDecoder,
    readonly consumers: readonly FlowConsumer[],
  ) {
    this.transferSinks = consumers.filter((c) => c.onTransfer);
    this.insnSinks = consumers.filter((c) => c.onInstruction);
    this.eventSinks = consumers.filter((c) => c.onEvent);
    this.gapSinks = consumers.filter((c) => c.onGap);
    this.errorSinks = consumers.filter((c) => c.onError);
    this.taskSinks = consumers.filter((c) => c.onTask);
  }

  /**
   * Walk the whole trace. Never throws for bad trace data: errors go to
   * consumers. `mode` forces instruction- or block-wise decoding (the
   * callbacks are the same; 'auto' takes blocks unless a consumer has
   * {@link FlowConsumer.onInstruction}).
   */
  run(mode: 'auto' | 'insn' | 'block' = 'auto'): FlowStats {
    const first = this.tasks?.start() ?? null;
    if (first !== null) this.switchTask(first);
    const stats = this.runPiece(mode, null);
    if (this.pendingKind >= 0) this.flush(NaN, stats);
    for (const c of this.consumers) c.onEnd?.();
    return stats;
  }

  /**
   * Walk one piece of a trace cut at PSBs: start from `carry` (what the
   * previous piece left open; null for none), stop after the first
   * transfer at which `stopAt` says so, and leave the piece's own open
   * branch unflushed and onEnd uncalled: see {@link carry}.
   */
  runPiece(mode: 'auto' | 'insn' | 'block', carry: WalkCarry | null, stopAt: (() => boolean) | null = null): FlowStats {
    this.stopAt = stopAt;
    if (carry !== null) {
      this.pendingKind = carry.pendingKind;
      this.pendingIp = carry.pendingIp;
      this.pendingSize = carry.pendingSize;
      this.pendingCount = carry.pendingCount;
      this.sinceTransfer = carry.sinceTransfer;
      this.cr3 = carry.cr3;
    }
    const stats: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
    this.walked = stats;
    try {
      this.walk(mode, stats);
    } catch (e) {
      if (e !== STOP) throw e;
    } finally {
      this.stopAt = null;
    }
    return stats;
  }

  /**
   * Walk a per-CPU stream in steps, one task's run at a time, so that a
   * caller can take several CPUs' streams in time order (a thread's runs on
   * different CPUs then reach its consumers in the order they ran). The
   * first call applies {@link TaskSwitcher.start}'s task and walks; each
   * call stops before the next task switch, which the next call applies.
   * Returns false once the trace has ended (consumers' onEnd is left to the
   * caller, which shares them between streams).
   */
  step(stats: FlowStats, mode: 'auto' | 'insn' | 'block' = 'auto'): boolean {
    if (!this.started) {
      this.started = true;
      const first = this.tasks?.start() ?? null;
      if (first !== null) this.switchTask(first);
    }
    this.stepping = true;
    this.walked = stats;
    try {
      this.walk(mode, stats);
    } catch (e) {
      if (e === PAUSE) return true;
      throw e;
    } finally {
      this.stepping = false;
    }
    if (this.pendingKind >= 0) this.flush(NaN, stats);
    return false;
  }

  /** Walk block-wise unless asked for instructions or a consumer takes each instruction. */
  private walk(mode: 'auto' | 'insn' | 'block', stats: FlowStats): void {
    if (mode === 'block' || (mode === 'auto' && this.insnSinks.length === 0)) this.walkBlocks(stats);
    else this.walkInstructions(stats);
  }

  /** Where a walk starts: at the first PSB, or (after a pause) at the switch it paused before. */
  private begin(stats: FlowStats): number {
    const status = this.resumeStatus;
    if (status !== status) return this.decoder.syncForward();
    this.resumeStatus = NaN;
    this.switchTask(this.pendingTask!);
    this.pendingTask = null;
    // The event the walk paused at is still in this.ev: the decoder has not been asked since.
    this.event(this.ev, stats);
    return status;
  }

  /** What the walk left open (after {@link runPiece}). */
  carry(): WalkCarry {
    return {
      pendingKind: this.pendingKind,
      pendingIp: this.pendingIp,
      pendingSize: this.pendingSize,
      pendingCount: this.pendingCount,
      sinceTransfer: this.sinceTransfer,
      cr3: this.cr3,
    };
  }

  private walkInstructions(stats: FlowStats): void {
    const dec = this.decoder;
    const insn = this.insn;
    let status = this.begin(stats);
    for (;;) {
      if (status < 0) {
        if (status === -ErrorCode.Eos) break;
        this.error(status, dec.offset, dec.ip, stats);
        status = dec.syncForward();
        continue;
      }
      status = this.drainEvents(status, stats);
      if (status < 0) continue;
      if (status & Status.Eos) break;
      status = dec.next(insn);
      // An event that could not be indicated before the instruction.
      if (status === -ErrorCode.EventIgnored) {
        status = Status.EventPending;
        continue;
      }
      // Errors are reported where decoding stands, which does not depend
      // on how the code was cut into blocks.
      if (status < 0 && insn.iclass === InsnClass.Unknown) {
        status = this.recover(status, dec.ip, stats);
        continue;
      }
      stats.instructions++;
      if (this.pendingKind >= 0) this.flush(insn.ip, stats);
      for (const c of this.insnSinks) c.onInstruction!(insn);
      this.sinceTransfer++;
      // A failing instruction ran, but where it went is unknown.
      const kind = status < 0 ? -1 : classify(insn.iclass, insn.isDirect);
      if (kind >= 0) {
        this.pendingKind = kind;
        this.pendingIp = insn.ip;
        this.pendingSize = insn.size;
        this.pendingCount = this.sinceTransfer;
        this.sinceTransfer = 0;
      }
      if (status < 0) status = this.recover(status, dec.ip, stats);
    }
  }

  /** {@link walkInstructions}, a block at a time (blocks end at every branch). */
  private walkBlocks(stats: FlowStats): void {
    const dec = this.decoder;
    const blocks = dec.blocks;
    const endOnCall = blocks.endOnCall;
    const endOnJump = blocks.endOnJump;
    blocks.endOnCall = true;
    blocks.endOnJump = true;
    try {
      this.walkBlocksOf(stats);
    } finally {
      blocks.endOnCall = endOnCall;
      blocks.endOnJump = endOnJump;
    }
  }

  private walkBlocksOf(stats: FlowStats): void {
    const dec = this.decoder;
    const blocks = dec.blocks;
    const block = this.block;
    let status = this.begin(stats);
    for (;;) {
      if (status < 0) {
        if (status === -ErrorCode.Eos) break;
        this.error(status, dec.offset, blocks.ip, stats);
        status = dec.syncForward();
        continue;
      }
      status = this.drainEvents(status, stats);
      if (status < 0) continue;
      if (status & Status.Eos) break;
      status = blocks.next(block);
      const done = block.ninsn;
      if (done > 0) {
        stats.instructions += done;
        if (this.pendingKind >= 0) this.flush(block.ip, stats);
        this.sinceTransfer += done;
        // Only the last instruction of a block can be a branch; after an
        // error, where it went is unknown.
        const last = status < 0 ? -1 : this.lastInsns.read(block, this.last);
        const kind = last < 0 ? -1 : classify(lastClass(last), lastIsDirect(last));
        if (kind >= 0) {
          this.pendingKind = kind;
          this.pendingIp = block.endIp;
          this.pendingSize = lastSize(last);
          this.pendingCount = this.sinceTransfer;
          this.sinceTransfer = 0;
        }
      }
      if (status < 0) status = this.recover(status, blocks.ip, stats);
    }
  }

  /** Deliver the pending events to the consumers; the decoder's status afterwards. */
  private drainEvents(status: number, stats: FlowStats): number {
    while (status >= 0 && status & Status.EventPending) {
      status = this.decoder.event(this.ev);
      if (status < 0) break;
      if (this.tasks !== null) {
        // Before the event: the tracing enable that starts a task's run is its own.
        const task = this.tasks.onEvent(this.ev);
        if (task !== null) {
          if (this.stepping) {
            this.pendingTask = task;
            this.resumeStatus = status;
            throw PAUSE;
          }
          this.switchTask(task);
        }
      }
      this.event(this.ev, stats);
    }
    return status;
  }

  /**
   * After a failed `next`: report the error (a disabled decoder asking for
   * an enable event is none) and resync at the next PSB. -Eos ends the walk.
   */
  private recover(status: number, ip: number, stats: FlowStats): number {
    if (status === -ErrorCode.Eos) return status;
    if (status !== -ErrorCode.NoEnable) this.error(status, this.decoder.offset, ip, stats);
    return this.decoder.syncForward();
  }

  private flush(to: number, stats: FlowStats): void {
    let kind = this.pendingKind as TransferKind;
    if (kind === TransferKind.CondTaken && to === this.pendingIp + this.pendingSize) kind = TransferKind.CondNotTaken;
    this.pendingKind = -1;
    stats.transfers++;
    for (const c of this.transferSinks) {
      c.onTransfer!(kind, this.pendingIp, to, this.pendingSize, this.pendingCount, this.cr3);
    }
    if (this.stopAt !== null && this.stopAt()) throw STOP;
  }

  private event(ev: PtEvent, stats: FlowStats): void {
    switch (ev.type) {
      case EventType.AsyncBranch:
        if (this.pendingKind >= 0) this.flush(ev.at, stats);
        stats.transfers++;
        for (const c of this.transferSinks) c.onTransfer!(TransferKind.Async, ev.at, ev.ip, 0, this.sinceTransfer, this.cr3);
        this.sinceTransfer = 0;
        break;
      case EventType.Disabled:
      case EventType.AsyncDisabled:
        if (!ev.statusUpdate) {
          if (this.pendingKind >= 0) this.flush(NaN, stats);
          this.gap(GapKind.Disabled, stats);
        }
        break;
      case EventType.Overflow:
        if (this.pendingKind >= 0) this.flush(NaN, stats);
        this.gap(GapKind.Overflow, stats);
        break;
      case EventType.Paging:
      case EventType.AsyncPaging:
        this.cr3 = ev.cr3;
        break;
    }
    for (const c of this.eventSinks) c.onEvent!(ev);
  }

  private switchTask(task: TaskContext): void {
    if (this.decoder.image !== task.image) this.decoder.image = task.image;
    for (const c of this.taskSinks) c.onTask!(task);
  }

  private gap(kind: GapKind, stats: FlowStats): void {
    stats.gaps++;
    for (const c of this.gapSinks) c.onGap!(kind, this.decoder.offset);
  }

  private error(code: number, offset: number, ip: number, stats: FlowStats): void {
    stats.errors++;
    this.pendingKind = -1;
    this.sinceTransfer = 0;
    for (const c of this.errorSinks) c.onError!(code, offset, ip);
    this.gap(GapKind.Error, stats);
  }
}
