/**
 * One importer per trace format, one model out (speedscope's shape): a
 * recorder bundle directory and a perf.data file both become
 * {@link ImportedTrace}s — trace bytes, the memory image, the mappings
 * (for symbols and module maps) and the decoder configuration. `flow`,
 * `analyze` and the other commands take any of them the same way.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultConfig, type DecoderConfig } from '../packets/config.js';
import { ANY_ASID } from '../flow/address-space.js';
import { Image } from '../flow/image.js';
import { ByteSourceCache } from '../flow/section.js';
import { MANIFEST_NAME, readManifest } from './recorder/bundle.js';
import { flowInputs, readPerfData } from './perf-data/perf-data.js';

/** A file mapped into the traced process. */
export interface ImportedMapping {
  /** The file on disk holding the bytes. */
  path: string;
  /** Offset of the mapping in the file. */
  offset: number;
  size: number;
  /** Run-time address. */
  address: number;
  /** A short name for reports (the original path's base name). */
  displayName: string;
}

export interface ImportedTrace {
  /** What to call this trace in output (the bundle dir, or `perf.data#stream`). */
  name: string;
  trace: Uint8Array;
  image: Image;
  files: ByteSourceCache;
  mappings: ImportedMapping[];
  config: DecoderConfig;
  /** What could not be imported (a mapping without a file, ...). */
  notes: string[];
}

export type InputKind = 'bundle' | 'perf-data' | 'raw';

/** Which importer handles `path`. */
export function detectInputKind(path: string): InputKind {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 'raw';
  }
  if (st.isDirectory()) return 'bundle';
  if (st.size >= 8) {
    const fd = openSync(path, 'r');
    try {
      const magic = Buffer.alloc(8);
      readSync(fd, magic, 0, 8, 0);
      if (magic.toString('latin1') === 'PERFILE2') return 'perf-data';
    } finally {
      closeSync(fd);
    }
  }
  return 'raw';
}

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

/** Import a recorder bundle. Throws an Error with one line of explanation. */
export function importBundle(dir: string, options: { sysroot?: string } = {}): ImportedTrace {
  const m = readManifest(dir);
  if (m.trace === null) {
    if (m.perf) return importPerfData(join(dir, m.perf.file), options)[0]!;
    throw new Error(`${dir}: the bundle has no trace`);
  }
  const path = join(dir, m.trace.file);
  const trace: Uint8Array = readFileSync(path);
  const image = new Image(dir);
  const files = new ByteSourceCache();
  const mappings: ImportedMapping[] = [];
  const notes: string[] = [];
  for (const im of m.images) {
    const file = resolve(dir, im.file);
    const address = Number(BigInt(im.address));
    let st: number;
    try {
      st = image.addFile(files, file, im.offset, im.size, address, ANY_ASID);
    } catch (e) {
      st = -1;
      notes.push(`unchecked: image ${im.file}: ${(e as Error).message}`);
    }
    if (st < 0) notes.push(`unchecked: image ${im.file} could not be mapped at ${im.address}`);
    else mappings.push({ path: file, offset: im.offset, size: im.size, address, displayName: baseName(im.path) });
  }
  const config = defaultConfig();
  if (m.encoder) {
    config.mtcFreq = m.encoder.mtcFreq;
    config.cpuid15Eax = m.encoder.cpuid15.eax;
    config.cpuid15Ebx = m.encoder.cpuid15.ebx;
  }
  return { name: dir, trace, image, files, mappings, config, notes };
}

/**
 * Import a perf.data with Intel PT: one trace per AUX stream (per CPU or per
 * thread), each with the image of the task traced on it. `sysroot` finds
 * mapped files recorded on another machine.
 */
export function importPerfData(path: string, options: { sysroot?: string } = {}): ImportedTrace[] {
  const model = readPerfData(path);
  try {
    const out: ImportedTrace[] = [];
    const inputs = flowInputs(model, options);
    if (inputs.length === 0) throw new Error(`${path}: no Intel PT data (no AUXTRACE records)`);
    for (const input of inputs) {
      const bytes = new Uint8Array(input.source.size);
      input.source.read(bytes, 0, 0, bytes.length);
      // The task traced on the stream; its mappings at the end of the
      // recording hold every library it loaded.
      const late = (1n << 63n) - 1n;
      const task = input.taskAt(late);
      const notes = model.warnings.map((w) => `perf.data: ${w}`);
      let image = new Image(path);
      const mappings: ImportedMapping[] = [];
      if (task) {
        const got = input.imageFor(task.pid, late);
        image = got.image;
        for (const miss of got.missing) notes.push(`unchecked: no image for ${miss}`);
        for (const m of image.sections()) {
          const file = m.section.filename;
          mappings.push({ path: file, offset: m.sourceOffset, size: m.size, address: m.vaddr, displayName: baseName(file) });
        }
      } else notes.push('unchecked: no task found for the stream: no image');
      const s = input.stream;
      const label = s.cpu >= 0 ? `cpu ${s.cpu}` : `tid ${s.tid}`;
      out.push({ name: `${path} (${label})`, trace: bytes, image, files: new ByteSourceCache(), mappings, config: input.config, notes });
    }
    return out;
  } finally {
    model.close();
  }
}

/** Import any supported trace container (bundle dir or perf.data). */
export function importTrace(path: string, options: { sysroot?: string } = {}): ImportedTrace[] {
  switch (detectInputKind(path)) {
    case 'bundle':
      return [importBundle(path, options)];
    case 'perf-data':
      return importPerfData(path, options);
    default:
      throw new Error(`${path}: neither a trace bundle (directory with ${MANIFEST_NAME}) nor a perf.data file`);
  }
}
