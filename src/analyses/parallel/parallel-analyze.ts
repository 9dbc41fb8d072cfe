/**
 * `analyze --jobs N`: the trace is cut at PSBs into pieces; each worker
 * decodes its piece and runs fresh detectors over the piece's body, which
 * it returns as segment summaries (src/analyses/summaries), keeping only
 * the records around the piece's ends (src/flow/parallel/zoned-walk.ts).
 * This thread stitches the pieces (zoned-stitch.ts) and, in trace order,
 * replays each piece's kept records into one set of detectors and applies
 * its summaries between them. A summary that cannot be applied is replaced
 * by the body itself, decoded again. A standalone detector (FlowGuard, which
 * reads packets) runs whole on one worker meanwhile (standalone-detectors.ts).
 * The result is the serial one, field for field, except the timing.
 * Other detectors without a summary are refused.
 * The fleet's segment jobs are such pieces decoded on other machines; its
 * decode job merges them here too (mergeDecodedPieces).
 */
import { FlowLogPlayer, STRIDE } from '../../flow/parallel/flow-log.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import type { FlowStats } from '../../flow/control-flow.js';
import { pieceParts, stitchZoned, type ZonedStitch } from '../../flow/parallel/zoned-stitch.js';
import { analyzeResult, createDetectors, defaultDetectors, NOT_WALKED, type AnalyzeOptions, type AnalyzeResult } from '../analyze.js';
import type { Detector } from '../detector-base.js';
import { jobsRefusal, SUMMARY_RULES } from '../summaries/summary.js';
import type { TraceInput } from '../trace-input.js';
import type { PieceDecoder } from './piece-pool.js';
import { planGroups, type ParallelPlan, type ProgressSink } from './parallel-walk.js';
import type { AnalysisSpec, SummarizedPiece } from './summarize-piece.js';
import { ranDetector, type StandaloneResult } from './standalone-detectors.js';
import { isStandaloneName } from '../detector.js';

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

/** What the workers run on each piece's body: those of `names` (checked by parallelDetectors) that consume the control-flow stream. */
export function analysisSpec(options: AnalyzeOptions, names: string[]): AnalysisSpec {
  return specOf(options, names.filter((n) => !isStandaloneName(n)));
}

/** What one worker runs over the whole stream: the standalone detectors of `names` (standalone-detectors.ts). */
export function standaloneSpec(options: AnalyzeOptions, names: string[]): AnalysisSpec {
  return specOf(options, names.filter(isStandaloneName));
}

function specOf(options: AnalyzeOptions, detectors: string[]): AnalysisSpec {
  return { detectors, params: options.params ?? {}, policyFile: options.policyFile ?? null, monitor: options.monitor ?? [] };
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
  // Queued first: one worker runs the standalone passes while the others decode pieces.
  const standalone = decoder.standalone(standaloneSpec(options, names));
  // (Awaited below; a failure meanwhile is not an unhandled rejection.)
  standalone.catch(() => undefined);
  const spec = analysisSpec(options, names);
  if (spec.detectors.length === 0) return mergePieces(input, options, null, decoder, started, await standalone);
  const stitched = await summarizedPieces(input, decoder, spec, plan, progress);
  return mergePieces(input, options, stitched, decoder, started, await standalone);
}

/**
 * The one exact merge of pieces summarised for `options`' detectors (by
 * this process's pool, or by other machines: the fleet's segment jobs):
 * in trace order, each piece's kept records are replayed into one set of
 * detectors and its summaries applied between them; a summary that cannot
 * be applied is replaced by the body, decoded again with `decoder`.
 * Pieces that do not hand over are decoded again as one first. The
 * standalone detectors run here, with `decoder`.
 */
export async function mergeDecodedPieces(input: TraceInput, options: AnalyzeOptions, decoded: readonly SummarizedPiece[], decoder: PieceDecoder): Promise<ParallelAnalyzeResult> {
  const started = process.hrtime.bigint();
  const names = parallelDetectors(options);
  const spec = analysisSpec(options, names);
  for (const p of decoded) {
    if (p.summaries === null || p.summaries.length !== spec.detectors.length) throw new Error(`piece [${p.piece.from}, ${p.piece.to}) was not summarised for ${spec.detectors.join(', ')}`);
  }
  const standalone = await decoder.standalone(standaloneSpec(options, names));
  const stitched = spec.detectors.length === 0 ? null : await stitchPieces(decoded, decoder, spec);
  return mergePieces(input, options, stitched, decoder, started, standalone);
}

/**
 * The merge itself; `standalone`: what the standalone detectors reported,
 * put in their places among the others. With no other detector (null
 * pieces), nothing is walked, as in the serial analyze.
 */
async function mergePieces(
  input: TraceInput,
  options: AnalyzeOptions,
  stitched: StitchedPieces | null,
  decoder: PieceDecoder,
  started: bigint,
  standalone: readonly StandaloneResult[],
): Promise<ParallelAnalyzeResult> {
  const names = parallelDetectors(options);
  const ran = standalone.map(ranDetector);
  const inOrder = (streaming: readonly Detector[]): Detector[] => {
    let s = 0;
    let r = 0;
    return names.map((n) => (isStandaloneName(n) ? ran[r++]! : streaming[s++]!));
  };
  if (stitched === null) return { ...analyzeResult(input, inOrder([]), { ...NOT_WALKED }, started, false), pieces: 0, replayedBodies: 0 };
  // The offset findings report: the record being replayed, or the one a summary operation names.
  let player: FlowLogPlayer | null = null;
  let summaryAt = 0;
  const detectors = createDetectors(input, { ...options, detectors: analysisSpec(options, names).detectors }, () => (player === null ? summaryAt : player.at));
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
    ...analyzeResult(input, inOrder(detectors), stitch.stats, started),
    pieces: pieces.length,
    replayedBodies,
  };
}
