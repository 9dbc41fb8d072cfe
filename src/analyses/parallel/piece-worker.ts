/**
 * The worker side of the parallel decode (a piscina worker): open the
 * recording once per worker, then decode the pieces it is given, each read
 * from the recording's stream (only its own bytes and its overlap).
 */
import { traceInput, type TraceInput } from '../trace-input.js';
import { summarizePiece, type AnalysisSpec, type SummarizedPiece } from './summarize-piece.js';
import { runStandaloneDetectors, type StandaloneResult } from './standalone-detectors.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import { openRecording, type OpenOptions } from '../../sources/import/open-recording.js';
import type { Recording } from '../../sources/model/recording.js';
import { streamBytes } from '../../sources/model/decoders.js';
import { PieceBytes } from '../../flow/parallel/piece-bytes.js';

/** Which recording and stream a task is about. */
export interface OpenTask {
  path: string;
  options: OpenOptions;
  stream: number;
}

/** One piece of a stream to decode (read by the worker from the recording). */
export interface PieceTask extends OpenTask {
  range: SegmentRange;
  /** How far the decode may read on past the range (the next piece's end). */
  limit: number;
  /**
   * Run these detectors on the piece's body and return summaries
   * (summarize-piece.ts); null: keep every record of the zoned walk.
   */
  analysis: AnalysisSpec | null;
}

/** The standalone detectors of an analysis, run over the whole stream (standalone-detectors.ts). */
export interface StandaloneTask extends OpenTask {
  analysis: AnalysisSpec;
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

/** The analysis input of a task's stream: one per stream, so that its code facts are shared by the pieces this worker runs. */
function inputFor(task: OpenTask): TraceInput {
  const open = recordingFor(task.path, task.options);
  const recording = open.recording;
  let input = open.inputs.get(task.stream);
  if (input === undefined) {
    const stream = recording.streams.find((s) => s.index === task.stream);
    if (stream === undefined) throw new Error(`${recording.name}: no trace stream ${task.stream}`);
    input = traceInput(recording, stream);
    open.inputs.set(task.stream, input);
  }
  return input;
}

/** Open the recording and its image ahead of the first piece (while the main thread plans the pieces). */
export function openInput(task: OpenTask): void {
  inputFor(task);
}

/** The bytes of the piece being decoded (piece-bytes.ts). */
const pieceBytes = new PieceBytes();

export default function decodePiece(task: PieceTask): SummarizedPiece {
  const input = inputFor(task);
  const end = Math.min(task.limit, input.stream.size);
  // Only the bytes this piece reads, from the recording itself.
  const bytes = streamBytes(input.stream, task.range.from, end, pieceBytes.take(end - task.range.from));
  return summarizePiece(input, bytes, task.range.from, task.range, end, task.analysis);
}

/** Run the analysis's standalone detectors over the task's whole stream. */
export function runStandalone(task: StandaloneTask): StandaloneResult[] {
  return runStandaloneDetectors(inputFor(task), task.analysis);
}
