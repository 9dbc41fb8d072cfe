/**
 * The `dormant` job: `ptscope dormant --json` on a store bundle. With
 * `rerun`, the program is recorded again (confined, as the recorder always
 * is) beside the bundle, and those re-run bundles are removed afterwards.
 */
import { analyzeDormant, type DormantReport } from '../../analyses/dormant/dormant.js';
import { shutdownZ3 } from '../../analyses/dormant/symbolic.js';
import { firstLine, JobError, type JobContext } from '../job-context.js';
import type { DormantJob } from '../job-types.js';
import { openJobRecording } from './open-input.js';

export interface DormantJobResult {
  kind: 'dormant';
  input: string;
  /** What `dormant --json` prints. */
  report: DormantReport;
}

export async function runDormantJob(data: DormantJob, ctx: JobContext): Promise<DormantJobResult> {
  const recording = openJobRecording(ctx, data.input);
  let report: DormantReport;
  try {
    report = await analyzeDormant(recording, { rerun: data.rerun, keepRerun: false, maxRegions: data.maxRegions, timeoutMs: data.timeoutMs });
  } catch (e) {
    throw new JobError(`dormant: ${firstLine(e)}`);
  } finally {
    recording.close();
    await shutdownZ3();
  }
  ctx.progress(1);
  return { kind: 'dormant', input: recording.name, report };
}
