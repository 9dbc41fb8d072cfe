/**
 * The `report` job: `ptscope report` of store recordings, the HTML written
 * into the store. The result gives the page's path and each stream's
 * verdict line, as the command prints them.
 */
import { analysisGroups, nothingDecodedError } from '../../analyses/analyze.js';
import { renderHtmlReport } from '../../reports/html-report.js';
import { buildReportModels, verdict, type ProgressSink, type ReportModel } from '../../reports/report-model.js';
import { asJobError, JobError, type JobContext } from '../job-context.js';
import type { ReportJob } from '../job-types.js';
import { jobTraceInputs, openJobRecording, optionalStoreFile } from './open-input.js';

export interface ReportJobResult {
  kind: 'report';
  /** The HTML file, store-relative. */
  output: string;
  bytes: number;
  streams: { source: string; verdict: string; findings: number }[];
  findings: number;
  /** The command's exit status without --fail-on-findings: 0, or 1 for a partly decoded trace. */
  status: number;
}

/** Job progress from the report builder's phases: stream `i` of `n` covers [i/n, (i+1)/n]. */
function streamProgress(ctx: JobContext, i: number, n: number): ProgressSink {
  let total = 0;
  return {
    phase: (_name, size) => (total = size),
    update: (done) => ctx.progress((i + (total > 0 ? Math.min(1, done / total) : 0)) / n),
    done: () => ctx.progress((i + 1) / n),
  };
}

export function runReportJob(data: ReportJob, ctx: JobContext): ReportJobResult {
  const policyFile = optionalStoreFile(ctx, data.policy, 'policy');
  // Every path is checked before any decoding starts.
  const output = asJobError(() => ctx.store.output(data.output, 'output'));
  const recordings = data.inputs.map((rel, i) => openJobRecording(ctx, rel, `inputs.${i}`));
  const models: ReportModel[] = [];
  try {
    // A recording's per-CPU streams go together: one model per thread life.
    const groups = recordings.flatMap((r) => analysisGroups(jobTraceInputs(r)));
    for (const [i, group] of groups.entries()) {
      const progress = streamProgress(ctx, i, groups.length);
      models.push(...asJobError(() => buildReportModels(group, { detectors: data.detectors, policyFile, limits: {}, dormant: null, progress })));
    }
  } finally {
    for (const r of recordings) r.close();
  }
  let status = 0;
  for (const m of models) {
    const nothing = nothingDecodedError(m.source, m.trace.instructions, m.trace.decodeErrors);
    if (nothing !== null) throw new JobError(nothing);
    status = Math.max(status, m.trace.decodeErrors > 0 ? 1 : 0);
  }
  const html = renderHtmlReport(models, { title: data.title, generated: new Date().toISOString() });
  asJobError(() => ctx.store.writeFile(output, html, 'output'));
  return {
    kind: 'report',
    output,
    bytes: Buffer.byteLength(html),
    streams: models.map((m) => ({ source: m.source, verdict: verdict(m), findings: m.findings.total })),
    findings: models.reduce((n, m) => n + m.findings.total, 0),
    status,
  };
}
