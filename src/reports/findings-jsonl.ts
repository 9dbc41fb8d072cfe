/**
 * Findings as JSON lines for machines: one `{"type":"finding",...}` object
 * per finding, one `{"type":"unchecked",...}` per unchecked note, and a
 * final `{"type":"summary",...}` with the per-detector parameters and
 * statistics.
 */
import type { AnalyzeResult } from '../analyses/analyze.js';

export function formatFindingsJsonl(r: AnalyzeResult): string[] {
  const out: string[] = [];
  for (const f of r.findings) out.push(JSON.stringify({ type: 'finding', ...f }));
  for (const n of r.notes) out.push(JSON.stringify({ type: 'unchecked', detector: 'analyze', reason: n, count: 1, firstOffset: 0 }));
  for (const u of r.unchecked) out.push(JSON.stringify({ type: 'unchecked', ...u }));
  out.push(
    JSON.stringify({
      type: 'summary',
      input: r.input,
      findings: r.findings.length,
      flow: r.flow,
      seconds: r.seconds,
      instructionsPerSecond: r.instructionsPerSecond,
      detectors: r.detectors,
    }),
  );
  return out;
}
