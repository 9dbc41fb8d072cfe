import { DUMP_HELP, parseDumpArgs, runDump } from './dump.js';
import type { LineWriter } from './output.js';

/** `ptscope dump` from its argument list (ptdump's arguments are accepted as-is). */
export function runDumpCommand(args: string[], out: LineWriter): number {
  const opts = parseDumpArgs(args);
  if (!opts) {
    out.line(DUMP_HELP.trimEnd());
    return 0;
  }
  return runDump(opts, out);
}
