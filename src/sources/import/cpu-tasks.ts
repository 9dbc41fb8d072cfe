/**
 * Who runs on one CPU's stream of a per-CPU perf.data, from its
 * context-switch sideband (ITRACE_START, PERF_RECORD_SWITCH and
 * SWITCH_CPU_WIDE: the task switched in, or the one switched to).
 *
 * When a switch takes effect follows libipt's sideband session
 * (pt_sb_pevent): a record is due once the trace's time reaches it, and the
 * switch it announces is done where the decode is in the kernel or does
 * not know where it is. With user-space-only tracing that is the tracing
 * enable (TIP.PGE) after the kernel ran, or the resume after an overflow:
 * between them the task cannot change without the trace saying so.
 */
import { EventType, type PtEvent } from '../../events/event.js';
import type { TaskSwitcher } from '../../flow/task-switch.js';
import type { CpuSwitch } from '../perf-data/sideband.js';
import { perfTimeToTsc, type TimeConversion } from '../perf-event/time-conversion.js';
import type { StreamTask } from '../model/recording.js';

/** Builds (and caches) the task for a thread at a perf time: its process's image then. */
export type TaskFactory = (pid: number, tid: number, perfTime: bigint) => StreamTask;

const NONE = -1;

export class CpuTaskTracker implements TaskSwitcher<StreamTask> {
  /** Switch records in time order, their times as TSC. */
  private readonly tsc: bigint[];
  private next = 0;
  /** The thread the due records say runs (NONE: no task, idle or out). */
  private duePid = NONE;
  private dueTid = NONE;
  private dueTime = 0n;
  private current: StreamTask | null = null;

  constructor(
    private readonly switches: readonly CpuSwitch[],
    conv: TimeConversion,
    private readonly task: TaskFactory,
  ) {
    this.tsc = conv.timeMult ? switches.map((s) => perfTimeToTsc(s.time, conv)) : [];
  }

  start(): StreamTask | null {
    // The first record on the CPU (ITRACE_START or a switch-in) names the task the trace starts in.
    const first = this.switches[0];
    if (first === undefined || this.tsc.length === 0) return null;
    this.take(0);
    this.next = 1;
    return this.changeTo();
  }

  onEvent(ev: PtEvent): StreamTask | null {
    if (ev.hasTsc) {
      const now = (BigInt(ev.tscHi >>> 0) << 32n) | BigInt(ev.tscLo >>> 0);
      while (this.next < this.tsc.length && this.tsc[this.next]! <= now) this.take(this.next++);
    }
    const boundary = (ev.type === EventType.Enabled && !ev.statusUpdate) || ev.type === EventType.Overflow;
    return boundary ? this.changeTo() : null;
  }

  /** Apply one due record. */
  private take(i: number): void {
    const s = this.switches[i]!;
    if (!s.out) this.setDue(s.pid, s.tid, s.time);
    else if (s.nextPrev !== null) this.setDue(s.nextPrev.pid, s.nextPrev.tid, s.time);
    else this.setDue(NONE, NONE, s.time);
  }

  private setDue(pid: number, tid: number, time: bigint): void {
    this.duePid = pid;
    this.dueTid = tid;
    this.dueTime = time;
  }

  private changeTo(): StreamTask | null {
    // A task that is out stays the current one until another comes in (its trace cannot run meanwhile).
    // tid 0 is the idle task, which user-space tracing never sees.
    if (this.dueTid <= 0) return null;
    const c = this.current;
    if (c !== null && c.tid === this.dueTid && c.pid === this.duePid) return null;
    this.current = this.task(this.duePid, this.dueTid, this.dueTime);
    return this.current === c ? null : this.current;
  }
}
