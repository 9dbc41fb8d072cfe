/**
 * Every input, one entry point: a bundle directory, a perf.data file, or a
 * raw trace with `--raw`/`--elf` images becomes a {@link Recording}.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { Recording } from '../model/recording.js';
import { MANIFEST_NAME } from '../bundle/manifest.js';
import { importBundle, type ImportOptions } from './bundle-import.js';
import { importPerfDataFile } from './perf-data-import.js';
import { importRawTrace } from './raw-import.js';
import { InputError } from './safe-files.js';

export type InputKind = 'bundle' | 'perf-data' | 'raw';

/** Which importer handles `path` (a missing path is an InputError). */
export function detectInputKind(path: string): InputKind {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new InputError(`${path}: no such file or directory`);
  }
  if (st.isDirectory()) return 'bundle';
  if (!st.isFile()) throw new InputError(`${path}: not a regular file (a FIFO, device or socket cannot be read as a trace)`);
  if (st.size >= 8) {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!fstatSync(fd).isFile()) throw new InputError(`${path}: not a regular file`);
      const magic = Buffer.alloc(8);
      readSync(fd, magic, 0, 8, 0);
      if (magic.toString('latin1') === 'PERFILE2') return 'perf-data';
    } finally {
      closeSync(fd);
    }
  }
  return 'raw';
}

export interface OpenOptions extends ImportOptions {
  /** Images of a raw trace (ptxed's `--raw`, `--elf`) and its CPU. */
  raw?: readonly string[];
  elf?: readonly string[];
  cpu?: string;
}

/** Open any supported input as a Recording. Throws InputError with one line. */
export function openRecording(path: string, options: OpenOptions = {}): Recording {
  const kind = detectInputKind(path);
  const images = (options.raw?.length ?? 0) + (options.elf?.length ?? 0);
  if (kind !== 'raw' && images > 0) throw new InputError('--raw/--elf are for a raw trace, not a bundle directory or perf.data');
  if (kind !== 'raw' && options.cpu !== undefined && options.cpu !== 'none') {
    throw new InputError('--cpu is for a raw trace: a bundle or perf.data records its CPU');
  }
  switch (kind) {
    case 'bundle':
      return importBundle(path, options);
    case 'perf-data':
      return importPerfDataFile(path, options);
    default:
      if (images === 0) {
        throw new InputError(`${path}: neither a trace bundle (a directory with ${MANIFEST_NAME}) nor a perf.data; a raw trace needs its images (--raw or --elf)`);
      }
      return importRawTrace({ trace: path, raw: options.raw ?? [], elf: options.elf ?? [], cpu: options.cpu });
  }
}
