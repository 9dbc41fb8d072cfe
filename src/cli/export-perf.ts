/**
 * `ptscope export-perf`: a recording (bundle, or raw trace with images) as
 * a perf.data that Linux perf decodes, in perf's per-thread layout or
 * (`--per-cpu N`) its per-CPU one.
 */
import { closeExportInput, exportInputFrom, exportPerfData, type ExportInput, type ExportResult } from '../sources/perf-data/bundle-to-perf.js';
import { exportPerfDataPerCpu, MAX_CPUS, perCpuRefusal } from '../sources/perf-data/per-cpu-layout.js';
import { asInputError, defineCommand, integer, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function exportPerfCommand() {
  return withInputOptions(
    defineCommand('export-perf', "Write a recording's traces as a perf.data file that Linux perf decodes, e.g. perf script -i <file.data> --itrace=i0ns -F tid,ip,sym. By default laid out as perf record --per-thread does (one Intel PT AUX area per thread, with COMM/FORK/MMAP2/EXIT sideband); with --per-cpu N as perf record does by default (one AUX area per CPU, the threads' runs between syscalls interleaved on N CPUs, with ITRACE_START and SWITCH_CPU_WIDE sideband)")
      .argument('<input>', 'a bundle directory, or a raw trace (with --raw/--elf)')
      .option('-o, --output <file>', 'the perf.data to write (default: <bundle-dir>/perf.data)')
      .option('--per-cpu <n>', `lay the threads out on N virtual CPUs (1 to ${MAX_CPUS}); needs a recording made with --timing tsc --noretcomp`, integer(1, MAX_CPUS))
      .option('--seed <n>', 'with --per-cpu: the seed of the schedule (the same seed gives the same file)', integer(0, 2 ** 32 - 1), 1),
  ).addHelpText('after', `
examples:
  ptscope record -o ls.ptscope -- /bin/ls && ptscope export-perf ls.ptscope -o ls.data
  ptscope record --timing tsc --noretcomp -o sh.ptscope -- /bin/sh -c 'ls | wc'
  ptscope export-perf --per-cpu 2 sh.ptscope -o sh.data`);
}

interface ExportCliOptions extends InputOptions {
  output?: string;
  perCpu?: number;
  seed: number;
}

/** `ptscope export-perf`. */
export function runExportPerfCommand(args: string[], out: LineWriter): number {
  const { help, opts: o, args: operands } = parseCommand<ExportCliOptions>(exportPerfCommand(), args, out);
  if (help) return 0;
  const source = operands[0]!;
  const recording = openInput(source, o);
  try {
    if (recording.format === 'perf-data') throw new CliError(`export-perf: ${source} is already a perf.data.`);
    const target = o.output ?? (recording.root !== null ? `${recording.root}/perf.data` : null);
    if (target === null) throw new CliError('export-perf: give -o FILE for a raw trace.');
    const input = asInputError(() => {
      try {
        return exportInputFrom(recording);
      } catch (e) {
        throw new Error(`export-perf: ${(e as Error).message}`);
      }
    });
    let result: ExportResult;
    try {
      if (o.perCpu !== undefined) {
        // A recording that cannot be laid out per CPU is the user's to fix: say which record option does.
        const refusal = perCpuRefusal(input);
        if (refusal !== null) throw new CliError(`export-perf: --per-cpu: ${refusal}`);
      }
      result = write(target, input, o);
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError(`export-perf: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      closeExportInput(input);
    }
    for (const w of result.warnings) process.stderr.write(`ptscope: export-perf: ${w}\n`);
    if (o.perCpu !== undefined) out.line(`wrote ${target} (${o.perCpu} CPU${o.perCpu === 1 ? '' : 's'}, ${result.queues} with trace)`);
    else out.line(`wrote ${target} (${result.queues} thread${result.queues === 1 ? '' : 's'} traced)`);
    return 0;
  } finally {
    recording.close();
  }
}

function write(target: string, input: ExportInput, o: ExportCliOptions): ExportResult {
  if (o.perCpu === undefined) return exportPerfData(target, input);
  return exportPerfDataPerCpu(target, input, { cpus: o.perCpu, seed: o.seed });
}
