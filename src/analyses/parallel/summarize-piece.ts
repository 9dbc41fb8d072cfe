/**
 * One piece of `analyze --jobs N` as a worker runs it: decode the piece
 * (src/flow/parallel/zoned-walk.ts), feed its body to fresh detectors
 * through their summarizers (src/analyses/summaries) and return the kept
 * records and the summaries. Without an analysis, every record is kept
 * (the fallback when a summary cannot be applied).
 */
import type { FlowConsumer } from '../../flow/control-flow.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import { walkPieceZoned, type ZonedPiece } from '../../flow/parallel/zoned-walk.js';
import { CodeFacts } from '../code-facts.js';
import type { DetectorContext } from '../detector-base.js';
import { detectorInfo } from '../detector.js';
import { EvidenceBuilder } from '../evidence.js';
import { SUMMARY_RULES } from '../summaries/summary.js';
import type { Summarizer } from '../summaries/summary-rule.js';
import type { TraceInput } from '../trace-input.js';

/** The analysis a worker runs on each body (structured-clonable). */
export interface AnalysisSpec {
  detectors: string[];
  params: Record<string, Record<string, string>>;
  policyFile: string | null;
  monitor: string[];
}

export interface SummarizedPiece {
  piece: ZonedPiece;
  /** How far the decode read (to decode the piece again identically). */
  limit: number;
  /** Per detector of the spec, in its order; null: replay the body. Absent when the body was kept. */
  summaries: unknown[] | null;
}

/** Code facts and evidence are caches over the image: one per input, shared by the pieces. */
const shared = new WeakMap<TraceInput, { facts: CodeFacts; evidence: EvidenceBuilder }>();

function sharedFor(input: TraceInput): { facts: CodeFacts; evidence: EvidenceBuilder } {
  let s = shared.get(input);
  if (s === undefined) {
    const facts = new CodeFacts(input.image);
    s = { facts, evidence: new EvidenceBuilder(facts, input.modules) };
    shared.set(input, s);
  }
  return s;
}

/**
 * Fresh detectors for one body, each wrapped in its summarizer (`at()`:
 * the current record's trace offset). The code facts and evidence caches
 * are the input's, shared by every body: a fresh detector's state is its
 * own, the facts about the image are not.
 */
export function freshSummarizers(input: TraceInput, spec: AnalysisSpec, at: () => number): Summarizer[] {
  const { facts, evidence } = sharedFor(input);
  // The bodies are summarised one at a time: the facts follow this one's records.
  facts.position = at;
  return spec.detectors.map((name) => {
    const info = detectorInfo(name);
    const rule = SUMMARY_RULES[name];
    if (info === undefined || rule === undefined) throw new Error(`detector '${name}' has no segment summary`);
    const ctx: DetectorContext = {
      image: input.image,
      modules: input.modules,
      facts,
      evidence,
      thread: { pid: input.stream.pid, tid: input.stream.tid },
      offset: at,
      params: spec.params[name] ?? {},
      policyFile: spec.policyFile,
      monitor: spec.monitor,
      openTrace: null,
      config: input.config,
    };
    return rule.summarize(info.create(ctx), at);
  });
}

/**
 * Decode `range` of `input` (its bytes from trace offset `origin` in
 * `trace`), summarising the body for `spec` (null: keep every record).
 */
export function summarizePiece(input: TraceInput, trace: Uint8Array, origin: number, range: SegmentRange, limit: number, spec: AnalysisSpec | null): SummarizedPiece {
  let summarizers: Summarizer[] = [];
  const piece = walkPieceZoned(trace, range, limit, input.config, input.image, origin, (at): FlowConsumer[] | null => {
    if (spec === null) return null;
    summarizers = freshSummarizers(input, spec, at);
    return summarizers.map((s) => s.consumer);
  });
  if (spec === null) return { piece, limit, summaries: null };
  return { piece, limit, summaries: summarizers.map((s) => s.finish()) };
}
