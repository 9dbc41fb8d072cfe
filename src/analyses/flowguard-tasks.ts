/**
 * FlowGuard on per-CPU streams, per thread. The fast path reads each CPU's
 * packets once; the context-switch sideband (TaskSwitcher) says at which
 * tracing enable (TIP.PGE) or overflow another task's run starts, by the
 * trace's TSC there. Each thread life (StreamTask.life) has its own
 * FlowGuard, and its runs, on whatever CPUs, are one execution: the CPUs'
 * scans pause at each task switch and go on in the order the runs ran
 * (cpu-walk.ts), so a thread's chain of targets goes on from the last
 * target of its previous run (FlowGuardDetector.chain) and a window its
 * run left open goes on into its next. Its checks are then those of the
 * thread's own trace. The slow path decodes a window from the PSB before
 * it with the stream's tasks (each run with its task's image), after the
 * thread's runs since that PSB on any CPU; the thread's detectors hear its
 * runs only, the windows of its successive runs sharing one decode
 * (flowguard.ts). Each thread's FlowGuard counts the scan of its
 * runs (bytes, packets, time). Findings carry the thread.
 */
import { EventType, PtEvent } from '../events/event.js';
import type { StreamTask, TaskLife } from '../sources/model/recording.js';
import { stepInTimeOrder, type RunSteps } from './cpu-walk.js';
import { TipEdgeScan, type FlowGuardDetector } from './flowguard.js';
import type { TraceInput } from './trace-input.js';
import type { TraceSource } from '../packets/trace-source.js';

/**
 * Run a FlowGuard per thread life over per-CPU `inputs`; `create` makes a
 * thread's (for the stream it first ran on). Returns them, run.
 */
export function runFlowGuardPerTask(inputs: readonly TraceInput[], create: (input: TraceInput, task: StreamTask) => FlowGuardDetector): FlowGuardDetector[] {
  const byLife = new Map<TaskLife, FlowGuardDetector>();
  const detectorOf = (input: TraceInput, task: StreamTask): FlowGuardDetector => {
    let d = byLife.get(task.life);
    if (d === undefined) byLife.set(task.life, (d = create(input, task)));
    return d;
  };
  const ev = new PtEvent();
  const streams: RunSteps[] = [];
  const opened: TraceSource[] = [];
  for (const input of inputs) {
    const tracker = input.stream.tasks?.();
    if (tracker === undefined) continue;
    // Read in windows; closed once every thread's slow path (which reads it again) is done.
    const trace = input.stream.open();
    opened.push(trace);
    let current: FlowGuardDetector | null = null;
    // The switch the scan paused before: where the next run starts, whose it is, and the trace's TSC there.
    let next: { task: StreamTask; offset: number; psb: number; tsc: bigint | null } | null = null;
    let started = false;
    // Where the run being scanned starts.
    let runStart = 0;
    const scan = new TipEdgeScan(trace, {
      onEdge: (a, b) => current?.edge(a, b),
      onCheck: (end, psb) => current?.check(end, psb),
      onBoundary: (overflow, tsc, offset, psb) => {
        ev.type = overflow ? EventType.Overflow : EventType.Enabled;
        ev.statusUpdate = false;
        ev.hasTsc = tsc !== null;
        if (tsc !== null) {
          ev.tscHi = Number(tsc >> 32n);
          ev.tscLo = Number(tsc & 0xffffffffn);
        }
        const task = tracker.onEvent(ev);
        if (task === null) return false;
        next = { task, offset, psb, tsc };
        return true;
      },
      onEnd: (end) => current?.endRun(end),
    });
    // The running thread's run ends (at `end`): it takes its chain along, for its next run on any CPU.
    const leave = (end: number): void => {
      if (current === null) return;
      current.chain = scan.prev;
      current.endRun(end);
      current = null;
    };
    const tasks = input.stream.tasks!;
    const enter = (task: StreamTask, offset: number, psb: number, tsc: bigint | null): void => {
      current = detectorOf(input, task);
      scan.prev = current.chain;
      current.beginRun(trace, offset, psb, { tsc, tasks, task });
    };
    streams.push({
      get switchTime() {
        return tracker.switchTime;
      },
      step: () => {
        const t0 = process.hrtime.bigint();
        if (!started) {
          started = true;
          const first = tracker.start();
          if (first !== null) enter(first, 0, 0, null);
        } else if (next !== null) {
          runStart = next.offset;
          enter(next.task, next.offset, next.psb, next.tsc);
          next = null;
        }
        const packets = scan.packets;
        const tips = scan.tips;
        const more = scan.step();
        // The scan of this run counts for the thread that ran it (none before the sideband names a task).
        const end = more ? next!.offset : trace.size;
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        (current as FlowGuardDetector | null)?.scanned(end - runStart, { packets: scan.packets - packets, tips: scan.tips - tips }, seconds);
        // A run is over (its end heard, or the trace's): its thread's next may start on another CPU before this one goes on.
        if (more) leave(end);
        else if (current !== null) (current as FlowGuardDetector).chain = scan.prev;
        return more;
      },
    });
  }
  try {
    stepInTimeOrder(streams);
    const all = [...byLife.values()];
    for (const d of all) d.finish();
    return all;
  } finally {
    for (const s of opened) s.close();
  }
}
