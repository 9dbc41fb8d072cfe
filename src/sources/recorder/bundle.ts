/**
 * The trace bundle: what `ptscope record` writes and what `ptscope flow` and
 * the analyses read. A directory:
 *
 *   trace.pt        the Intel PT trace (absent for a `perf` bundle that has
 *                   not been imported yet)
 *   perf.data       only for recorder "perf" (real Intel PT via perf)
 *   images/N-NAME   a copy of every file that holds executed code
 *   manifest.json   this description (format "ptscope-bundle", version 1)
 *
 * manifest.json fields (64-bit quantities are "0x..." hex strings):
 * - format, version: "ptscope-bundle", 1.
 * - recorder: "qemu" (emulated PT) or "perf" (hardware PT).
 * - program: { argv, path (absolute), cwd (where it ran) }.
 * - exit: { status: exit code or null, signal: "SIGSEGV"... or null when it
 *   did not die of a signal, stopped: null or why the recorder stopped it:
 *   "budget" (instruction budget), "timeout" (wall-clock limit),
 *   "trace-size" (--max-trace-size), "recorder-memory" (the recorder's own
 *   memory bound), "exec" / "clone" (an exec, thread or process the
 *   emulated recorder follows only in its sandbox), "log-closed" (the program closed
 *   the emulator's log); the trace up to there is kept }.
 * - trace: { file, bytes, fullBytes (before snapshot trimming),
 *   snapshotStart (offset of the kept part in the full stream), imageEpochs
 *   (code rewritten while it ran: [{ offset, runtime }], from the PSB at
 *   offset the trace decodes with the images less the run-time ones after
 *   the first `runtime`; absent when one image decodes it) }.
 * - instructions: { executed (all instructions the emulator ran), traced
 *   (those the trace encodes: user-only, inside the filters, within the
 *   snapshot), fnv1a64 (FNV-1a 64 over each traced IP as 8 little-endian
 *   bytes; what `ptoracle insn --hash` prints for a correct decode) }.
 * - addressSpace: { mode: "64-bit", cpl: "user", cr3: null } (one address
 *   space, no PIP packets).
 * - images: [{ file (bundle-relative), path (original), offset (in the
 *   file), size (bytes mapped), address (load address), runtime (absent
 *   for a file; for code generated at run time, { firstExecuted }) }]: the
 *   raw images in libipt/ptxed terms, `file:offset-(offset+size):address`,
 *   mapped in order (a later image replaces the bytes it overlaps).
 * - config: the recorder settings (sandbox, timeout, maxInsns, filters,
 *   snapshotBytes, psbPeriod, retCompression, longTnt, timing).
 * - encoder: what a decoder must be told: { cpu: "none", mtcFreq, cpuid15:
 *   { eax, ebx }, nominalFreq: null, tscBase }.
 * - decode: ready-made argv lists, run from the bundle directory:
 *   ptoracle (test/oracle) and ptxed.
 * - stats, warnings: diagnostics.
 * A target that died of a signal also leaves `core`: qemu's ELF core of the
 * guest (registers and memory), for `ptscope crash`.
 */
import { readBundleManifest } from '../import/bundle-import.js';
import { InputError } from '../import/safe-files.js';
import { epochImages } from '../bundle/manifest.js';
import { hex } from '../../packets/address.js';
import type { ImageMapping } from './memory-map.js';

export const BUNDLE_FORMAT = 'ptscope-bundle';
export const BUNDLE_VERSION = 1;
export { MANIFEST_NAME } from '../bundle/manifest.js';
export const TRACE_NAME = 'trace.pt';

export interface BundleImage {
  file: string;
  path: string;
  offset: number;
  size: number;
  address: string;
  /** Code no file holds (bundle-images.ts): where it first ran, in instructions the recording executed before. */
  runtime?: { firstExecuted: number | null } | null;
}

/** One image epoch of a stream, as the manifest lists it (code rewritten while it ran: bundle-images.ts). */
export interface BundleImageEpoch {
  /** Trace offset of the PSB it starts at (0 for the first). */
  offset: number;
  /** How many of the stream's run-time images (in its image order) it maps. */
  runtime: number;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  version: number;
  recorder: 'qemu' | 'perf';
  program: { argv: string[]; path: string; cwd: string };
  exit: { status: number | null; signal: string | null; stopped: 'budget' | 'timeout' | 'trace-size' | 'recorder-memory' | 'exec' | 'clone' | 'log-closed' | null };
  trace: { file: string; bytes: number; fullBytes: number; snapshotStart: number; imageEpochs?: BundleImageEpoch[] } | null;
  perf?: { file: string; imported: false };
  instructions: { executed: number; traced: number; fnv1a64: string } | null;
  addressSpace: { mode: '64-bit'; cpl: 'user'; cr3: null };
  images: BundleImage[];
  config: Record<string, unknown>;
  encoder: {
    cpu: 'none';
    mtcFreq: number;
    cpuid15: { eax: number; ebx: number };
    nominalFreq: null;
    tscBase: number;
  } | null;
  decode: { ptoracle: string[]; ptxed: string[] } | null;
  stats: Record<string, unknown>;
  warnings: string[];
}

/** ptxed's `--raw file:from-to:address` for each image. */
export function rawImageArgs(images: readonly BundleImage[]): string[] {
  const args: string[] = [];
  for (const im of images) args.push('--raw', `${im.file}:${hex(im.offset)}-${hex(im.offset + im.size)}:${im.address}`);
  return args;
}

/**
 * ptoracle's image options for a stream's images: with image epochs (code
 * rewritten while it ran), each epoch's images after `--image-from OFFSET`,
 * the stream's run-time images past the epoch's count left out.
 */
export function epochImageArgs(images: readonly BundleImage[], epochs: readonly BundleImageEpoch[] | null | undefined): string[] {
  if (epochs == null) return rawImageArgs(images);
  return epochs.flatMap((e, k) => [...(k > 0 ? ['--image-from', String(e.offset)] : []), ...rawImageArgs(epochImages(images, (im) => im.runtime != null, e.runtime))]);
}

/** The decode argv lists for a manifest's images and trace file (ptxed maps every version at once: it has no image epochs). */
export function decodeCommands(images: readonly BundleImage[], trace: string, epochs?: readonly BundleImageEpoch[] | null): { ptoracle: string[]; ptxed: string[] } {
  return {
    ptoracle: ['insn', '--cpu', 'none', ...epochImageArgs(images, epochs), trace, '--hash'],
    ptxed: ['--cpu', 'none', ...rawImageArgs(images), '--pt', trace],
  };
}

/** Bundle image entries for mappings, given the bundle-relative copy of each path. */
export function bundleImages(mappings: readonly ImageMapping[], copies: ReadonlyMap<string, string>): BundleImage[] {
  return mappings.map((m) => ({
    file: copies.get(m.path)!,
    path: m.path,
    offset: m.offset,
    size: m.size,
    address: hex(m.address),
  }));
}

/**
 * Read a version-1 manifest as the recorder wrote it (tests and tools that
 * check the recorder's own output). Checked by the one schema; consumers
 * read recordings through src/sources/import instead.
 */
export function readManifest(dir: string): BundleManifest {
  const m = readBundleManifest(dir);
  if (m.version !== 1) throw new InputError(`${dir}: manifest version ${m.version}: expected the recorder's version ${BUNDLE_VERSION}`);
  return m as unknown as BundleManifest;
}
