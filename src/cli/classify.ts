/**
 * `ptscope classify`: score the windows before each sensitive call of a
 * recording with the learned model (src/analyses/learned/).
 */
import { existsSync, statSync } from 'node:fs';
import { loadBundleInput, type TraceInput } from '../analyses/analyze.js';
import { classifyInput, defaultModelPath, type LearnedScores } from '../analyses/learned/classify.js';
import { WINDOW } from '../analyses/learned/features.js';
import { ModelFileError, readModelFile } from '../analyses/learned/model.js';
import { CliError, type LineWriter } from './output.js';

export const CLASSIFY_HELP = `usage: ptscope classify <bundle-dir> [options]

Score the last ${WINDOW} control transfers before each sensitive call (system calls,
exec/system/mprotect/exit/...) with the learned exploit-window model.
A trace without a sensitive call has no window and gets no score.

options:
  --model FILE     model JSON (default: the shipped models/exploit-window-model.json)
  --top N          windows to list, highest score first (default 5)
  --all            list every window in trace order
  --json           one JSON object: every window's score, the top windows, the threshold
  --fail-on-flag   exit status 1 if a window scores at or above the model's threshold
  -h, --help       this help

The score is a probability-like number in [0, 1]; see the README's evaluation
for how well it separates attacks from benign runs on programs it never saw.
`;

function formatText(r: LearnedScores, all: boolean): string[] {
  const lines = [`${r.input}: ${r.windows.length} windows, model ${r.model} (threshold ${r.threshold})`];
  if (r.windows.length === 0) {
    lines.push('no windows: the trace has no sensitive call (no system call, no sensitive library function), so there is nothing to score');
    return lines;
  }
  lines.push(`max score ${r.maxScore!.toFixed(4)}; ${r.flagged} window${r.flagged === 1 ? '' : 's'} at or above the threshold`);
  lines.push(all ? 'windows:' : 'top windows:');
  for (const w of all ? r.windows : r.top) {
    const what = w.trigger === 'function' ? `call of ${w.functionName} at ${w.to}` : `${w.trigger === 'gap' ? 'kernel entry (tracing disabled)' : 'system call'} at ${w.from}`;
    lines.push(`  #${String(w.index).padEnd(5)} score ${w.score.toFixed(4)}${w.score >= r.threshold ? ' FLAG' : '     '}  ${what}  (offset 0x${w.offset.toString(16)}, ${w.length} transfers)`);
  }
  return lines;
}

/** `ptscope classify`. */
export async function runClassifyCommand(args: string[], out: LineWriter): Promise<number> {
  let target: string | null = null;
  let model = defaultModelPath();
  let top = 5;
  let all = false;
  let json = false;
  let failOnFlag = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '-h':
      case '--help':
        out.line(CLASSIFY_HELP.trimEnd());
        return 0;
      case '--model':
        if (!args[i + 1]) throw new CliError('--model: missing argument.');
        model = args[++i];
        break;
      case '--top':
        top = Number(args[++i]);
        if (!Number.isInteger(top) || top < 1) throw new CliError(`--top: expected a positive integer, got '${args[i]}'.`);
        break;
      case '--all':
        all = true;
        break;
      case '--json':
        json = true;
        break;
      case '--fail-on-flag':
        failOnFlag = true;
        break;
      default:
        if (a.startsWith('-')) throw new CliError(`unknown option '${a}'. Run 'ptscope classify --help'.`);
        if (target !== null) throw new CliError(`more than one bundle given ('${target}', '${a}').`);
        target = a;
    }
  }
  if (target === null) throw new CliError("no bundle given. Run 'ptscope classify --help'.");
  if (!existsSync(target)) throw new CliError(`${target}: no such file or directory.`);
  if (!statSync(target).isDirectory()) throw new CliError(`${target}: not a bundle directory (record one with 'ptscope record').`);
  let input: TraceInput;
  try {
    // Check the model before decoding anything: a bad model fails fast.
    readModelFile(model);
    input = loadBundleInput(target);
  } catch (e) {
    throw new CliError((e as Error).message.split('\n')[0]);
  }
  let r: LearnedScores;
  try {
    r = await classifyInput(input, { model, top });
  } catch (e) {
    if (e instanceof ModelFileError) throw new CliError(e.message);
    throw e;
  }
  if (json) out.line(JSON.stringify(r));
  else for (const l of formatText(r, all)) out.line(l);
  return failOnFlag && r.flagged > 0 ? 1 : 0;
}
