/**
 * perf's command line for a hardware recording (`perf record -e
 * intel_pt//u`), from the same record options the emulated recorder takes.
 * Every option either maps to what perf and the intel_pt PMU do
 * (tools/perf/Documentation/perf-record.txt and perf-intel-pt.txt), or is
 * refused here with one line that names it and says why: never dropped.
 *
 * - --filter A-B: an intel_pt address filter, `filter <offset>/<size>@<file>`.
 *   The kernel takes user-space filters as offsets in an object file (a
 *   filter without a file is a kernel address), so a range must lie in one
 *   loaded segment of a fixed-address (ET_EXEC) program, whose run-time
 *   addresses are its link-time ones; the count is bounded by the PMU's
 *   nr_addr_filters.
 * - --snapshot KIB: snapshot mode, `--snapshot=e<bytes>`: the AUX buffer is a
 *   ring of that size and `e` takes its last snapshot when the program ends.
 * - --max-trace-size: `--max-size=<bytes>B` (perf stops writing, and stops the
 *   program, once perf.data reaches it); not in snapshot mode, as emulated.
 * - --psb-period, --timing, --mtc-freq, --noretcomp: the intel_pt config
 *   terms psb_period (2^(value+11) bytes), tsc, mtc, cyc, mtc_period and
 *   noretcomp, each checked against the PMU's caps/ files. Without --timing,
 *   perf's default config stays (it adds tsc, and mtc where the CPU has it:
 *   per-CPU decoding needs the time to place the sideband).
 * - --timeout: no perf option (perf record runs until its workload ends): the
 *   recorder interrupts perf (SIGINT), which ends its workload and completes
 *   perf.data.
 * - --max-insns: refused. PT counts no instructions and perf has no
 *   instruction limit.
 * - --long-tnt: refused. The CPU chooses its TNT packets.
 * - Threads and processes: perf's workload mode, per-CPU buffers with
 *   inheritance (never --per-thread, which turns inheritance off: the
 *   program is a descendant of the sandbox's launcher), and the context
 *   switch sideband perf adds for intel_pt by itself.
 * - --no-buildid-cache always: a hostile run never copies files into the
 *   analyst's ~/.debug. With the sandbox also --no-buildid: the paths in the
 *   mmap records are the sandbox's, and the same path on the host can be
 *   another file (the program's private /tmp).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hex } from '../../packets/address.js';
import { ET_EXEC, PT_LOAD, type ElfFile } from '../../flow/elf.js';
import { DEFAULT_MAX_TRACE_BYTES } from './record-support.js';
import { RecordError } from './record-error.js';
import type { RecordOptions } from './record-options.js';

/** Where Linux describes the intel_pt PMU. */
export const INTEL_PT_SYSFS = '/sys/bus/event_source/devices/intel_pt';

/** What the intel_pt PMU can do (perf-intel-pt.txt: nr_addr_filters and caps/). */
export interface IntelPtCaps {
  /** Address ranges the PMU filters on (0: none). */
  addressFilters: number;
  /** psb_period and cyc are configurable (caps/psb_cyc). */
  psbCyc: boolean;
  /** Valid psb_period values, one bit each (caps/psb_periods). */
  psbPeriods: number;
  /** MTC packets (caps/mtc). */
  mtc: boolean;
  /** Valid mtc_period values, one bit each (caps/mtc_periods). */
  mtcPeriods: number;
}

/** A small sysfs number: decimal, or hexadecimal where the file is a bit mask; a missing file is 0. */
function sysfsNumber(path: string, hex: boolean): number {
  let text: string;
  try {
    text = readFileSync(path, 'latin1').slice(0, 64).trim();
  } catch {
    return 0;
  }
  const v = hex ? Number.parseInt(text.replace(/^0x/i, ''), 16) : Number.parseInt(text, 10);
  return Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

/** The PMU's capabilities from its sysfs directory. */
export function readIntelPtCaps(dir: string): IntelPtCaps {
  return {
    addressFilters: sysfsNumber(join(dir, 'nr_addr_filters'), false),
    psbCyc: sysfsNumber(join(dir, 'caps', 'psb_cyc'), false) === 1,
    psbPeriods: sysfsNumber(join(dir, 'caps', 'psb_periods'), true),
    mtc: sysfsNumber(join(dir, 'caps', 'mtc'), false) === 1,
    mtcPeriods: sysfsNumber(join(dir, 'caps', 'mtc_periods'), true),
  };
}

export interface PerfCommandInput {
  opts: RecordOptions;
  caps: IntelPtCaps;
  /** The program's host file and its ELF (address filters are offsets in it). */
  program: { path: string; elf: ElfFile };
  /** Where perf writes perf.data (a host directory: perf runs outside the sandbox). */
  perfData: string;
}

function refuse(what: string, why: string): never {
  throw new RecordError(`record: ${what} cannot be honoured with Intel PT hardware (${why}); use --emulate`);
}

/** The intel_pt config terms the options ask for. */
function configTerms(opts: RecordOptions, caps: IntelPtCaps): string[] {
  const terms: string[] = [];
  if (opts.psbPeriod !== undefined) {
    const p = opts.psbPeriod;
    const value = Math.log2(p) - 11;
    if (!caps.psbCyc) refuse('--psb-period', 'this CPU does not let the PSB period be set (caps/psb_cyc)');
    if (!Number.isInteger(value) || value < 0 || value > 31 || (caps.psbPeriods & (1 << value)) === 0) {
      const valid = [...Array(32).keys()].filter((v) => (caps.psbPeriods & (1 << v)) !== 0).map((v) => 2 ** (v + 11));
      refuse(`--psb-period ${p}`, `this CPU's PSB periods are ${valid.join(', ') || 'none'} bytes`);
    }
    terms.push(`psb_period=${value}`);
  }
  const t = opts.timing;
  if (t.ctcRatio !== undefined || t.tscBase !== undefined) refuse('a set TSC base or CTC ratio', "the CPU's own clocks give them");
  if (t.tsc !== undefined || t.mtc !== undefined || t.cyc !== undefined) {
    if (t.mtc === true && !caps.mtc) refuse('--timing mtc', 'this CPU has no MTC packets (caps/mtc)');
    if (t.cyc === true && !caps.psbCyc) refuse('--timing cyc', 'this CPU has no CYC packets (caps/psb_cyc)');
    terms.push(`tsc=${t.tsc === true ? 1 : 0}`, `mtc=${t.mtc === true ? 1 : 0}`, `cyc=${t.cyc === true ? 1 : 0}`);
  }
  if (t.mtcFreq !== undefined) {
    if (!caps.mtc) refuse('--mtc-freq', 'this CPU has no MTC packets (caps/mtc)');
    if (!Number.isInteger(t.mtcFreq) || t.mtcFreq < 0 || t.mtcFreq > 31 || (caps.mtcPeriods & (1 << t.mtcFreq)) === 0) {
      refuse(`--mtc-freq ${t.mtcFreq}`, `this CPU's MTC periods are ${[...Array(32).keys()].filter((v) => (caps.mtcPeriods & (1 << v)) !== 0).join(', ') || 'none'}`);
    }
    terms.push(`mtc_period=${t.mtcFreq}`);
  }
  if (!opts.retCompression) terms.push('noretcomp=1');
  return terms;
}

/** One address range of the program as an intel_pt address filter on its file. */
function addressFilter(range: { from: number; to: number }, program: PerfCommandInput['program']): string {
  const name = `--filter ${hex(range.from)}-${hex(range.to)}`;
  if (program.elf.type !== ET_EXEC) refuse(name, 'the program is position-independent, so its run-time addresses are not known before it runs; perf filters on offsets in a file');
  const seg = program.elf.segments.find((s) => s.type === PT_LOAD && range.from >= s.vaddr && range.to < s.vaddr + s.filesz);
  if (seg === undefined) refuse(name, "the range is not inside one loaded segment of the program's file; perf filters on offsets in a file");
  if (/[\s,]/.test(program.path) || !program.path.startsWith('/')) refuse(name, `perf's filter syntax cannot name the file ${JSON.stringify(program.path)}`);
  return `filter ${hex(seg.offset + (range.from - seg.vaddr))}/${hex(range.to - range.from + 1)}@${program.path}`;
}

/**
 * perf's arguments after `perf` and before `--` for this recording (the
 * program's command follows). Throws a one-line RecordError for an option
 * that cannot be honoured.
 */
export function perfRecordArgs(input: PerfCommandInput): string[] {
  const { opts, caps } = input;
  if (opts.maxInsns !== undefined) refuse('--max-insns', 'perf has no instruction limit');
  if (opts.longTnt) refuse('--long-tnt', 'the CPU chooses its TNT packets');
  if (opts.maxRecorderBytes !== undefined) refuse("the recorder's memory limit", "it bounds the emulator's translations");
  const terms = configTerms(opts, caps);
  const args = ['record', '-q', '-e', `intel_pt/${terms.join(',')}/u`];
  if (opts.ranges.length > 0) {
    if (opts.program !== undefined) refuse('--filter', "a bundle's copy of the program runs from a file perf's filter cannot name");
    if (opts.ranges.length > caps.addressFilters) {
      refuse(`${opts.ranges.length} --filter range(s)`, `this CPU's Intel PT filters at most ${caps.addressFilters} (nr_addr_filters)`);
    }
    args.push('--filter', opts.ranges.map((r) => addressFilter(r, input.program)).join(','));
  }
  if (opts.snapshotBytes > 0) args.push(`--snapshot=e${opts.snapshotBytes}`);
  else {
    const max = opts.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES;
    if (max > 0) args.push(`--max-size=${max}B`);
  }
  args.push('--no-buildid-cache');
  if (opts.sandbox) args.push('--no-buildid');
  args.push('-o', input.perfData);
  return args;
}
