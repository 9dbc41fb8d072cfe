/**
 * The learned window classifier: a small MLP over a window's transfer
 * sequence (flattened) joined with its summary vector, ending in one
 * sigmoid unit (the probability that the window is part of a code-reuse
 * attack).
 *
 *   seq [WINDOW × SEQ_CHANNELS] → flatten ─┐
 *   summary [SUMMARY_FEATURES] ────────────┴→ dense(16, relu) → dense(8, relu) → dense(1, sigmoid)
 *
 * (A 1D CNN was tried first: tfjs' pure-JS backward pass of conv1d took
 * about a minute per epoch on this dataset, the MLP a few seconds.)
 *
 * Training and inference use @tensorflow/tfjs on its pure-JS CPU backend
 * (no native bindings, nothing downloaded). The weights are stored in a
 * small JSON file ({@link ModelFile}) together with the feature layout they
 * were trained on, so that a model from another feature version is refused
 * instead of silently producing scores.
 */
import { readFileSync } from 'node:fs';
import type * as TF from '@tensorflow/tfjs';
import { FEATURE_VERSION, SEQ_CHANNELS, SUMMARY_FEATURES, WINDOW } from './features.js';

export const MODEL_FORMAT = 'ptscope-window-model';
export const MODEL_VERSION = 1;
const HIDDEN1 = 16;
const HIDDEN2 = 8;

/** The JSON file of a trained model. */
export interface ModelFile {
  format: typeof MODEL_FORMAT;
  version: number;
  featureVersion: number;
  window: number;
  seqChannels: number;
  summaryFeatures: number;
  /** Score at or above which a window is called an attack. */
  threshold: number;
  /** How it was trained (dataset, epochs, counts): for the reader, not used. */
  training: Record<string, string | number>;
  weights: { shape: number[]; values: number[] }[];
}

/** A model file that cannot be used: one line for the user. */
export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFileError';
  }
}

let tfModule: typeof TF | null = null;

/** Load tfjs once, on the CPU backend, without its "install tfjs-node" banner. */
export async function loadTf(): Promise<typeof TF> {
  if (tfModule === null) {
    const tf = await import('@tensorflow/tfjs');
    // PROD silences the banner that recommends the native Node backend.
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
    await tf.ready();
    tfModule = tf;
  }
  return tfModule;
}

/** A fresh, untrained network (seeded initializers: training is reproducible). */
export function buildNetwork(tf: typeof TF, seed = 1): TF.LayersModel {
  const seq = tf.input({ shape: [WINDOW, SEQ_CHANNELS], name: 'seq' });
  const summary = tf.input({ shape: [SUMMARY_FEATURES], name: 'summary' });
  const flat = tf.layers.flatten({ name: 'flatten' }).apply(seq) as TF.SymbolicTensor;
  const joined = tf.layers.concatenate({ name: 'join' }).apply([flat, summary]) as TF.SymbolicTensor;
  const h1 = tf.layers
    .dense({ units: HIDDEN1, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }), name: 'hidden1' })
    .apply(joined) as TF.SymbolicTensor;
  const h2 = tf.layers
    .dense({ units: HIDDEN2, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), name: 'hidden2' })
    .apply(h1) as TF.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 1, activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }), name: 'out' })
    .apply(h2) as TF.SymbolicTensor;
  return tf.model({ inputs: [seq, summary], outputs: out });
}

/** Serialize a trained network. */
export function toModelFile(net: TF.LayersModel, threshold: number, training: ModelFile['training']): ModelFile {
  return {
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    featureVersion: FEATURE_VERSION,
    window: WINDOW,
    seqChannels: SEQ_CHANNELS,
    summaryFeatures: SUMMARY_FEATURES,
    threshold,
    training,
    // Six significant digits: the file stays small and scores do not move.
    weights: net.getWeights().map((w) => ({ shape: w.shape, values: Array.from(w.dataSync(), (v) => Number(v.toPrecision(6))) })),
  };
}

/** Read and check a model file. Throws {@link ModelFileError} with one line. */
export function readModelFile(path: string): ModelFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ModelFileError(`model ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let m: ModelFile;
  try {
    m = JSON.parse(text) as ModelFile;
  } catch {
    throw new ModelFileError(`model ${path}: not JSON`);
  }
  if (m === null || typeof m !== 'object' || m.format !== MODEL_FORMAT) throw new ModelFileError(`model ${path}: not a ${MODEL_FORMAT} file`);
  if (m.version !== MODEL_VERSION) throw new ModelFileError(`model ${path}: model version ${m.version}, this ptscope reads version ${MODEL_VERSION}`);
  if (m.featureVersion !== FEATURE_VERSION || m.window !== WINDOW || m.seqChannels !== SEQ_CHANNELS || m.summaryFeatures !== SUMMARY_FEATURES) {
    throw new ModelFileError(
      `model ${path}: trained on features v${m.featureVersion} (${m.window}×${m.seqChannels} + ${m.summaryFeatures}), this ptscope extracts v${FEATURE_VERSION} (${WINDOW}×${SEQ_CHANNELS} + ${SUMMARY_FEATURES}); retrain it`,
    );
  }
  if (typeof m.threshold !== 'number' || !Array.isArray(m.weights)) throw new ModelFileError(`model ${path}: threshold or weights missing`);
  return m;
}

/** A network with the file's weights. Throws {@link ModelFileError} if they do not fit the architecture. */
export async function loadNetwork(m: ModelFile, path = 'model'): Promise<TF.LayersModel> {
  const tf = await loadTf();
  const net = buildNetwork(tf);
  const expected = net.getWeights();
  if (m.weights.length !== expected.length) throw new ModelFileError(`model ${path}: ${m.weights.length} weight tensors, the network has ${expected.length}`);
  const tensors = m.weights.map((w, i) => {
    const want = expected[i].shape;
    const size = want.reduce((a, b) => a * b, 1);
    if (!Array.isArray(w.shape) || w.shape.join('x') !== want.join('x') || !Array.isArray(w.values) || w.values.length !== size) {
      throw new ModelFileError(`model ${path}: weight ${i} has shape ${JSON.stringify(w.shape)}, the network needs [${want.join(',')}]`);
    }
    return tf.tensor(w.values, want);
  });
  net.setWeights(tensors);
  for (const t of tensors) t.dispose();
  return net;
}

/** Sequence and summary rows stacked for the network. */
export interface FeatureBatch {
  seq: Float32Array;
  summary: Float32Array;
  count: number;
}

export function stackWindows(rows: readonly { seq: ArrayLike<number>; summary: ArrayLike<number> }[]): FeatureBatch {
  const seq = new Float32Array(rows.length * WINDOW * SEQ_CHANNELS);
  const summary = new Float32Array(rows.length * SUMMARY_FEATURES);
  rows.forEach((r, i) => {
    seq.set(r.seq, i * WINDOW * SEQ_CHANNELS);
    summary.set(r.summary, i * SUMMARY_FEATURES);
  });
  return { seq, summary, count: rows.length };
}

/** Scores (0..1) of a batch of windows. */
export async function predict(net: TF.LayersModel, batch: FeatureBatch): Promise<Float32Array> {
  if (batch.count === 0) return new Float32Array(0);
  const tf = await loadTf();
  return tf.tidy(() => {
    const out = net.predict([
      tf.tensor3d(batch.seq, [batch.count, WINDOW, SEQ_CHANNELS]),
      tf.tensor2d(batch.summary, [batch.count, SUMMARY_FEATURES]),
    ]) as TF.Tensor;
    return Float32Array.from(out.dataSync());
  });
}
