/**
 * The zoned walk (zoned-walk.ts) for commands that print text while they
 * decode (`flow`'s ptxed lines, `dump`'s packets): the piece hands on every
 * line it printed, in runs as it goes, and a record per step in the layout of flow-log.ts for
 * the steps of its head and tail zones (piece-zones.ts) only, so that the
 * hand-over to the next piece is found by the same rule (handOver): the
 * first step from which the rest of this piece's overlap equals the next
 * piece's decode, step for step. A record's fields: the step's tag and
 * address, a hash and count of the lines it printed, two words of state
 * the command names, its trace offset;
 * its running counts: three of the command's own, then the lines printed
 * before it (where its text starts).
 */
import type { FlowStats } from '../control-flow.js';
import { grow, withRoom } from '../grow.js';
import { COUNTS, LogTag, MAX_RECORDS, STRIDE } from './flow-log.js';
import { countsAt, handOver } from './zoned-stitch.js';
import { OVERLAP_BYTES, OVERLAP_TRANSFERS } from './piece-walk.js';
import { PieceZones, Zone } from './piece-zones.js';
import type { SegmentRange } from './psb-split.js';

/** Thrown from {@link ZonedLines.record} when a piece has decoded its overlap; caught by the piece's runner. */
export const PIECE_DONE = new Error('piece done');

/**
 * Consecutive lines of a piece, numbered from its start: lines
 * [firstLine, firstLine + starts.length - 1), each ended by a newline, as
 * UTF-8 in one buffer (cheap to transfer from a worker and to write, where
 * millions of strings kept alive would cost the garbage collector more
 * than the decode); `starts` says where each begins in `text`, and its end.
 */
export interface LineRun {
  firstLine: number;
  starts: Uint32Array;
  text: Uint8Array;
}

/** A piece's head: its records and their lines, sent when its body starts. */
export interface PieceHead {
  log: Float64Array;
  lines: LineRun;
}

/**
 * What a piece gives at its end: its tail's records and lines, or, for a
 * piece with no body (`whole`), every record and line (no head was sent).
 */
export interface PieceEnd extends SegmentRange {
  whole: boolean;
  log: Float64Array;
  lines: LineRun;
  /** The counts at the end. */
  counts: [number, number, number];
}

/**
 * Where a piece's text goes while it decodes: the head once the body
 * starts, then the body in runs of about {@link CHUNK_BYTES} (the sink may
 * hold the decode there until the text before it has been written).
 */
export interface LineSink {
  head(h: PieceHead): void;
  body(lines: LineRun): void;
}

/** Bytes of text per body run. */
export const CHUNK_BYTES = 1 << 20;

/** FNV-1a over the lines. */
function hashLines(lines: readonly string[]): number {
  let h = 0x811c9dc5;
  for (const s of lines) {
    for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
    h = Math.imul(h ^ 10, 0x01000193);
  }
  return h >>> 0;
}

const encoder = new TextEncoder();

/**
 * Collects one piece's lines and zoned records, and hands its text on in
 * runs (the head, body runs, then the end), so that no piece's whole text
 * is held. Lines before `skip` (written already from an earlier decode
 * with the same start) are counted, not kept.
 */
export class ZonedLines {
  /** Lines printed since the last record (hashed when the record is kept). */
  private readonly pending: string[] = [];
  private text = new Uint8Array(1 << 16);
  private used = 0;
  private starts = new Uint32Array(1 << 12);
  /** Lines in the current run, and the number of its first. */
  private runLines = 0;
  private runFirst: number;
  /** Lines printed so far (the piece's line numbers). */
  private lineCount = 0;
  private data = new Float64Array(STRIDE * 1024);
  private length = 0;
  private readonly zones: PieceZones;
  private zone = Zone.Head;
  private headSent = false;
  private readonly counts: [number, number, number] = [0, 0, 0];
  private readonly past: number;
  private after = 0;

  /** `overlap`: the piece is not the trace's last, so it decodes on past its end and stops there. */
  constructor(
    private readonly range: SegmentRange,
    private readonly overlap: boolean,
    private readonly sink: LineSink,
    private readonly skip = 0,
  ) {
    this.zones = new PieceZones(range.from, range.to);
    this.past = range.to + OVERLAP_BYTES;
    this.runFirst = skip;
  }

  line(text: string): void {
    this.pending.push(text);
  }

  /** Move the pending lines into the current run. */
  private keepPending(): void {
    // Most steps print nothing under --quiet, or nothing yet: setting an array's length costs even when it is 0.
    if (this.pending.length === 0) return;
    for (const l of this.pending) {
      if (this.lineCount++ < this.skip) continue;
      if (this.used + 3 * l.length + 1 > this.text.length) {
        this.text = grow(this.text.subarray(0, this.used), new Uint8Array(Math.max(this.text.length * 2, this.used + 3 * l.length + 1)));
      }
      if (this.runLines + 2 > this.starts.length) this.starts = grow(this.starts, new Uint32Array(this.starts.length * 2));
      this.starts[this.runLines++] = this.used;
      this.used += encoder.encodeInto(l, this.text.subarray(this.used)).written;
      this.text[this.used++] = 10;
    }
    this.pending.length = 0;
  }

  /** The current run, handed on; the next starts empty. */
  private takeRun(): LineRun {
    this.starts[this.runLines] = this.used;
    const run: LineRun = { firstLine: this.runFirst, starts: this.starts.slice(0, this.runLines + 1), text: this.text.slice(0, this.used) };
    this.used = 0;
    this.runLines = 0;
    this.runFirst = Math.max(this.lineCount, this.skip);
    return run;
  }

  /** One step, after it printed its lines; `isStep`: an instruction, block or packet (what the zones count as transfers). */
  /** `state1`, `state2`: decoder state the step leaves that later lines depend on (compared at the hand-over). */
  record(isStep: boolean, tag: number, address: number, offset: number, c0: number, c1: number, c2: number, state1 = 0, state2 = 0): void {
    const zone = this.zones.next(offset, isStep);
    if (zone !== this.zone) {
      // The lines before this record end their zone's text.
      if (this.zone === Zone.Head && zone === Zone.Body) {
        this.sink.head({ log: this.data.slice(0, this.length * STRIDE), lines: this.takeRun() });
        this.headSent = true;
        this.length = 0;
      } else if (this.zone === Zone.Body) {
        this.sink.body(this.takeRun());
      }
      this.zone = zone;
    }
    const linesBefore = this.lineCount;
    if (zone !== Zone.Body) {
      if (this.length === MAX_RECORDS) throw new Error(`a trace piece gave more than ${MAX_RECORDS} kept records: cut the trace into smaller groups`);
      const at = this.length++ * STRIDE;
      this.data = withRoom(this.data, at + STRIDE);
      const e = this.data;
      e[at] = isStep ? LogTag.Transfer : LogTag.Event;
      e[at + 1] = tag;
      e[at + 2] = address;
      e[at + 3] = hashLines(this.pending);
      e[at + 4] = this.pending.length;
      e[at + 5] = state1;
      e[at + 6] = state2;
      e[at + 7] = offset;
      e[at + COUNTS] = c0;
      e[at + COUNTS + 1] = c1;
      e[at + COUNTS + 2] = c2;
      e[at + COUNTS + 3] = linesBefore;
    }
    this.keepPending();
    this.settle(c0, c1, c2);
    if (zone === Zone.Body && this.used >= CHUNK_BYTES) this.sink.body(this.takeRun());
    if (this.overlap && isStep && offset > this.past && ++this.after >= OVERLAP_TRANSFERS) throw PIECE_DONE;
  }

  /**
   * A step known to be in the body without its exact offset (`bound`, at
   * or past it, is before the piece's end; zones.stillBody): what
   * {@link record} does there, without the offset. False: call record.
   */
  bodyStep(bound: number, c0: number, c1: number, c2: number): boolean {
    if (this.zone !== Zone.Body || !this.zones.stillBody(bound)) return false;
    this.keepPending();
    this.settle(c0, c1, c2);
    if (this.used >= CHUNK_BYTES) this.sink.body(this.takeRun());
    return true;
  }

  /**
   * A step at or before `bound` (zones.stillBody) that printed nothing,
   * deep in the body: it needs no record, not even the counts' (the
   * record or {@link settle} after it sets them).
   */
  quietBodyStep(bound: number): boolean {
    return this.zone === Zone.Body && this.pending.length === 0 && bound < this.range.to;
  }

  /** The counts after a step: at each record, and at the end of a decode whose last steps went unrecorded ({@link quietBodyStep}). */
  settle(c0: number, c1: number, c2: number): void {
    this.counts[0] = c0;
    this.counts[1] = c1;
    this.counts[2] = c2;
  }

  /** The end: the tail's records and lines (every record and line when the piece had no body). */
  finish(): PieceEnd {
    this.keepPending();
    if (this.zone === Zone.Body) this.sink.body(this.takeRun());
    return {
      ...this.range,
      whole: !this.headSent,
      log: this.data.slice(0, this.length * STRIDE),
      lines: this.takeRun(),
      counts: [...this.counts],
    };
  }
}

/** Where a piece's part of the serial output starts: its hand-in record (in its head) and the counts there. */
export interface HandIn {
  record: number;
  line: number;
  counts: FlowStats;
}

export const FIRST_HAND_IN: HandIn = { record: 0, line: 0, counts: { instructions: 0, transfers: 0, errors: 0, gaps: 0 } };

/** The records and lines a hand-over into a piece lands in: its head, or all of it when it had no body (null: not decoded yet). */
export function headOf(head: PieceHead | null, end: PieceEnd | null): PieceHead | null {
  if (head !== null) return head;
  return end !== null && end.whole ? { log: end.log, lines: end.lines } : null;
}

/** The line after a run's last. */
export function runEnd(run: LineRun): number {
  return run.firstLine + run.starts.length - 1;
}

/** The bytes of the lines of [from, to) that `run` holds (empty when none). */
export function runBytes(run: LineRun, from: number, to: number): Uint8Array {
  const a = Math.max(from, run.firstLine);
  const b = Math.min(to, runEnd(run));
  if (b <= a) return run.text.subarray(0, 0);
  return run.text.subarray(run.starts[a - run.firstLine]!, run.starts[b - run.firstLine]!);
}

/**
 * The hand-over from a piece (entered at `aIn`, ended with `aEnd`) to the
 * next, whose head is `b` and first byte `bFrom`: the line of the first
 * piece where its part of the serial output ends, the counts it adds, and
 * where the next takes over; null when there is none (decode the two as
 * one). Beyond handOver's record rule, the lines themselves must be equal.
 */
export function handOverLines(aEnd: PieceEnd, aIn: HandIn, b: PieceHead, bFrom: number): { line: number; counts: FlowStats; next: HandIn } | null {
  const at = handOver(aEnd.log, aEnd.whole ? aIn.record : 0, b.log, bFrom);
  if (at === null) return null;
  const [i, j] = at;
  const aLine = aEnd.log[i + COUNTS + 3]!;
  const bLine = b.log[j + COUNTS + 3]!;
  const n = runEnd(aEnd.lines) - aLine;
  // Lines that neither run holds (printed after a piece's last record) cannot be compared.
  if (aLine < aEnd.lines.firstLine || bLine < b.lines.firstLine || bLine + n > runEnd(b.lines)) return null;
  if (!sameBytes(runBytes(aEnd.lines, aLine, aLine + n), runBytes(b.lines, bLine, bLine + n))) return null;
  return {
    line: aLine,
    counts: difference(countsAt(aEnd.log, i), aIn.counts),
    next: { record: j, line: bLine, counts: countsAt(b.log, j) },
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The counts the last piece adds after its hand-in. */
export function lastPieceCounts(p: PieceEnd, pIn: HandIn): FlowStats {
  const c = p.counts;
  return difference({ instructions: c[0], transfers: c[1], errors: c[2], gaps: 0 }, pIn.counts);
}

function difference(a: FlowStats, b: FlowStats): FlowStats {
  return { instructions: a.instructions - b.instructions, transfers: a.transfers - b.transfers, errors: a.errors - b.errors, gaps: 0 };
}
