/**
 * `ptscope flow`: the executed instructions of a trace, printed like libipt's
 * ptxed (ptxed/src/ptxed.c), which accepts the same arguments.
 *
 * As in ptxed, arguments are processed in order: the decoder is created at
 * `--pt` from the configuration given so far (`--cpu`, `--filter:*`,
 * `--mtc-freq`, `--insn-decoder`/`--block-decoder`, `--event:tick`, ...).
 * The decode loop itself is in flow-decode.ts.
 *
 * Exit status: 0; 1 if the trace could only partly be decoded (errors were
 * reported); 2 for a usage or input error, which includes a trace without
 * a PSB and a trace in which no instruction could be decoded.
 */
import type { LineWriter } from './output.js';
import type { DecoderConfig } from '../packets/config.js';
import { PtError } from '../packets/errors.js';
import { PacketStream, packetOptionsFor } from '../packets/packet-stream.js';
import type { TraceSource } from '../packets/trace-source.js';
import type { Image } from '../flow/image.js';
import { InsnDecoder } from '../flow/insn-decoder.js';
import { BlockDecoder, type FlowFlags } from '../flow/block-decoder.js';
import type { ByteSourceCache } from '../flow/section.js';
import type { SidebandOptionParser } from '../sources/perf-event/options.js';
import { SbEventKind, SidebandSession, type SidebandTraceEvent } from '../sources/perf-event/sideband-session.js';
import { ContextImages, sidebandEventOf } from '../flow/sideband-image-host.js';
import { loadElf } from '../flow/elf.js';
import { decodeFlow, exitStatus, type FlowCounts, type FlowPrintOptions } from './flow-decode.js';
import type { PtEvent } from '../events/event.js';
import { CliError } from './output.js';
import { FLOW_HELP, mappedSegmentLines, parseFlowArgs, openFlowContainer, streamConfig, streamHeading, type Created, type ErrorSink } from './flow-args.js';
import { parseJobs } from './jobs-option.js';
import type { TaskSwitcher } from '../flow/task-switch.js';
import { taskTitle, type StreamTask } from '../sources/model/recording.js';

export { FLOW_HELP };

const toStderr: ErrorSink = (message) => {
  process.stderr.write(`ptscope: ${message}\n`);
};

export function runFlowCommand(args: string[], out: LineWriter, errors: ErrorSink = toStderr): number | Promise<number> {
  const a = parseFlowArgs(args, out, errors);
  if (a === null) return 0;
  const { config, opts, kind, insnFlags, blockFlags, image, files, sideband, container, sysroot, trace, created, stats } = a;
  // The worker pool's modules load only for --jobs (they cost a serial run start-up time).
  if (a.jobs !== undefined && parseJobs(a.jobs) > 1) return import('./parallel/flow-pieces.js').then((m) => m.runFlowInPieces(args, a, out, errors));
  let counts: FlowCounts;
  if (container !== null) {
    if (created) throw new CliError(`${container}: give either a bundle/perf.data or --pt, not both.`);
    counts = decodeContainer(container, sysroot, config, kind, kind === 'insn' ? insnFlags : blockFlags, opts, out, errors);
  } else {
    if (!created || !trace) throw new CliError('no pt file.');
    const onEvent = sideband.active ? openSideband(sideband, image, files, a.nextIsid, out) : null;
    counts = decodeTrace(created, trace, image, opts, out, onEvent);
  }
  if (opts.stat) {
    if (stats.insn) out.line(`insn: ${counts.insn}.`);
    if (stats.blocks) out.line(`blocks:\t${counts.blocks}.`);
  }
  // Output errors (a full disk) are reported here, inside the command.
  out.flush();
  return exitStatus(counts, errors);
}

/** Decode one trace with the decoder `--pt` chose, printing as ptxed does. */
function decodeTrace(
  created: Created,
  trace: TraceSource,
  image: Image,
  opts: FlowPrintOptions,
  out: LineWriter,
  sideband: SidebandHook | null,
): FlowCounts {
  const stream = new PacketStream(trace, packetOptionsFor(created.config));
  try {
    const decoder =
      created.kind === 'insn'
        ? { kind: 'insn' as const, dec: new InsnDecoder(stream, created.config, image, created.flags) }
        : { kind: 'block' as const, dec: new BlockDecoder(stream, created.config, image, created.flags) };
    const onEvent = sideband ? sideband((img) => (decoder.dec.image = img)) : null;
    return decodeFlow(decoder, opts, out, onEvent);
  } finally {
    stream.close();
  }
}

/** Connects a sideband session to a decoder: given how to switch the image, the event hook. */
type SidebandHook = (use: (image: Image) => void) => (ev: PtEvent) => void;

function decodeContainer(
  path: string,
  sysroot: string | undefined,
  config: DecoderConfig,
  kind: 'insn' | 'block',
  flags: FlowFlags,
  opts: FlowPrintOptions,
  out: LineWriter,
  errors: ErrorSink,
): FlowCounts {
  const recording = openFlowContainer(path, sysroot);
  const total: FlowCounts = { insn: 0, blocks: 0, errors: 0 };
  try {
    // Several streams (threads, or perf.data's per-CPU queues) are decoded one
    // after the other; each section starts with its thread, `[pid/tid]` as
    // perf script prints it (or the CPU's stream label).
    for (const stream of recording.streams) {
      if (recording.streams.length > 1) out.line(streamHeading(stream));
      for (const note of stream.notes) errors(`flow: ${note}`);
      const cfg = streamConfig(stream.config, config);
      const source = stream.open();
      try {
        const counts = decodeTrace({ kind, flags: { ...flags }, config: cfg }, source, stream.image, opts, out, stream.tasks !== undefined ? followTasks(stream.tasks(), out) : null);
        total.insn += counts.insn;
        total.blocks += counts.blocks;
        total.errors += counts.errors;
      } finally {
        source.close();
      }
    }
  } finally {
    recording.close();
  }
  return total;
}

/**
 * A per-CPU stream: decode each task's run with its process's image, and
 * head it with its thread, `[pid/tid] comm`, where the task changes.
 */
function followTasks(tracker: TaskSwitcher<StreamTask>, out: LineWriter): SidebandHook {
  return (use) => {
    const enter = (task: StreamTask): void => {
      use(task.image);
      out.line(taskTitle(task));
    };
    const first = tracker.start();
    if (first !== null) enter(first);
    return (ev) => {
      const task = tracker.onEvent(ev);
      if (task !== null) enter(task);
    };
  };
}

/**
 * The perf_event sideband session (ptxed's `--pevent:*`): the `--raw` image
 * becomes the kernel image, processes get their own images, and context
 * switches change the image the decoder uses.
 */
function openSideband(
  parser: SidebandOptionParser,
  kernel: Image,
  files: ByteSourceCache,
  nextIsid: () => number,
  out: LineWriter,
): SidebandHook {
  const config = parser.config;
  for (const k of config.kcore) {
    try {
      const elf = loadElf(kernel, files, k.filename, k.base ?? 0);
      if (k.verbose) for (const line of mappedSegmentLines(k.filename, elf)) out.line(line);
      for (const w of elf.warnings) out.line(`[${w}]`);
    } catch (e) {
      if (e instanceof PtError) throw new CliError(`--pevent:kcore: failed to load ${k.filename}: ${e.message}.`);
      throw e;
    }
  }
  return (use) => {
    const host = new ContextImages(kernel, files, nextIsid, use);
    let partial = '';
    const sink = {
      write(text: string): void {
        const parts = (partial + text).split('\n');
        partial = parts.pop()!;
        for (const line of parts) out.line(line);
      },
    };
    let session: SidebandSession;
    try {
      session = SidebandSession.create(config, { out: sink, host });
    } catch (e) {
      if (e instanceof PtError) throw new CliError(e.message);
      throw e;
    }
    const sbEvent: SidebandTraceEvent = { kind: SbEventKind.Other, tsc: 0n, ip: 0n, ipSuppressed: true, at: 0n };
    // Sideband records due by now are printed and applied after each event.
    return (ev) => session.onEvent(sidebandEventOf(ev, sbEvent));
  };
}
