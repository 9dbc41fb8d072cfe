/**
 * Consumers per task on a per-CPU stream. The threads that ran on a CPU
 * follow one another in its trace; each thread gets its own detectors (its
 * own shadow stack, its own gadget window), created when it first runs and
 * given the image and modules of its process. The walker says where the
 * task changes ({@link FlowConsumer.onTask}); every other callback goes to
 * the running task's consumers. Which tasks share consumers is the
 * caller's key: analyze keys by thread life (a thread that exec'd, or a tid
 * reused after an EXIT, starts fresh), coverage by address space. Findings
 * carry the thread they were found in.
 */
import type { FlowConsumer, GapKind, TransferKind } from '../flow/control-flow.js';
import type { InstructionInfo } from '../flow/instruction.js';
import type { PtEvent } from '../events/event.js';
import type { TaskContext } from '../flow/task-switch.js';

export class TaskDetectors<C extends FlowConsumer = FlowConsumer> implements FlowConsumer {
  private readonly sets = new Map<unknown, C[]>();
  private current: C[];
  /** Every consumer made, in creation order (the stream's own first). */
  readonly all: C[] = [];

  /**
   * `initial` runs until the first task is known; `create` makes a task's
   * detectors. The callbacks this consumer takes are the ones `initial`'s
   * detectors take (the walker asks for instructions only if one needs them).
   */
  constructor(
    initial: C[],
    private readonly create: (task: TaskContext) => C[],
    /** Which tasks share detectors (by default each task object has its own). */
    private readonly keyOf: (task: TaskContext) => unknown = (t) => t,
  ) {
    this.current = initial;
    this.all.push(...initial);
    const has = (m: keyof FlowConsumer): boolean => initial.some((d) => typeof d[m] === 'function');
    if (has('onTransfer')) {
      this.onTransfer = (kind, from, to, size, before, cr3) => {
        for (const d of this.current) d.onTransfer?.(kind, from, to, size, before, cr3);
      };
    }
    if (has('onInstruction')) {
      this.onInstruction = (insn) => {
        for (const d of this.current) d.onInstruction?.(insn);
      };
    }
    if (has('onEvent')) {
      this.onEvent = (ev) => {
        for (const d of this.current) d.onEvent?.(ev);
      };
    }
    if (has('onGap')) {
      this.onGap = (kind, offset) => {
        for (const d of this.current) d.onGap?.(kind, offset);
      };
    }
    if (has('onError')) {
      this.onError = (code, offset, ip) => {
        for (const d of this.current) d.onError?.(code, offset, ip);
      };
    }
  }

  onTransfer?: (kind: TransferKind, from: number, to: number, size: number, insnsBefore: number, cr3: number) => void;
  onInstruction?: (insn: InstructionInfo) => void;
  onEvent?: (ev: PtEvent) => void;
  onGap?: (kind: GapKind, offset: number) => void;
  onError?: (code: number, offset: number, ip: number) => void;

  onTask(task: TaskContext): void {
    const key = this.keyOf(task);
    let set = this.sets.get(key);
    if (set === undefined) {
      set = this.create(task);
      this.sets.set(key, set);
      this.all.push(...set);
    }
    this.current = set;
  }

  onEnd(): void {
    for (const d of this.all) d.onEnd?.();
  }
}
