/**
 * The parallel walk of one trace: cut it at PSBs into groups, decode the
 * groups apart, decode again together a group and the one before it where
 * they cannot hand over (flow-stitch.ts says why), and stitch the pieces
 * into the serial control-flow stream.
 */
import { stitchPieces, type StitchedFlow } from '../../flow/parallel/flow-stitch.js';
import type { PieceResult } from '../../flow/parallel/piece-walk.js';
import { groupBudget, groupSegments, psbOffsets, type SegmentRange } from '../../flow/parallel/psb-split.js';
import type { TraceInput } from '../trace-input.js';
import type { PieceDecoder } from './piece-pool.js';

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

/** Walk a trace in pieces on `decoder`; the stitched serial stream. */
export async function walkParallel(input: TraceInput, decoder: PieceDecoder, plan: ParallelPlan = {}, progress?: ProgressSink): Promise<StitchedFlow & { pieces: number }> {
  const groups = planGroups(input, decoder.workers, plan);
  const total = input.trace.length;
  let done = 0;
  progress?.phase('decode', total);
  const tick = (bytes: number): void => {
    done += bytes;
    progress?.update(Math.min(done, total));
  };
  let pieces: PieceResult[] = await decoder.decode(groups, tick);
  // Pieces that cannot hand over are decoded again as one, until all can.
  for (;;) {
    const r = stitchPieces(pieces);
    if (r.ok) {
      progress?.done();
      return { ...r.flow, pieces: pieces.length };
    }
    const k = r.join;
    const joined: SegmentRange = { index: k - 1, from: pieces[k - 1]!.from, to: pieces[k]!.to };
    const around = [joined, ...(pieces[k + 1] ? [pieces[k + 1]!] : [])];
    const [again] = await decoder.decode(around.slice(0, 1), undefined, around[1]?.to);
    pieces = [...pieces.slice(0, k - 1), again!, ...pieces.slice(k + 1)];
  }
}
