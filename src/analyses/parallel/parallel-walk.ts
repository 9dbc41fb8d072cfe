/**
 * The plan of a parallel walk of one trace: where it is cut at PSBs into
 * groups (the pieces a worker decodes), and the progress it reports.
 */
import { groupBudget, groupSegments, psbOffsets, type SegmentRange } from '../../flow/parallel/psb-split.js';
import type { TraceInput } from '../trace-input.js';

/** Progress over bytes decoded (the CLI's bar, structurally). */
export interface ProgressSink {
  phase(name: string, total: number): void;
  update(done: number): void;
  done(): void;
}

export interface ParallelPlan {
  /** Bytes per group; default: about four groups per worker. */
  budget?: number;
  /** Cut at every PSB (tests: the finest cut). */
  everyPsb?: boolean;
}

/** The groups a trace is cut into for `workers` workers. */
export function planGroups(input: TraceInput, workers: number, plan: ParallelPlan = {}): SegmentRange[] {
  const trace = input.trace;
  const psbs = psbOffsets(trace, input.config.errata.skd007);
  const budget = plan.everyPsb ? 1 : (plan.budget ?? groupBudget(trace.length, workers));
  return groupSegments(psbs, trace.length, budget);
}
