import { DUMP_HELP, parseDumpArgs, runDump, type DumpTracker } from './dump.js';
import { configFromOptions, DumpTimeTracker } from './dump-tracking.js';
import type { LineWriter } from './output.js';

/** `ptscope dump` from its argument list (ptdump's arguments are accepted as-is). */
export function runDumpCommand(args: string[], out: LineWriter): number {
  const opts = parseDumpArgs(args);
  if (!opts) {
    out.line(DUMP_HELP.trimEnd());
    return 0;
  }
  const { config, preamble } = configFromOptions({ cpu: opts.cpu, ...opts.track });
  let tracker: DumpTracker | undefined;
  if (opts.track.time || opts.track.tcal) tracker = new DumpTimeTracker(config, opts);
  return runDump(opts, out, tracker, preamble, { skd007: config.errata.skd007, skz84: config.errata.skz84 });
}
