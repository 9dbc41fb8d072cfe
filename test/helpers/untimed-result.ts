/**
 * An analyze result without what differs between two runs of the same
 * analysis: its timing, FlowGuard's timed stats, and how a parallel run
 * cut the trace.
 */
import type { AnalyzeResult } from '../../src/analyses/analyze.js';

/** FlowGuard's stats time its two paths (`fastSeconds`, `slowBytesPerSecond`, ...). */
const TIMED_STAT = /Seconds$|PerSecond$/;

export function untimedResult(r: AnalyzeResult): unknown {
  return {
    ...r,
    seconds: 0,
    instructionsPerSecond: 0,
    pieces: undefined,
    replayedBodies: undefined,
    detectors: r.detectors.map((d) => ({ ...d, stats: Object.fromEntries(Object.entries(d.stats).filter(([k]) => !TIMED_STAT.test(k))) })),
  };
}
