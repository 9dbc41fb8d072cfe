/**
 * The worker side of `flow --jobs`, `dump --jobs` and `coverage --jobs` (a
 * piscina worker): decode one piece of a trace, read from its file, into its
 * lines and zoned records (line-pieces.ts), or its executed blocks
 * (src/reports/coverage-pieces.ts).
 */
import { workerData } from 'piscina';
import type { TraceInput } from '../../analyses/trace-input.js';
import type { Recording } from '../../sources/model/recording.js';
import type { CoveragePiece } from '../../reports/coverage-pieces.js';
import type { LineTask } from './line-pieces.js';
import { PIECE_CANCELLED, PortSink } from './text-credit.js';
import { PieceBytes } from '../../flow/parallel/piece-bytes.js';

/** The bytes of the piece being decoded (piece-bytes.ts). */
const pieceBytes = new PieceBytes();

/**
 * Each command's modules, loaded on its first task: a worker loads only
 * what its command needs (loading the rest cost a worker about a second
 * of CPU at start-up).
 */
const flowModule = once(() => import('./flow-pieces.js'));
const dumpModule = once(() => import('./dump-pieces.js'));
const coverageModule = once(async () => ({
  ...(await import('../../reports/coverage-pieces.js')),
  ...(await import('../../analyses/trace-input.js')),
  ...(await import('../../sources/import/open-recording.js')),
  ...(await import('./line-pieces.js')),
}));

function once<T>(load: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | null = null;
  return () => (p ??= load());
}

// The pool names its command: load its modules now, before the first task comes.
const preload = (workerData as { command?: LineTask['command'] } | undefined)?.command;
const preloading = preload === 'flow' ? flowModule() : preload === 'dump' ? dumpModule() : preload === 'coverage' ? coverageModule() : null;
// A failed load shows again where the task awaits it.
preloading?.catch(() => {});

let opened: { key: string; recording: Recording; inputs: Map<number, TraceInput> } | null = null;

/** The stream's input, the recording opened once per worker. */
function inputOf(task: LineTask, { openRecording, traceInput }: Awaited<ReturnType<typeof coverageModule>>): TraceInput {
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
export default async function decodeLinePiece(task: LineTask): Promise<CoveragePiece | null> {
  if (task.command === 'coverage') {
    const m = await coverageModule();
    const input = inputOf(task, m);
    // Only the bytes this piece reads, from the recording itself.
    const source = input.stream.open();
    try {
      const { bytes, end } = m.taskPiece(source, task, pieceBytes);
      return m.coveragePiece(input, bytes, task.range.from, task.range, end);
    } finally {
      source.close();
    }
  }
  const { port, credit, state } = task.text!;
  const sink = new PortSink(port, credit, state);
  // A piece cancelled while it waited in the queue is not decoded. (The main thread closes the port.)
  if (sink.cancelled) throw PIECE_CANCELLED;
  sink.end(task.command === 'flow' ? (await flowModule()).flowPieceTask(task, sink) : (await dumpModule()).dumpPieceTask(task, sink));
  return null;
}
