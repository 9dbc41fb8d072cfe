/**
 * The plan of a parallel walk of one trace: where it is cut at PSBs into
 * groups (the pieces a worker decodes), and the progress it reports.
 */
import { groupSegments, guidedSegments, type SegmentRange } from '../../flow/parallel/psb-split.js';
import { streamPsbOffsets } from '../../sources/model/decoders.js';
import type { TraceInput } from '../trace-input.js';

/** Progress over bytes decoded (the CLI's bar, structurally). */
export interface ProgressSink {
  phase(name: string, total: number): void;
  update(done: number): void;
  done(): void;
}

export interface ParallelPlan {
  /** Bytes per group; default: groups that shrink toward the end (psb-split.ts guidedSegments). */
  budget?: number;
  /** Cut at every PSB (tests: the finest cut). */
  everyPsb?: boolean;
}

/** The groups a trace is cut into for `workers` workers. */
export function planGroups(input: TraceInput, workers: number, plan: ParallelPlan = {}): SegmentRange[] {
  // Scanned through a window: the trace is never held whole here (the workers read their own pieces).
  const psbs = streamPsbOffsets(input.stream);
  const size = input.stream.size;
  if (plan.everyPsb) return groupSegments(psbs, size, 1);
  return plan.budget !== undefined ? groupSegments(psbs, size, plan.budget) : guidedSegments(psbs, size, workers);
}
