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
import { countsAt, handOver } from './flow-stitch.js';
import { OVERLAP_BYTES, OVERLAP_TRANSFERS } from './piece-walk.js';
import { PieceZones, Zone } from './piece-zones.js';
import type { SegmentRange } from './psb-split.js';

/** Thrown from {@link ZonedLines.record} when a piece has decoded its overlap; caught by the piece's runner. */
export const PIECE_DONE = new Error('piece done');

/** What a text piece gives (structured-clonable). */
export interface LinePiece extends SegmentRange {
  /** Every line printed, from the piece's start to the end of its overlap. */
  lines: string[];
  /** The head's records, then the tail's; every record when the piece had no body. */
  log: Float64Array;
  headRecords: number;
  bodyRecords: number;
  /** The counts at the end. */
  counts: [number, number, number];
}

/** FNV-1a over the lines [from, to). */
function hashLines(lines: readonly string[], from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) {
    const s = lines[i]!;
    for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
    h = Math.imul(h ^ 10, 0x01000193);
  }
  return h >>> 0;
}

/** Collects one piece's lines and zoned records. */
export class ZonedLines {
  readonly lines: string[] = [];
  private data = new Float64Array(STRIDE * 1024);
  private length = 0;
  private readonly zones: PieceZones;
  private linesBefore = 0;
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
    this.lines.push(text);
  }

  /** One step, after it printed its lines; `isStep`: an instruction, block or packet (what the zones count as transfers). */
  /** `state1`, `state2`: decoder state the step leaves that later lines depend on (compared at the hand-over). */
  record(isStep: boolean, tag: number, address: number, offset: number, c0: number, c1: number, c2: number, state1 = 0, state2 = 0): void {
    const zone = this.zones.next(offset, isStep);
    if (zone !== Zone.Body) {
      if (this.length === MAX_RECORDS) throw new Error(`a trace piece gave more than ${MAX_RECORDS} kept records: cut the trace into smaller groups`);
      const at = this.length++ * STRIDE;
      if (at + STRIDE > this.data.length) {
        const grown = new Float64Array(this.data.length * 2);
        grown.set(this.data);
        this.data = grown;
      }
      const n = this.lines.length;
      const e = this.data;
      e[at] = isStep ? LogTag.Transfer : LogTag.Event;
      e[at + 1] = tag;
      e[at + 2] = address;
      e[at + 3] = hashLines(this.lines, this.linesBefore, n);
      e[at + 4] = n - this.linesBefore;
      e[at + 5] = state1;
      e[at + 6] = state2;
      e[at + 7] = offset;
      e[at + COUNTS] = c0;
      e[at + COUNTS + 1] = c1;
      e[at + COUNTS + 2] = c2;
      e[at + COUNTS + 3] = this.linesBefore;
    }
    this.linesBefore = this.lines.length;
    this.counts[0] = c0;
    this.counts[1] = c1;
    this.counts[2] = c2;
    if (this.overlap && isStep && offset > this.past && ++this.after >= OVERLAP_TRANSFERS) throw PIECE_DONE;
  }

  finish(): LinePiece {
    return {
      ...this.range,
      lines: this.lines,
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
  const n = a.lines.length - aLine;
  if (bLine + n > b.lines.length) return null;
  for (let k = 0; k < n; k++) if (a.lines[aLine + k] !== b.lines[bLine + k]) return null;
  const out = countsAt(pa.tail, i);
  const inC = countsAt(pb.head, j);
  return {
    lines: [aIn.line, aLine],
    counts: difference(out, aIn.counts),
    next: { record: j, line: bLine, counts: inC },
  };
}

/** The last piece: the rest of its lines and counts. */
export function lastPieceLines(p: LinePiece, pIn: HandIn): { lines: [number, number]; counts: FlowStats } {
  const c = p.counts;
  return { lines: [pIn.line, p.lines.length], counts: difference({ instructions: c[0], transfers: c[1], errors: c[2], gaps: 0 }, pIn.counts) };
}

function difference(a: FlowStats, b: FlowStats): FlowStats {
  return { instructions: a.instructions - b.instructions, transfers: a.transfers - b.transfers, errors: a.errors - b.errors, gaps: 0 };
}
