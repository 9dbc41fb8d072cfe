/**
 * The command registry: every `ptscope` command, its runner and its
 * definition (for help and shell completion).
 */
import type { Command as CommanderCommand } from 'commander';
import type { LineWriter } from './output.js';
import { DUMP_HELP } from './dump.js';
import { runDumpCommand } from './dump-command.js';
import { FLOW_HELP, runFlowCommand } from './flow.js';
import { recordCommand, runRecordCommand } from './record.js';
import { analyzeCommand, runAnalyzeCommand } from './analyze.js';
import { reportCommand, runReportCommand } from './report.js';
import { timelineCommand, runTimelineCommand } from './timeline.js';
import { coverageCommand, runCoverageCommand } from './coverage.js';
import { demoCommand, runDemoCommand } from './demo.js';
import { dormantCommand, runDormantCommand } from './dormant.js';
import { crashCommand, runCrashCommand } from './crash.js';
import { classifyCommand, runClassifyCommand } from './classify.js';
import { trainCommand, runTrainCommand } from './train.js';
import { exportPerfCommand, runExportPerfCommand } from './export-perf.js';
import { completionCommand, runCompletionCommand } from './completion.js';
import { workerCommand, runWorkerCommand } from './worker.js';
import { submitCommand, runSubmitCommand } from './submit.js';
import { jobsCommand, runJobsCommand } from './jobs.js';

type Runner = (args: string[], out: LineWriter) => number | Promise<number>;

/**
 * Every command. `dump` and `flow` take ptdump's and ptxed's argv verbatim
 * and keep their own parsers and help; every other command is defined with
 * commander (`define`), which gives its help, its errors and the shell
 * completion.
 */
export interface CommandEntry {
  run: Runner;
  define?: () => CommanderCommand;
  help?: string;
}

export const COMMANDS: Record<string, CommandEntry> = {
  dump: { help: DUMP_HELP, run: runDumpCommand },
  flow: { help: FLOW_HELP, run: runFlowCommand },
  record: { define: recordCommand, run: runRecordCommand },
  analyze: { define: analyzeCommand, run: runAnalyzeCommand },
  'export-perf': { define: exportPerfCommand, run: runExportPerfCommand },
  crash: { define: crashCommand, run: runCrashCommand },
  dormant: { define: dormantCommand, run: runDormantCommand },
  report: { define: reportCommand, run: runReportCommand },
  timeline: { define: timelineCommand, run: runTimelineCommand },
  coverage: { define: coverageCommand, run: runCoverageCommand },
  demo: { define: demoCommand, run: runDemoCommand },
  classify: { define: classifyCommand, run: runClassifyCommand },
  train: { define: trainCommand, run: runTrainCommand },
  worker: { define: workerCommand, run: runWorkerCommand },
  submit: { define: submitCommand, run: runSubmitCommand },
  jobs: { define: jobsCommand, run: runJobsCommand },
  completion: { define: completionCommand, run: (args, out) => runCompletionCommand(args, out, COMMANDS) },
};

/** A command's help text. */
export function commandHelp(name: string): string | null {
  const c = COMMANDS[name];
  if (!c) return null;
  if (c.help !== undefined) return c.help;
  let text = '';
  const cmd = c.define!();
  cmd.configureOutput({ writeOut: (s) => (text += s) });
  cmd.outputHelp();
  return text;
}

/** Closest command name to a typo, for the error message. */
export function suggestCommand(word: string): string | null {
  let best: string | null = null;
  let bestCost = 3;
  for (const name of Object.keys(COMMANDS)) {
    const d = editDistance(word, name);
    if (d < bestCost) {
      bestCost = d;
      best = name;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

