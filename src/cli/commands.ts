/**
 * The command registry: every `ptscope` command, its runner and its
 * definition (for help and shell completion). Each command's module is
 * imported when the command is dispatched, not at start-up: the modules
 * pull in iced-x86, zod, bullmq, tfjs..., and loading them all cost about a
 * second before `dump` read its first byte.
 */
import type { Command as CommanderCommand } from 'commander';
import type { LineWriter } from './output.js';

type Runner = (args: string[], out: LineWriter) => number | Promise<number>;

/**
 * A loaded command. `dump` and `flow` take ptdump's and ptxed's argv
 * verbatim and keep their own parsers and help; every other command is
 * defined with commander (`define`), which gives its help, its errors and
 * the shell completion.
 */
export interface LoadedCommand {
  run: Runner;
  define?: () => CommanderCommand;
  help?: string;
}

/** A command of the registry: `load` imports its module. */
export interface CommandEntry {
  load: () => Promise<LoadedCommand>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  dump: {
    load: async () => {
      const [{ DUMP_HELP }, { runDumpCommand }] = await Promise.all([import('./dump.js'), import('./dump-command.js')]);
      return { help: DUMP_HELP, run: runDumpCommand };
    },
  },
  flow: { load: async () => import('./flow.js').then((m) => ({ help: m.FLOW_HELP, run: m.runFlowCommand })) },
  record: { load: async () => import('./record.js').then((m) => ({ define: m.recordCommand, run: m.runRecordCommand })) },
  analyze: { load: async () => import('./analyze.js').then((m) => ({ define: m.analyzeCommand, run: m.runAnalyzeCommand })) },
  'export-perf': { load: async () => import('./export-perf.js').then((m) => ({ define: m.exportPerfCommand, run: m.runExportPerfCommand })) },
  crash: { load: async () => import('./crash.js').then((m) => ({ define: m.crashCommand, run: m.runCrashCommand })) },
  dormant: { load: async () => import('./dormant.js').then((m) => ({ define: m.dormantCommand, run: m.runDormantCommand })) },
  report: { load: async () => import('./report.js').then((m) => ({ define: m.reportCommand, run: m.runReportCommand })) },
  timeline: { load: async () => import('./timeline.js').then((m) => ({ define: m.timelineCommand, run: m.runTimelineCommand })) },
  coverage: { load: async () => import('./coverage.js').then((m) => ({ define: m.coverageCommand, run: m.runCoverageCommand })) },
  demo: { load: async () => import('./demo.js').then((m) => ({ define: m.demoCommand, run: m.runDemoCommand })) },
  classify: { load: async () => import('./classify.js').then((m) => ({ define: m.classifyCommand, run: m.runClassifyCommand })) },
  train: { load: async () => import('./train.js').then((m) => ({ define: m.trainCommand, run: m.runTrainCommand })) },
  worker: { load: async () => import('./worker.js').then((m) => ({ define: m.workerCommand, run: m.runWorkerCommand })) },
  submit: { load: async () => import('./submit.js').then((m) => ({ define: m.submitCommand, run: m.runSubmitCommand })) },
  jobs: { load: async () => import('./jobs.js').then((m) => ({ define: m.jobsCommand, run: m.runJobsCommand })) },
  completion: {
    load: async () =>
      import('./completion.js').then((m) => ({
        define: m.completionCommand,
        run: async (args: string[], out: LineWriter) => m.runCompletionCommand(args, out, await loadCommands()),
      })),
  },
};

/** Every command, loaded (for shell completion, which lists them all). */
export async function loadCommands(): Promise<Record<string, LoadedCommand>> {
  const names = Object.keys(COMMANDS);
  const loaded = await Promise.all(names.map((n) => COMMANDS[n]!.load()));
  return Object.fromEntries(names.map((n, i) => [n, loaded[i]!]));
}

/** A command's help text. */
export async function commandHelp(name: string): Promise<string | null> {
  const entry = COMMANDS[name];
  if (!entry) return null;
  const c = await entry.load();
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

