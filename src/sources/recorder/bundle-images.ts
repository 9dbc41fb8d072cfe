/**
 * The images of one recorded address space, written into the bundle: each
 * file holding executed code copied once (as the program saw it), then each
 * run-time image (runtime-code.ts) as a file of its own, in the order that
 * later versions replace earlier ones when mapped. Shared by the one-log and
 * the per-thread recorders.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { hex } from '../../packets/address.js';
import { bundleImages, type BundleImage, type BundleImageEpoch } from './bundle.js';
import type { GuestFiles } from './guest-files.js';
import type { MemoryMap } from './memory-map.js';
import { MAX_RUNTIME_IMAGES, type RuntimeCode } from './runtime-code.js';
import { safeBaseName } from './record-support.js';

/** The original path a run-time image is listed under (no file holds it). */
export const RUNTIME_IMAGE_PATH = '[runtime]';

/**
 * Write `memory`'s images under `staging`/images (which exists); `copies`
 * maps each file already copied to its bundle name (shared by the address
 * spaces of one bundle). Returns the manifest entries, files first.
 */
export function writeAddressSpaceImages(staging: string, memory: MemoryMap, files: GuestFiles, copies: Map<string, string>, warnings: string[]): BundleImage[] {
  const mapped = memory.images();
  for (const m of mapped) {
    if (copies.has(m.path)) continue;
    const bytes = files.read(m.path);
    if (bytes === null) continue;
    const name = `images/${copies.size}-${safeBaseName(m.path)}`;
    writeFileSync(join(staging, name), bytes);
    copies.set(m.path, name);
    if (files.isMadeByProgram(m.path)) warnings.push(`${m.path}: code from a file the program wrote itself, kept as it was when the program ended`);
  }
  const images = bundleImages(mapped.filter((m) => copies.has(m.path)), copies);
  const runtime = memory.runtime;
  // One bound for the bundle (the importer accepts INPUT_LIMITS.images entries in all).
  let room = MAX_RUNTIME_IMAGES - [...copies.keys()].filter((k) => k.startsWith('\0')).length;
  let left = 0;
  for (const im of runtime.images) {
    if (room-- <= 0) {
      left++;
      continue;
    }
    // A key no path has (paths are absolute), so that names stay numbered in order.
    const name = `images/${copies.size}-runtime-${im.address.toString(16)}`;
    copies.set(`\0${name}`, name);
    writeFileSync(join(staging, name), im.bytes);
    images.push({ file: name, path: RUNTIME_IMAGE_PATH, offset: 0, size: im.bytes.length, address: hex(im.address), runtime: { firstExecuted: im.firstExecuted } });
  }
  if (runtime.images.length > 0) {
    warnings.push(`${runtime.images.length} run-time image(s): executed code no file holds (generated at run time), captured from the emulator's translations${runtime.rewritten > 0 ? `; ${runtime.rewritten} block(s) rewritten at an address that ran other code before, kept as later versions; each thread's trace has a PSB where it first runs a version rewritten since its image epoch began, and the manifest names the images valid from there (imageEpochs): ptscope and ptoracle follow them, while ptxed or perf, mapping every image at once, decode each address with its last version` : ''}`);
  }
  if (left > 0) warnings.push(`${left} run-time image(s) not kept: the bundle holds at most ${MAX_RUNTIME_IMAGES}; a decoder finds no code there`);
  if (runtime.dropped > 0) warnings.push(`${runtime.dropped} block(s) of run-time code not captured (the recorder's bound on run-time images was reached): a decoder finds no code there`);
  return images;
}

/**
 * A stream's image epochs for the manifest (pt-encoder-session.ts), or
 * null when one image with every run-time image decodes it exactly (no
 * rewrite it must not see). `kept`: the run-time images the bundle holds
 * for this address space (the first ones); `snapshotStart`: where the kept
 * trace begins in the full stream (snapshot mode; epochs before it merge
 * into the first).
 */
export function imageEpochs(epochs: readonly { offset: number; from: number }[], runtime: RuntimeCode, kept: number, snapshotStart: number): BundleImageEpoch[] | null {
  const all = Math.min(runtime.images.length, kept);
  const out: BundleImageEpoch[] = [];
  for (const e of epochs) {
    const n = Math.min(runtime.firstRewriteFrom(e.from), all);
    const offset = Math.max(0, e.offset - snapshotStart);
    if (out.length > 0 && offset === 0) out.length = 0;
    if (out.length > 0 && out[out.length - 1]!.runtime === n) continue;
    out.push({ offset, runtime: n });
  }
  if (out.length === 0 || (out.length === 1 && out[0]!.runtime === all)) return null;
  return out;
}

/** `{ imageEpochs }` for a manifest entry, or nothing when there are none. */
export function withEpochs(epochs: BundleImageEpoch[] | null): { imageEpochs?: BundleImageEpoch[] } {
  return epochs !== null ? { imageEpochs: epochs } : {};
}
