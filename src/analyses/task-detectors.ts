/**
 * Detectors per task on a per-CPU stream. The threads that ran on a CPU
 * follow one another in its trace; each thread gets its own detectors (its
 * own shadow stack, its own gadget window), created when it first runs and
 * given the image and modules of its process. The walker says where the
 * task changes ({@link FlowConsumer.onTask}); every other callback goes to
 * the running task's detectors. A thread that exec'd is a new task (new
 * image, fresh state); one that exited never runs again, so its state ends
 * with it. Findings carry the thread they were found in.
 */
import type { FlowConsumer, GapKind, TransferKind } from '../flow/control-flow.js';
import type { InstructionInfo } from '../flow/instruction.js';
import type { PtEvent } from '../events/event.js';
import type { TaskContext } from '../flow/task-switch.js';
import type { Detector } from './detector-base.js';

export class TaskDetectors implements FlowConsumer {
  private readonly sets = new Map<TaskContext, Detector[]>();
  private current: Detector[];
  /** Every detector made, in creation order (the stream's own first). */
  readonly all: Detector[] = [];

  /**
   * `initial` runs until the first task is known; `create` makes a task's
   * detectors. The callbacks this consumer takes are the ones `initial`'s
   * detectors take (the walker asks for instructions only if one needs them).
   */
  constructor(
    initial: Detector[],
    private readonly create: (task: TaskContext) => Detector[],
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
    let set = this.sets.get(task);
    if (set === undefined) {
      set = this.create(task);
      this.sets.set(task, set);
      this.all.push(...set);
    }
    this.current = set;
  }

  onEnd(): void {
    for (const d of this.all) d.onEnd?.();
  }
}
