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
import { extractCpuWindows, extractWindows } from './features.js';
import { loadNetwork, predict, readModelFile, stackWindows } from './model.js';

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
  const { windows } = perCpu ? extractCpuWindows(group) : extractWindows(input);
  const scores: WindowScore[] = [];
  if (windows.length > 0) {
    const net = await loadNetwork(file, modelPath);
    try {
      const s = await predict(net, stackWindows(windows));
      windows.forEach((w, i) => {
        scores.push({
          index: i,
          trigger: w.trigger,
          functionName: w.functionName,
          from: hexAddress(w.from),
          to: hexAddress(w.to),
          offset: w.offset,
          length: w.length,
          score: s[i],
          pid: w.pid ?? input.stream.pid,
          tid: w.tid ?? input.stream.tid,
        });
      });
    } finally {
      net.dispose();
    }
  }
  const top = [...scores].sort((a, b) => b.score - a.score || a.index - b.index).slice(0, options.top ?? 5);
  return {
    input: perCpu && group.length > 1 ? `${input.recording.name} cpu ${group.map((i) => i.stream.cpu).join(',')}` : input.name,
    pid: perCpu ? null : input.stream.pid,
    tid: perCpu ? null : input.stream.tid,
    model: modelPath,
    threshold: file.threshold,
    windows: scores,
    top,
    maxScore: top.length > 0 ? top[0].score : null,
    flagged: scores.filter((s) => s.score >= file.threshold).length,
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
