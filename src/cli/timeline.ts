/**
 * `ptscope timeline`: the function-level call timeline of a trace bundle as
 * Chrome trace event JSON, for Perfetto UI, chrome://tracing or speedscope.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { hexAddress } from '../analyses/finding.js';
import { CallTimeline } from '../reports/chrome-trace.js';
import { walkTrace } from '../reports/report-model.js';
import { parseCNumber, optionValue } from './args.js';
import { CliError, type LineWriter } from './output.js';
import { createProgress } from './progress.js';
import { loadBundleForCli } from './report.js';

const DEFAULT_MAX_EVENTS = 1_000_000;

export const TIMELINE_HELP = `usage: ptscope timeline <bundle-dir> [-o trace.json] [options]

Write the calls and returns of a trace as Chrome trace event JSON: one "B"
(begin) and "E" (end) event per call, named after the callee, one track per
address space. Open the file in Perfetto UI (ui.perfetto.dev, "Open trace
file"), chrome://tracing or speedscope. The time axis counts instructions:
1 us = 1 retired instruction.

options:
  -o, --output FILE    file to write (default: timeline.json; '-' for stdout)
  --max-events N       keep at most N events (default ${DEFAULT_MAX_EVENTS}); later calls are
                       counted but not written, and the output stays well nested
  --json               print a JSON summary on stdout (not with -o -)
  -q, --quiet          no progress bar
  -h, --help           this help

exit status: 0 ok, 2 usage or input error.

examples:
  ptscope timeline demo/rop_stack.exploit -o trace.json
  ptscope timeline app.ptscope --max-events 200000 -o app-calls.json
`;

/** `ptscope timeline`. */
export function runTimelineCommand(args: string[], out: LineWriter): number {
  let bundle: string | null = null;
  let output = 'timeline.json';
  let maxEvents = DEFAULT_MAX_EVENTS;
  let json = false;
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '-h':
      case '--help':
        out.line(TIMELINE_HELP.trimEnd());
        return 0;
      case '-o':
      case '--output':
        output = optionValue(args, ++i, a);
        break;
      case '--max-events':
        maxEvents = parseCNumber(args[++i], a);
        break;
      case '--json':
        json = true;
        break;
      case '-q':
      case '--quiet':
        quiet = true;
        break;
      default:
        if (a.startsWith('-')) throw new CliError(`unknown option '${a}'. Run 'ptscope timeline --help'.`);
        if (bundle !== null) throw new CliError(`more than one bundle given ('${bundle}', '${a}').`);
        bundle = a;
    }
  }
  if (bundle === null) throw new CliError(`no bundle given. Run 'ptscope timeline --help'.`);
  if (json && output === '-') throw new CliError('--json and -o - both write to stdout.');
  const { input, manifest } = loadBundleForCli(bundle);
  const timeline = new CallTimeline(maxEvents);
  const stats = walkTrace(input, [timeline], createProgress('timeline', input.trace.length, quiet));
  const processName = manifest.program.argv.map((s) => s.replace(/.*\//, '')).join(' ');
  const name = (ip: number): string => input.modules.symbolize(ip) ?? hexAddress(ip);
  const path = output === '-' ? '-' : resolve(output);
  let fd: number;
  try {
    fd = path === '-' ? 1 : openSync(path, 'w');
  } catch (e) {
    throw new CliError(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let bytes = 0;
  out.flush();
  try {
    for (const chunk of timeline.chromeTraceChunks(name, { processName, otherData: { source: bundle, instructions: stats.instructions } })) {
      const buf = Buffer.from(chunk, 'utf8');
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
      bytes += buf.length;
    }
  } finally {
    if (fd !== 1) closeSync(fd);
  }
  const summary = {
    output: path,
    bytes,
    instructions: stats.instructions,
    calls: timeline.calls,
    returns: timeline.returns,
    unmatchedReturns: timeline.unmatchedReturns,
    events: timeline.eventCount,
    droppedCalls: timeline.dropped,
    tracks: timeline.trackCount,
    maxDepth: timeline.maxDepth,
  };
  if (json) out.line(JSON.stringify(summary));
  else if (path !== '-') {
    out.line(`${path}: ${timeline.eventCount} events (${timeline.calls} calls, ${timeline.returns} returns, depth ${timeline.maxDepth}) over ${stats.instructions} instructions`);
    if (timeline.dropped > 0) out.line(`note: ${timeline.dropped} calls past --max-events ${maxEvents} were not written`);
    out.line('open it in Perfetto UI (ui.perfetto.dev: Open trace file), chrome://tracing or speedscope');
  }
  return 0;
}
