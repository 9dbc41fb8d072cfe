/**
 * Importer for a raw PT trace with ptxed-style images: `--raw
 * file[:from-to]:base` for raw bytes and `--elf file[:base]` for the
 * PT_LOAD segments of an ELF, plus `--cpu` for the errata. One stream, no
 * processes known.
 */
import { FileSource } from '../../packets/trace-source.js';
import { loadElf } from '../../flow/elf.js';
import { Image } from '../../flow/image.js';
import { addRawImage, isImageArgError, parseElfArg, parseRawArg } from '../../flow/raw-image-arg.js';
import { ByteSourceCache } from '../../flow/section.js';
import { PtError } from '../../packets/errors.js';
import { configForCpu } from '../model/decoders.js';
import type { ImageMapping, Recording, TraceStream } from '../model/recording.js';
import { InputError, regularFileSize } from './safe-files.js';

export interface RawTraceSpec {
  /** The trace file. */
  trace: string;
  /** `--raw` arguments, as ptxed takes them. */
  raw: readonly string[];
  /** `--elf` arguments. */
  elf: readonly string[];
  /** `f/m[/s]`, `none` or undefined for no CPU. */
  cpu?: string;
}

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

/** Import a raw trace and its images. Throws InputError with one line. */
export function importRawTrace(spec: RawTraceSpec): Recording {
  if (spec.raw.length === 0 && spec.elf.length === 0) throw new InputError(`${spec.trace}: a raw trace needs its images (--raw or --elf)`);
  const size = regularFileSize(spec.trace, spec.trace);
  const image = new Image(spec.trace);
  const files = new ByteSourceCache();
  const mappings: ImageMapping[] = [];
  const notes: string[] = [];
  for (const arg of spec.raw) {
    const r = parseRawArg(arg);
    if (isImageArgError(r)) throw new InputError(`--raw ${arg}: ${r.error}`);
    regularFileSize(r.file, `--raw ${arg}`);
    let st: number;
    try {
      st = addRawImage(image, files, r);
    } catch (e) {
      throw new InputError(`--raw ${arg}: ${e instanceof PtError ? e.message : (e as Error).message}`);
    }
    if (st < 0) throw new InputError(`--raw ${arg}: cannot map the image`);
    const bytes = r.size === null ? files.file(r.file).size - Number(r.offset) : Number(r.size);
    mappings.push({ file: r.file, originalPath: r.file, offset: Number(r.offset), size: bytes, address: Number(r.base), displayName: baseName(r.file), runtime: null });
  }
  for (const arg of spec.elf) {
    const e = parseElfArg(arg);
    regularFileSize(e.file, `--elf ${arg}`);
    let loaded;
    try {
      loaded = loadElf(image, files, e.file, e.base);
    } catch (err) {
      throw new InputError(`--elf ${arg}: ${err instanceof PtError ? err.message : (err as Error).message}`);
    }
    for (const w of loaded.warnings) notes.push(w);
    for (const seg of loaded.elf.loadSegments()) {
      if (seg.filesz === 0) continue;
      mappings.push({ file: e.file, originalPath: e.file, offset: seg.offset, size: seg.filesz, address: seg.vaddr + loaded.loadOffset, displayName: baseName(e.file), runtime: null });
    }
  }
  let config;
  try {
    config = configForCpu(spec.cpu);
  } catch (e) {
    throw new InputError((e as Error).message);
  }
  const stream: TraceStream = {
    index: 0,
    label: spec.trace,
    pid: null,
    tid: null,
    cpu: null,
    size,
    open: () => new FileSource(spec.trace),
    config,
    image,
    files,
    mappings,
    expected: null,
    notes,
  };
  return {
    name: spec.trace,
    format: 'raw',
    root: null,
    recorder: null,
    program: null,
    exit: null,
    processes: [],
    threads: [],
    streams: [stream],
    core: null,
    cores: [],
    settings: {},
    warnings: [],
    close: () => {},
  };
}
