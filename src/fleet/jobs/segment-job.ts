/**
 * A large trace decoded by several workers, as a BullMQ flow: one `segment`
 * job per segment group (the children) and a `decode` job (the parent) that
 * runs once every child is done and merges them into the serial analyze
 * result, with analyze --jobs's merge (../segment-decoder.ts).
 */
import type { ProgressSink } from '../../reports/report-model.js';
import { asJobError, firstLine, JobError, type JobContext } from '../job-context.js';
import type { DecodeJob, SegmentJob } from '../job-types.js';
import { decodeSegment, mergeSegments, type MergedDecode, type SegmentSummary } from '../segment-decoder.js';
import { jobTraceInputs, openJobRecording } from './open-input.js';

export interface SegmentJobResult extends SegmentSummary {
  kind: 'segment';
  input: string;
  stream: number;
}

export interface DecodeJobResult extends MergedDecode {
  kind: 'decode';
  input: string;
  stream: number;
}

function progressOf(ctx: JobContext): ProgressSink {
  let total = 0;
  return {
    phase: (_name, size) => (total = size),
    update: (done) => ctx.progress(total > 0 ? done / total : 0),
    done: () => ctx.progress(1),
  };
}

export function runSegmentJob(data: SegmentJob, ctx: JobContext): SegmentJobResult {
  const recording = openJobRecording(ctx, data.input);
  try {
    const inputs = jobTraceInputs(recording);
    const input = inputs.find((i) => i.stream.index === data.stream);
    if (input === undefined) throw new JobError(`${recording.name}: no trace stream ${data.stream}`);
    const summary = asJobError(() => decodeSegment(input, { index: data.index, from: data.from, to: data.to, limit: data.limit }, data.detectors, progressOf(ctx)));
    return { kind: 'segment', input: recording.name, stream: data.stream, ...summary };
  } finally {
    recording.close();
  }
}

export async function runDecodeJob(data: DecodeJob, ctx: JobContext): Promise<DecodeJobResult> {
  const values = Object.values(await ctx.childrenValues()) as SegmentJobResult[];
  const parts = values.filter((v) => v !== null && typeof v === 'object' && v.kind === 'segment' && v.stream === data.stream);
  if (parts.length !== data.segments) throw new JobError(`decode ${data.input}: ${parts.length} of ${data.segments} segment results are there`);
  const recording = openJobRecording(ctx, data.input);
  try {
    const input = jobTraceInputs(recording).find((i) => i.stream.index === data.stream);
    if (input === undefined) throw new JobError(`${recording.name}: no trace stream ${data.stream}`);
    let merged: MergedDecode;
    try {
      merged = await mergeSegments(input, parts, data.detectors);
    } catch (e) {
      throw e instanceof JobError ? e : new JobError(`decode ${data.input}: ${firstLine(e)}`);
    }
    ctx.progress(1);
    return { kind: 'decode', input: data.input, stream: data.stream, ...merged };
  } finally {
    recording.close();
  }
}
