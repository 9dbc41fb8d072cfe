/**
 * One large trace decoded by many workers: the stream is cut at PSB
 * packets into segment groups, each group is decoded by a `segment` job,
 * and a `decode` job (the flow's parent) merges their summaries.
 *
 * Everything segment-specific sits behind {@link SegmentDecoder}: `plan`
 * (where to cut), `decodeSegment` (one group, JSON out) and
 * `mergeSegments` (the summaries, in trace order, into one result). The
 * jobs call nothing else, so an exact decoder with per-detector summaries
 * (the shadow stack's unmatched returns and open calls, composed like
 * bracket matching) replaces {@link INDEPENDENT_SEGMENTS} in
 * {@link SEGMENT_DECODER} without touching a job.
 *
 * {@link INDEPENDENT_SEGMENTS} decodes each group on its own and merges what
 * needs no state across a cut:
 * - instruction, transfer, gap and error counts: sums;
 * - coverage: the executed byte ranges, an order-free union;
 * - findings of the detectors that judge each transfer alone (cfi,
 *   inter-module): their offsets rebased to the whole trace and, as each
 *   detector reports an edge once, deduplicated by edge in trace order.
 * Detectors that carry state across transfers (shadow-stack, rop,
 * flowguard) are refused: without their summaries a segment cut would make
 * them miss or invent findings. A finding's recent-call evidence is only
 * what its own segment saw.
 */
import { createDetectors } from '../analyses/analyze.js';
import type { Finding, UncheckedNote } from '../analyses/finding.js';
import { traceInput, type TraceInput } from '../analyses/trace-input.js';
import type { FlowStats } from '../flow/control-flow.js';
import { PacketStream } from '../packets/packet-stream.js';
import { ExecutedBlocks } from '../reports/drcov.js';
import { walkTrace, type ProgressSink } from '../reports/report-model.js';
import { openInsnDecoder } from '../sources/model/decoders.js';
import type { TraceStream } from '../sources/model/recording.js';
import { streamSegment } from './segment-source.js';

/** One segment group: trace bytes [from, to) of a stream; `from` is a PSB or the trace start. */
export interface SegmentRange {
  index: number;
  from: number;
  to: number;
}

/** What one segment job returns (JSON). */
export interface SegmentSummary extends SegmentRange {
  /** The whole stream's size, so the merge can check that the segments tile it. */
  streamSize: number;
  detectors: string[];
  flow: FlowStats;
  /** Executed byte ranges, sorted and disjoint: [start0, end0, start1, end1, ...]. */
  coverage: number[];
  /** Offsets are whole-trace offsets. */
  findings: Finding[];
  unchecked: UncheckedNote[];
}

/** What the merge returns (JSON). */
export interface MergedDecode {
  segments: number;
  streamSize: number;
  detectors: string[];
  flow: FlowStats;
  coverage: { ranges: number; bytes: number };
  findings: Finding[];
  unchecked: UncheckedNote[];
  /** How the segments were merged: what a reader may rely on. */
  merge: string;
}

export interface SegmentDecoder {
  /** The detectors it runs on segments (the default set when a job names none). */
  readonly detectors: readonly string[];
  /** Cut a stream into at most `groups` segment groups at PSB packets, covering it whole. */
  plan(stream: TraceStream, groups: number): SegmentRange[];
  /** Decode one group and summarise it. */
  decodeSegment(input: TraceInput, range: SegmentRange, detectors: readonly string[] | undefined, progress?: ProgressSink): SegmentSummary;
  /** Merge the summaries of every group of one stream. */
  mergeSegments(parts: readonly SegmentSummary[]): MergedDecode;
}

/** Detectors whose verdict on a transfer needs nothing from before it. */
export const SEGMENT_DETECTORS: readonly string[] = ['cfi', 'inter-module'];

/** Segment coverage kept per job (ranges); more is an error rather than a silent cut. */
const MAX_COVERAGE_RANGES = 1 << 21;

/** Trace offsets of every PSB of a stream, read through a sliding window (flat memory). */
export function psbOffsets(stream: TraceStream): number[] {
  const packets = new PacketStream(stream.open(), { pebs: false, skd007: stream.config.errata.skd007 });
  const offsets: number[] = [];
  try {
    while (packets.syncForward() === 0) offsets.push(packets.syncOffset);
  } finally {
    packets.close();
  }
  return offsets;
}

/** Cut points: for each of `groups` equal byte shares, the first PSB at or after its start. */
export function planAtPsbs(stream: TraceStream, groups: number): SegmentRange[] {
  const size = stream.size;
  const psbs = groups > 1 ? psbOffsets(stream) : [];
  const cuts = [0];
  let next = 0;
  for (let g = 1; g < groups; g++) {
    const target = Math.floor((size * g) / groups);
    while (next < psbs.length && psbs[next]! < target) next++;
    if (next === psbs.length) break;
    const cut = psbs[next]!;
    if (cut > cuts[cuts.length - 1]!) cuts.push(cut);
  }
  return cuts.map((from, index) => ({ index, from, to: index + 1 < cuts.length ? cuts[index + 1]! : size }));
}

/** Sorted, disjoint union of [start, end) ranges given flat. */
export function unionRanges(flat: readonly number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: number[] = [];
  for (const [s, e] of pairs) {
    const last = out.length - 1;
    if (last > 0 && s <= out[last]!) out[last] = Math.max(out[last]!, e);
    else out.push(s, e);
  }
  return out;
}

function checkDetectors(detectors: readonly string[] | undefined): string[] {
  const list = detectors && detectors.length > 0 ? [...detectors] : [...SEGMENT_DETECTORS];
  for (const d of list) {
    if (!SEGMENT_DETECTORS.includes(d)) {
      throw new Error(`${d} keeps state across the trace: a segmented decode runs only ${SEGMENT_DETECTORS.join(', ')} until segment summaries for it exist`);
    }
  }
  return list;
}

function decodeIndependently(input: TraceInput, range: SegmentRange, detectors: readonly string[] | undefined, progress?: ProgressSink): SegmentSummary {
  const names = checkDetectors(detectors);
  const segment = traceInput(input.recording, streamSegment(input.stream, range.from, range.to));
  const decoder = openInsnDecoder(segment.stream, undefined, segment.config);
  const found = createDetectors(segment, { detectors: names }, () => decoder.offset);
  const blocks = new ExecutedBlocks();
  const flow = walkTrace(segment, [...found, blocks], progress, 'segment', decoder);
  if (blocks.size > MAX_COVERAGE_RANGES) throw new Error(`segment ${range.index}: ${blocks.size} executed blocks is more than the limit of ${MAX_COVERAGE_RANGES}; cut the trace into more segments`);
  const flat: number[] = [];
  blocks.forEach((start, end) => flat.push(start, end));
  return {
    ...range,
    streamSize: input.stream.size,
    detectors: names,
    flow,
    coverage: unionRanges(flat),
    findings: found.flatMap((d) => d.findings()).map((f) => ({ ...f, offset: f.offset + range.from })),
    unchecked: found.flatMap((d) => d.unchecked()).map((u) => ({ ...u, firstOffset: u.firstOffset + range.from })),
  };
}

function mergeIndependent(parts: readonly SegmentSummary[]): MergedDecode {
  const sorted = [...parts].sort((a, b) => a.from - b.from);
  if (sorted.length === 0) throw new Error('no segment results to merge');
  const size = sorted[0]!.streamSize;
  let at = 0;
  for (const p of sorted) {
    if (p.from !== at || p.streamSize !== size) throw new Error(`segments do not tile the trace: a segment starts at ${p.from}, expected ${at}`);
    at = p.to;
  }
  if (at !== size) throw new Error(`segments do not tile the trace: they end at ${at} of ${size} bytes`);
  const flow: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  for (const p of sorted) {
    flow.instructions += p.flow.instructions;
    flow.transfers += p.flow.transfers;
    flow.errors += p.flow.errors;
    flow.gaps += p.flow.gaps;
  }
  const coverage = unionRanges(sorted.flatMap((p) => p.coverage));
  let bytes = 0;
  for (let i = 0; i < coverage.length; i += 2) bytes += coverage[i + 1]! - coverage[i]!;
  // Each of these detectors reports an edge once: keep the first report in trace order.
  const seen = new Set<string>();
  const findings: Finding[] = [];
  for (const f of sorted.flatMap((p) => p.findings).sort((a, b) => a.offset - b.offset)) {
    const key = `${f.detector} ${f.transfer?.from ?? ''}>${f.transfer?.to ?? ''} ${f.transfer === null ? f.offset : ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    findings.push(f);
  }
  const notes = new Map<string, UncheckedNote>();
  for (const u of sorted.flatMap((p) => p.unchecked)) {
    const key = `${u.detector}\n${u.reason}`;
    const n = notes.get(key);
    if (n === undefined) notes.set(key, { ...u });
    else {
      n.count += u.count;
      n.firstOffset = Math.min(n.firstOffset, u.firstOffset);
    }
  }
  return {
    segments: sorted.length,
    streamSize: size,
    detectors: sorted[0]!.detectors,
    flow,
    coverage: { ranges: coverage.length / 2, bytes },
    findings,
    unchecked: [...notes.values()],
    merge: 'independent segments: counts summed, coverage united, per-transfer detectors only',
  };
}

export const INDEPENDENT_SEGMENTS: SegmentDecoder = {
  detectors: SEGMENT_DETECTORS,
  plan: planAtPsbs,
  decodeSegment: decodeIndependently,
  mergeSegments: mergeIndependent,
};

/** The segment decoder the fleet's `segment` and `decode` jobs use. */
export const SEGMENT_DECODER: SegmentDecoder = INDEPENDENT_SEGMENTS;
