/**
 * `ptscope export-perf`: a recording (bundle, or raw trace with images) as
 * a perf.data that Linux perf decodes.
 */
import { closeExportInput, exportInputFrom, exportPerfData } from '../sources/perf-data/bundle-to-perf.js';
import { asInputError, defineCommand, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function exportPerfCommand() {
  return withInputOptions(
    defineCommand('export-perf', "Write a recording's traces as a perf.data file laid out as perf record --per-thread does (one Intel PT AUX area per thread, with COMM/FORK/MMAP2/EXIT sideband) that Linux perf decodes, e.g. perf script -i <file.data> --itrace=i0ns -F tid,ip,sym")
      .argument('<input>', 'a bundle directory, or a raw trace (with --raw/--elf)')
      .option('-o, --output <file>', 'the perf.data to write (default: <bundle-dir>/perf.data)'),
  ).addHelpText('after', `
example:
  ptscope record -o ls.ptscope -- /bin/ls && ptscope export-perf ls.ptscope -o ls.data`);
}

interface ExportCliOptions extends InputOptions {
  output?: string;
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
    let result;
    try {
      result = exportPerfData(target, input);
    } catch (e) {
      throw new CliError(`export-perf: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      closeExportInput(input);
    }
    for (const w of result.warnings) process.stderr.write(`ptscope: export-perf: ${w}\n`);
    out.line(`wrote ${target} (${result.queues} thread${result.queues === 1 ? '' : 's'} traced)`);
    return 0;
  } finally {
    recording.close();
  }
}
