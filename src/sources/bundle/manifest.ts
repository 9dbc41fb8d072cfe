/**
 * The bundle manifest's schema: one definition, used to check every
 * manifest read (bundles are hostile input) and to type the ones written.
 *
 * Version 1 (one process, one thread, one stream):
 *   { format, version: 1, recorder, program, exit, trace: { file, bytes,
 *     fullBytes, snapshotStart, imageEpochs? } | null, perf?, instructions, addressSpace,
 *     images: [{ file, path, offset, size, address }], config, encoder,
 *     decode, stats, warnings }
 *
 * Version 2 (processes, threads, one stream per thread and exec):
 *   { format, version: 2, recorder, program, exit,
 *     processes: [{ pid, ppid, program, exit, untraced }],
 *     threads: [{ tid, pid, name }],
 *     streams: [{ file, pid, tid, cpu, bytes, fullBytes, snapshotStart,
 *                 images: [index into images], imageEpochs?: [{ offset,
 *                 runtime }], instructions, program? }],
 *     images: [{ file, path, offset, size, address, runtime }],
 *     core: { file, pid } | null, perf?, addressSpace, config, encoder,
 *     stats, warnings }
 *
 * 64-bit quantities are "0x..." hex strings. Every file name is relative to
 * the bundle directory and must resolve inside it (safe-files.ts).
 */
import { z } from 'zod';
import { INPUT_LIMITS, InputError } from '../import/safe-files.js';
import { checkJson } from '../import/json-input.js';

export const BUNDLE_FORMAT = 'ptscope-bundle';
/** The newest manifest version this ptscope reads (and the one it writes). */
export const BUNDLE_VERSION_MAX = 2;
export const MANIFEST_NAME = 'manifest.json';
/** Image epochs one stream may list (the recorder makes at most one per run-time image). */
export const MAX_IMAGE_EPOCHS = 4096;

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const id = z.number().int().min(0).max(2 ** 31);
const hexAddress = z.string().regex(/^0x[0-9a-fA-F]{1,16}$/, 'expected a hex address such as 0x401000');
const fileName = z.string().min(1).max(4096);
const text = z.string().max(1 << 16);

const program = z.object({
  argv: z.array(text).max(1 << 16),
  path: text,
  cwd: text.nullable().optional(),
});

const exit = z.object({
  status: z.number().int().nullable(),
  signal: text.nullable(),
  stopped: text.nullable(),
});

const image = z.object({
  file: fileName,
  path: text,
  offset: count,
  size: count,
  address: hexAddress,
  runtime: z.object({ firstExecuted: count.nullable() }).nullable().optional(),
});

const instructions = z.object({
  executed: count.optional(),
  traced: count,
  fnv1a64: z.string().regex(/^[0-9a-fA-F]{16}$/, 'expected 16 hex digits'),
});

const encoder = z.object({
  cpu: z.string().max(64),
  mtcFreq: z.number().int().min(0).max(15),
  cpuid15: z.object({ eax: z.number().int().min(0).max(2 ** 32 - 1), ebx: z.number().int().min(0).max(2 ** 32 - 1) }),
  nominalFreq: z.number().int().min(0).max(255).nullable(),
  tscBase: z.number().min(0),
});

const common = {
  format: z.literal(BUNDLE_FORMAT),
  recorder: z.enum(['qemu', 'perf']),
  program,
  exit,
  perf: z.object({ file: fileName, imported: z.boolean().optional() }).optional(),
  addressSpace: z.unknown().optional(),
  images: z.array(image).max(INPUT_LIMITS.images),
  config: z.record(z.string(), z.unknown()).optional(),
  encoder: encoder.nullable().optional(),
  stats: z.record(z.string(), z.unknown()).optional(),
  warnings: z.array(text).max(10_000).optional(),
};

/**
 * Code rewritten while it ran: from the PSB at `offset`, the stream decodes
 * with its images less its run-time images after the first `runtime`
 * (image-timeline.ts). Absent: one image, all of them.
 */
const imageEpochs = z.array(z.object({ offset: count, runtime: count })).min(1).max(MAX_IMAGE_EPOCHS);

/** The images an image epoch maps: `images` in order, the run-time ones past the first `runtime` left out. */
export function epochImages<T>(images: readonly T[], isRuntime: (image: T) => boolean, runtime: number): T[] {
  let left = runtime;
  return images.filter((im) => !isRuntime(im) || left-- > 0);
}

export const manifestV1 = z.object({
  ...common,
  version: z.literal(1),
  trace: z.object({ file: fileName, bytes: count, fullBytes: count.optional(), snapshotStart: count.optional(), imageEpochs: imageEpochs.optional() }).nullable(),
  instructions: instructions.nullable().optional(),
  decode: z.unknown().optional(),
});

const stream = z.object({
  file: fileName,
  pid: id,
  tid: id,
  cpu: id.nullable().optional(),
  bytes: count,
  fullBytes: count.optional(),
  snapshotStart: count.optional(),
  images: z.array(count).max(INPUT_LIMITS.images),
  imageEpochs: imageEpochs.optional(),
  instructions: instructions.nullable().optional(),
  /** The program this stream ran, when an exec started it (the process's earlier streams ran another). */
  program: program.nullable().optional(),
});

export const manifestV2 = z.object({
  ...common,
  version: z.literal(2),
  processes: z.array(z.object({
    pid: id,
    ppid: id.nullable(),
    program: program.nullable(),
    exit: exit.nullable(),
    untraced: text.nullable().optional(),
  })).max(INPUT_LIMITS.tasks),
  threads: z.array(z.object({ tid: id, pid: id, name: text.nullable().optional() })).max(INPUT_LIMITS.tasks),
  streams: z.array(stream).max(INPUT_LIMITS.streams),
  core: z.object({ file: fileName, pid: id }).nullable().optional(),
  /** Every core kept, `core` first: one per crashed process (`crash --pid`). */
  cores: z.array(z.object({ file: fileName, pid: id })).max(INPUT_LIMITS.cores).optional(),
});

export type ManifestV1 = z.infer<typeof manifestV1>;
export type ManifestV2 = z.infer<typeof manifestV2>;
export type Manifest = ManifestV1 | ManifestV2;
export type ManifestImage = z.infer<typeof image>;
export type ManifestStream = z.infer<typeof stream>;

/** Check parsed JSON against the schema; throws an Error naming the first bad field. */
export function validateManifest(json: unknown, where: string): Manifest {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new InputError(`${where}: expected a JSON object`);
  const o = json as Record<string, unknown>;
  if (o.format !== BUNDLE_FORMAT) throw new InputError(`${where}: not a ptscope bundle manifest (format is not "${BUNDLE_FORMAT}")`);
  const v = o.version;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InputError(`${where}: version: expected a positive integer`);
  if (v > BUNDLE_VERSION_MAX) {
    throw new InputError(`${where}: bundle version ${v} is newer than this ptscope reads (versions 1 to ${BUNDLE_VERSION_MAX}); upgrade ptscope`);
  }
  return v === 1 ? checkJson(json, manifestV1, where) : checkJson(json, manifestV2, where);
}
