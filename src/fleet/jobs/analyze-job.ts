/**
 * The `analyze` job: `ptscope analyze --json` on a store recording. The
 * result holds the very objects the command prints as JSON lines (findings,
 * unchecked notes, one summary per stream), with the exit status the
 * command would give.
 */
import { analyzeTrace, nothingDecodedError } from '../../analyses/analyze.js';
import { DETECTOR_NAMES } from '../../analyses/detector.js';
import { formatFindingsJsonl } from '../../reports/findings-jsonl.js';
import { asJobError, JobError, type JobContext } from '../job-context.js';
import type { AnalyzeJob } from '../job-types.js';
import { jobTraceInputs, openJobRecording, optionalStoreFile } from './open-input.js';

export interface AnalyzeJobResult {
  kind: 'analyze';
  input: string;
  /** Findings over every stream. */
  findings: number;
  /** `analyze --json`'s lines, parsed, in order. */
  records: Record<string, unknown>[];
  /** The command's exit status without --fail-on-findings: 0, or 1 for a partly decoded trace. */
  status: number;
}

export function runAnalyzeJob(data: AnalyzeJob, ctx: JobContext): AnalyzeJobResult {
  for (const name of Object.keys(data.params ?? {})) {
    if (!DETECTOR_NAMES.includes(name)) throw new JobError(`params: unknown detector '${name}' (known: ${DETECTOR_NAMES.join(', ')}).`);
  }
  const policyFile = optionalStoreFile(ctx, data.policy, 'policy');
  const recording = openJobRecording(ctx, data.input);
  try {
    const inputs = jobTraceInputs(recording);
    const records: Record<string, unknown>[] = [];
    let status = 0;
    let findings = 0;
    inputs.forEach((input, i) => {
      const r = asJobError(() => analyzeTrace(input, { detectors: data.detectors, params: data.params, policyFile, monitor: data.monitor ?? [] }));
      const nothing = nothingDecodedError(input.name, r.flow.instructions, r.flow.errors);
      if (nothing !== null) throw new JobError(nothing);
      status = Math.max(status, r.flow.errors > 0 ? 1 : 0);
      findings += r.findings.length;
      for (const line of formatFindingsJsonl(r)) records.push(JSON.parse(line) as Record<string, unknown>);
      ctx.progress((i + 1) / inputs.length);
    });
    return { kind: 'analyze', input: data.input, findings, records, status };
  } finally {
    recording.close();
  }
}
