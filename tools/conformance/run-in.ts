/**
 * Run a ptscope command in-process inside a case folder (whose files the
 * case names relative to it), as the conformance tests and
 * upstream-ptt.ts compare its output with libipt's.
 */
import { CliError, LineWriter } from '../../src/cli/output.js';

export type Command = (args: string[], out: LineWriter, errors: () => void) => number | Promise<number>;

/**
 * The command's stdout; a usage error (CliError) ends it, as the line the
 * CLI prints when `usageLine` (ptxed's expectations hold it), or silently.
 */
export function runIn(command: Command, argv: string[], cwd: string, usageLine: boolean): string {
  const out = new LineWriter(null);
  const prev = process.cwd();
  process.chdir(cwd);
  try {
    const status = command(argv, out, () => {});
    if (typeof status !== 'number') throw new Error('the command went asynchronous');
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    if (usageLine) out.line(`ptscope: ${e.message}`);
  } finally {
    process.chdir(prev);
  }
  out.flush();
  return out.text;
}

/** Normalise like `diff -ub`: runs of blanks are equal, trailing blanks ignored. */
export function normalizeLines(text: string): string[] {
  const lines = text.split('\n').map((l) => l.replace(/[ \t]+/g, ' ').replace(/ +$/, ''));
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
