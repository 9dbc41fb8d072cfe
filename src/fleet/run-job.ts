/**
 * One job, by kind: its data checked against the kind's schema, then the
 * handler that mirrors the command. Every failure leaves as a one-line
 * error; its message is the job's failure reason.
 */
import { asJobError, JobError, type JobContext } from './job-context.js';
import { isJobKind, JOB_SCHEMAS, jobDataError, type AnalyzeJob, type ClassifyJob, type CrashJob, type DecodeJob, type DormantJob, type RecordJob, type ReportJob, type SegmentJob } from './job-types.js';
import { runAnalyzeJob } from './jobs/analyze-job.js';
import { runClassifyJob } from './jobs/classify-job.js';
import { runCrashJob } from './jobs/crash-job.js';
import { runDormantJob } from './jobs/dormant-job.js';
import { runRecordJob } from './jobs/record-job.js';
import { runReportJob } from './jobs/report-job.js';
import { runDecodeJob, runSegmentJob } from './jobs/segment-job.js';

export async function runJob(kind: string, data: unknown, ctx: JobContext): Promise<unknown> {
  if (!isJobKind(kind)) throw new JobError(`unknown job kind '${kind}'`);
  const parsed = JOB_SCHEMAS[kind].safeParse(data);
  if (!parsed.success) throw new JobError(jobDataError(kind, parsed.error));
  const d = parsed.data;
  try {
    switch (kind) {
      case 'record':
        return await runRecordJob(d as RecordJob, ctx);
      case 'analyze':
        return runAnalyzeJob(d as AnalyzeJob, ctx);
      case 'dormant':
        return await runDormantJob(d as DormantJob, ctx);
      case 'crash':
        return runCrashJob(d as CrashJob, ctx);
      case 'classify':
        return await runClassifyJob(d as ClassifyJob, ctx);
      case 'report':
        return runReportJob(d as ReportJob, ctx);
      case 'segment':
        return runSegmentJob(d as SegmentJob, ctx);
      case 'decode':
        return await runDecodeJob(d as DecodeJob, ctx);
    }
  } catch (e) {
    // Whatever escaped a handler (a bug, an I/O error) still fails as one line.
    return asJobError(() => {
      throw e;
    });
  }
}
