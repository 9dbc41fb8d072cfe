/**
 * The control-flow stream of one trace piece, recorded so that it can be
 * sent from a worker and replayed into consumers on the main thread, in
 * trace order, exactly as a {@link ControlFlowWalker} would have called
 * them: transfers, events (the fields the flow consumers read), gaps and
 * errors. Each record carries the whole-trace offset the decoder stood at,
 * which replay reports as the current offset.
 *
 * Records are 12 float64s in one growable array (no allocation per record):
 * [tag, a, b, c, d, e, f, offset, then the walk's instructions, transfers,
 * errors and gaps counted so far], the counts so that a log can be cut at a
 * record and the counts cut with it.
 */
import { EventType, PtEvent } from '../../events/event.js';
import type { ExecMode } from '../../packets/exec-mode.js';
import type { FlowConsumer, FlowStats, GapKind, TransferKind } from '../control-flow.js';
import { withRoom } from '../grow.js';

export const enum LogTag {
  Transfer = 1,
  Event = 2,
  Gap = 3,
  Error = 4,
}

export const STRIDE = 12;
/** Where a record's running counts start. */
export const COUNTS = 8;

/** Records kept per piece; more is an error (cut the trace finer) rather than unbounded memory. */
export const MAX_RECORDS = 1 << 24;

/** An event's flags as an event record's b holds them (undone by {@link eventOf}). */
export function eventFlags(ev: PtEvent): number {
  return (ev.statusUpdate ? 1 : 0) | (ev.ipSuppressed ? 2 : 0) | (ev.nonRoot ? 4 : 0);
}

/** The event the record at `i` of `log` holds ([Event, type, flags, ip, at, cr3, mode]), into a reused object. */
export function eventOf(log: Float64Array, i: number, ev: PtEvent): PtEvent {
  const flags = log[i + 2]!;
  ev.type = log[i + 1]! as EventType;
  ev.statusUpdate = (flags & 1) !== 0;
  ev.ipSuppressed = (flags & 2) !== 0;
  ev.nonRoot = (flags & 4) !== 0;
  ev.ip = log[i + 3]!;
  ev.at = log[i + 4]!;
  ev.cr3 = log[i + 5]!;
  ev.mode = log[i + 6]! as ExecMode;
  return ev;
}

/** Records the control-flow stream; `offset` gives the decoder's whole-trace offset. */
export class FlowLogRecorder implements FlowConsumer {
  data = new Float64Array(STRIDE * 4096);
  length = 0;

  constructor(
    private readonly offset: () => number,
    /** Whole-trace offset of the piece's first byte (the decoder's offsets are the piece's). */
    private readonly base: number,
    private readonly counts: () => FlowStats,
  ) {}

  private next(): number {
    if (this.length === MAX_RECORDS) throw new Error(`a trace piece gave more than ${MAX_RECORDS} control-flow records: cut the trace into smaller groups`);
    const at = this.length++ * STRIDE;
    this.data = withRoom(this.data, at + STRIDE);
    const c = this.counts();
    this.data[at + COUNTS] = c.instructions;
    this.data[at + COUNTS + 1] = c.transfers;
    this.data[at + COUNTS + 2] = c.errors;
    this.data[at + COUNTS + 3] = c.gaps;
    return at;
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, insnsBefore: number, cr3: number): void {
    const i = this.next();
    const e = this.data;
    e[i] = LogTag.Transfer;
    e[i + 1] = kind;
    e[i + 2] = from;
    e[i + 3] = to;
    e[i + 4] = size;
    e[i + 5] = insnsBefore;
    e[i + 6] = cr3;
    e[i + 7] = this.offset() + this.base;
  }

  onEvent(ev: PtEvent): void {
    const i = this.next();
    const e = this.data;
    e[i] = LogTag.Event;
    e[i + 1] = ev.type;
    e[i + 2] = eventFlags(ev);
    e[i + 3] = ev.ip;
    e[i + 4] = ev.at;
    e[i + 5] = ev.cr3;
    e[i + 6] = ev.mode;
    e[i + 7] = this.offset() + this.base;
  }

  onGap(kind: GapKind): void {
    const i = this.next();
    this.data[i] = LogTag.Gap;
    this.data[i + 1] = kind;
    this.data[i + 7] = this.offset() + this.base;
  }

  onError(code: number, offset: number, ip: number): void {
    const i = this.next();
    const e = this.data;
    e[i] = LogTag.Error;
    e[i + 1] = code;
    e[i + 2] = ip;
    e[i + 3] = offset + this.base;
    e[i + 7] = this.offset() + this.base;
  }

  /** The records, trimmed (transferable). */
  take(): Float64Array {
    return this.data.slice(0, this.length * STRIDE);
  }
}

/**
 * Replays records into consumers; `at` is set to each record's offset
 * before its callbacks run (the consumers' "current offset").
 */
export class FlowLogPlayer {
  private readonly ev = new PtEvent();
  at = 0;

  constructor(private readonly consumers: readonly FlowConsumer[]) {}

  play(log: Float64Array): void {
    const ev = this.ev;
    for (let i = 0; i < log.length; i += STRIDE) {
      this.at = log[i + 7]!;
      switch (log[i]) {
        case LogTag.Transfer: {
          const kind = log[i + 1]! as TransferKind;
          for (const c of this.consumers) c.onTransfer?.(kind, log[i + 2]!, log[i + 3]!, log[i + 4]!, log[i + 5]!, log[i + 6]!);
          break;
        }
        case LogTag.Event:
          eventOf(log, i, ev);
          for (const c of this.consumers) c.onEvent?.(ev);
          break;
        case LogTag.Gap:
          for (const c of this.consumers) c.onGap?.(log[i + 1]! as GapKind, this.at);
          break;
        case LogTag.Error:
          for (const c of this.consumers) c.onError?.(log[i + 1]!, log[i + 3]!, log[i + 2]!);
          break;
      }
    }
  }

  end(): void {
    for (const c of this.consumers) c.onEnd?.();
  }
}
