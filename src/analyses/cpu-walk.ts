/**
 * The per-CPU streams of a recording walked together. A thread's runs
 * cross CPUs, and its state (a shadow stack, a window of transfers) must
 * see them in the order they ran: the CPUs' walks go in steps of one
 * task's run (ControlFlowWalker.step, or FlowGuard's packet scan), always
 * the one whose next run starts first by the sideband's clock. A thread's
 * runs never overlap, so each of its runs is complete before its next, on
 * whatever CPU, begins. Consumers hear where the task changes
 * (FlowConsumer.onTask): route the other callbacks per thread with
 * {@link TaskDetectors}.
 */
import type { FlowConsumer, FlowStats } from '../flow/control-flow.js';
import type { InsnDecoder } from '../flow/insn-decoder.js';
import { insnDecoderFor, walkerFor, type TraceInput } from './trace-input.js';

/** One CPU's stream walked a task's run at a time. */
export interface RunSteps {
  /** When the run the next {@link step} walks starts (TaskSwitcher.switchTime). */
  readonly switchTime: bigint;
  /** Walk one run (up to the next task switch); false once the stream has ended. */
  step(): boolean;
}

/** Step `streams` until all have ended, always the one whose next run starts first. */
export function stepInTimeOrder(streams: readonly RunSteps[]): void {
  const live = [...streams];
  while (live.length > 0) {
    let next = 0;
    for (let i = 1; i < live.length; i++) if (live[i]!.switchTime < live[next]!.switchTime) next = i;
    if (!live[next]!.step()) live.splice(next, 1);
  }
}

/**
 * Walk `inputs` (per-CPU streams) in time order of their runs, feeding
 * `consumers`. `running` hears which stream's decoder runs from now on (for
 * trace offsets). Returns the flow counts over all streams.
 */
export function walkCpuStreams(inputs: readonly TraceInput[], consumers: readonly FlowConsumer[], running?: (decoder: InsnDecoder, input: TraceInput) => void): FlowStats {
  const walks = inputs.map((input) => {
    const decoder = insnDecoderFor(input);
    const walker = walkerFor(input, consumers, decoder);
    return { input, decoder, walker, tasks: walker.tasks, stats: { instructions: 0, transfers: 0, errors: 0, gaps: 0 } as FlowStats };
  });
  stepInTimeOrder(
    walks.flatMap(({ input, decoder, walker, tasks, stats }) =>
      tasks === null
        ? []
        : [
            {
              get switchTime() {
                return tasks.switchTime;
              },
              step: () => {
                running?.(decoder, input);
                return walker.step(stats);
              },
            },
          ],
    ),
  );
  for (const c of consumers) c.onEnd?.();
  const flow: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  for (const w of walks) {
    flow.instructions += w.stats.instructions;
    flow.transfers += w.stats.transfers;
    flow.errors += w.stats.errors;
    flow.gaps += w.stats.gaps;
  }
  return flow;
}
