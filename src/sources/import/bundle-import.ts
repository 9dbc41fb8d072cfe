/**
 * Importer for the recorder's bundle directory (manifest versions 1 and 2;
 * see ../bundle/manifest.ts). The manifest is hostile input: it is checked
 * against the schema, and every file it names must be a regular file inside
 * the bundle. Nothing in it decides what runs: `config` is informational.
 */
import { join } from 'node:path';
import { defaultConfig, type DecoderConfig } from '../../packets/config.js';
import { FileSource } from '../../packets/trace-source.js';
import { ANY_ASID, isExactIp } from '../../flow/address-space.js';
import { Image } from '../../flow/image.js';
import { ImageTimeline, type TimelineLayers } from '../../flow/image-timeline.js';
import { ByteSourceCache } from '../../flow/section.js';
import { epochImages, MANIFEST_NAME, validateManifest, type Manifest, type ManifestImage, type ManifestV2 } from '../bundle/manifest.js';
import { configForCpu } from '../model/decoders.js';
import type { ExitInfo, ImageMapping, ProgramInfo, RecordedProcess, RecordedThread, Recording, TraceStream } from '../model/recording.js';
import { importPerfDataFile } from './perf-data-import.js';
import { readJsonFile } from './json-input.js';
import { confinedPath, INPUT_LIMITS, InputError, regularFileSize } from './safe-files.js';

/** The name of a version-1 bundle's core dump. */
export const V1_CORE_NAME = 'core';

export interface ImportOptions {
  /** Root under which a perf.data's mapped files are looked up. */
  sysroot?: string;
}

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

/** Read and check `<dir>/manifest.json`. Throws InputError with one line. */
export function readBundleManifest(dir: string): Manifest {
  const path = join(dir, MANIFEST_NAME);
  let json: unknown;
  try {
    json = readJsonFile(path);
  } catch (e) {
    if (/no such file/.test((e as Error).message)) throw new InputError(`${dir}: not a trace bundle (no ${MANIFEST_NAME})`);
    throw e;
  }
  return validateManifest(json, path);
}

function decoderConfigOf(m: Manifest): DecoderConfig {
  const e = m.encoder ?? null;
  if (e === null) return defaultConfig();
  let config: DecoderConfig;
  try {
    config = configForCpu(e.cpu === 'none' ? undefined : e.cpu);
  } catch (err) {
    throw new InputError(`encoder.cpu: ${(err as Error).message.replace(/^--cpu /, '')}`);
  }
  config.mtcFreq = e.mtcFreq;
  config.cpuid15Eax = e.cpuid15.eax;
  config.cpuid15Ebx = e.cpuid15.ebx;
  if (e.nominalFreq !== null) config.nomFreq = e.nominalFreq;
  return config;
}

/** A run-time address from a manifest hex string (64-bit, as a signed double like every IP). */
function address(hex: string, field: string): number {
  const v = Number(BigInt.asIntN(64, BigInt(hex)));
  if (!isExactIp(v)) throw new InputError(`${field}: ${hex} is not an address ptscope can represent exactly`);
  return v;
}

/** The images of one address space, built once per distinct image set. */
class ImageSets {
  private readonly built = new Map<string, { image: Image; mappings: ImageMapping[]; notes: string[] }>();
  readonly files = new ByteSourceCache();
  private readonly resolved = new Map<number, string>();

  constructor(private readonly dir: string, private readonly images: readonly ManifestImage[]) {}

  /** The real path of image `i`'s file (confined to the bundle). */
  private fileOf(i: number): string {
    let p = this.resolved.get(i);
    if (p === undefined) {
      p = confinedPath(this.dir, this.images[i]!.file, `images[${i}].file`);
      const size = regularFileSize(p, `images[${i}].file`);
      if (size > INPUT_LIMITS.imageBytes) throw new InputError(`images[${i}].file: ${size} bytes is more than the limit of ${INPUT_LIMITS.imageBytes}`);
      this.resolved.set(i, p);
    }
    return p;
  }

  get(indices: readonly number[], name: string): { image: Image; mappings: ImageMapping[]; notes: string[] } {
    const key = indices.join(',');
    let set = this.built.get(key);
    if (set !== undefined) return set;
    set = this.build(indices, name);
    this.built.set(key, set);
    return set;
  }

  /**
   * The image set of a stream: `indices`' images, and with `epochs` (code
   * rewritten while it ran) the timeline of the images each part of the
   * trace decodes with. Such an image is the stream's own.
   */
  forStream(indices: readonly number[], name: string, epochs: readonly { offset: number; runtime: number }[] | undefined, field: string): { image: Image; mappings: ImageMapping[]; notes: string[] } {
    if (epochs === undefined) return this.get(indices, name);
    const runtime = indices.filter((i) => this.images[i]?.runtime != null);
    epochs.forEach((e, k) => {
      if (k === 0 ? e.offset !== 0 : !(e.offset > epochs[k - 1]!.offset)) throw new InputError(`${field}[${k}].offset: epochs start at offset 0 and their offsets increase`);
      if (e.runtime > runtime.length) throw new InputError(`${field}[${k}].runtime: ${e.runtime} is more than the stream's ${runtime.length} run-time images`);
    });
    const set = this.build(indices, name);
    set.image.timeline = new ImageTimeline(epochs.map((e) => e.offset), epochs.map((e) => e.runtime), this.runtimeLayers(indices, runtime, name));
    return set;
  }

  /**
   * The layers of a stream's timeline: its run-time images in order. Part
   * images hold the stream's images with the run-time ones past a count
   * left out; when every file comes before the run-time images (as the
   * recorder writes them), a later part maps its new ones on top.
   */
  private runtimeLayers(indices: readonly number[], runtime: readonly number[], name: string): TimelineLayers<Image> {
    const firstRuntime = indices.findIndex((i) => this.images[i]?.runtime != null);
    const stacked = indices.slice(firstRuntime).every((i) => this.images[i]?.runtime != null);
    const build = (n: number): Image => this.build(epochImages(indices, (i) => this.images[i]?.runtime != null, n), name).image;
    return {
      build,
      extend: (image, from, to) => {
        if (!stacked) return build(to);
        for (let k = from; k < to; k++) this.map(image, runtime[k]!, []);
        return image;
      },
    };
  }

  private build(indices: readonly number[], name: string): { image: Image; mappings: ImageMapping[]; notes: string[] } {
    const image = new Image(name);
    const mappings: ImageMapping[] = [];
    const notes: string[] = [];
    for (const i of indices) {
      const m = this.map(image, i, notes);
      if (m !== null) mappings.push(m);
    }
    return { image, mappings, notes };
  }

  /** Map image `i` into `image` (on top of what it holds); its mapping, or null with a note. */
  private map(image: Image, i: number, notes: string[]): ImageMapping | null {
    const im = this.images[i];
    if (im === undefined) throw new InputError(`image index ${i}: no such entry in images`);
    const file = this.fileOf(i);
    const at = address(im.address, `images[${i}].address`);
    let st: number;
    try {
      st = image.addFile(this.files, file, im.offset, im.size, at, ANY_ASID);
    } catch (e) {
      st = -1;
      notes.push(`unchecked: image ${im.file}: ${(e as Error).message}`);
    }
    if (st < 0) {
      notes.push(`unchecked: image ${im.file} could not be mapped at ${im.address}`);
      return null;
    }
    return { file, originalPath: im.path, offset: im.offset, size: im.size, address: at, displayName: baseName(im.path), runtime: im.runtime ?? null };
  }
}

function streamFile(dir: string, file: string, field: string): { path: string; size: number } {
  const path = confinedPath(dir, file, field);
  return { path, size: regularFileSize(path, field) };
}

function optionalCore(dir: string, file: string, field: string): string | null {
  try {
    const p = confinedPath(dir, file, field);
    regularFileSize(p, field);
    return p;
  } catch (e) {
    if (/no such file/.test((e as Error).message)) return null;
    throw e;
  }
}

function program(p: { argv: string[]; path: string; cwd?: string | null }): ProgramInfo {
  return { path: p.path, argv: p.argv, cwd: p.cwd ?? null };
}

/** Import a recorder bundle directory. Throws InputError with one line. */
export function importBundle(dir: string, options: ImportOptions = {}): Recording {
  const m = readBundleManifest(dir);
  const where = (e: unknown): never => {
    if (e instanceof InputError) throw new InputError(`${dir}: ${e.message}`);
    throw e;
  };
  try {
    if (m.perf && (m.version === 1 ? m.trace === null : m.streams.length === 0)) {
      // A hardware recording whose perf.data has not been converted: that is the recording.
      const perf = importPerfDataFile(streamFile(dir, m.perf.file, 'perf.file').path, options);
      return { ...perf, name: dir, format: 'bundle', root: dir, recorder: m.recorder, program: program(m.program), exit: m.exit, warnings: [...(m.warnings ?? []), ...perf.warnings], close: () => perf.close() };
    }
    return m.version === 1 ? importV1(dir, m) : importV2(dir, m);
  } catch (e) {
    return where(e);
  }
}

/** The instruction count and hash the recorder saw for one stream, when it counted. */
interface CountedInstructions {
  traced: number;
  fnv1a64: string;
}

/** One stream of a bundle: the trace file, its thread (none in a version 1 bundle) and the images its records name. */
function bundleStream(
  index: number,
  label: string,
  thread: { pid: number | null; tid: number | null; cpu: number | null; program?: string },
  trace: { path: string; size: number },
  config: DecoderConfig,
  sets: ImageSets,
  set: { image: Image; mappings: ImageMapping[]; notes: string[] },
  instructions: CountedInstructions | null | undefined,
): TraceStream {
  return {
    index,
    label,
    ...thread,
    size: trace.size,
    open: () => new FileSource(trace.path),
    config,
    image: set.image,
    files: sets.files,
    mappings: set.mappings,
    expected: instructions ? { instructions: instructions.traced, fnv1a64: instructions.fnv1a64 } : null,
    notes: set.notes,
  };
}

/** The recording a bundle's manifest describes, around its processes, threads, streams and core. */
function bundleRecording(dir: string, m: Manifest, parts: Pick<Recording, 'processes' | 'threads' | 'streams' | 'core' | 'cores'>): Recording {
  return {
    name: dir,
    format: 'bundle',
    root: dir,
    recorder: m.recorder,
    program: program(m.program),
    exit: m.exit,
    ...parts,
    settings: m.config ?? {},
    warnings: m.warnings ?? [],
    close: () => {},
  };
}

function importV1(dir: string, m: Extract<Manifest, { version: 1 }>): Recording {
  if (m.trace === null) throw new InputError('the bundle has no trace');
  const trace = streamFile(dir, m.trace.file, 'trace.file');
  const sets = new ImageSets(dir, m.images);
  const set = sets.forStream(m.images.map((_, i) => i), dir, m.trace.imageEpochs, 'trace.imageEpochs');
  const stream = bundleStream(0, m.trace.file, { pid: null, tid: null, cpu: null }, trace, decoderConfigOf(m), sets, set, m.instructions);
  // A version-1 core names no process.
  return bundleRecording(dir, m, { processes: [], threads: [], streams: [stream], core: optionalCore(dir, V1_CORE_NAME, 'core'), cores: [] });
}

/** A program's base name for a label: printable, bounded (the name is the recorded program's choice). */
function programName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1) || path;
  return base.replace(/[^\x21-\x7e]/g, '?').slice(0, 64);
}

function importV2(dir: string, m: ManifestV2): Recording {
  const config = decoderConfigOf(m);
  const sets = new ImageSets(dir, m.images);
  const processes: RecordedProcess[] = m.processes.map((p) => ({
    pid: p.pid,
    ppid: p.ppid,
    program: p.program ? program(p.program) : null,
    exit: p.exit as ExitInfo | null,
    untraced: p.untraced ?? null,
  }));
  const threads: RecordedThread[] = m.threads.map((t) => ({ tid: t.tid, pid: t.pid, name: t.name ?? null }));
  const streams: TraceStream[] = m.streams.map((s, index) => {
    const trace = streamFile(dir, s.file, `streams[${index}].file`);
    const set = sets.forStream(s.images, `${dir} [${s.pid}/${s.tid}]`, s.imageEpochs, `streams[${index}].imageEpochs`);
    // A stream an exec started is named by its program too, as perf script shows the comm.
    const name = s.program ? programName(s.program.path) : undefined;
    const thread = { pid: s.pid, tid: s.tid, cpu: s.cpu ?? null, ...(name !== undefined ? { program: name } : {}) };
    return bundleStream(index, name !== undefined ? `[${s.pid}/${s.tid}] ${name}` : `[${s.pid}/${s.tid}]`, thread, trace, config, sets, set, s.instructions);
  });
  const core = m.core ? optionalCore(dir, m.core.file, 'core.file') : null;
  const cores: { path: string; pid: number }[] = [];
  (m.cores ?? (m.core ? [m.core] : [])).forEach((c, i) => {
    const path = optionalCore(dir, c.file, `cores[${i}].file`);
    if (path !== null && !cores.some((k) => k.pid === c.pid)) cores.push({ path, pid: c.pid });
  });
  return bundleRecording(dir, m, { processes, threads, streams, core, cores });
}
