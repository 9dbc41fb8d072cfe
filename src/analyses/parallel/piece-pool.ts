/**
 * Where pieces are decoded: in this thread (tests, one job) or on a
 * piscina pool of worker threads, one per core by default. Either way the
 * results come back in the order of the ranges given.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { overlapLimit } from '../../flow/parallel/piece-walk.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import type { OpenOptions } from '../../sources/import/open-recording.js';
import type { TraceInput } from '../trace-input.js';
import type { OpenTask, PieceTask } from './piece-worker.js';
import { streamBytes } from '../../sources/model/decoders.js';
import { summarizePiece, type AnalysisSpec, type SummarizedPiece } from './summarize-piece.js';

export interface PieceDecoder {
  readonly workers: number;
  /**
   * Decode the pieces running `spec`'s detectors on their bodies
   * (summarize-piece.ts); null: keep every record. `done(bytes)` after
   * each; results are in the ranges' order. `limit`: how far the last
   * range's decode may read on (default: the next range's end, or the trace's).
   */
  summarize(ranges: readonly SegmentRange[], spec: AnalysisSpec | null, done?: (bytes: number) => void, limit?: number): Promise<SummarizedPiece[]>;
  close(): Promise<void>;
}

/** Jobs when `--jobs` is not given: one per core. */
export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

/** Decode in this thread, one piece after the other (each read from the stream on its own, as a worker reads it). */
export function inThreadDecoder(input: TraceInput): PieceDecoder {
  return {
    workers: 1,
    summarize: async (ranges, spec, done, limit) =>
      ranges.map((r, i) => {
        const p = decodeHere(input, ranges, i, spec, limit);
        done?.(r.to - r.from);
        return p;
      }),
    close: async () => {},
  };
}

/** How far piece `i` may read on: into the next piece, or to `limit` (default: the trace's end) for the last. */
function readLimit(ranges: readonly SegmentRange[], i: number, size: number, limit?: number): number {
  return overlapLimit(ranges[i]!, ranges[i + 1]?.to ?? limit ?? size, size);
}

/** Decode piece `i` in this thread, its bytes read from the stream as a worker reads them. */
function decodeHere(input: TraceInput, ranges: readonly SegmentRange[], i: number, spec: AnalysisSpec | null, limit?: number): SummarizedPiece {
  const r = ranges[i]!;
  const end = readLimit(ranges, i, input.stream.size, limit);
  return summarizePiece(input, streamBytes(input.stream, r.from, end), r.from, r, end, spec);
}

/** Where a worker finds the recording again: its path and the options it was opened with. */
export interface InputLocation {
  path: string;
  options: OpenOptions;
}

/** The worker's compiled file (from the sources, as under vitest, the build's copy). */
function workerFile(): string {
  const here = new URL(import.meta.url);
  if (here.pathname.endsWith('.ts')) return new URL('../../../dist/src/analyses/parallel/piece-worker.js', here).href;
  return new URL('./piece-worker.js', here).href;
}

/**
 * Decode with `workers` decoders: this thread and `workers - 1` worker
 * threads. Each worker opens the recording once and reads its pieces'
 * bytes from it (nothing of the trace is copied to them); the workers
 * start opening it at once, while this thread plans the pieces and then
 * decodes pieces of its own. Taking this thread as a decoder spares a
 * worker's start-up (its imports, its image, a cold JIT) and begins
 * decoding before any worker is ready. Pieces are handed out in order to
 * whichever decoder is free; each worker is sent its next piece ahead
 * (two at a time), so that it never waits while this thread decodes.
 */
export function poolDecoder(input: TraceInput, at: InputLocation, workers: number): PieceDecoder {
  if (workers <= 1) return inThreadDecoder(input);
  const threads = workers - 1;
  const pool = new Piscina({
    filename: workerFile(),
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: AHEAD,
    // A worker holds one recording's images; the queue is bounded by the pieces given.
    idleTimeout: 1000,
  });
  const size = input.stream.size;
  const open: OpenTask = { path: at.path, options: at.options, stream: input.stream.index };
  // One per worker, queued before any piece: a failure here shows again, as the one-line error, on the pieces.
  const warming = Array.from({ length: threads }, () => pool.run(open, { name: 'openInput' }).catch(() => undefined));
  return {
    workers,
    summarize: (ranges, spec, done, limit) =>
      new Promise<SummarizedPiece[]>((resolve, reject) => {
        const results: SummarizedPiece[] = new Array(ranges.length);
        let next = 0;
        let sent = 0;
        let left = ranges.length;
        let failed = false;
        const fail = (e: unknown): void => {
          if (!failed) reject(e);
          failed = true;
        };
        const finished = (i: number, r: SummarizedPiece): void => {
          results[i] = r;
          done?.(ranges[i]!.to - ranges[i]!.from);
          if (--left === 0) resolve(results);
        };
        const feed = (): void => {
          while (!failed && sent < threads * AHEAD && next < ranges.length) {
            const i = next++;
            sent++;
            const task: PieceTask = { ...open, range: ranges[i]!, limit: readLimit(ranges, i, size, limit), analysis: spec };
            pool.run(task).then((r: SummarizedPiece) => {
              sent--;
              finished(i, r);
              feed();
            }, fail);
          }
        };
        const own = async (): Promise<void> => {
          while (!failed && next < ranges.length) {
            const i = next++;
            finished(i, decodeHere(input, ranges, i, spec, limit));
            // Let the workers' results in (and send them their next pieces) between this thread's pieces.
            await new Promise((wake) => setImmediate(wake));
          }
        };
        feed();
        own().catch(fail);
        if (ranges.length === 0) resolve(results);
      }),
    close: async () => {
      await Promise.all(warming);
      await pool.destroy();
    },
  };
}

/** Pieces a worker is sent ahead: the next one waits in its queue while it decodes one. */
const AHEAD = 2;
