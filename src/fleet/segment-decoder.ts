/**
 * One large trace analysed by many workers: the stream is cut at PSB
 * packets into segment groups, each group is decoded and summarised by a
 * `segment` job, and a `decode` job (the flow's parent) merges them.
 *
 * A segment job is exactly one piece of `analyze --jobs N`
 * (src/analyses/parallel/summarize-piece.ts): the group decoded on its
 * own, reading on past its end for the overlap, fresh detectors run over
 * its body as segment summaries (src/analyses/summaries), the records
 * around its ends kept. The parent runs the very merge `analyze --jobs`
 * runs (parallel-analyze.ts mergeDecodedPieces): pieces stitched where
 * their decodes agree, kept records replayed and summaries applied in
 * trace order, and, where a summary cannot be applied or two pieces cannot
 * hand over, the bytes decoded again in the parent. So the merged result
 * is the serial `analyze` result, field for field (but the timing). A
 * second walk of the same bytes collects the piece's executed blocks,
 * merged as `coverage --jobs` merges them (src/reports/coverage-pieces.ts):
 * the serial blocks. Two walks, since each must decode as its serial
 * command does: `analyze` block by block, `coverage` instruction by
 * instruction (an unchecked note keeps the decoder's trace offset, and the
 * two decoders read ahead differently far).
 *
 * A piece holds typed arrays and summaries (structured-clonable, not
 * JSON): it travels in the job's return value as the V8 serialisation of
 * the structured clone, base64.
 */
import { deserialize, serialize } from 'node:v8';
import type { AnalyzeResult } from '../analyses/analyze.js';
import { analysisSpec, mergeDecodedPieces, parallelDetectors } from '../analyses/parallel/parallel-analyze.js';
import { inThreadDecoder } from '../analyses/parallel/piece-pool.js';
import { summarizePiece, type SummarizedPiece } from '../analyses/parallel/summarize-piece.js';
import type { TraceInput } from '../analyses/trace-input.js';
import type { FlowStats } from '../flow/control-flow.js';
import { overlapLimit } from '../flow/parallel/piece-walk.js';
import type { SegmentRange } from '../flow/parallel/psb-split.js';
import type { ZonedPiece } from '../flow/parallel/zoned-walk.js';
import { coveragePiece, mergeCoveragePieces, type CoveragePiece } from '../reports/coverage-pieces.js';
import { ExecutedBlocks } from '../reports/drcov.js';
import type { ProgressSink } from '../reports/report-model.js';
import { streamBytes, streamPsbOffsets } from '../sources/model/decoders.js';
import type { TraceStream } from '../sources/model/recording.js';

export type { SegmentRange };

/** One segment group as a job names it: bytes [from, to), decoded on to `limit` for the overlap with the next. */
export interface SegmentPlan extends SegmentRange {
  limit: number;
}

/** What one segment job returns (JSON). */
export interface SegmentSummary extends SegmentPlan {
  /** The whole stream's size, so the merge can check that the segments tile it. */
  streamSize: number;
  detectors: string[];
  /** The piece's own counts (the merged counts come from the stitch). */
  flow: FlowStats;
  /** The summarised piece (summarize-piece.ts) and the coverage piece (reports/coverage-pieces.ts), V8-serialised, base64. */
  piece: string;
}

/** What a segment job ships: its summarised piece (the block decoder's walk), and its coverage piece (the instruction decoder's). */
interface FleetPiece {
  summarized: SummarizedPiece;
  coverage: CoveragePiece;
}

/** What the merge returns (JSON): the serial analyze result, and how it was reached. */
export interface MergedDecode {
  segments: number;
  streamSize: number;
  detectors: string[];
  analysis: AnalyzeResult & { pieces: number; replayedBodies: number };
  /** The executed blocks, merged as `coverage --jobs` merges them (the serial walk's): how many, and the bytes they span. */
  coverage: { blocks: number; bytes: number };
}

/** A segment's serialised piece, at most (a piece keeps its overlaps and its summaries, not its body). */
const MAX_PIECE_CHARS = 256 << 20;

/**
 * Cut a stream into at most `groups` segment groups: for each of `groups`
 * equal byte shares, the first PSB at or after its start. Each group's
 * limit is the one `analyze --jobs` gives a piece (piece-walk.ts).
 */
export function planSegments(stream: TraceStream, groups: number): SegmentPlan[] {
  const size = stream.size;
  const psbs = groups > 1 ? streamPsbOffsets(stream) : [];
  const cuts = [0];
  let next = 0;
  for (let g = 1; g < groups; g++) {
    const target = Math.floor((size * g) / groups);
    while (next < psbs.length && psbs[next]! < target) next++;
    if (next === psbs.length) break;
    const cut = psbs[next]!;
    if (cut > cuts[cuts.length - 1]!) cuts.push(cut);
  }
  const ranges = cuts.map((from, index) => ({ index, from, to: index + 1 < cuts.length ? cuts[index + 1]! : size }));
  return ranges.map((r, i) => ({ ...r, limit: overlapLimit(r, ranges[i + 1]?.to ?? size, size) }));
}

/** Decode and summarise one segment group of `input` for `detectors` (default: analyze's), as a piece of `analyze --jobs`. */
export function decodeSegment(input: TraceInput, segment: SegmentPlan, detectors: readonly string[] | undefined, progress?: ProgressSink): SegmentSummary {
  const names = parallelDetectors({ detectors: detectors ? [...detectors] : undefined });
  const size = input.stream.size;
  if (!(segment.from >= 0 && segment.from < segment.to && segment.to <= segment.limit && segment.limit <= size)) {
    throw new Error(`segment ${segment.index}: bytes [${segment.from}, ${segment.to}) read on to ${segment.limit} are not inside the trace (${size} bytes)`);
  }
  progress?.phase('segment', segment.to - segment.from);
  const bytes = streamBytes(input.stream, segment.from, segment.limit);
  const range: SegmentRange = { index: segment.index, from: segment.from, to: segment.to };
  const summarized = summarizePiece(input, bytes, segment.from, range, segment.limit, analysisSpec({}, names));
  const coverage = coveragePiece(input, bytes, segment.from, range, segment.limit);
  progress?.done();
  const piece: FleetPiece = { summarized, coverage };
  const encoded = serialize(piece).toString('base64');
  if (encoded.length > MAX_PIECE_CHARS) throw new Error(`segment ${segment.index}: its summary is ${encoded.length} bytes, more than ${MAX_PIECE_CHARS}; cut the trace into more segments`);
  return { ...segment, streamSize: size, detectors: names, flow: summarized.piece.stats, piece: encoded };
}

/** A segment result's piece, checked against the segment it claims to be. */
function decodedPiece(s: SegmentSummary, detectors: readonly string[]): FleetPiece {
  if (typeof s.piece !== 'string' || s.piece.length > MAX_PIECE_CHARS) throw new Error(`segment ${s.index}: no summarised piece`);
  let f: FleetPiece;
  try {
    f = deserialize(Buffer.from(s.piece, 'base64')) as FleetPiece;
  } catch {
    throw new Error(`segment ${s.index}: its summarised piece is not readable`);
  }
  const p = f?.summarized;
  if (!isSegmentPiece(p?.piece, s) || !Array.isArray(p.summaries) || p.summaries.length !== detectors.length) {
    throw new Error(`segment ${s.index}: its summarised piece is not the segment [${s.from}, ${s.to}) summarised for ${detectors.join(', ')}`);
  }
  const b = f.coverage;
  if (!isSegmentPiece(b?.piece, s) || b.limit !== s.limit) throw new Error(`segment ${s.index}: its coverage piece is not the segment [${s.from}, ${s.to})`);
  if (!(b.body instanceof Float64Array && b.kept instanceof Float64Array && b.open instanceof Float64Array) || b.body.length % 3 !== 0 || b.kept.length % 3 !== 0 || (b.open.length !== 0 && b.open.length !== 2)) {
    throw new Error(`segment ${s.index}: its executed blocks are malformed`);
  }
  return f;
}

/** Is `z` a decoded piece (zoned-walk.ts) of segment `s`? */
function isSegmentPiece(z: ZonedPiece | undefined, s: SegmentPlan): z is ZonedPiece {
  return z !== undefined && z !== null && z.from === s.from && z.to === s.to && z.log instanceof Float64Array;
}

/** The blocks' count and the bytes they span (overlapping blocks counted once). */
export function coverageSize(blocks: ExecutedBlocks): { blocks: number; bytes: number } {
  const ranges: [number, number][] = [];
  blocks.forEach((start, end) => ranges.push([start, end]));
  ranges.sort((a, b) => a[0] - b[0]);
  let bytes = 0;
  let reach = -Infinity;
  for (const [start, end] of ranges) {
    if (end <= reach) continue;
    bytes += end - Math.max(start, reach);
    reach = end;
  }
  return { blocks: blocks.size, bytes };
}

/**
 * Merge the segment results of one stream of `input` (any order) into the
 * serial analyze result, with analyze --jobs's merge; bytes it must decode
 * again are decoded here.
 */
export async function mergeSegments(input: TraceInput, parts: readonly SegmentSummary[], detectors: readonly string[] | undefined): Promise<MergedDecode> {
  const names = parallelDetectors({ detectors: detectors ? [...detectors] : undefined });
  const sorted = [...parts].sort((a, b) => a.from - b.from);
  if (sorted.length === 0) throw new Error('no segment results to merge');
  const size = input.stream.size;
  let at = 0;
  for (const [k, p] of sorted.entries()) {
    if (p.from !== at || p.streamSize !== size) throw new Error(`segments do not tile the trace: a segment starts at ${p.from}, expected ${at}`);
    // The hand-over to the next segment is found in the overlap a segment decodes past its end: one decoded
    // without it (a plan not made by planSegments) could hand over on too little flow to be sure.
    const limit = overlapLimit(p, sorted[k + 1]?.to ?? size, size);
    if (p.limit !== limit) throw new Error(`segment ${p.index} was decoded to byte ${p.limit}, not through its overlap to ${limit}`);
    if (p.detectors.join() !== names.join()) throw new Error(`segment ${p.index} ran ${p.detectors.join(', ')}, not ${names.join(', ')}`);
    at = p.to;
  }
  if (at !== size) throw new Error(`segments do not tile the trace: they end at ${at} of ${size} bytes`);
  // Their summaries are those of the detectors that consume the control-flow stream (a standalone one runs in the merge).
  const pieces = sorted.map((p) => decodedPiece(p, analysisSpec({}, names).detectors));
  const analysis = await mergeDecodedPieces(input, { detectors: names }, pieces.map((f) => f.summarized), inThreadDecoder(input));
  // Two pieces that do not hand over are decoded again here, as analyze's merge does.
  const blocks = new ExecutedBlocks();
  // Only the bytes of the pieces joined (and their overlap), from the recording: not the whole trace.
  const redo = (range: SegmentRange, limit: number): Promise<CoveragePiece> => Promise.resolve(coveragePiece(input, streamBytes(input.stream, range.from, limit), range.from, range, limit));
  await mergeCoveragePieces(pieces.map((f) => f.coverage), size, redo, blocks);
  return { segments: sorted.length, streamSize: size, detectors: names, analysis, coverage: coverageSize(blocks) };
}
