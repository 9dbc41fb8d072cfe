/**
 * The `classify` job: `ptscope classify --json` on a store recording, with
 * the shipped model or a model file from the store.
 */
import { classifyInput, defaultModelPath, type LearnedScores } from '../../analyses/learned/classify.js';
import { ModelFileError, readModelFile } from '../../analyses/learned/model.js';
import { asJobError, JobError, type JobContext } from '../job-context.js';
import type { ClassifyJob } from '../job-types.js';
import { jobTraceInputs, openJobRecording, optionalStoreFile } from './open-input.js';

export interface ClassifyJobResult {
  kind: 'classify';
  input: string;
  /** One object per stream, as `classify --json` prints them. */
  streams: LearnedScores[];
  /** Windows at or above the model's threshold, over every stream. */
  flagged: number;
}

export async function runClassifyJob(data: ClassifyJob, ctx: JobContext): Promise<ClassifyJobResult> {
  const model = optionalStoreFile(ctx, data.model, 'model') ?? defaultModelPath();
  // Check the model before decoding anything, as the command does.
  asJobError(() => readModelFile(model));
  const recording = openJobRecording(ctx, data.input);
  const streams: LearnedScores[] = [];
  try {
    const inputs = jobTraceInputs(recording);
    for (const [i, input] of inputs.entries()) {
      try {
        streams.push(await classifyInput(input, { model, top: data.top }));
      } catch (e) {
        if (e instanceof ModelFileError) throw new JobError(e.message);
        throw e;
      }
      ctx.progress((i + 1) / inputs.length);
    }
  } finally {
    recording.close();
  }
  return { kind: 'classify', input: recording.name, streams, flagged: streams.reduce((n, s) => n + s.flagged, 0) };
}
