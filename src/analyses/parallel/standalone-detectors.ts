/**
 * Standalone detectors under `analyze --jobs`. A standalone detector
 * (detector.ts: FlowGuard) reads the raw trace in a pass of its own, not
 * the control-flow stream the pieces carry, so it needs no segment summary:
 * one worker runs its pass over the whole trace exactly as the serial
 * analyze does, while the other workers decode pieces, and hands back what
 * it reported. The merge puts that in the detector's place in the list.
 */
import { createDetectors, runStandalonePasses } from '../analyze.js';
import type { Detector } from '../detector-base.js';
import { isStandaloneName } from '../detector.js';
import type { Finding, UncheckedNote } from '../finding.js';
import type { TraceInput } from '../trace-input.js';
import type { AnalysisSpec } from './summarize-piece.js';

/** What a standalone detector reported (structured-clonable, from a worker). */
export interface StandaloneResult {
  name: string;
  parameters: Readonly<Record<string, number | string | boolean>>;
  findings: Finding[];
  unchecked: UncheckedNote[];
  stats: Record<string, number> | null;
}

/** Run the spec's standalone detectors over `input`'s whole trace, as the serial analyze runs them. */
export function runStandaloneDetectors(input: TraceInput, spec: AnalysisSpec): StandaloneResult[] {
  const names = spec.detectors.filter(isStandaloneName);
  if (names.length === 0) return [];
  // The serial analyze runs these passes before its walk, when the walk's offset is still the start.
  const detectors = createDetectors(input, { detectors: names, params: spec.params, policyFile: spec.policyFile, monitor: spec.monitor }, () => 0);
  runStandalonePasses(detectors);
  return detectors.map((d) => ({ name: d.name, parameters: d.parameters, findings: d.findings(), unchecked: d.unchecked(), stats: d.stats?.() ?? null }));
}

/** A detector that has run: it reports `r` and consumes nothing. */
export function ranDetector(r: StandaloneResult): Detector {
  const stats = r.stats;
  return {
    name: r.name,
    parameters: r.parameters,
    findings: () => r.findings,
    unchecked: () => r.unchecked,
    ...(stats === null ? {} : { stats: () => stats }),
  };
}
