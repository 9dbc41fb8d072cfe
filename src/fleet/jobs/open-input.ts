/**
 * A job's input recording, opened through the one Recording model exactly
 * as the commands open theirs (`openInput`), with the same one-line errors.
 */
import { traceInputs, type TraceInput } from '../../analyses/trace-input.js';
import { openRecording } from '../../sources/import/open-recording.js';
import type { Recording } from '../../sources/model/recording.js';
import { asJobError, type JobContext } from '../job-context.js';

/** Open the store path `rel` (field `field` of the job) as a Recording. */
export function openJobRecording(ctx: JobContext, rel: string, field = 'input'): Recording {
  const path = asJobError(() => ctx.store.input(rel, field));
  return asJobError(() => openRecording(path));
}

/** Every stream of a recording as analysis inputs (at least one). */
export function jobTraceInputs(recording: Recording): TraceInput[] {
  return asJobError(() => traceInputs(recording));
}

/** An optional store file named by field `field`. */
export function optionalStoreFile(ctx: JobContext, rel: string | undefined, field: string): string | null {
  return rel === undefined ? null : asJobError(() => ctx.store.input(rel, field));
}
