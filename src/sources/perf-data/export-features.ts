/**
 * The header feature sections both perf.data exports (per-thread,
 * bundle-to-perf.ts; per-CPU, per-cpu-layout.ts) write for a recording:
 * HEADER_BUILD_ID for its ELF images, and the CPU, command line and CPU
 * counts perf shows with `perf report --header`.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import { ElfFile } from '../../flow/elf.js';
import type { BuildIdEntry } from './header.js';
import type { PerfDataSpec } from './writer.js';

/** HEADER_CPUID when the recording names none: a Skylake client. */
const DEFAULT_CPUID = 'GenuineIntel,6,158,9';

/** PERF_RECORD_MISC_USER: the cpumode of user-space build-id entries. */
const MISC_USER = 2;

/**
 * Build ids of the ELF images, for HEADER_BUILD_ID: perf then checks that
 * the file it opens is the one recorded (a wrong id loses the symbols) and
 * can find it in its build-id cache. Raw (non-ELF) images have none.
 */
function imageBuildIds(files: string[]): BuildIdEntry[] {
  const out: BuildIdEntry[] = [];
  for (const file of new Set(files)) {
    let bytes: Uint8Array;
    try {
      const fd = openSync(file, 'r');
      try {
        const magic = new Uint8Array(4);
        if (readSync(fd, magic, 0, 4, 0) !== 4 || magic[0] !== 0x7f || magic[1] !== 0x45) continue;
      } finally {
        closeSync(fd);
      }
      bytes = readFileSync(file);
      const id = ElfFile.parse(bytes, file).buildId;
      if (id) out.push({ pid: -1, cpumode: MISC_USER, buildId: id, filename: file });
    } catch {
      // Not a readable ELF: no build id, perf reads the file by its name.
    }
  }
  return out;
}

/**
 * The features of an export of `streams` on `cpus` CPUs: the build ids of
 * every image the streams map, the recording's CPU and command line (or
 * the defaults), and `cpus` CPUs available and online.
 */
export function exportFeatures(
  input: { cpuId?: string; cmdline?: string[] },
  streams: readonly { images: readonly { file: string }[] }[],
  cpus: number,
): Pick<PerfDataSpec, 'buildIds' | 'features'> {
  return {
    buildIds: imageBuildIds(streams.flatMap((s) => s.images.map((im) => resolve(im.file)))),
    features: {
      cpuId: input.cpuId ?? DEFAULT_CPUID,
      cmdline: input.cmdline ?? ['ptscope', 'export'],
      nrCpusAvail: cpus,
      nrCpusOnline: cpus,
    },
  };
}
