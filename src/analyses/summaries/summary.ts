/**
 * Segment summaries: how `analyze --jobs N` runs the detectors in the
 * workers and still gives the serial findings exactly.
 *
 * A worker runs a *fresh* instance of each detector over the body of its
 * piece (src/flow/parallel/piece-zones.ts) through the detector's
 * Summarizer (summary-rule.ts), which keeps for itself what the fresh instance
 * judges exactly and writes down, in order, what only the state before the
 * piece can decide (for the shadow stack: the returns its own calls do not
 * match and the calls left open; see shadow-stack-summary.ts). The main
 * thread holds one detector per name with the serial state and applies the
 * pieces' summaries to it in trace order: a left fold, so that the merged
 * findings, notes and statistics are the serial ones.
 *
 * A summarizer may find it cannot summarise a body (a finding whose
 * evidence reaches before the piece, say): it then returns null, and a
 * rule's `apply` may refuse a summary whose assumptions about the state
 * before the piece do not hold. Either way the body is decoded again with
 * every record kept and replayed into the detector: slower, never
 * approximate. A detector with no rule here is refused for `--jobs`,
 * unless it is standalone (jobsRefusal).
 */
import type { SummaryRule } from './summary-rule.js';
import { quietSummaryRule, ropExtras, cfiExtras, interModuleExtras } from './quiet-summary.js';
import { shadowStackSummaryRule } from './shadow-stack-summary.js';
import { hookSkipSummaryRule } from './hook-skip-summary.js';
import { DETECTORS, detectorInfo, isStandaloneName } from '../detector.js';

/** Each parallel detector's rule (summary-rule.ts says what a rule does). */
export const SUMMARY_RULES: Readonly<Record<string, SummaryRule>> = {
  'shadow-stack': shadowStackSummaryRule,
  rop: quietSummaryRule(ropExtras),
  cfi: quietSummaryRule(cfiExtras),
  'inter-module': quietSummaryRule(interModuleExtras),
  'hook-skip': hookSkipSummaryRule,
};

/**
 * The one-line refusal for detectors that cannot run with --jobs, or null.
 * A standalone detector (detector.ts: it reads the raw trace in its own
 * pass) needs no summary: `analyze --jobs` runs it whole, beside the pieces.
 */
export function jobsRefusal(names: readonly string[]): string | null {
  const refused = names.filter((n) => SUMMARY_RULES[n] === undefined && !isStandaloneName(n));
  if (refused.length === 0) return null;
  const parallel = DETECTORS.filter((d) => SUMMARY_RULES[d.name] !== undefined || isStandaloneName(d.name)).map((d) => d.name);
  return `--jobs: these detectors cannot run in parallel exactly: ${refused.map((n) => `${n} (${detectorInfo(n) === undefined ? 'unknown detector' : 'no segment summary'})`).join(', ')}; run them without --jobs, or pick others with --detect (parallel: ${parallel.join(', ')}).`;
}
