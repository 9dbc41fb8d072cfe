import { CliError, LineWriter } from './output.js';
import { InputError } from '../sources/import/safe-files.js';
import { COMMANDS, commandHelp, suggestCommand } from './commands.js';

const VERSION = '0.1.0';

export const MAIN_HELP = `ptscope ${VERSION}: Intel Processor Trace decoding and security analysis

usage: ptscope <command> [options]

commands:
  dump      print the packets of a trace (libipt ptdump compatible)
  flow      print the executed instructions (libipt ptxed compatible; also bundles, perf.data)
  record    run a program and record a trace bundle (emulated PT without hardware)
  analyze   run security detectors (ROP/JOP/SROP, shadow stack, CFI, ...) over a trace
  report    write a self-contained HTML report (findings, evidence, coverage, calls)
  timeline  write the call timeline as Chrome trace JSON (Perfetto UI, speedscope)
  coverage  write coverage as drcov (Lighthouse, bncov) or a per-function summary
  demo      analyse the bundled sample recordings and write an HTML report
  dormant   find code that never ran, solve what triggers it, re-run to prove it
  crash     root cause of a crash: trace + core dump, reverse execution, backward taint
  classify  score the windows before each system call with the learned exploit model
  train     train the learned exploit model on a dataset of windows
  export-perf  write a recording as a perf.data that Linux perf decodes
  worker    run a fleet worker: take jobs from Redis (BullMQ) and run them
  submit    enqueue jobs for the fleet (record, analyze, ..., a large trace as a flow)
  jobs      list the fleet's jobs with their state and progress
  completion   print a bash or zsh completion script
  help      show help for a command

Run 'ptscope <command> --help' for a command's options.

exit status: 0 ok, 1 findings (with --fail-on-findings) or a partly unreadable trace,
             2 usage or input error.

examples:
  ptscope demo                                      try it: no hardware or setup needed
  ptscope record -o ls.ptscope -- /bin/ls           record a program (emulated PT)
  ptscope analyze ls.ptscope                        findings as text
  ptscope report ls.ptscope -o report.html          HTML report
  ptscope dump trace.pt
  ptscope dump --stat trace.pt
`;

/** Entry point: runs a command and returns the process exit status. */
export async function main(argv: string[]): Promise<number> {
  const out = new LineWriter(1);
  try {
    const status = await dispatch(argv, out);
    out.flush();
    return status;
  } catch (e) {
    try {
      out.flush();
    } catch {
      // the output is broken: the error below is what matters
    }
    if (e instanceof CliError) {
      process.stderr.write(`ptscope: ${e.message}\n`);
      return e.exitCode;
    }
    // An importer's one-line verdict on the input (a missing file, a bundle that is not one).
    if (e instanceof InputError) {
      process.stderr.write(`ptscope: ${e.message.split('\n')[0]}\n`);
      return 2;
    }
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === 'string' && err.syscall) {
      process.stderr.write(`ptscope: ${err.message}\n`);
      return 2;
    }
    throw e;
  }
}

async function dispatch(argv: string[], out: LineWriter): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h') {
    out.line(MAIN_HELP.trimEnd());
    return cmd ? 0 : 2;
  }
  if (cmd === '--version') {
    out.line(`ptscope ${VERSION}`);
    return 0;
  }
  if (cmd === 'help') {
    const help = rest[0] ? await commandHelp(rest[0]) : MAIN_HELP;
    if (help === null) throw new CliError(`unknown command '${rest[0]}'. Run 'ptscope --help'.`);
    out.line(help.trimEnd());
    return 0;
  }
  const command = COMMANDS[cmd];
  if (!command) {
    const near = suggestCommand(cmd);
    throw new CliError(`unknown command '${cmd}'.${near ? ` Did you mean '${near}'?` : ''} Run 'ptscope --help'.`);
  }
  const loaded = await command.load();
  return await loaded.run(rest, out);
}
