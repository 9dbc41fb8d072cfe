import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { ElfFile } from '../../flow/elf.js';
import type { TraceSource } from '../../packets/trace-source.js';
import { primaryStream, type Recording, type TraceStream } from '../model/recording.js';
import type { BuildIdEntry } from './header.js';
import { firstPsbTsc } from './trace-start.js';
import { defaultIntelPtInfo, INTEL_PT_CONFIG, type IntelPtInfo } from './auxtrace-info.js';
import { type AuxBuffer, type PerfDataLayout, type SidebandEvent, writePerfData } from './writer.js';

/**
 * Export a recorder bundle (raw trace + images with load addresses, see
 * ../recorder/bundle.ts) as a perf.data that `perf script --itrace=...`
 * decodes: one process with one thread on cpu 0, a COMM (exec), one MMAP2
 * per image naming the bundle's copy of the file (so perf reads exactly the
 * recorded code), ITRACE_START, and the trace as one AUXTRACE buffer.
 *
 * Timing: with TSC packets on, sideband times are TSC values (identity
 * TIME_CONV) just before the trace's first TSC, and the AUXTRACE reference
 * is that TSC (perf ignores 7-byte TSC packets without a reference). Perf
 * 6.1 crashes on a timed trace whose first TSC follows code, so a trace
 * without a TSC in its first PSB+ is exported for timeless decoding.
 */

/** The part of a bundle the exporter needs; `manifest.json` provides it. */
export interface ExportInput {
  trace: TraceSource | Uint8Array;
  /** Each image maps `size` bytes of `file` from `offset` at `address`. */
  images: { file: string; offset: number; size: number; address: bigint }[];
  /** Command name (COMM), at most 15 characters are kept by perf. */
  comm: string;
  pid?: number;
  tid?: number;
  cpu?: number;
  timing?: { tsc: boolean; mtc: boolean; cyc: boolean; mtcFreq: number; cpuid15?: { eax: number; ebx: number } };
  retCompression?: boolean;
  /** HEADER_CPUID; default a Skylake client ("GenuineIntel,6,158,9"). */
  cpuId?: string;
  cmdline?: string[];
}

export interface ExportResult extends PerfDataLayout {
  /** Whether the file decodes with timestamps (TSC on and a TSC in the first PSB+). */
  timed: boolean;
  warnings: string[];
}

/**
 * The export input for one stream of a recording (the first, by default):
 * its trace, its images and the recorder's timing settings.
 */
export function exportInputFrom(recording: Recording, stream: TraceStream = primaryStream(recording)): ExportInput {
  const settings = recording.settings as { retCompression?: unknown; timing?: { tsc?: unknown; mtc?: unknown; cyc?: unknown } };
  const timing = settings.timing !== null && typeof settings.timing === 'object' ? settings.timing : undefined;
  const program = recording.program;
  return {
    trace: stream.open(),
    images: stream.mappings.map((im) => ({ file: im.file, offset: im.offset, size: im.size, address: BigInt.asUintN(64, BigInt(im.address)) })),
    comm: basename(program?.path ?? 'program'),
    pid: stream.pid ?? undefined,
    tid: stream.tid ?? undefined,
    timing: timing
      ? {
          tsc: timing.tsc === true,
          mtc: timing.mtc === true,
          cyc: timing.cyc === true,
          mtcFreq: stream.config.mtcFreq,
          cpuid15: { eax: stream.config.cpuid15Eax, ebx: stream.config.cpuid15Ebx },
        }
      : undefined,
    retCompression: settings.retCompression !== false,
    cmdline: ['ptscope', 'record', ...(program?.argv ?? [])],
  };
}

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

/** Write `input` as the perf.data `path`. */
export function exportPerfData(path: string, input: ExportInput): ExportResult {
  const warnings: string[] = [];
  const pid = input.pid ?? 1000;
  const tid = input.tid ?? pid;
  const cpu = input.cpu ?? 0;
  const t = input.timing ?? { tsc: false, mtc: false, cyc: false, mtcFreq: 0 };

  let tscStart: bigint | null = null;
  if (t.tsc) {
    tscStart = firstPsbTsc(input.trace);
    if (tscStart === null || tscStart < 16n) {
      warnings.push('no TSC in the first PSB+: exported for decoding without timestamps');
      tscStart = null;
    }
  }
  const timed = tscStart !== null;

  let config = INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch;
  if (timed) config |= INTEL_PT_CONFIG.tsc;
  if (t.mtc) config |= INTEL_PT_CONFIG.mtc | (BigInt(t.mtcFreq & 0xf) << INTEL_PT_CONFIG.mtcPeriodShift);
  if (t.cyc) config |= INTEL_PT_CONFIG.cyc;
  if (input.retCompression === false) config |= INTEL_PT_CONFIG.noretcomp;

  const info: IntelPtInfo = defaultIntelPtInfo(8);
  info.perCpuMmaps = true;
  if (t.cpuid15) {
    info.tscCtcN = t.cpuid15.ebx;
    info.tscCtcD = t.cpuid15.eax;
  }

  // Identity TIME_CONV: perf time = TSC. Sideband just before the trace.
  const base = timed ? (tscStart as bigint) - 8n : 1n;
  const sideband: SidebandEvent[] = [
    { kind: 'comm', time: base, cpu, pid, tid, comm: input.comm.slice(0, 15), exec: true },
    ...input.images.map(
      (im, i): SidebandEvent => ({
        kind: 'mmap2',
        time: base + 1n + BigInt(Math.min(i, 5)),
        cpu,
        pid,
        tid,
        addr: im.address,
        len: BigInt(im.size),
        pgoff: BigInt(im.offset),
        filename: resolve(im.file),
      }),
    ),
    { kind: 'itrace-start', time: base + 7n, cpu, pid, tid },
  ];
  const aux: AuxBuffer[] = [{ idx: 0, cpu, tid: -1, data: input.trace, reference: tscStart ?? 0n }];
  const layout = writePerfData(path, {
    buildIds: imageBuildIds(input.images.map((im) => resolve(im.file))),
    info,
    ptConfig: config,
    sideband,
    aux,
    features: {
      cpuId: input.cpuId ?? 'GenuineIntel,6,158,9',
      cmdline: input.cmdline ?? ['ptscope', 'export'],
      nrCpusAvail: cpu + 1,
      nrCpusOnline: cpu + 1,
    },
  });
  return { ...layout, timed, warnings };
}
