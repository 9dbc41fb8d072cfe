/**
 * Who runs on a per-CPU stream. perf's default layout traces each CPU, not
 * each thread: the tasks that ran on a CPU follow one another in its
 * stream, and the sideband's context-switch records (PERF_RECORD_SWITCH,
 * SWITCH_CPU_WIDE, ITRACE_START) say which ran from when. A decode of such
 * a stream must change the memory image at each switch, and analyses must
 * keep each thread's state apart (one shadow stack per thread).
 *
 * The flow layer only asks; the source that knows the sideband answers
 * (src/sources/perf-data/cpu-tasks.ts).
 */
import type { Image } from './image.js';
import type { PtEvent } from '../events/event.js';

/** A task as the decode sees it: its thread and the image of its process. */
export interface TaskContext {
  readonly pid: number;
  readonly tid: number;
  readonly image: Image;
}

export interface TaskSwitcher<T extends TaskContext = TaskContext> {
  /**
   * The sideband time (perf time) of the switch last returned, or before
   * {@link start} of the first one: orders several CPUs' runs in time.
   */
  readonly switchTime: bigint;
  /** The task running where the stream starts, or null when the sideband does not say. */
  start(): T | null;
  /**
   * See a decoder event (in trace order). Returns the task to decode with
   * from this event on when it differs from the current one, else null.
   */
  onEvent(ev: PtEvent): T | null;
  /**
   * Instead of {@link start}, for a decode that starts at a PSB inside the
   * stream: the task running at trace time `tsc` (the PSB+'s TSC), with the
   * switch records up to then applied, or null when none is known.
   */
  startAt?(tsc: bigint): T | null;
}

/** `tasks` for a decode that starts at a PSB inside the stream, starting with the task at trace time `tsc` ({@link TaskSwitcher.startAt}); null when it cannot. */
export function startingAt<T extends TaskContext>(tasks: TaskSwitcher<T>, tsc: bigint): TaskSwitcher<T> | null {
  if (tasks.startAt === undefined) return null;
  return {
    get switchTime() {
      return tasks.switchTime;
    },
    start: () => tasks.startAt!(tsc),
    onEvent: (ev) => tasks.onEvent(ev),
  };
}
