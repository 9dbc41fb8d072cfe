/**
 * Training the window classifier (model.ts) on a dataset directory written
 * by tools/learned/make-dataset.ts:
 *
 *   <dir>/windows.jsonl   one {@link DatasetWindow} per line
 *
 * Labels: 1 = the window contains transfers of the exploit's chain (ground
 * truth from the corpus' run.json), 0 = a window of a benign run or of an
 * exploit run before the hijack, -1 = after the hijack but without chain
 * transfers in the window (ambiguous: not used for training or scoring).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildNetwork, loadTf, stackWindows, toModelFile, type ModelFile } from './model.js';
import { SEQ_CHANNELS, SUMMARY_FEATURES, WINDOW } from './features.js';
import { seededRandom } from '../../sources/seeded-random.js';

export const DATASET_FILE = 'windows.jsonl';

/** One window of the dataset. */
export interface DatasetWindow {
  /** Recording it came from. */
  run: string;
  /** The program (or exploit target) it belongs to: the unit of the train/test split. */
  group: string;
  kind: 'benign' | 'exploit';
  label: 1 | 0 | -1;
  trigger: string;
  /** Did a rule-based detector report a finding inside the window? */
  rule: 0 | 1;
  seq: number[];
  summary: number[];
}

/** Read a dataset directory. Throws an Error with one line. */
export function readDataset(dir: string): DatasetWindow[] {
  const path = join(dir, DATASET_FILE);
  if (!existsSync(path)) throw new Error(`${dir}: no ${DATASET_FILE} (make one with tools/learned/make-dataset.ts)`);
  const out: DatasetWindow[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const w = JSON.parse(line) as DatasetWindow;
    if (!Array.isArray(w.seq) || w.seq.length !== WINDOW * SEQ_CHANNELS || !Array.isArray(w.summary) || w.summary.length !== SUMMARY_FEATURES) {
      throw new Error(`${path}:${i + 1}: window does not match this ptscope's features (${WINDOW}×${SEQ_CHANNELS} + ${SUMMARY_FEATURES}); regenerate the dataset`);
    }
    out.push(w);
  });
  return out;
}

export interface TrainOptions {
  epochs?: number;
  seed?: number;
  /** Per-epoch progress. */
  log?: (line: string) => void;
  /** Free-form description stored in the model file. */
  describe?: Record<string, string | number>;
}

/** Train on the labelled (0/1) windows; returns the model file. */
export async function trainModel(windows: readonly DatasetWindow[], options: TrainOptions = {}): Promise<ModelFile> {
  const tf = await loadTf();
  const seed = options.seed ?? 1;
  const rows = windows.filter((w) => w.label === 0 || w.label === 1);
  const pos = rows.filter((w) => w.label === 1).length;
  const neg = rows.length - pos;
  if (pos === 0 || neg === 0) throw new Error(`training needs both classes (${pos} attack windows, ${neg} benign)`);
  // Shuffle once with a seeded generator; tfjs' own shuffle is not seeded.
  const order = rows.slice();
  const random = seededRandom(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const batch = stackWindows(order);
  const labels = Float32Array.from(order, (w) => w.label);
  const net = buildNetwork(tf, seed);
  net.compile({ optimizer: tf.train.adam(0.005), loss: 'binaryCrossentropy' });
  const epochs = options.epochs ?? 20;
  const xs = [tf.tensor3d(batch.seq, [batch.count, WINDOW, SEQ_CHANNELS]), tf.tensor2d(batch.summary, [batch.count, SUMMARY_FEATURES])];
  const ys = tf.tensor2d(labels, [batch.count, 1]);
  try {
    await net.fit(xs, ys, {
      epochs,
      batchSize: 64,
      shuffle: false,
      verbose: 0,
      // Attack windows are rare: weigh them so both classes count alike.
      classWeight: { 0: 1, 1: Math.max(1, neg / pos) },
      callbacks: {
        onEpochEnd: async (epoch, logs) => {
          options.log?.(`epoch ${epoch + 1}/${epochs}: loss ${logs?.loss?.toFixed(4)}`);
        },
      },
    });
  } finally {
    for (const t of xs) t.dispose();
    ys.dispose();
  }
  const file = toModelFile(net, 0.5, { windows: rows.length, attackWindows: pos, benignWindows: neg, epochs, seed, ...options.describe });
  net.dispose();
  return file;
}
