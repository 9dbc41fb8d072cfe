import { PtError } from '../packets/errors.js';
import { SidebandSession } from '../sources/perf-event/sideband-session.js';
import { DUMP_HELP, parseDumpArgs, runDump, type DumpErrorSink, type DumpTracker } from './dump.js';
import { configFromOptions, DumpTimeTracker } from './dump-tracking.js';
import { CliError, type LineWriter } from './output.js';
import { parseJobs } from './jobs-option.js';

const toStderr: DumpErrorSink = (message) => {
  process.stderr.write(`ptscope: ${message}\n`);
};

/** `ptscope dump` from its argument list (ptdump's arguments are accepted as-is). */
export function runDumpCommand(args: string[], out: LineWriter, errors?: DumpErrorSink): number | Promise<number> {
  const opts = parseDumpArgs(args);
  if (!opts) {
    out.line(DUMP_HELP.trimEnd());
    return 0;
  }
  const { config, preamble } = configFromOptions({ cpu: opts.cpu, ...opts.track });
  // The worker pool's modules (piscina and the analyses' pool) take longer
  // to load than a serial dump of a small trace: loaded only for --jobs.
  if (opts.jobs !== undefined && parseJobs(opts.jobs) > 1) {
    return import('./parallel/dump-pieces.js').then((m) => m.runDumpInPieces(args, opts, preamble, out, errors ?? toStderr));
  }
  let tracker: DumpTracker | undefined;
  const sideband = opts.sideband.active;
  if (opts.track.time || opts.track.tcal || sideband) {
    const timeTracker = new DumpTimeTracker(config, opts, sideband);
    if (sideband) {
      for (const line of preamble) out.line(line);
      preamble.length = 0;
      try {
        timeTracker.attachSideband(() => SidebandSession.create(opts.sideband.config, { out: timeTracker.sink }), out);
      } catch (e) {
        if (e instanceof PtError) throw new CliError(`dump: ${e.message}`);
        throw e;
      }
    }
    tracker = timeTracker;
  }
  return runDump(opts, out, tracker, preamble, { skd007: config.errata.skd007, skz84: config.errata.skz84 }, errors);
}
