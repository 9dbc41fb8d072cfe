/**
 * The worker side of `flow --jobs`, `dump --jobs` and `coverage --jobs` (a
 * piscina worker): decode one piece of the shared trace bytes into its
 * lines and zoned records (line-pieces.ts), or its executed blocks
 * (coverage-pieces.ts).
 */
import { traceInput, type TraceInput } from '../../analyses/trace-input.js';
import { openRecording } from '../../sources/import/open-recording.js';
import type { Recording } from '../../sources/model/recording.js';
import { coveragePiece, type CoveragePiece } from './coverage-pieces.js';
import { dumpPieceTask } from './dump-pieces.js';
import { flowPieceTask } from './flow-pieces.js';
import type { LineTask } from './line-pieces.js';
import { PIECE_CANCELLED, PortSink } from './text-credit.js';

let opened: { key: string; recording: Recording; inputs: Map<number, TraceInput> } | null = null;

/** The stream's input, the recording opened once per worker. */
function inputOf(task: LineTask): TraceInput {
  const key = JSON.stringify(task.open);
  if (opened === null || opened.key !== key) {
    opened?.recording.close();
    opened = { key, recording: openRecording(task.open!.path, task.open!.options), inputs: new Map() };
  }
  let input = opened.inputs.get(task.stream);
  if (input === undefined) {
    const stream = opened.recording.streams.find((s) => s.index === task.stream);
    if (stream === undefined) throw new Error(`${opened.recording.name}: no trace stream ${task.stream}`);
    input = traceInput(opened.recording, stream);
    opened.inputs.set(task.stream, input);
  }
  return input;
}

/** A coverage piece's blocks; a flow or dump piece's text goes through the task's port (line-pieces.ts), nothing is returned. */
export default function decodeLinePiece(task: LineTask): CoveragePiece | null {
  if (task.command === 'coverage') {
    // A private copy of the bytes this piece reads: V8 reads a SharedArrayBuffer's bytes slower.
    const end = Math.min(task.limit, task.trace.length);
    return coveragePiece(inputOf(task), task.trace.slice(task.range.from, end), task.range.from, task.range, end);
  }
  const { port, credit, state } = task.text!;
  const sink = new PortSink(port, credit, state);
  // A piece cancelled while it waited in the queue is not decoded. (The main thread closes the port.)
  if (sink.cancelled) throw PIECE_CANCELLED;
  sink.end(task.command === 'flow' ? flowPieceTask(task, sink) : dumpPieceTask(task, sink));
  return null;
}
