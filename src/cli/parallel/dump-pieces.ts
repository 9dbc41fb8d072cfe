/**
 * `dump --jobs N`: ptdump's packet lines (dump.ts) decoded in pieces cut at
 * PSBs on a worker pool and printed in order (line-pieces.ts): the same
 * lines, errors and resyncs at the same offsets, and the same exit status
 * as the serial dump. A piece's records carry the last-IP state (what
 * --lastip prints), so a hand-over is where both decodes stand at the same
 * packet with the same state: from there they print the same.
 */
import { ErrorCode, errorName } from '../../packets/errors.js';
import { Packet } from '../../packets/packet.js';
import { PacketStream } from '../../packets/packet-stream.js';
import type { PacketDecoderOptions } from '../../packets/decoder.js';
import { BufferSource, type TraceSource } from '../../packets/trace-source.js';
import type { SegmentRange } from '../../flow/parallel/psb-split.js';
import { PIECE_DONE, ZonedLines, type LineSink, type PieceEnd } from '../../flow/parallel/zoned-lines.js';
import { diagLine, PtdumpFormatter } from '../../reports/ptdump-format.js';
import { packetToJson } from '../../reports/packet-json.js';
import { configFromOptions } from '../dump-tracking.js';
import { openDumpSource, parseDumpArgs, type DumpErrorSink, type DumpOptions } from '../dump.js';
import { parseJobs } from '../jobs-option.js';
import { CliError, type LineWriter } from '../output.js';
import { createProgress } from '../progress.js';
import { LinePool, planPieces, printPieces, sourcePsbOffsets, streamRunner, taskPiece, type LineTask, type PieceTuning } from './line-pieces.js';
import { newCredit } from './text-credit.js';
import { PieceBytes } from '../../flow/parallel/piece-bytes.js';

/** Bytes of text the pieces decoded ahead may hold, per worker beyond the first. */
const HELD_TEXT_PER_WORKER = 48 << 20;

/** Record tags beyond packet types. */
const ERROR_TAG = 1000;
const END_TAG = 1001;

/**
 * Decode `range` (`trace` holds the bytes from trace offset `origin`),
 * reading on to `limit` for the overlap; its text goes to `sink` as it
 * decodes, without the lines before `skip`.
 */
export function dumpPiece(opts: DumpOptions, decoderOptions: PacketDecoderOptions, trace: Uint8Array, origin: number, range: SegmentRange, limit: number, skip: number, sink: LineSink): PieceEnd {
  const end = Math.max(range.to, Math.min(limit, origin + trace.length));
  const base = range.from;
  const lines = new ZonedLines(range, end > range.to, sink, skip);
  const stream = new PacketStream(new BufferSource(trace.subarray(range.from - origin, end - origin)), { ...decoderOptions, pebs: opts.pebs });
  const formatter = new PtdumpFormatter(opts);
  const ip = formatter.lastIp;
  const pkt = new Packet();
  let packets = 0;
  let errors = 0;
  /** Where the trace ends inside a packet, plus one (0: it does not). */
  let truncated = 0;
  const record = (tag: number, offset: number): void =>
    lines.record(tag < ERROR_TAG, tag, ip.haveIp ? 1 : 0, offset, packets, errors, truncated, ip.hi, ip.lo);
  try {
    // The first piece starts as the serial dump does; the others at their PSB.
    let err = opts.noSync && range.from === 0 ? stream.syncSet(0) : stream.syncForward();
    if (err < 0) {
      if (err !== -ErrorCode.Eos) lines.line(diagLine('sync error', 0, err));
      record(END_TAG, base);
      return lines.finish();
    }
    for (;;) {
      for (;;) {
        err = stream.next(pkt);
        if (err < 0) break;
        pkt.offset += base;
        packets++;
        if (opts.json) {
          if (!opts.quiet) lines.line(JSON.stringify(packetToJson(pkt)));
        } else {
          formatter.describe(pkt, opts.showRawBytes ? stream.bytes : null, stream.bytesOffset + base);
          for (const d of formatter.diags) lines.line(d);
          formatter.diags.length = 0;
          if (!formatter.line.skip && !opts.quiet) lines.line(formatter.render(formatter.line));
        }
        record(pkt.type, pkt.offset);
      }
      if (err === -ErrorCode.Eos) {
        if (stream.offset < stream.size) truncated = stream.offset + base + 1;
        record(END_TAG, stream.offset + base);
        break;
      }
      errors++;
      const at = stream.offset + base;
      if (opts.json) lines.line(JSON.stringify({ error: errorName(err), offset: at }));
      else lines.line(diagLine('error decoding packet', at, err));
      err = stream.syncForward();
      if (err < 0) {
        if (err !== -ErrorCode.Eos) lines.line(diagLine('sync error', 0, err));
        record(END_TAG, at);
        break;
      }
      formatter.reset();
      record(ERROR_TAG, at);
    }
  } catch (e) {
    if (e !== PIECE_DONE) throw e;
  } finally {
    stream.close();
  }
  return lines.finish();
}

function decoderOptionsOf(opts: DumpOptions): PacketDecoderOptions {
  const { config } = configFromOptions({ cpu: opts.cpu, ...opts.track });
  return { skd007: config.errata.skd007, skz84: config.errata.skz84 };
}

const pieceBytes = new PieceBytes();

/** The worker side: the options rebuilt from dump's argv and the trace file its pieces are read from, once per worker. */
let opened: { key: string; opts: DumpOptions; source: TraceSource } | null = null;

export function dumpPieceTask(task: LineTask, sink: LineSink): PieceEnd {
  const key = JSON.stringify(task.argv);
  if (opened === null || opened.key !== key) {
    opened?.source.close();
    opened = null;
    const opts = parseDumpArgs(task.argv)!;
    opened = { key, opts, source: openDumpSource(opts.file).source };
  }
  const { opts, source } = opened;
  // Only the bytes this piece reads, from the file itself (piece-bytes.ts).
  const { bytes, end } = taskPiece(source, task, pieceBytes);
  return dumpPiece(opts, decoderOptionsOf(opts), bytes, task.range.from, task.range, end, task.text!.skip, sink);
}

/**
 * `dump --jobs N` (N > 1), for a trace file. Refused, in one line, where
 * a line depends on the whole trace before it (time tracking, the
 * sideband), for a pipe (read once, as a stream) and with --stat.
 */
export async function runDumpInPieces(
  argv: string[],
  opts: DumpOptions,
  preamble: readonly string[],
  out: LineWriter,
  errors: DumpErrorSink,
  tuning: PieceTuning = {},
): Promise<number> {
  const workers = parseJobs(opts.jobs);
  if (opts.track.time || opts.track.tcal || opts.sideband.active) throw new CliError('--jobs: --time, --tcal and --pevent follow the time over the whole trace; dump it without --jobs.');
  if (opts.stat) throw new CliError('--jobs: --stat only counts packets; run it without --jobs.');
  const { source, path } = openDumpSource(opts.file);
  let c;
  // The pool starts (its workers load their modules) while this thread scans the trace for PSBs.
  let pool: LinePool | null = null;
  try {
    if (!Number.isFinite(source.size) || opts.file === '-') throw new CliError(`dump: --jobs needs a trace file, not a pipe: ${path}`);
    if (source.size === 0) throw new CliError(`dump: ${path} is empty: not an Intel PT trace`);
    const size = source.size;
    pool = tuning.inThread ? null : new LinePool(workers, 'dump');
    const decoderOptions = decoderOptionsOf(opts);
    // Planned from a scan through a window; each worker reads its own pieces: the trace is never held whole.
    const psbs = sourcePsbOffsets(source, decoderOptions.skd007 === true);
    // As the serial dump: a trace without a PSB is an input error.
    if (!opts.noSync && psbs.length === 0) throw new CliError(`dump: no PSB found in ${path} (0x${size.toString(16)} bytes): not an Intel PT trace`);
    const groups = planPieces(psbs, size, workers, 1 << 20, tuning.plan);
    for (const line of preamble) out.line(line);
    const credit = newCredit(tuning.heldText ?? HELD_TEXT_PER_WORKER * Math.max(1, workers - 1));
    const run = streamRunner(pool, { command: 'dump', argv, stream: 0, credit }, source, (bytes, range, end, skip, sink) => dumpPiece(opts, decoderOptions, bytes, range.from, range, end, skip, sink));
    const limits = { inFlight: 2 * workers, credit: pool === null ? null : credit, onJoin: tuning.onJoin, refuse: tuning.refuse };
    c = await printPieces(groups, size, run, limits, out, createProgress('dump', size, opts.json || opts.quiet));
  } finally {
    source.close();
    await pool?.close();
  }
  out.flush();
  // The counts: packets, decode errors, and where a packet is cut by the end (plus one).
  if (c.errors > 0) errors(`dump: ${path}: trace ends inside a packet at offset 0x${(c.errors - 1).toString(16)}`);
  return c.transfers > 0 || c.errors > 0 ? 1 : 0;
}
