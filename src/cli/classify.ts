/**
 * `ptscope classify`: score the windows before each sensitive call of a
 * recording with the learned model (src/analyses/learned/).
 */
import { traceInputs } from '../analyses/trace-input.js';
import { analysisGroups } from '../analyses/analyze.js';
import { classifyGroup, defaultModelPath, type LearnedScores } from '../analyses/learned/classify.js';
import { WINDOW } from '../analyses/learned/features.js';
import { ModelFileError, readModelFile } from '../analyses/learned/model.js';
import { asInputError, defineCommand, integer, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function classifyCommand() {
  return withInputOptions(
    defineCommand('classify', `Score the last ${WINDOW} control transfers before each sensitive call (system calls, exec/system/mprotect/exit/...) with the learned exploit-window model. A trace without a sensitive call has no window and gets no score.`)
      .argument('<input>', 'a bundle directory, a perf.data, or a raw trace (with --raw/--elf)')
      .option('--model <file>', 'model JSON (default: the shipped models/exploit-window-model.json)')
      .option('--top <n>', 'windows to list, highest score first', integer(1), 5)
      .option('--all', 'list every window in trace order')
      .option('--json', 'one JSON object per stream: every window\'s score, the top windows, the threshold')
      .option('--fail-on-flag', "exit status 1 if a window scores at or above the model's threshold"),
  ).addHelpText('after', `
The score is a probability-like number in [0, 1]; see the README's evaluation
for how well it separates attacks from benign runs on programs it never saw.`);
}

interface ClassifyCliOptions extends InputOptions {
  model?: string;
  top: number;
  all?: boolean;
  json?: boolean;
  failOnFlag?: boolean;
}

function formatText(r: LearnedScores, all: boolean): string[] {
  const lines = [`${r.input}: ${r.count} windows, model ${r.model} (threshold ${r.threshold})`];
  if (r.count === 0) {
    lines.push('no windows: the trace has no sensitive call (no system call, no sensitive library function), so there is nothing to score');
    return lines;
  }
  lines.push(`max score ${r.maxScore!.toFixed(4)}; ${r.flagged} window${r.flagged === 1 ? '' : 's'} at or above the threshold`);
  lines.push(all ? 'windows:' : 'top windows:');
  for (const w of all ? r.windows : r.top) {
    const what = w.trigger === 'function' ? `call of ${w.functionName} at ${w.to}` : `${w.trigger === 'gap' ? 'kernel entry (tracing disabled)' : 'system call'} at ${w.from}`;
    // Per-CPU streams hold several threads: each window names its own.
    const who = r.pid === null && w.pid !== null ? `[${w.pid}/${w.tid}] ` : '';
    lines.push(`  ${who}#${String(w.index).padEnd(5)} score ${w.score.toFixed(4)}${w.score >= r.threshold ? ' FLAG' : '     '}  ${what}  (offset 0x${w.offset.toString(16)}, ${w.length} transfers)`);
  }
  return lines;
}

/** `ptscope classify`. */
export async function runClassifyCommand(args: string[], out: LineWriter): Promise<number> {
  const { help, opts: o, args: operands } = parseCommand<ClassifyCliOptions>(classifyCommand(), args, out);
  if (help) return 0;
  const model = o.model ?? defaultModelPath();
  // Check the model before decoding anything: a bad model fails fast.
  asInputError(() => readModelFile(model));
  const recording = openInput(operands[0]!, o);
  let flagged = 0;
  try {
    for (const group of asInputError(() => analysisGroups(traceInputs(recording)))) {
      let r: LearnedScores;
      try {
        // Every window's score only where it is printed: otherwise the top ones and the counts (memory flat in the trace).
        r = await classifyGroup(group, { model, top: o.top, every: o.all === true || o.json === true });
      } catch (e) {
        if (e instanceof ModelFileError) throw new CliError(e.message);
        throw e;
      }
      flagged += r.flagged;
      if (o.json) out.line(JSON.stringify(r));
      else for (const l of formatText(r, o.all === true)) out.line(l);
    }
  } finally {
    recording.close();
  }
  return o.failOnFlag && flagged > 0 ? 1 : 0;
}
