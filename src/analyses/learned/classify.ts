/**
 * Scoring a recording with the learned window classifier: extract the
 * windows before each sensitive call (features.ts), score each with the
 * model (model.ts), rank them.
 *
 * A trace with no sensitive call has no window and gets no score: the
 * result says so (`windows: []`, `maxScore: null`) instead of inventing one.
 * The HTML report shows {@link classifyBundle}'s result as its learned score.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { traceInputs, type TraceInput } from '../trace-input.js';
import { importBundle } from '../../sources/import/bundle-import.js';
import { hexAddress } from '../finding.js';
import { extractCpuWindows, extractWindows, type FeatureWindow } from './features.js';
import { loadNetwork, loadTf, predictWith, readModelFile, stackWindows } from './model.js';

/** Windows scored together: their features are dropped once scored. */
const SCORE_BATCH = 2048;

/** One scored window. */
export interface WindowScore {
  /** Position among the trace's windows (trace order). */
  index: number;
  trigger: string;
  functionName: string | null;
  /** The sensitive transfer (hex; 'unknown' when the trace did not say). */
  from: string;
  to: string;
  /** Trace offset of the trigger. */
  offset: number;
  /** Transfers in the window. */
  length: number;
  score: number;
  /** The thread the window's transfers are from (per-CPU streams; a thread's stream: its own). */
  pid: number | null;
  tid: number | null;
}

export interface LearnedScores {
  input: string;
  /** The thread of the stream (null for per-CPU streams, whose windows each name theirs). */
  pid: number | null;
  tid: number | null;
  model: string;
  threshold: number;
  /** How many windows the trace has. */
  count: number;
  /** Every window's score, in trace order (empty when not asked for: ClassifyOptions.every). */
  windows: WindowScore[];
  /** Highest-scoring windows first (at most `top`). */
  top: WindowScore[];
  /** Highest score, or null when there is no window. */
  maxScore: number | null;
  /** Windows at or above the threshold. */
  flagged: number;
}

/** The shipped model: models/exploit-window-model.json of the ptscope installation. */
export function defaultModelPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'models', 'exploit-window-model.json');
    const up = dirname(dir);
    if (up === dir) return join(process.cwd(), 'models', 'exploit-window-model.json');
    dir = up;
  }
}

export interface ClassifyOptions {
  /** Model file (default: the shipped one). */
  model?: string;
  /** How many top windows to keep (default 5). */
  top?: number;
  /**
   * Keep every window's score in {@link LearnedScores.windows} (default
   * true). Without, only the top windows and the counts are kept: memory
   * flat in the trace's size.
   */
  every?: boolean;
}

/** Score every window of a loaded trace. Throws ModelFileError for a bad model. */
export function classifyInput(input: TraceInput, options: ClassifyOptions = {}): Promise<LearnedScores> {
  return classifyGroup([input], options);
}

/**
 * Score every window of one analysis group (analysisGroups: a thread's
 * stream, or a recording's per-CPU streams together, whose windows are
 * per thread).
 */
export async function classifyGroup(group: readonly TraceInput[], options: ClassifyOptions = {}): Promise<LearnedScores> {
  const modelPath = options.model ?? defaultModelPath();
  const file = readModelFile(modelPath);
  const input = group[0]!;
  const perCpu = input.stream.tasks !== undefined;
  // The network is loaded before the decode, so that windows are scored in batches as they are made and
  // dropped: a window's features are some kilobytes, and a long trace has millions of windows.
  const tf = await loadTf();
  const net = await loadNetwork(file, modelPath);
  const every = options.every ?? true;
  const want = options.top ?? 5;
  /** Each extractor's windows (or, without `every`, only how many). */
  const lists: WindowScore[][] = [];
  const counts: number[] = [];
  /** The best windows so far, by score then position (list, place in it). */
  const best: { row: WindowScore; list: number; at: number }[] = [];
  let flagged = 0;
  const offer = (row: WindowScore, list: number, at: number): void => {
    if (row.score >= file.threshold) flagged++;
    const worse = (x: { row: WindowScore; list: number; at: number }): boolean => x.row.score < row.score || (x.row.score === row.score && (x.list > list || (x.list === list && x.at > at)));
    let i = best.length;
    while (i > 0 && worse(best[i - 1]!)) i--;
    if (i >= want) return;
    best.splice(i, 0, { row, list, at });
    if (best.length > want) best.pop();
  };
  try {
    const batch: FeatureWindow[] = [];
    const rows: { row: WindowScore; list: number; at: number }[] = [];
    const flush = (): void => {
      const s = predictWith(tf, net, stackWindows(batch));
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        r.row.score = s[i]!;
        offer(r.row, r.list, r.at);
      }
      batch.length = 0;
      rows.length = 0;
    };
    const sinks = (): ((w: FeatureWindow) => void) => {
      const list = lists.length;
      lists.push([]);
      counts.push(0);
      return (w) => {
        const row: WindowScore = {
          index: 0,
          trigger: w.trigger,
          functionName: w.functionName,
          from: hexAddress(w.from),
          to: hexAddress(w.to),
          offset: w.offset,
          length: w.length,
          score: Number.NaN,
          pid: w.pid ?? input.stream.pid,
          tid: w.tid ?? input.stream.tid,
        };
        if (every) lists[list]!.push(row);
        batch.push(w);
        rows.push({ row, list, at: counts[list]!++ });
        if (batch.length === SCORE_BATCH) flush();
      };
    };
    if (perCpu) extractCpuWindows(group, sinks);
    else extractWindows(input, { sinks });
    flush();
  } finally {
    net.dispose();
  }
  // Each thread's windows in turn (per-CPU streams), as the extractors were made.
  const scores = lists.flat();
  scores.forEach((w, i) => (w.index = i));
  const starts: number[] = [];
  counts.reduce((sum, n) => (starts.push(sum), sum + n), 0);
  for (const b of best) b.row.index = starts[b.list]! + b.at;
  const top = best.map((b) => b.row);
  return {
    input: perCpu && group.length > 1 ? `${input.recording.name} cpu ${group.map((i) => i.stream.cpu).join(',')}` : input.name,
    pid: perCpu ? null : input.stream.pid,
    tid: perCpu ? null : input.stream.tid,
    model: modelPath,
    threshold: file.threshold,
    count: counts.reduce((a, b) => a + b, 0),
    windows: scores,
    top,
    maxScore: top.length > 0 ? top[0].score : null,
    flagged,
  };
}

/** Score a recorder bundle (the HTML report's learned score). */
export async function classifyBundle(dir: string, options: ClassifyOptions = {}): Promise<LearnedScores> {
  const recording = importBundle(dir);
  try {
    return await classifyInput(traceInputs(recording)[0]!, options);
  } finally {
    recording.close();
  }
}
