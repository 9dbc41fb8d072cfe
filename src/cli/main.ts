import { CliError, LineWriter } from './output.js';
import { DUMP_HELP } from './dump.js';
import { runDumpCommand } from './dump-command.js';
import { FLOW_HELP, runFlowCommand } from './flow.js';
import { RECORD_HELP, runRecordCommand } from './record.js';
import { ANALYZE_HELP, runAnalyzeCommand } from './analyze.js';
import { REPORT_HELP, runReportCommand } from './report.js';
import { TIMELINE_HELP, runTimelineCommand } from './timeline.js';
import { COVERAGE_HELP, runCoverageCommand } from './coverage.js';
import { DEMO_HELP, runDemoCommand } from './demo.js';
import { DORMANT_HELP, runDormantCommand } from './dormant.js';
import { CRASH_HELP, runCrashCommand } from './crash.js';
import { CLASSIFY_HELP, runClassifyCommand } from './classify.js';
import { TRAIN_HELP, runTrainCommand } from './train.js';
import { EXPORT_PERF_HELP, runExportPerfCommand } from './export-perf.js';

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
  export-perf  write a bundle as a perf.data that Linux perf decodes
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

type Command = (args: string[], out: LineWriter) => number | Promise<number>;

const COMMANDS: Record<string, { help: string; run: Command }> = {
  dump: {
    help: DUMP_HELP,
    run: runDumpCommand,
  },
  flow: {
    help: FLOW_HELP,
    run: runFlowCommand,
  },
  record: {
    help: RECORD_HELP,
    run: runRecordCommand,
  },
  analyze: {
    help: ANALYZE_HELP,
    run: runAnalyzeCommand,
  },
  'export-perf': {
    help: EXPORT_PERF_HELP,
    run: runExportPerfCommand,
  },
  crash: {
    help: CRASH_HELP,
    run: runCrashCommand,
  },
  dormant: {
    help: DORMANT_HELP,
    run: runDormantCommand,
  },
  report: {
    help: REPORT_HELP,
    run: runReportCommand,
  },
  timeline: {
    help: TIMELINE_HELP,
    run: runTimelineCommand,
  },
  coverage: {
    help: COVERAGE_HELP,
    run: runCoverageCommand,
  },
  demo: {
    help: DEMO_HELP,
    run: runDemoCommand,
  },
  classify: {
    help: CLASSIFY_HELP,
    run: runClassifyCommand,
  },
  train: {
    help: TRAIN_HELP,
    run: runTrainCommand,
  },
};

/** Entry point: runs a command and returns the process exit status. */
export async function main(argv: string[]): Promise<number> {
  const out = new LineWriter(1);
  try {
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
      const c = rest[0] ? COMMANDS[rest[0]] : undefined;
      out.line((c ? c.help : MAIN_HELP).trimEnd());
      return c || !rest[0] ? 0 : 2;
    }
    const command = COMMANDS[cmd];
    if (!command) throw new CliError(`unknown command '${cmd}'. Run 'ptscope --help'.`);
    return await command.run(rest, out);
  } catch (e) {
    out.flush();
    if (e instanceof CliError) {
      process.stderr.write(`ptscope: ${e.message}\n`);
      return e.exitCode;
    }
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === 'string' && err.syscall) {
      process.stderr.write(`ptscope: ${err.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    out.flush();
  }
}
