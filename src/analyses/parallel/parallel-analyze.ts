/**
 * `analyze --jobs N`: the trace is cut at PSBs into pieces; each worker
 * decodes its piece and runs fresh detectors over the piece's body, which
 * it returns as segment summaries (src/analyses/summaries), keeping only
 * the records around the piece's ends (src/flow/parallel/zoned-walk.ts).
 * This thread stitches the pieces (zoned-stitch.ts) and, in trace order,
 * replays each piece's kept records into one set of detectors and applies
 * its summaries between them. A summary that cannot be applied is replaced
 * by the body itself, decoded again. The result is the serial one, field
 * for field, except the timing. Detectors without a summary are refused.
 * The fleet's segment jobs are such pieces decoded on other machines; its
 * decode job merges them here too (mergeDecodedPieces).
 */
import { FlowLogPlayer, STRIDE } from '../../flow/parallel/flow-log.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import type { FlowStats } from '../../flow/control-flow.js';
import { pieceParts, stitchZoned, type ZonedStitch } from '../../flow/parallel/zoned-stitch.js';
import { analyzeResult, createDetectors, defaultDetectors, type AnalyzeOptions, type AnalyzeResult } from '../analyze.js';
import type { Detector } from '../detector-base.js';
import { jobsRefusal, SUMMARY_RULES } from '../summaries/summary.js';
import type { TraceInput } from '../trace-input.js';
import type { PieceDecoder } from './piece-pool.js';
import { planGroups, type ParallelPlan, type ProgressSink } from './parallel-walk.js';
import type { AnalysisSpec, SummarizedPiece } from './summarize-piece.js';

/** The detectors `analyze --jobs` would run, or the one-line reason it cannot. */
export function parallelDetectors(options: AnalyzeOptions): string[] {
  const names = options.detectors && options.detectors.length > 0 ? options.detectors : defaultDetectors();
  const refusal = jobsRefusal(names);
  if (refusal !== null) throw new Error(refusal);
  return names;
}

/** Decode and summarise the pieces (null: keep every record), decoding again as one any two that cannot hand over. */
export async function summarizedPieces(
  input: TraceInput,
  decoder: PieceDecoder,
  spec: AnalysisSpec | null,
  plan: ParallelPlan,
  progress?: ProgressSink,
): Promise<StitchedPieces> {
  const groups = planGroups(input, decoder.workers, plan);
  const total = input.stream.size;
  let done = 0;
  progress?.phase('decode', total);
  const pieces = await decoder.summarize(groups, spec, (bytes) => {
    done += bytes;
    progress?.update(Math.min(done, total));
  });
  const stitched = await stitchPieces(pieces, decoder, spec);
  progress?.done();
  return stitched;
}

export interface StitchedPieces {
  pieces: SummarizedPiece[];
  stitch: Extract<ZonedStitch, { ok: true }>;
}

/**
 * Stitch pieces decoded for `spec` (in trace order, tiling the trace),
 * decoding again with `decoder` as one any two that cannot hand over.
 */
export async function stitchPieces(decoded: readonly SummarizedPiece[], decoder: PieceDecoder, spec: AnalysisSpec | null): Promise<StitchedPieces> {
  let pieces = [...decoded];
  for (;;) {
    const r = stitchZoned(pieces.map((p) => p.piece));
    if (r.ok) return { pieces, stitch: r };
    const k = r.join;
    const joined: SegmentRange = { index: k - 1, from: pieces[k - 1]!.piece.from, to: pieces[k]!.piece.to };
    const [again] = await decoder.summarize([joined], spec, undefined, pieces[k + 1]?.piece.to);
    pieces = [...pieces.slice(0, k - 1), again!, ...pieces.slice(k + 1)];
  }
}

/** What the workers run on each piece's body for `options`' detectors (`names`, checked by parallelDetectors). */
export function analysisSpec(options: AnalyzeOptions, names: string[]): AnalysisSpec {
  return { detectors: names, params: options.params ?? {}, policyFile: options.policyFile ?? null, monitor: options.monitor ?? [] };
}

/** The serial walk's counts (`flow --jobs`'s summary line), from pieces that keep only their heads and tails. */
export async function flowStatsParallel(input: TraceInput, decoder: PieceDecoder, plan: ParallelPlan = {}, progress?: ProgressSink): Promise<FlowStats & { pieces: number }> {
  const spec: AnalysisSpec = { detectors: [], params: {}, policyFile: null, monitor: [] };
  const { pieces, stitch } = await summarizedPieces(input, decoder, spec, plan, progress);
  return { ...stitch.stats, pieces: pieces.length };
}

export type ParallelAnalyzeResult = AnalyzeResult & { pieces: number; replayedBodies: number };

export async function analyzeParallel(
  input: TraceInput,
  options: AnalyzeOptions,
  decoder: PieceDecoder,
  plan: ParallelPlan = {},
  progress?: ProgressSink,
): Promise<ParallelAnalyzeResult> {
  const started = process.hrtime.bigint();
  const names = parallelDetectors(options);
  const stitched = await summarizedPieces(input, decoder, analysisSpec(options, names), plan, progress);
  return mergePieces(input, options, stitched, decoder, started);
}

/**
 * The one exact merge of pieces summarised for `options`' detectors (by
 * this process's pool, or by other machines: the fleet's segment jobs):
 * in trace order, each piece's kept records are replayed into one set of
 * detectors and its summaries applied between them; a summary that cannot
 * be applied is replaced by the body, decoded again with `decoder`.
 * Pieces that do not hand over are decoded again as one first.
 */
export async function mergeDecodedPieces(input: TraceInput, options: AnalyzeOptions, decoded: readonly SummarizedPiece[], decoder: PieceDecoder): Promise<ParallelAnalyzeResult> {
  const started = process.hrtime.bigint();
  const names = parallelDetectors(options);
  const spec = analysisSpec(options, names);
  for (const p of decoded) {
    if (p.summaries === null || p.summaries.length !== names.length) throw new Error(`piece [${p.piece.from}, ${p.piece.to}) was not summarised for ${names.join(', ')}`);
  }
  return mergePieces(input, options, await stitchPieces(decoded, decoder, spec), decoder, started);
}

async function mergePieces(input: TraceInput, options: AnalyzeOptions, stitched: StitchedPieces, decoder: PieceDecoder, started: bigint): Promise<ParallelAnalyzeResult> {
  const names = parallelDetectors(options);
  // The offset findings report: the record being replayed, or the one a summary operation names.
  let player: FlowLogPlayer | null = null;
  let summaryAt = 0;
  const detectors = createDetectors(input, { ...options, detectors: names }, () => (player === null ? summaryAt : player.at));
  const setAt = (offset: number): void => {
    summaryAt = offset;
  };
  const { pieces, stitch } = stitched;
  const all = new FlowLogPlayer(detectors);
  const play = (p: FlowLogPlayer, log: Float64Array): void => {
    player = p;
    p.play(log);
    player = null;
  };
  let replayedBodies = 0;
  for (let k = 0; k < pieces.length; k++) {
    const { piece, summaries, limit } = pieces[k]!;
    const span = stitch.spans[k]!;
    const parts = pieceParts(piece);
    if (parts.whole) {
      play(all, parts.head.subarray(span.start, span.end));
      continue;
    }
    play(all, parts.head.subarray(span.start));
    const replay: Detector[] = [];
    detectors.forEach((d, i) => {
      const s = summaries![i];
      if (s === null || !SUMMARY_RULES[d.name]!.apply(d, s, setAt)) replay.push(d);
    });
    if (replay.length > 0) {
      // The body itself, decoded again with every record kept, for the detectors that need it.
      replayedBodies++;
      const [full] = await decoder.summarize([{ index: piece.index, from: piece.from, to: piece.to }], null, undefined, limit);
      const h = full!.piece.headRecords * STRIDE;
      play(new FlowLogPlayer(replay), full!.piece.log.subarray(h, h + full!.piece.bodyRecords * STRIDE));
    }
    play(all, parts.tail.subarray(0, span.end));
  }
  if (stitch.flush !== null) play(all, stitch.flush);
  all.end();

  return {
    ...analyzeResult(input, detectors, stitch.stats, started),
    pieces: pieces.length,
    replayedBodies,
  };
}
