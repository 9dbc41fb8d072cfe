import { exportInputFromBundle, exportPerfData } from '../sources/perf-data/bundle-to-perf.js';
import { CliError, type LineWriter } from './output.js';

export const EXPORT_PERF_HELP = `usage: ptscope export-perf <bundle-dir> -o <file.data>

Write a recorder bundle's trace as a perf.data file (Intel PT AUX area with
MMAP2/COMM/ITRACE_START sideband) that Linux perf decodes, e.g.
  perf script -i <file.data> --itrace=i0ns -F ip,sym

options:
  -o, --output FILE   the perf.data to write (default: <bundle-dir>/perf.data)
  -h, --help          this help

example:
  ptscope record -o ls.ptscope -- /bin/ls && ptscope export-perf ls.ptscope -o ls.data
`;

/** `ptscope export-perf`: bundle → perf.data. */
export function runExportPerfCommand(args: string[], out: LineWriter): number {
  let bundle: string | null = null;
  let output: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' || a === '--help') {
      out.line(EXPORT_PERF_HELP.trimEnd());
      return 0;
    }
    if (a === '-o' || a === '--output') {
      output = args[++i] ?? null;
      if (output === null) throw new CliError(`${a}: missing argument.`);
    } else if (a.startsWith('-')) throw new CliError(`export-perf: unknown option: ${a}. Use --help.`);
    else if (bundle === null) bundle = a;
    else throw new CliError(`export-perf: unexpected argument: ${a}.`);
  }
  if (bundle === null) throw new CliError('export-perf: no bundle directory given. Use --help.');
  const target = output ?? `${bundle}/perf.data`;
  let result;
  try {
    result = exportPerfData(target, exportInputFromBundle(bundle));
  } catch (e) {
    throw new CliError(`export-perf: ${(e as Error).message.split('\n')[0]}`);
  }
  for (const w of result.warnings) process.stderr.write(`ptscope: export-perf: ${w}\n`);
  out.line(`wrote ${target}`);
  return 0;
}
