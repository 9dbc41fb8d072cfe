/**
 * The worker side of the parallel decode (a piscina worker): open the
 * recording once per worker, then decode the pieces it is given out of the
 * trace bytes the main thread shares (a SharedArrayBuffer, never copied).
 */
import { traceInput, type TraceInput } from '../trace-input.js';
import { summarizePiece, type AnalysisSpec, type SummarizedPiece } from './summarize-piece.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import { openRecording, type OpenOptions } from '../../sources/import/open-recording.js';
import type { Recording } from '../../sources/model/recording.js';

/** One task: which recording and stream, the shared trace bytes, and the piece. */
export interface PieceTask {
  path: string;
  options: OpenOptions;
  stream: number;
  trace: Uint8Array;
  range: SegmentRange;
  /** How far the decode may read on past the range (the next piece's end). */
  limit: number;
  /**
   * Run these detectors on the piece's body and return summaries
   * (summarize-piece.ts); null: keep every record of the zoned walk.
   */
  analysis: AnalysisSpec | null;
}

let opened: { key: string; recording: Recording; inputs: Map<number, TraceInput> } | null = null;

function recordingFor(path: string, options: OpenOptions): NonNullable<typeof opened> {
  const key = JSON.stringify([path, options]);
  if (opened === null || opened.key !== key) {
    opened?.recording.close();
    opened = { key, recording: openRecording(path, options), inputs: new Map() };
  }
  return opened;
}

export default function decodePiece(task: PieceTask): SummarizedPiece {
  const open = recordingFor(task.path, task.options);
  const recording = open.recording;
  const stream = recording.streams.find((s) => s.index === task.stream);
  if (stream === undefined) throw new Error(`${recording.name}: no trace stream ${task.stream}`);
  // A private copy of the bytes this piece reads: V8 reads a SharedArrayBuffer's bytes slower.
  const end = Math.min(task.limit, task.trace.length);
  const bytes = task.trace.slice(task.range.from, end);
  // One analysis input per stream, so that its code facts are shared by the pieces this worker runs.
  let input = open.inputs.get(stream.index);
  if (input === undefined) {
    input = traceInput(recording, stream);
    open.inputs.set(stream.index, input);
  }
  return summarizePiece(input, bytes, task.range.from, task.range, end, task.analysis);
}
