/**
 * `flow --jobs N`: ptxed's output (flow-decode.ts) decoded in pieces cut at
 * PSBs, on a worker pool, and printed in order (line-pieces.ts): the same
 * lines, counts and exit status as the serial decode, for a `--pt` trace
 * and for every stream of a bundle or perf.data.
 */
import { PacketStream, packetOptionsFor } from '../../packets/packet-stream.js';
import { BufferSource, type TraceSource } from '../../packets/trace-source.js';
import type { DecoderConfig } from '../../packets/config.js';
import { BlockDecoder, type FlowFlags } from '../../flow/block-decoder.js';
import type { Image } from '../../flow/image.js';
import { InsnDecoder } from '../../flow/insn-decoder.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import { PIECE_DONE, ZonedLines, type LineSink, type PieceEnd } from '../../flow/parallel/zoned-lines.js';
import type { Recording } from '../../sources/model/recording.js';
import { openFlowContainer, parseFlowArgs, streamConfig, streamHeading, type ErrorSink, type FlowArgs } from '../flow-args.js';
import { decodeFlow, exitStatus, FlowStepKind, type FlowCounts, type FlowPrintOptions } from '../flow-decode.js';
import { parseJobs } from '../jobs-option.js';
import { CliError, LineWriter } from '../output.js';
import { createProgress } from '../progress.js';
import { LinePool, planPieces, printPieces, sourcePsbOffsets, streamRunner, taskPiece, type LineTask, type PieceTuning } from './line-pieces.js';
import { newCredit } from './text-credit.js';
import { PieceBytes } from '../../flow/parallel/piece-bytes.js';

/** Trace bytes per piece at most: ptxed prints some hundred bytes of text per byte of trace. */
const MAX_PIECE_BYTES = 128 << 10;

/**
 * With --quiet a piece prints almost nothing (errors only), so its size is
 * bounded by the cost of starting a piece instead: as large as analyze's.
 */
const MAX_QUIET_PIECE_BYTES = 8 << 20;

/**
 * Bytes of text the pieces decoded ahead may hold, per worker beyond the
 * first: about one piece's text each, so that a worker rarely waits.
 */
const HELD_TEXT_PER_WORKER = 48 << 20;

/** What one stream is decoded with. */
interface FlowTarget {
  kind: 'insn' | 'block';
  flags: FlowFlags;
  config: DecoderConfig;
  image: Image;
  opts: FlowPrintOptions;
}

/** The lines a piece prints go to its {@link ZonedLines}. */
class PieceWriter extends LineWriter {
  constructor(private readonly to: ZonedLines) {
    super(null);
  }

  override line(text: string): void {
    this.to.line(text);
  }
}

/**
 * Decode `range` of a stream (`trace` holds its bytes from trace offset
 * `origin`), reading on to `limit` for the overlap; its text goes to
 * `sink` as it decodes, without the lines before `skip`.
 */
export function flowPiece(t: FlowTarget, trace: Uint8Array, origin: number, range: SegmentRange, limit: number, skip: number, sink: LineSink): PieceEnd {
  const end = Math.max(range.to, Math.min(limit, origin + trace.length));
  const lines = new ZonedLines(range, end > range.to, sink, skip);
  const stream = new PacketStream(new BufferSource(trace.subarray(range.from - origin, end - origin)), packetOptionsFor(t.config));
  const decoder =
    t.kind === 'insn'
      ? { kind: 'insn' as const, dec: new InsnDecoder(stream, t.config, t.image, { ...t.flags }) }
      : { kind: 'block' as const, dec: new BlockDecoder(stream, t.config, t.image, { ...t.flags }) };
  decoder.dec.traceOrigin = range.from;
  try {
    const c = decodeFlow(decoder, t.opts, new PieceWriter(lines), null, {
      base: range.from,
      record: (kind, ip, offset, c) => {
        // Deep in the body, where the packet stream has read to (at or past the step's offset) settles the zone.
        if (!lines.bodyStep(stream.offset + range.from, c.insn, c.blocks, c.errors)) lines.record(kind === FlowStepKind.Step, kind, ip, offset(), c.insn, c.blocks, c.errors);
      },
      // Only under --quiet can an instruction step print nothing: with text, every step is recorded.
      unrecorded: t.opts.quiet ? () => lines.quietBodyStep(stream.offset + range.from) : undefined,
    });
    lines.settle(c.insn, c.blocks, c.errors);
  } catch (e) {
    if (e !== PIECE_DONE) throw e;
  } finally {
    stream.close();
  }
  return lines.finish();
}

/** The target of stream `index`: the `--pt` trace (0), or a stream of the recording. */
function targetOf(a: FlowArgs, recording: Recording | null, index: number): FlowTarget {
  const flags = a.kind === 'insn' ? a.insnFlags : a.blockFlags;
  if (recording === null) {
    const c = a.created!;
    return { kind: c.kind, flags: c.flags, config: c.config, image: a.image, opts: a.opts };
  }
  const stream = recording.streams.find((s) => s.index === index);
  if (stream === undefined) throw new Error(`${recording.name}: no trace stream ${index}`);
  return { kind: a.kind, flags, config: streamConfig(stream.config, a.config), image: stream.image, opts: a.opts };
}

/** The bytes of the piece being decoded (piece-bytes.ts). */
const pieceBytes = new PieceBytes();

/** The worker side: the setup rebuilt from flow's argv, once per worker, and the trace sources it reads its pieces from. */
let opened: { key: string; args: FlowArgs; recording: Recording | null; sources: Map<number, TraceSource> } | null = null;

function closeOpened(): void {
  if (opened === null) return;
  for (const source of opened.sources.values()) source.close();
  opened.args.trace?.close();
  opened.recording?.close();
  opened = null;
}

/** Stream `index`'s source in this worker: the `--pt` file (0), or a stream of the recording, opened once. */
function sourceOf(o: NonNullable<typeof opened>, index: number): TraceSource {
  if (o.recording === null) return o.args.trace!;
  let source = o.sources.get(index);
  if (source === undefined) {
    const stream = o.recording.streams.find((s) => s.index === index);
    if (stream === undefined) throw new Error(`${o.recording.name}: no trace stream ${index}`);
    o.sources.set(index, (source = stream.open()));
  }
  return source;
}

export function flowPieceTask(task: LineTask, sink: LineSink): PieceEnd {
  const key = JSON.stringify(task.argv);
  if (opened === null || opened.key !== key) {
    closeOpened();
    const args = parseFlowArgs(task.argv, new LineWriter(null), () => {})!;
    opened = { key, args, recording: args.container === null ? null : openFlowContainer(args.container, args.sysroot), sources: new Map() };
  }
  // Only the bytes this piece reads, from the file itself.
  const { bytes, end } = taskPiece(sourceOf(opened, task.stream), task, pieceBytes);
  return flowPiece(targetOf(opened.args, opened.recording, task.stream), bytes, task.range.from, task.range, end, task.text!.skip, sink);
}

/**
 * `flow --jobs N` (N > 1). Refused, in one line, where the output depends
 * on the whole trace before each piece: the perf_event sideband (images
 * switched in trace order), the block decoder's blocks and the decoder's
 * read offsets (--offset, --check).
 */
export async function runFlowInPieces(argv: string[], a: FlowArgs, out: LineWriter, errors: ErrorSink, tuning: PieceTuning = {}): Promise<number> {
  if (a.sideband.active) throw new CliError('--jobs: the perf_event sideband (--pevent) is applied in trace order; decode it without --jobs.');
  // The offset printed is where the decoder has read to, and its read-ahead after a PSB it
  // synchronised at can differ from the serial decoder's long after the pieces agree.
  if (a.opts.fmt.offset || a.opts.check) throw new CliError('--jobs: --offset and --check print the decoder\'s read position, which depends on where decoding started; decode without --jobs.');
  // Where the block decoder ends a block depends on its history (a block also ends where an
  // event was pending, as at a PSB+ it passed): a piece splits blocks otherwise for a while.
  if (a.kind === 'block' || (a.created?.kind ?? 'insn') === 'block') throw new CliError('--jobs: the block decoder\'s blocks depend on where decoding started; use the instruction decoder (the default) or decode without --jobs.');
  const workers = parseJobs(a.jobs);
  if (a.container !== null && a.created) throw new CliError(`${a.container}: give either a bundle/perf.data or --pt, not both.`);
  if (a.container === null && (!a.created || !a.trace)) throw new CliError('no pt file.');
  // The pool starts (its workers load their modules) while this thread opens the recording.
  const pool = tuning.inThread ? null : new LinePool(workers, 'flow');
  let recording: Recording | null = null;
  const counts: FlowCounts = { insn: 0, blocks: 0, errors: 0 };
  try {
    recording = a.container === null ? null : openFlowContainer(a.container, a.sysroot);
    if (recording !== null && recording.streams.some((s) => s.tasks !== undefined)) {
      throw new CliError(`--jobs: ${a.container} has per-CPU streams, whose image changes at each context switch; decode it without --jobs.`);
    }
    const streams = recording === null ? [{ index: 0, source: a.trace! }] : recording.streams.map((s) => ({ index: s.index, source: s.open(), stream: s }));
    for (const s of streams) {
      if ('stream' in s && s.stream !== undefined) {
        if (recording!.streams.length > 1) out.line(streamHeading(s.stream));
        for (const note of s.stream.notes) errors(`flow: ${note}`);
      }
      const target = targetOf(a, recording, s.index);
      const size = s.source.size;
      let c;
      try {
        // Planned from a scan through a window; each worker reads its own pieces: the trace is never held whole.
        const psbs = sourcePsbOffsets(s.source, target.config.errata.skd007);
        const credit = newCredit(tuning.heldText ?? HELD_TEXT_PER_WORKER * Math.max(1, workers - 1));
        const run = streamRunner(pool, { command: 'flow', argv, stream: s.index, credit }, s.source, (bytes, range, end, skip, sink) => flowPiece(target, bytes, range.from, range, end, skip, sink));
        const groups = planPieces(psbs, size, workers, target.opts.quiet ? MAX_QUIET_PIECE_BYTES : MAX_PIECE_BYTES, tuning.plan, target.opts.quiet);
        const limits = { inFlight: 2 * workers, credit: pool === null ? null : credit, onJoin: tuning.onJoin, refuse: tuning.refuse };
        c = await printPieces(groups, size, run, limits, out, createProgress('flow', size, a.opts.json));
      } finally {
        s.source.close();
      }
      counts.insn += c.instructions;
      counts.blocks += c.transfers;
      counts.errors += c.errors;
    }
  } finally {
    recording?.close();
    await pool?.close();
  }
  if (a.opts.stat) {
    if (a.stats.insn) out.line(`insn: ${counts.insn}.`);
    if (a.stats.blocks) out.line(`blocks:\t${counts.blocks}.`);
  }
  out.flush();
  return exitStatus(counts, errors);
}
