/**
 * Commands that print while they decode (`flow`, `dump`) with `--jobs N`:
 * the trace is cut at PSBs (flow/parallel/psb-split.ts), each piece is
 * decoded on a piscina worker into its lines and zoned records
 * (flow/parallel/zoned-lines.ts), and the pieces' lines are written in
 * trace order from each one's hand-in to its hand-over: the serial output,
 * line for line. Two pieces that cannot hand over are decoded again as
 * one. A piece hands its text on as it decodes (its head, body runs, its
 * end), and the piece being printed is written as its text comes; the
 * text of the pieces after it is held within a budget (text-credit.ts),
 * and no piece is started while the held text exceeds it. So memory is
 * bounded by the budget and a few pieces' records, whatever the trace's
 * size.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { FlowStats } from '../../flow/control-flow.js';
import { overlapLimit } from '../../flow/parallel/piece-walk.js';
import { groupBudget, groupSegments, guidedSegments, psbOffsetsOf, type SegmentRange } from '../../flow/parallel/psb-split.js';
import { PieceBytes } from '../../flow/parallel/piece-bytes.js';
import { PacketStream } from '../../packets/packet-stream.js';
import { readAt, SliceSource, type TraceSource } from '../../packets/trace-source.js';
import { FIRST_HAND_IN, handOverLines, headOf, lastPieceCounts, runBytes, runEnd, type LineRun, type LineSink, type PieceEnd, type PieceHead } from '../../flow/parallel/zoned-lines.js';
import type { ProgressSink } from '../../reports/report-model.js';
import type { LineWriter } from '../output.js';
import type { OpenOptions } from '../../sources/import/open-recording.js';
import { heldBytes, newPieceState, PieceState, release, setPieceState, type PieceMessage, type TextCredit } from './text-credit.js';

/** Where a flow or dump piece on a pool posts its text. */
export interface TextChannel {
  port: MessagePort;
  credit: TextCredit;
  state: Int32Array;
  /** Lines written already from an earlier decode with the same start: counted, not sent. */
  skip: number;
}

/**
 * One piece for a worker: the command's argv (the worker rebuilds its
 * setup from it, its trace file included), the stream and its size. The
 * worker reads only the piece's bytes from the file itself: no thread
 * holds the whole trace.
 */
export interface LineTask {
  command: 'flow' | 'dump' | 'coverage';
  /** For coverage: the recording, opened by the worker as the command opened it. */
  open?: { path: string; options: OpenOptions };
  argv: string[];
  stream: number;
  /** The stream's size in bytes, as the main thread planned it. */
  size: number;
  range: SegmentRange;
  limit: number;
  /** For flow and dump. */
  text?: TextChannel;
}

/** The main thread's side of a piece being decoded: what it sent, in order. */
export interface PieceFeed {
  onHead(h: PieceHead): void;
  onBody(lines: LineRun): void;
  onEnd(e: PieceEnd): void;
  onFail(e: unknown): void;
}

/** A piece started by a runner. */
export interface PieceControl {
  /** Its text is being written as it comes: it need not wait for credit. */
  printing(): void;
  /** Its decode is not needed: stop it. */
  cancel(): void;
  /** Settles when its decode has ended, however it ended. */
  settled: Promise<void>;
  /** Its shared state (text-credit.ts), on a pool. */
  state?: Int32Array;
}

/** Starts decoding one piece (up to `limit` for its overlap), whose text goes to `feed` without the lines before `skip`. */
export type PieceRunner = (range: SegmentRange, limit: number, skip: number, feed: PieceFeed) => PieceControl;

/**
 * The runner for one stream of `source`: on the pool (each worker reads
 * its pieces from the file the argv names), or, without a pool (tests), in
 * this thread, each piece read from `source` and given to `decode` with
 * the trace offset it ends at.
 */
export function streamRunner(
  pool: LinePool | null,
  task: { command: 'flow' | 'dump'; argv: string[]; stream: number; credit: TextCredit },
  source: TraceSource,
  decode: (bytes: Uint8Array, range: SegmentRange, end: number, skip: number, sink: LineSink) => PieceEnd,
): PieceRunner {
  if (pool !== null) return pool.runner(task.command, task.argv, task.stream, source.size, task.credit);
  const local = new PieceBytes();
  return inThreadRunner((range, limit, skip, sink) => {
    const end = Math.min(limit, source.size);
    return decode(readPiece(source, range.from, end, local), range, end, skip, sink);
  });
}

/** A runner in this thread: `decode` runs the whole piece at once. */
export function inThreadRunner(decode: (range: SegmentRange, limit: number, skip: number, sink: LineSink) => PieceEnd): PieceRunner {
  return (range, limit, skip, feed) => {
    try {
      feed.onEnd(decode(range, limit, skip, { head: (h) => feed.onHead(h), body: (r) => feed.onBody(r) }));
    } catch (e) {
      feed.onFail(e);
    }
    return { printing: () => {}, cancel: () => {}, settled: Promise.resolve() };
  };
}

export interface LinePlan {
  /** Cut at every PSB (tests). */
  everyPsb?: boolean;
  budget?: number;
}

/** For tests: how `flow --jobs` and `dump --jobs` cut and run their pieces. */
export interface PieceTuning {
  plan?: LinePlan;
  /** Decode in this thread (no pool). */
  inThread?: boolean;
  /** Bytes of text held for pieces decoded ahead. */
  heldText?: number;
  /** Called when two pieces are decoded again as one. */
  onJoin?: () => void;
  /** Refuse the hand-over from `a` to `b` (tests: to decode them again as one). */
  refuse?: (a: SegmentRange, b: SegmentRange) => boolean;
}

/**
 * Where the trace is cut: about four pieces per worker, of at most
 * `maxBytes` (fewer, longer pieces re-decode fewer overlaps; the pieces
 * decoded ahead hold their text until their turn, within the budget).
 * `guided`: pieces that shrink toward the end instead (psb-split.ts
 * guidedSegments), for pieces that print next to nothing: equal pieces
 * leave one worker decoding a last long piece while the others wait.
 */
export function planPieces(psbs: readonly number[], size: number, workers: number, maxBytes: number, plan: LinePlan = {}, guided = false): SegmentRange[] {
  if (guided && !plan.everyPsb && plan.budget === undefined) return guidedSegments(psbs, size, workers, Math.min(512 << 10, maxBytes), maxBytes);
  const budget = plan.everyPsb ? 1 : (plan.budget ?? groupBudget(size, workers, 4, Math.min(64 << 10, maxBytes), maxBytes));
  return groupSegments(psbs, size, budget);
}

/** Offsets of every PSB of `source`, read through a sliding window (memory flat in its size); the source is left open. */
export function sourcePsbOffsets(source: TraceSource, skd007: boolean): number[] {
  return psbOffsetsOf(new PacketStream(new SliceSource(source, 0, source.size), { pebs: false, skd007 }));
}

/**
 * Bytes `[from, to)` of `source` into `bytes` (a worker's piece buffer,
 * piece-bytes.ts); a source shorter than the plan said is an error, not
 * a shorter piece.
 */
export function readPiece(source: TraceSource, from: number, to: number, bytes: PieceBytes): Uint8Array {
  const out = bytes.take(to - from);
  const done = readAt(source, out, from);
  if (done < out.length) throw new Error(`the trace ended at ${from + done} of ${to} bytes while a piece was read (was it changed while it was decoded?)`);
  return out;
}

/**
 * A worker's piece of `task`, read from `source` (the worker's own opening
 * of the trace the main thread planned), and the trace offset it ends at
 * (its overlap included).
 */
export function taskPiece(source: TraceSource, task: LineTask, bytes: PieceBytes): { bytes: Uint8Array; end: number } {
  if (source.size !== task.size) throw new Error(`the trace is ${source.size} bytes here, ${task.size} when it was planned (was it changed while it was decoded?)`);
  const end = Math.min(task.limit, task.size);
  return { bytes: readPiece(source, task.range.from, end, bytes), end };
}

/** The text of one piece as it arrives, until it is written or dropped. */
class Feed implements PieceFeed {
  head: PieceHead | null = null;
  readonly body: LineRun[] = [];
  end: PieceEnd | null = null;
  error: unknown = null;
  cancelled = false;
  control: PieceControl | null = null;
  /** Bytes of text released (written or dropped). */
  private released = 0;

  constructor(
    readonly range: SegmentRange,
    readonly group: number,
    private readonly credit: TextCredit | null,
    private readonly changed: () => void,
  ) {}

  onHead(h: PieceHead): void {
    this.take(() => (this.head = h));
  }

  onBody(lines: LineRun): void {
    this.take(() => this.body.push(lines));
  }

  onEnd(e: PieceEnd): void {
    this.take(() => (this.end = e));
  }

  onFail(e: unknown): void {
    this.take(() => (this.error = e ?? new Error('a trace piece failed')));
  }

  /** Keep what the decode posted (`keep`) and wake the printer; after a cancel, what arrives is ignored. */
  private take(keep: () => void): void {
    if (this.cancelled) return;
    keep();
    this.changed();
  }

  /** The text of `run` is written or not needed. */
  drop(run: LineRun): void {
    const n = run.text.byteLength;
    this.released += n;
    if (this.credit !== null) release(this.credit, n);
  }

  /** The head's text is written: only its records are kept. */
  dropHead(): void {
    if (this.head === null) return;
    this.drop(this.head.lines);
    this.head = { log: this.head.log, lines: { firstLine: runEnd(this.head.lines), starts: new Uint32Array(1), text: new Uint8Array(0) } };
  }

  /** Written to its end, or not needed. */
  finished(): void {
    this.dropHead();
    for (const r of this.body.splice(0)) this.drop(r);
    if (this.end !== null) this.drop(this.end.lines);
    this.end = null;
  }

  /** Stop its decode; what it posted is released once the decode has ended (what arrives later is ignored). */
  cancel(): Promise<void> {
    if (this.cancelled) return Promise.resolve();
    this.finished();
    this.cancelled = true;
    this.head = null;
    const c = this.control!;
    c.cancel();
    return c.settled.then(() => {
      if (this.credit !== null && c.state !== undefined) release(this.credit, Atomics.load(c.state, 1) - this.released);
    });
  }
}

/** How many pieces may be decoded ahead, and the credit for their text (null: unbounded, in this thread). */
export interface PrintLimits {
  inFlight: number;
  credit: TextCredit | null;
  onJoin?: () => void;
  refuse?: (a: SegmentRange, b: SegmentRange) => boolean;
}

/**
 * Decode `groups` (tiling a trace of `size` bytes) with `run`, and print
 * the serial output; the summed counts. The piece being printed is
 * written as its text comes; up to `inFlight` pieces are decoded, and
 * none is started while the held text exceeds the credit's budget,
 * except the one after the printed piece, which its hand-over needs.
 */
export async function printPieces(groups: readonly SegmentRange[], size: number, run: PieceRunner, limits: PrintLimits, out: LineWriter, progress?: ProgressSink): Promise<FlowStats> {
  const total: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  const add = (c: FlowStats): void => {
    total.instructions += c.instructions;
    total.transfers += c.transfers;
    total.errors += c.errors;
  };
  const write = (r: LineRun, from: number, to: number): void => {
    const bytes = runBytes(r, from, to);
    if (bytes.length > 0) out.bytes(bytes);
  };
  const limitOf = (r: SegmentRange): number => {
    const after = groups.find((g) => g.from === r.to);
    return overlapLimit(r, after?.to ?? size, size);
  };
  const { credit } = limits;
  let wake: (() => void) | null = null;
  const changed = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const start = (range: SegmentRange, group: number, skip: number): Feed => {
    const f = new Feed(range, group, credit, changed);
    f.control = run(range, limitOf(range), skip, f);
    return f;
  };
  /** Pieces started, in trace order, from the one being printed. */
  const feeds: Feed[] = [];
  const stopped: Promise<void>[] = [];
  let next = 0;
  const fill = (): void => {
    while (next < groups.length && (feeds.length < 2 || (feeds.length < limits.inFlight && (credit === null || heldBytes(credit) < credit.budget)))) {
      feeds.push(start(groups[next]!, next, 0));
      next++;
    }
  };
  const until = async (ready: () => boolean): Promise<void> => {
    for (;;) {
      fill();
      for (const f of feeds) if (f.error !== null) throw f.error;
      if (ready()) return;
      await new Promise<void>((r) => (wake = r));
    }
  };
  progress?.phase('decode', size);
  let decoded = 0;
  let handIn = FIRST_HAND_IN;
  /** The printed piece's lines before this one are written (or were, from an earlier decode). */
  let printed = 0;
  /** Write the lines of `r` not written yet (the printed piece's head and body runs). */
  const print = (r: LineRun): void => {
    write(r, printed, Infinity);
    printed = Math.max(printed, runEnd(r));
  };
  try {
    for (;;) {
      await until(() => feeds.length > 0 && (feeds[0]!.head !== null || feeds[0]!.end !== null));
      const a = feeds[0]!;
      a.control!.printing();
      printed = Math.max(printed, handIn.line);
      if (a.head !== null) {
        print(a.head.lines);
        a.dropHead();
      }
      // The body, as it comes (its runs all arrive before the end).
      for (;;) {
        await until(() => a.body.length > 0 || a.end !== null);
        for (let r = a.body.shift(); r !== undefined; r = a.body.shift()) {
          print(r);
          a.drop(r);
        }
        if (a.end !== null) break;
      }
      const e = a.end;
      if (a.range.to >= size) {
        write(e.lines, printed, Infinity);
        add(lastPieceCounts(e, handIn));
        a.finished();
        feeds.shift();
        break;
      }
      await until(() => feeds.length > 1 && headOf(feeds[1]!.head, feeds[1]!.end) !== null);
      const b = feeds[1]!;
      const r = limits.refuse?.(a.range, b.range) ? null : handOverLines(e, handIn, headOf(b.head, b.end)!, b.range.from);
      if (r !== null) {
        write(e.lines, printed, r.line);
        add(r.counts);
        handIn = r.next;
        printed = 0;
        a.finished();
        feeds.shift();
        decoded += a.range.to - a.range.from;
        progress?.update(Math.min(decoded, size));
        continue;
      }
      // No hand-over: the two are decoded again as one, without the lines written already (the
      // hand-in stays: see zoned-lines.ts). The pieces after them are started again after it, since
      // they may hold every worker while they wait for credit.
      limits.onJoin?.();
      a.finished();
      for (const f of feeds.slice(1)) stopped.push(f.cancel());
      next = feeds[2]?.group ?? next;
      feeds.length = 0;
      feeds.push(start({ index: a.range.index, from: a.range.from, to: b.range.to }, b.group, printed));
    }
  } finally {
    // Pieces still in flight after an error are stopped and awaited, so none is left unhandled.
    for (const f of feeds) stopped.push(f.cancel());
    await Promise.allSettled(stopped);
    progress?.done();
  }
  return total;
}

/** The worker's compiled file (from the sources, as under vitest, the build's copy). */
function workerFile(): string {
  const here = new URL(import.meta.url);
  if (here.pathname.endsWith('.ts')) return new URL('../../../dist/src/cli/parallel/line-piece-worker.js', here).href;
  return new URL('./line-piece-worker.js', here).href;
}

/** A piscina pool of `workers` threads that decode pieces (line-piece-worker.ts). */
export class LinePool {
  private readonly pool: Piscina;

  /** `command`: the workers load its modules as they start, while the main thread reads the trace. */
  constructor(
    readonly workers: number,
    command?: LineTask['command'],
  ) {
    this.pool = new Piscina({ filename: workerFile(), minThreads: workers, maxThreads: workers, idleTimeout: 1000, workerData: { command } });
  }

  /** A runner for one stream of `size` bytes (each worker reads its pieces from the file the argv names); their text is held under `credit`. */
  runner(command: 'flow' | 'dump', argv: string[], stream: number, size: number, credit: TextCredit): PieceRunner {
    return (range, limit, skip, feed) => {
      const { port1, port2 } = new MessageChannel();
      const state = newPieceState();
      port1.on('message', (m: PieceMessage) => {
        if (m.kind === 'head') feed.onHead(m.head);
        else if (m.kind === 'body') feed.onBody(m.lines);
        else {
          port1.close();
          feed.onEnd(m.end);
        }
      });
      const task: LineTask = { command, argv, stream, size, range, limit, text: { port: port2, credit, state, skip } };
      const settled = this.pool.run(task, { transferList: [port2] }).then(
        () => {},
        (e: unknown) => {
          port1.close();
          feed.onFail(e);
        },
      );
      return {
        state,
        printing: () => setPieceState(credit, state, PieceState.Printing),
        cancel: () => setPieceState(credit, state, PieceState.Cancelled),
        settled,
      };
    };
  }

  /** Run one task (its result type is the command's). */
  run(task: LineTask): Promise<unknown> {
    return this.pool.run(task);
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
