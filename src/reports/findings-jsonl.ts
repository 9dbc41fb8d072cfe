/**
 * Findings as JSON lines for machines: one `{"type":"finding",...}` object
 * per finding, one `{"type":"unchecked",...}` per unchecked note, and a
 * final `{"type":"summary",...}` with the per-detector parameters and
 * statistics. Every line carries the `pid` and `tid` of the stream it is
 * about (null when the stream is not one thread's), so the lines of a
 * multi-thread recording can be told apart.
 */
import type { AnalyzeResult } from '../analyses/analyze.js';

export function formatFindingsJsonl(r: AnalyzeResult): string[] {
  const out: string[] = [];
  const thread = { pid: r.pid, tid: r.tid };
  for (const f of r.findings) out.push(JSON.stringify({ type: 'finding', ...thread, ...f }));
  for (const n of r.notes) out.push(JSON.stringify({ type: 'unchecked', ...thread, detector: 'analyze', reason: n, count: 1, firstOffset: 0 }));
  for (const u of r.unchecked) out.push(JSON.stringify({ type: 'unchecked', ...thread, ...u }));
  out.push(
    JSON.stringify({
      type: 'summary',
      ...thread,
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
