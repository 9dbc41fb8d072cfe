/**
 * The `crash` job: `ptscope crash --json` on a store bundle. When the
 * bundle has no core, the program may be re-run once for one, always in
 * the sandbox (the command line's --no-sandbox has no job field).
 */
import { analyzeCrash, type CrashReport } from '../../analyses/crash/crash.js';
import { asJobError, firstLine, JobError, type JobContext } from '../job-context.js';
import type { CrashJob } from '../job-types.js';
import { openJobRecording } from './open-input.js';

export interface CrashJobResult {
  kind: 'crash';
  input: string;
  /** What `crash --json` prints. */
  report: CrashReport;
  /** The command's exit status: 0 root cause found, 1 not established. */
  status: number;
}

export function runCrashJob(data: CrashJob, ctx: JobContext): CrashJobResult {
  const core = data.core === undefined ? undefined : asJobError(() => ctx.store.input(data.core, 'core'));
  const recording = openJobRecording(ctx, data.input);
  let report: CrashReport;
  try {
    report = analyzeCrash(recording, { core, pid: data.pid, window: data.window, rerun: data.rerun, sandbox: true });
  } catch (e) {
    throw new JobError(`crash: ${firstLine(e)}`);
  } finally {
    recording.close();
  }
  ctx.progress(1);
  return { kind: 'crash', input: recording.name, report, status: report.rootCauses.length > 0 ? 0 : 1 };
}
