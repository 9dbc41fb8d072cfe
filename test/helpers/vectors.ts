import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The shared data folder beside the repository (read in place). */
export const SHARED = resolve(__dirname, '..', '..', '..', 'shared');
export const VECTORS = join(SHARED, 'vectors', 'libipt');
export const REAL_TRACES = join(SHARED, 'traces', 'real');
/**
 * ptscope's own vectors, in the shared vectors' layout: libipt's pttc,
 * ptdump and ptxed run on the .ptt files of test/conformance/ptt
 * (tools/conformance/ptt-vectors.ts).
 */
export const PTSCOPE_VECTORS = resolve(__dirname, '..', 'conformance', 'vectors');

export interface VectorCase {
  name: string;
  pt: string;
  images: { file: string; address: string }[];
  cpu?: string;
  suite?: string;
  sideband_args: string[];
  ptdump: { exp: string; argv: string[] };
  ptxed?: { exp: string; argv: string[] } | null;
}

export function loadManifest(dir = VECTORS): VectorCase[] {
  const path = join(dir, 'MANIFEST.json');
  if (!existsSync(path)) throw new Error(`libipt vectors not found at ${dir}: the shared folder must sit beside the repository`);
  return JSON.parse(readFileSync(path, 'utf8')) as VectorCase[];
}

/** Normalise like `diff -ub` (tools/conformance/run-in.ts). */
export { normalizeLines } from '../../tools/conformance/run-in.js';

/** One real-CPU trace of ../shared/traces/real (its MANIFEST.json entry). */
export interface RealTrace {
  name: string;
  pt: string;
  images: { file: string; address: string }[];
  ptxed: { exp: string; argv: string[] };
}

/** The real-CPU traces' manifest. */
export function realTraces(): RealTrace[] {
  return JSON.parse(readFileSync(join(REAL_TRACES, 'MANIFEST.json'), 'utf8')) as RealTrace[];
}

/** Write `file` repeated `copies` times to `out` (a big trace from a real one, for memory tests). */
export function writeRepeated(file: string, copies: number, out: string): void {
  const one = readFileSync(file);
  const fd = openSync(out, 'w');
  try {
    for (let i = 0; i < copies; i++) writeSync(fd, one);
  } finally {
    closeSync(fd);
  }
}
