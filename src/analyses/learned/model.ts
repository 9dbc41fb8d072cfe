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
import type * as TF from '@tensorflow/tfjs';
import { z } from 'zod';
import { firstIssue, readJsonFile } from '../json-input.js';
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

/** Most weight values a model file may hold (the shipped model has a few thousand). */
const MAX_WEIGHT_VALUES = 1 << 22;

/** The schema of a model file: structure and bounds; the feature layout is checked after. */
const ModelSchema = z
  .object(
    {
      format: z.literal(MODEL_FORMAT, { error: `must be "${MODEL_FORMAT}" (this is not a ${MODEL_FORMAT} file)` }),
      version: z.literal(MODEL_VERSION, { error: (iss) => `model version ${JSON.stringify(iss.input)}, this ptscope reads version ${MODEL_VERSION}` }),
      featureVersion: z.number({ error: 'must be a number' }).int(),
      window: z.number({ error: 'must be a number' }).int(),
      seqChannels: z.number({ error: 'must be a number' }).int(),
      summaryFeatures: z.number({ error: 'must be a number' }).int(),
      threshold: z.number({ error: 'must be a number from 0 to 1' }).min(0, { error: 'must be a number from 0 to 1' }).max(1, { error: 'must be a number from 0 to 1' }),
      training: z.record(z.string(), z.union([z.string(), z.number()]), { error: 'must be an object of strings and numbers' }),
      weights: z
        .array(
          z.object(
            {
              shape: z.array(z.number().int().min(1).max(MAX_WEIGHT_VALUES), { error: 'must be an array of sizes' }).min(1).max(4),
              values: z.array(z.number({ error: 'must be a number' }).finite({ error: 'must be finite' }), { error: 'must be an array of numbers' }).max(MAX_WEIGHT_VALUES),
            },
            { error: (iss) => (iss.code === 'invalid_type' ? 'must be {"shape": [...], "values": [...]}' : undefined) },
          ),
          { error: (iss) => (iss.code === 'invalid_type' ? 'must be an array of weight tensors' : undefined) },
        )
        .max(64),
    },
    { error: (iss) => (iss.code === 'invalid_type' ? 'a model must be a JSON object' : undefined) },
  );

/** Read and check a model file. Throws {@link ModelFileError} with one line. */
export function readModelFile(path: string): ModelFile {
  const doc = readJsonFile(path, (why) => new ModelFileError(`model ${path}: ${why === 'not valid JSON' || why.startsWith('not valid JSON') ? 'not JSON' : why}`));
  // The format first: a file of another kind is named as such, not by its first odd field.
  const format = typeof doc === 'object' && doc !== null ? (doc as { format?: unknown }).format : undefined;
  if (format !== MODEL_FORMAT) throw new ModelFileError(`model ${path}: not a ${MODEL_FORMAT} file`);
  const r = ModelSchema.safeParse(doc);
  if (!r.success) throw new ModelFileError(`model ${path}: ${firstIssue(r.error)}`);
  const m = r.data as ModelFile;
  if (m.featureVersion !== FEATURE_VERSION || m.window !== WINDOW || m.seqChannels !== SEQ_CHANNELS || m.summaryFeatures !== SUMMARY_FEATURES) {
    throw new ModelFileError(
      `model ${path}: trained on features v${m.featureVersion} (${m.window}×${m.seqChannels} + ${m.summaryFeatures}), this ptscope extracts v${FEATURE_VERSION} (${WINDOW}×${SEQ_CHANNELS} + ${SUMMARY_FEATURES}); retrain it`,
    );
  }
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
  return predictWith(await loadTf(), net, batch);
}

/** Scores (0..1) of a batch of windows, with TensorFlow.js loaded already: synchronous (a decode's window sink scores as it goes). */
export function predictWith(tf: typeof TF, net: TF.LayersModel, batch: FeatureBatch): Float32Array {
  if (batch.count === 0) return new Float32Array(0);
  return tf.tidy(() => {
    const out = net.predict([
      tf.tensor3d(batch.seq, [batch.count, WINDOW, SEQ_CHANNELS]),
      tf.tensor2d(batch.summary, [batch.count, SUMMARY_FEATURES]),
    ]) as TF.Tensor;
    return Float32Array.from(out.dataSync());
  });
}
