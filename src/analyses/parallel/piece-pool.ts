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
import type { OpenTask, PieceTask, StandaloneTask } from './piece-worker.js';
import { runStandaloneDetectors, type StandaloneResult } from './standalone-detectors.js';
import { streamBytes } from '../../sources/model/decoders.js';
import { PieceBytes } from '../../flow/parallel/piece-bytes.js';
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
  /** Run `spec`'s standalone detectors over the whole stream (standalone-detectors.ts), in `spec`'s order. */
  standalone(spec: AnalysisSpec): Promise<StandaloneResult[]>;
  close(): Promise<void>;
}

/** Jobs when `--jobs` is not given: one per core. */
export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Decode in this thread, one piece after the other (each read from the
 * stream on its own into one buffer kept from piece to piece, as a worker
 * reads it).
 */
export function inThreadDecoder(input: TraceInput): PieceDecoder {
  const bytes = new PieceBytes();
  return {
    workers: 1,
    summarize: async (ranges, spec, done, limit) =>
      ranges.map((r, i) => {
        const size = input.stream.size;
        const end = overlapLimit(r, ranges[i + 1]?.to ?? limit ?? size, size);
        const p = summarizePiece(input, streamBytes(input.stream, r.from, end, bytes.take(end - r.from)), r.from, r, end, spec);
        done?.(r.to - r.from);
        return p;
      }),
    standalone: async (spec) => runStandaloneDetectors(input, spec),
    close: async () => {},
  };
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
 * Decode on `workers` worker threads; each opens the recording once and
 * reads its pieces' bytes from it (nothing of the trace is copied to them).
 * The workers start opening the recording at once, while this thread
 * plans the pieces.
 */
export function poolDecoder(input: TraceInput, at: InputLocation, workers: number): PieceDecoder {
  const pool = new Piscina({
    filename: workerFile(),
    minThreads: workers,
    maxThreads: workers,
    // A worker holds one recording's images; the queue is bounded by the pieces given.
    idleTimeout: 1000,
  });
  const size = input.stream.size;
  const open: OpenTask = { path: at.path, options: at.options, stream: input.stream.index };
  // One per worker, queued before any piece: a failure here shows again, as the one-line error, on the pieces.
  const warming = Array.from({ length: workers }, () => pool.run(open, { name: 'openInput' }).catch(() => undefined));
  return {
    workers,
    summarize: (ranges, spec, done, limit) =>
      Promise.all(
        ranges.map(async (range, i) => {
          const task: PieceTask = { ...open, range, limit: overlapLimit(range, ranges[i + 1]?.to ?? limit ?? size, size), analysis: spec };
          const r = (await pool.run(task)) as SummarizedPiece;
          done?.(range.to - range.from);
          return r;
        }),
      ),
    standalone: async (spec) => {
      const task: StandaloneTask = { ...open, analysis: spec };
      return (await pool.run(task, { name: 'runStandalone' })) as StandaloneResult[];
    },
    close: async () => {
      await Promise.all(warming);
      await pool.destroy();
    },
  };
}
