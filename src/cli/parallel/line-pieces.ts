/**
 * Commands that print while they decode (`flow`, `dump`) with `--jobs N`:
 * the trace is cut at PSBs (flow/parallel/psb-split.ts), each piece is
 * decoded on a piscina worker into its lines and zoned records
 * (flow/parallel/zoned-lines.ts), and the pieces' lines are printed in
 * trace order from each one's hand-in to its hand-over: the serial output,
 * line for line. Two pieces that cannot hand over are decoded again as
 * one. Few pieces are in flight at a time, so memory holds a few pieces'
 * text, not the whole output.
 */
import { Piscina } from 'piscina';
import type { FlowStats } from '../../flow/control-flow.js';
import { overlapLimit } from '../../flow/parallel/piece-walk.js';
import { groupBudget, groupSegments, psbOffsets, type SegmentRange } from '../../flow/parallel/psb-split.js';
import { FIRST_HAND_IN, handOverLines, lastPieceLines, linesText, type LinePiece } from '../../flow/parallel/zoned-lines.js';
import type { ProgressSink } from '../../reports/report-model.js';
import type { LineWriter } from '../output.js';
import type { OpenOptions } from '../../sources/import/open-recording.js';

/** One piece for a worker: the command's argv (the worker rebuilds its setup from it), the stream, the shared trace bytes. */
export interface LineTask {
  command: 'flow' | 'dump' | 'coverage';
  /** For coverage: the recording, opened by the worker as the command opened it. */
  open?: { path: string; options: OpenOptions };
  argv: string[];
  stream: number;
  trace: Uint8Array;
  range: SegmentRange;
  limit: number;
}

/** Decodes one piece (up to `limit` for its overlap). */
export type PieceRunner = (range: SegmentRange, limit: number) => Promise<LinePiece>;

export interface LinePlan {
  /** Cut at every PSB (tests). */
  everyPsb?: boolean;
  budget?: number;
}

/**
 * Where the trace is cut: about four pieces per worker, of at most
 * `maxBytes` (a piece's text is one string, held until printed: a
 * megabyte of trace can be hundreds of megabytes of ptxed text).
 */
export function planPieces(trace: Uint8Array, workers: number, skd007: boolean, maxBytes: number, plan: LinePlan = {}): SegmentRange[] {
  const psbs = psbOffsets(trace, skd007);
  const budget = plan.everyPsb ? 1 : (plan.budget ?? groupBudget(trace.length, workers, 4, Math.min(64 << 10, maxBytes), maxBytes));
  return groupSegments(psbs, trace.length, budget);
}

/**
 * Decode `groups` (tiling a trace of `size` bytes) with `run`, at most
 * `inFlight` at a time, and print the serial output; the summed counts.
 */
export async function printPieces(groups: readonly SegmentRange[], size: number, run: PieceRunner, inFlight: number, out: LineWriter, progress?: ProgressSink): Promise<FlowStats> {
  const total: FlowStats = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  const add = (c: FlowStats): void => {
    total.instructions += c.instructions;
    total.transfers += c.transfers;
    total.errors += c.errors;
  };
  const print = (p: LinePiece, [from, to]: [number, number]): void => {
    const text = linesText(p, from, to);
    if (text !== null) out.line(text);
  };
  const limitOf = (r: SegmentRange): number => {
    const after = groups.find((g) => g.from === r.to);
    return overlapLimit(r, after?.to ?? size, size);
  };
  progress?.phase('decode', size);
  let decoded = 0;
  const queue: Promise<LinePiece>[] = [];
  let next = 0;
  const fill = (): void => {
    while (queue.length < inFlight && next < groups.length) {
      const g = groups[next++]!;
      queue.push(
        run(g, limitOf(g)).then((p) => {
          decoded += g.to - g.from;
          progress?.update(Math.min(decoded, size));
          return p;
        }),
      );
    }
  };
  const pending: LinePiece[] = [];
  let handIn = FIRST_HAND_IN;
  try {
    for (;;) {
      fill();
      if (pending.length === 0) pending.push(await queue.shift()!);
      const a = pending[0]!;
      if (a.to >= size) {
        const last = lastPieceLines(a, handIn);
        print(a, last.lines);
        add(last.counts);
        break;
      }
      if (pending.length < 2) {
        pending.push(await queue.shift()!);
        continue;
      }
      const b = pending[1]!;
      const r = handOverLines(a, handIn, b);
      if (r !== null) {
        print(a, r.lines);
        add(r.counts);
        handIn = r.next;
        pending.shift();
        continue;
      }
      // No hand-over: the two are decoded again as one (the hand-in stays: see zoned-lines.ts).
      const joined: SegmentRange = { index: a.index, from: a.from, to: b.to };
      pending.splice(0, 2, await run(joined, limitOf(joined)));
    }
  } finally {
    // Pieces still in flight after an error are awaited (their rejections too) so none is left unhandled.
    await Promise.allSettled(queue);
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

  constructor(readonly workers: number) {
    this.pool = new Piscina({ filename: workerFile(), minThreads: workers, maxThreads: workers, idleTimeout: 1000 });
  }

  /** A runner for one stream: `trace` is shared with the workers (never copied to each). */
  runner(command: 'flow' | 'dump', argv: string[], stream: number, trace: Uint8Array): PieceRunner {
    return (range, limit) => this.pool.run({ command, argv, stream, trace, range, limit } satisfies LineTask) as Promise<LinePiece>;
  }

  /** Run one task (its result type is the command's). */
  run(task: LineTask): Promise<unknown> {
    return this.pool.run(task);
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

/** The bytes of a trace source in a SharedArrayBuffer (for the pool). */
export function sharedBytes(read: (dst: Uint8Array, dstOffset: number, offset: number, length: number) => number, size: number): Uint8Array {
  const bytes = new Uint8Array(new SharedArrayBuffer(size));
  let at = 0;
  while (at < size) {
    const n = read(bytes, at, at, size - at);
    if (n <= 0) throw new Error(`the trace ended at ${at} of ${size} bytes while it was read`);
    at += n;
  }
  return bytes;
}
