/**
 * `coverage --jobs N`: the trace cut into pieces (line-pieces.ts's plan),
 * each decoded by `run` on the worker pool, merged into the serial blocks
 * (src/reports/coverage-pieces.ts).
 */
import type { TraceInput } from '../../analyses/trace-input.js';
import { overlapLimit } from '../../flow/parallel/piece-walk.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import { mergeCoveragePieces, type CoverageRunner } from '../../reports/coverage-pieces.js';
import type { ExecutedBlocks } from '../../reports/drcov.js';
import type { ProgressSink } from '../../reports/report-model.js';
import { planPieces, type LinePlan } from './line-pieces.js';
import { streamPsbOffsets } from '../../sources/model/decoders.js';

/**
 * The executed blocks of `input`'s trace, added to `into` in trace order;
 * the instructions walked.
 */
export async function coverageInPieces(input: TraceInput, run: CoverageRunner, workers: number, into: ExecutedBlocks, progress?: ProgressSink, plan?: LinePlan): Promise<number> {
  // Planned from a scan through a window; each worker reads its own pieces: the trace is never held whole.
  const size = input.stream.size;
  const groups = planPieces(streamPsbOffsets(input.stream), size, workers, 8 << 20, plan);
  const limitOf = (r: SegmentRange, next: number | undefined): number => overlapLimit(r, next ?? size, size);
  progress?.phase('decode', size);
  let done = 0;
  const pieces = await Promise.all(
    groups.map(async (g, i) => {
      const p = await run(g, limitOf(g, groups[i + 1]?.to));
      done += g.to - g.from;
      progress?.update(Math.min(done, size));
      return p;
    }),
  );
  progress?.done();
  return mergeCoveragePieces(pieces, size, run, into);
}
