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
 *
 * A thread that ran on another CPU since its last run here (it migrated)
 * comes back as a new task (a new epoch), so that its return is a switch:
 * a walk of all CPUs in time order (analyze.ts analyzeCpuStreams) pauses
 * there and lets the runs it had on the other CPU go first. A walk of this
 * stream alone gives the thread fresh per-task state there instead.
 * {@link migrationEpochs} counts those moves over all CPUs' switch
 * records, by time.
 */
import { EventType, type PtEvent } from '../../events/event.js';
import type { TaskSwitcher } from '../../flow/task-switch.js';
import type { CpuSwitch, SidebandTimeline } from '../perf-data/sideband.js';
import { perfTimeToTsc, tscToPerfTime, type TimeConversion } from '../perf-event/time-conversion.js';
import type { AddressSpaceLife, ImageMapping, StreamTask, TaskLife } from '../model/recording.js';
import type { Image } from '../../flow/image.js';

/** Builds (and caches) the task for a thread at a perf time: its process's image then; `epoch` counts its migrations. */
export type TaskFactory = (pid: number, tid: number, perfTime: bigint, epoch: number) => StreamTask;

/** The thread a switch record makes due on its CPU (the one switched in, or to), or null. */
export function dueThread(s: CpuSwitch): { pid: number; tid: number } | null {
  if (!s.out) return { pid: s.pid, tid: s.tid };
  return s.nextPrev;
}

/**
 * For each CPU's switch records, the migration epoch of the thread each one
 * makes due: how many times that thread moved to another CPU up to then,
 * over every CPU's records in time order.
 */
export function migrationEpochs(switches: ReadonlyMap<number, readonly CpuSwitch[]>): Map<number, Int32Array> {
  const due: { cpu: number; i: number; tid: number; time: bigint }[] = [];
  const out = new Map<number, Int32Array>();
  for (const [cpu, list] of switches) {
    out.set(cpu, new Int32Array(list.length));
    list.forEach((s, i) => {
      const who = dueThread(s);
      if (who !== null && who.tid > 0) due.push({ cpu, i, tid: who.tid, time: s.time });
    });
  }
  due.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.cpu - b.cpu || a.i - b.i));
  const last = new Map<number, { cpu: number; epoch: number }>();
  for (const d of due) {
    const prev = last.get(d.tid);
    const epoch = prev === undefined ? 0 : prev.cpu === d.cpu ? prev.epoch : prev.epoch + 1;
    last.set(d.tid, { cpu: d.cpu, epoch });
    out.get(d.cpu)![d.i] = epoch;
  }
  return out;
}

/** How many of `times` are before `time` (strictly, or also at it). */
function countBefore(times: readonly bigint[], time: bigint, inclusive: boolean): number {
  let n = 0;
  for (const t of times) if (t < time || (inclusive && t === time)) n++;
  return n;
}

/** The end of time. */
const LATE = (1n << 63n) - 1n;

/**
 * The lives of threads and address spaces, from the sideband's EXIT and
 * exec COMM records. A thread's life ends at its EXIT: a later thread with
 * the same tid is another one, with its own state. A process's address
 * space ends at its exec (a new image) and at the leader's EXIT (a pid
 * reused later is another process). One object per life, asked by (pid,
 * tid, perf time of a switch that made it run).
 */
export class TaskLives {
  private readonly spaces = new Map<string, AddressSpaceLife>();
  private readonly threads = new Map<string, TaskLife>();

  constructor(
    private readonly sideband: SidebandTimeline,
    /** The image and mappings of process `pid` at perf time `time`. */
    private readonly imageAt: (pid: number, time: bigint) => { image: Image; mappings: readonly ImageMapping[] },
  ) {}

  lifeOf(pid: number, tid: number, time: bigint): TaskLife {
    const execs = this.sideband.execTimes(pid);
    const execsBefore = countBefore(execs, time, true);
    const spaceKey = `${pid}/${countBefore(this.sideband.tasks.get(pid)?.exits ?? [], time, false)}/${execsBefore}`;
    let space = this.spaces.get(spaceKey);
    if (space === undefined) {
      // The image at the end of this life: just before the next exec, else at the end of the recording.
      let end = LATE;
      for (const e of execs) if (e > time && e - 1n < end) end = e - 1n;
      const { image, mappings } = this.imageAt(pid, end);
      space = { pid, image, mappings, name: this.nameAt(pid, end === LATE ? time : end) };
      this.spaces.set(spaceKey, space);
    }
    const key = `${spaceKey}/${tid}/${countBefore(this.sideband.tasks.get(tid)?.exits ?? [], time, false)}`;
    let life = this.threads.get(key);
    if (life === undefined) {
      // A process's leader before its first exec, forked by a process the sideband knows, carries its parent's stack.
      const ppid = this.sideband.tasks.get(pid)?.ppid ?? -1;
      const inheritsHistory = tid === pid && execsBefore === 0 && ppid > 0 && ppid !== pid && this.sideband.tasks.has(ppid);
      this.threads.set(key, (life = { pid, tid, space, inheritsHistory }));
    }
    return life;
  }

  /** The name (comm) of task `tid` at `time`: its last COMM by then, else (a fork child before any exec) its parent's. */
  nameAt(pid: number, time: bigint): string | null {
    for (let p = pid, hops = 0; hops < 8; hops++) {
      const t = this.sideband.tasks.get(p);
      if (t === undefined) return null;
      let comm: string | null = null;
      for (const c of t.comms) if (c.time <= time) comm = c.comm;
      if (comm !== null) return comm;
      if (t.ppid < 0 || t.ppid === p) return null;
      p = t.ppid;
    }
    return null;
  }
}

const NONE = -1;

export class CpuTaskTracker implements TaskSwitcher<StreamTask> {
  /** Switch records in time order, their times as TSC. */
  private readonly tsc: bigint[];
  private next = 0;
  /** The thread the due records say runs (NONE: no task, idle or out). */
  private duePid = NONE;
  private dueTid = NONE;
  private dueTime = 0n;
  private dueEpoch = 0;
  /** The record that made the due thread due, and the one the current task was made from. */
  private dueRecord = NONE;
  private currentRecord = NONE;
  private current: StreamTask | null = null;
  /** The TSC from which the current task runs (its switch, or the exec that gave it its image). */
  private currentSince = 0n;
  switchTime: bigint;

  constructor(
    private readonly switches: readonly CpuSwitch[],
    private readonly conv: TimeConversion,
    private readonly task: TaskFactory,
    /** Per record, its thread's migration epoch ({@link migrationEpochs}); none: 0. */
    private readonly epochs: Int32Array = new Int32Array(switches.length),
    /** The perf times process `pid` exec'd: an exec replaces the image without a switch. */
    private readonly execTimes: (pid: number) => readonly bigint[] = () => [],
  ) {
    this.tsc = conv.timeMult ? switches.map((s) => perfTimeToTsc(s.time, conv)) : [];
    this.switchTime = switches[0]?.time ?? 0n;
  }

  start(): StreamTask | null {
    // The first record on the CPU (ITRACE_START or a switch-in) names the task the trace starts in.
    const first = this.switches[0];
    if (first === undefined || this.tsc.length === 0) return null;
    this.take(0);
    this.next = 1;
    return this.changeTo(null);
  }

  startAt(tsc: bigint): StreamTask | null {
    if (this.switches[0] === undefined || this.tsc.length === 0) return null;
    // Every record up to `tsc` applied as if its switch had been done: each task that came in ran from its
    // record (a task switched out stays the current one), and an exec since then gives its new image.
    this.take(0);
    this.next = 1;
    this.changeTo(this.tsc[0]!);
    while (this.next < this.tsc.length && this.tsc[this.next]! <= tsc) {
      this.take(this.next);
      this.changeTo(this.tsc[this.next++]!);
    }
    this.changeTo(tsc);
    return this.current;
  }

  onEvent(ev: PtEvent): StreamTask | null {
    let now: bigint | null = null;
    if (ev.hasTsc) {
      now = (BigInt(ev.tscHi >>> 0) << 32n) | BigInt(ev.tscLo >>> 0);
      while (this.next < this.tsc.length && this.tsc[this.next]! <= now) this.take(this.next++);
    }
    const boundary = (ev.type === EventType.Enabled && !ev.statusUpdate) || ev.type === EventType.Overflow;
    return boundary ? this.changeTo(now) : null;
  }

  /** Apply one due record. */
  private take(i: number): void {
    const s = this.switches[i]!;
    const who = dueThread(s);
    this.duePid = who?.pid ?? NONE;
    this.dueTid = who?.tid ?? NONE;
    this.dueTime = s.time;
    this.dueEpoch = this.epochs[i] ?? 0;
    this.dueRecord = i;
  }

  /** At a switch point (`now`: the trace's TSC there, if known): the task from here on if it changed, else null. */
  private changeTo(now: bigint | null): StreamTask | null {
    // A task that is out stays the current one until another comes in (its trace cannot run meanwhile).
    // tid 0 is the idle task, which user-space tracing never sees.
    if (this.dueTid <= 0) return null;
    let time = this.dueTime;
    let since = this.tsc[this.dueRecord] ?? 0n;
    // An exec of the process since its run began (within the run, or after a switch-in inside its
    // execve: the kernel may switch a task out and back in there) gives the new program's image from here.
    // With no new switch, only such an exec changes the task.
    const sameRun = this.dueRecord === this.currentRecord;
    if (now !== null && this.execedBetween(this.duePid, sameRun ? this.currentSince : since, now)) {
      time = tscToPerfTime(now, this.conv);
      since = now;
    } else if (sameRun) {
      return null;
    }
    this.currentRecord = this.dueRecord;
    this.currentSince = since;
    // The factory gives the same task for the same thread life, image and epoch: no switch then.
    const c = this.current;
    const next = this.task(this.duePid, this.dueTid, time, this.dueEpoch);
    if (next === c) return null;
    this.switchTime = time;
    this.current = next;
    return next;
  }

  /** Whether process `pid` exec'd after TSC `from`, up to `to`. */
  private execedBetween(pid: number, from: bigint, to: bigint): boolean {
    for (const t of this.execTimes(pid)) {
      const tsc = perfTimeToTsc(t, this.conv);
      if (tsc > from && tsc <= to) return true;
    }
    return false;
  }
}
