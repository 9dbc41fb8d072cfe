/**
 * `ptscope timeline`: the function-level call timeline of a trace bundle as
 * Chrome trace event JSON, for Perfetto UI, chrome://tracing or speedscope.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { hexAddress } from '../analyses/finding.js';
import { traceInput } from '../analyses/trace-input.js';
import { primaryStream } from '../sources/model/recording.js';
import { CallTimeline } from '../reports/chrome-trace.js';
import { walkTrace } from '../reports/report-model.js';
import { asInputError, defineCommand, integer, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { CliError, type LineWriter } from './output.js';
import { createProgress } from './progress.js';

const DEFAULT_MAX_EVENTS = 1_000_000;

export function timelineCommand() {
  return withInputOptions(
    defineCommand('timeline', 'Write the calls and returns of a trace as Chrome trace event JSON: one "B" (begin) and "E" (end) event per call, named after the callee, one track per address space. Open it in Perfetto UI (ui.perfetto.dev, "Open trace file"), chrome://tracing or speedscope. The time axis counts instructions: 1 us = 1 retired instruction.')
      .argument('<input>', 'a bundle directory, a perf.data, or a raw trace (with --raw/--elf)')
      .option('-o, --output <file>', "file to write ('-' for stdout)", 'timeline.json')
      .option('--max-events <n>', `keep at most N events (default ${DEFAULT_MAX_EVENTS}); later calls are counted but not written, and the output stays well nested`, integer(1))
      .option('--json', 'print a JSON summary on stdout (not with -o -)')
      .option('-q, --quiet', 'no progress bar'),
  ).addHelpText('after', `
exit status: 0 ok, 2 usage or input error.

examples:
  ptscope timeline demo/rop_stack.exploit -o trace.json
  ptscope timeline app.ptscope --max-events 200000 -o app-calls.json`);
}

interface TimelineCliOptions extends InputOptions {
  output: string;
  maxEvents?: number;
  json?: boolean;
  quiet?: boolean;
}

/** `ptscope timeline`. */
export function runTimelineCommand(args: string[], out: LineWriter): number {
  const { help, opts: o, args: operands } = parseCommand<TimelineCliOptions>(timelineCommand(), args, out);
  if (help) return 0;
  const source = operands[0]!;
  const output = o.output;
  const maxEvents = o.maxEvents ?? DEFAULT_MAX_EVENTS;
  const json = o.json === true;
  if (json && output === '-') throw new CliError('--json and -o - both write to stdout.');
  const recording = openInput(source, o);
  const input = asInputError(() => traceInput(recording, primaryStream(recording)));
  const timeline = new CallTimeline(maxEvents);
  const stats = walkTrace(input, [timeline], createProgress('timeline', input.stream.size, o.quiet === true));
  recording.close();
  const processName = recording.program ? recording.program.argv.map((a) => a.replace(/.*\//, '')).join(' ') : source;
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
    for (const chunk of timeline.chromeTraceChunks(name, { processName, otherData: { source, instructions: stats.instructions } })) {
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
