import { analyzeCrash } from '../analyses/crash/crash.js';
import { crashText } from '../reports/crash-text.js';
import { parseCNumber } from './args.js';
import { CliError, type LineWriter } from './output.js';

export const CRASH_HELP = `usage: ptscope crash [options] <bundle>

Find the root cause of a crash: the trace bundle's control flow and the
core dump's final registers and memory drive a reverse execution that
recovers earlier register values and memory addresses; a backward taint
from the faulting operand (a bad pointer dereferenced, a corrupted return
address or function pointer) leads to the instructions that made the bad
value, stopping at the first store that is out of bounds for its object
(a stack buffer running over a return address or saved frame pointer, a
store into another heap object than its pointer's).

The core: --core FILE, else <bundle>/core, else the program is re-run once
under qemu-x86_64 in the same sandbox to take one (checked against the
trace: final IP and code bytes).

options:
  --core FILE     the ELF core dump of the crashed run
  --window N      analyse the last N instructions (default 300000)
  --no-rerun      never re-run the program for a core
  --json          print the report as JSON
  -h, --help      this help

exit status: 0 root cause found, 1 not established, 2 usage or input error.

examples:
  ptscope record -o a.ptscope -- ./a.out
  ptscope crash a.ptscope
`;

export async function runCrashCommand(args: string[], out: LineWriter): Promise<number> {
  let bundle: string | null = null;
  let core: string | undefined;
  let window: number | undefined;
  let json = false;
  let rerun = true;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-h' || a === '--help') {
      out.line(CRASH_HELP.trimEnd());
      return 0;
    } else if (a === '--core') {
      core = args[++i];
      if (core === undefined) throw new CliError('--core needs a file');
    } else if (a === '--window') {
      window = parseCNumber(args[++i], '--window');
      if (window < 1) throw new CliError('--window must be at least 1');
    } else if (a === '--json') json = true;
    else if (a === '--no-rerun') rerun = false;
    else if (a.startsWith('-')) throw new CliError(`crash: unknown option ${a}`);
    else if (bundle === null) bundle = a;
    else throw new CliError(`crash: unexpected argument ${a}`);
  }
  if (bundle === null) throw new CliError('crash: no bundle given (see ptscope crash --help)');
  let report;
  try {
    report = analyzeCrash(bundle, { core, window, rerun });
  } catch (e) {
    throw new CliError(`crash: ${(e as Error).message}`);
  }
  if (json) out.line(JSON.stringify(report, null, 2));
  else for (const l of crashText(report)) out.line(l);
  return report.rootCauses.length > 0 ? 0 : 1;
}
