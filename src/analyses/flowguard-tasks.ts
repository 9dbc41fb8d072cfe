/**
 * FlowGuard on per-CPU streams, per thread. The fast path reads a CPU's
 * packets once; the context-switch sideband (TaskSwitcher) says at which
 * tracing enable (TIP.PGE) or overflow another task's run starts, by the
 * trace's TSC there. Each thread life (StreamTask.life) has its own
 * FlowGuard: its edges chain only within its runs (the first target of a
 * run is not reached from the last target of another task), a window
 * never reaches back before its run, and the slow path decodes a window
 * with the thread's image, its detectors hearing nothing before the run
 * (flowguard.ts). Findings carry the thread.
 */
import { EventType, PtEvent } from '../events/event.js';
import type { StreamTask, TaskLife } from '../sources/model/recording.js';
import { FlowGuardDetector, scanTipEdges } from './flowguard.js';
import type { TraceInput } from './trace-input.js';

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
  for (const input of inputs) {
    const tracker = input.stream.tasks?.();
    if (tracker === undefined) continue;
    const trace = input.trace;
    const started = process.hrtime.bigint();
    const first = tracker.start();
    let current = first !== null ? detectorOf(input, first) : null;
    current?.beginRun(trace, 0, 0);
    const lead = current;
    // The packet of a run's first target, whose edge would come from another task.
    let runStart = -1;
    const scan = scanTipEdges(
      trace,
      (a, b, offset) => {
        if (offset !== runStart) current?.edge(a, b);
      },
      (end, psb) => current?.check(end, psb),
      (overflow, tsc, offset, psb) => {
        ev.type = overflow ? EventType.Overflow : EventType.Enabled;
        ev.statusUpdate = false;
        ev.hasTsc = tsc !== null;
        if (tsc !== null) {
          ev.tscHi = Number(tsc >> 32n);
          ev.tscLo = Number(tsc & 0xffffffffn);
        }
        const task = tracker.onEvent(ev);
        if (task === null) return;
        current?.endRun(offset, psb);
        current = detectorOf(input, task);
        current.beginRun(trace, offset, psb);
        runStart = offset;
      },
    );
    // The scan's cost is the stream's; its first thread's FlowGuard counts it.
    (lead ?? current)?.scanned(trace.length, scan, Number(process.hrtime.bigint() - started) / 1e9);
  }
  const all = [...byLife.values()];
  for (const d of all) d.finish();
  return all;
}
