/**
 * The zoned walk (zoned-walk.ts) for commands that print text while they
 * decode (`flow`'s ptxed lines, `dump`'s packets): the piece keeps every
 * line it printed, and a record per step in the layout of flow-log.ts for
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
import { COUNTS, LogTag, MAX_RECORDS, STRIDE } from './flow-log.js';
import { countsAt, handOver } from './zoned-stitch.js';
import { OVERLAP_BYTES, OVERLAP_TRANSFERS } from './piece-walk.js';
import { PieceZones, Zone } from './piece-zones.js';
import type { SegmentRange } from './psb-split.js';

/** Thrown from {@link ZonedLines.record} when a piece has decoded its overlap; caught by the piece's runner. */
export const PIECE_DONE = new Error('piece done');

/** What a text piece gives (structured-clonable). */
export interface LinePiece extends SegmentRange {
  /**
   * Every line printed, from the piece's start to the end of its overlap,
   * each ended by a newline, as UTF-8: one buffer, cheap to send from a
   * worker and to print, where millions of strings kept alive would cost
   * the garbage collector more than the decode.
   */
  text: Uint8Array;
  /** Where each line starts in `text`, and its end. */
  lineStarts: Float64Array;
  /** The head's records, then the tail's; every record when the piece had no body. */
  log: Float64Array;
  headRecords: number;
  bodyRecords: number;
  /** The counts at the end. */
  counts: [number, number, number];
}

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

/** Collects one piece's lines and zoned records. */
export class ZonedLines {
  /** Lines printed since the last record (hashed when the record is kept). */
  private readonly pending: string[] = [];
  private text = new Uint8Array(1 << 20);
  private used = 0;
  private lineStarts = new Float64Array(1 << 14);
  private lineCount = 0;
  private data = new Float64Array(STRIDE * 1024);
  private length = 0;
  private readonly zones: PieceZones;
  private readonly counts: [number, number, number] = [0, 0, 0];
  private readonly past: number;
  private after = 0;

  /** `overlap`: the piece is not the trace's last, so it decodes on past its end and stops there. */
  constructor(
    private readonly range: SegmentRange,
    private readonly overlap: boolean,
  ) {
    this.zones = new PieceZones(range.from, range.to);
    this.past = range.to + OVERLAP_BYTES;
  }

  line(text: string): void {
    this.pending.push(text);
  }

  /** Move the pending lines into the text. */
  private keepPending(): void {
    for (const l of this.pending) {
      if (this.used + 3 * l.length + 1 > this.text.length) {
        const grown = new Uint8Array(Math.max(this.text.length * 2, this.used + 3 * l.length + 1));
        grown.set(this.text.subarray(0, this.used));
        this.text = grown;
      }
      if (this.lineCount + 2 > this.lineStarts.length) {
        const grown = new Float64Array(this.lineStarts.length * 2);
        grown.set(this.lineStarts);
        this.lineStarts = grown;
      }
      this.lineStarts[this.lineCount++] = this.used;
      this.used += encoder.encodeInto(l, this.text.subarray(this.used)).written;
      this.text[this.used++] = 10;
    }
    this.pending.length = 0;
  }

  /** One step, after it printed its lines; `isStep`: an instruction, block or packet (what the zones count as transfers). */
  /** `state1`, `state2`: decoder state the step leaves that later lines depend on (compared at the hand-over). */
  record(isStep: boolean, tag: number, address: number, offset: number, c0: number, c1: number, c2: number, state1 = 0, state2 = 0): void {
    const zone = this.zones.next(offset, isStep);
    const linesBefore = this.lineCount;
    if (zone !== Zone.Body) {
      if (this.length === MAX_RECORDS) throw new Error(`a trace piece gave more than ${MAX_RECORDS} kept records: cut the trace into smaller groups`);
      const at = this.length++ * STRIDE;
      if (at + STRIDE > this.data.length) {
        const grown = new Float64Array(this.data.length * 2);
        grown.set(this.data);
        this.data = grown;
      }
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
    this.counts[0] = c0;
    this.counts[1] = c1;
    this.counts[2] = c2;
    if (this.overlap && isStep && offset > this.past && ++this.after >= OVERLAP_TRANSFERS) throw PIECE_DONE;
  }

  finish(): LinePiece {
    this.keepPending();
    this.lineStarts[this.lineCount] = this.used;
    return {
      ...this.range,
      text: this.text.slice(0, this.used),
      lineStarts: this.lineStarts.slice(0, this.lineCount + 1),
      log: this.data.slice(0, this.length * STRIDE),
      headRecords: this.zones.headRecords,
      bodyRecords: this.zones.bodyRecords,
      counts: [...this.counts],
    };
  }
}

function parts(p: LinePiece): { whole: boolean; head: Float64Array; tail: Float64Array } {
  if (p.bodyRecords === 0) return { whole: true, head: p.log, tail: p.log };
  const h = p.headRecords * STRIDE;
  return { whole: false, head: p.log.subarray(0, h), tail: p.log.subarray(h) };
}

/** Where a piece's part of the serial output starts: its hand-in record (in its head) and the counts there. */
export interface HandIn {
  record: number;
  line: number;
  counts: FlowStats;
}

export const FIRST_HAND_IN: HandIn = { record: 0, line: 0, counts: { instructions: 0, transfers: 0, errors: 0, gaps: 0 } };

/**
 * The hand-over from `a` (entered at `aIn`) to the next piece `b`: the
 * lines of `a` that are the serial output's, the counts `a` adds, and
 * where `b` takes over; null when there is none (decode the two as one).
 * Beyond handOver's record rule, the lines themselves must be equal.
 */
export function handOverLines(a: LinePiece, aIn: HandIn, b: LinePiece): { lines: [number, number]; counts: FlowStats; next: HandIn } | null {
  const pa = parts(a);
  const pb = parts(b);
  const at = handOver(pa.tail, pa.whole ? aIn.record : 0, pb.head, b.from);
  if (at === null) return null;
  const [i, j] = at;
  const aLine = pa.tail[i + COUNTS + 3]!;
  const bLine = pb.head[j + COUNTS + 3]!;
  const aLines = a.lineStarts.length - 1;
  const n = aLines - aLine;
  if (bLine + n > b.lineStarts.length - 1) return null;
  if (!sameBytes(a.text.subarray(a.lineStarts[aLine]!), b.text.subarray(b.lineStarts[bLine]!, b.lineStarts[bLine + n]!))) return null;
  const out = countsAt(pa.tail, i);
  const inC = countsAt(pb.head, j);
  return {
    lines: [aIn.line, aLine],
    counts: difference(out, aIn.counts),
    next: { record: j, line: bLine, counts: inC },
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const decoder = new TextDecoder();

/** The text of lines [from, to) of a piece, without the last newline (null: none). */
export function linesText(p: LinePiece, from: number, to: number): string | null {
  if (to <= from) return null;
  return decoder.decode(p.text.subarray(p.lineStarts[from]!, p.lineStarts[to]! - 1));
}

/** The last piece: the rest of its lines and counts. */
export function lastPieceLines(p: LinePiece, pIn: HandIn): { lines: [number, number]; counts: FlowStats } {
  const c = p.counts;
  return { lines: [pIn.line, p.lineStarts.length - 1], counts: difference({ instructions: c[0], transfers: c[1], errors: c[2], gaps: 0 }, pIn.counts) };
}

function difference(a: FlowStats, b: FlowStats): FlowStats {
  return { instructions: a.instructions - b.instructions, transfers: a.transfers - b.transfers, errors: a.errors - b.errors, gaps: 0 };
}
