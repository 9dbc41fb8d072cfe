/**
 * `ptscope crash`: the root cause of a crash, from a recording (any input
 * format) and a core dump.
 */
import { analyzeCrash } from '../analyses/crash/crash.js';
import { crashText } from '../reports/crash-text.js';
import { defineCommand, integer, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function crashCommand() {
  return withInputOptions(
    defineCommand('crash', "Find the root cause of a crash: the trace's control flow and the core dump's final registers and memory drive a reverse execution that recovers earlier register values and memory addresses; a backward taint from the faulting operand (a bad pointer dereferenced, a corrupted return address or function pointer) leads to the instructions that made the bad value, stopping at the first store that is out of bounds for its object.")
      .argument('<input>', 'a bundle directory, a perf.data, or a raw trace (with --raw/--elf)')
      .option('--core <file>', 'the ELF core dump of the crashed run')
      .option('--pid <n>', "the crashed process to analyse, when several crashed (the bundle's core of it)", integer(1))
      .option('--window <n>', 'analyse the last N instructions (default 300000)', integer(1))
      .option('--no-rerun', 'never re-run the program for a core')
      .option('--no-sandbox', 'run that re-run unconfined (unsafe for untrusted programs; never taken from the bundle)')
      .option('--json', 'print the report as JSON'),
  ).addHelpText('after', `
The core: --core FILE, else the bundle's core of process --pid N, else the
bundle's core (the program's own, or the first crashed child's), else the program is re-run once
under qemu-x86_64, confined like 'ptscope record', to take one (checked against
the trace: final IP and code bytes).

exit status: 0 root cause found, 1 not established, 2 usage or input error.

examples:
  ptscope record -o a.ptscope -- ./a.out
  ptscope crash a.ptscope`);
}

interface CrashCliOptions extends InputOptions {
  core?: string;
  pid?: number;
  window?: number;
  rerun: boolean;
  sandbox: boolean;
  json?: boolean;
}

export async function runCrashCommand(args: string[], out: LineWriter): Promise<number> {
  const { help, opts: o, args: operands } = parseCommand<CrashCliOptions>(crashCommand(), args, out);
  if (help) return 0;
  if (!o.sandbox) process.stderr.write('ptscope: warning: --no-sandbox: a re-run of the program runs unconfined, with your network and files\n');
  const recording = openInput(operands[0]!, o);
  let report;
  try {
    report = analyzeCrash(recording, { core: o.core, pid: o.pid, window: o.window, rerun: o.rerun, sandbox: o.sandbox });
  } catch (e) {
    throw new CliError(`crash: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    recording.close();
  }
  if (o.json) out.line(JSON.stringify(report, null, 2));
  else for (const l of crashText(report)) out.line(l);
  return report.rootCauses.length > 0 ? 0 : 1;
}
