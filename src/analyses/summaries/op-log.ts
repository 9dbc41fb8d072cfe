/**
 * The ordered list of operations a segment summary asks of the detector
 * holding the serial state (summary.ts): flow records to replay into it,
 * whole or into its stack-switch tracker only, and detector-specific
 * steps (set a field, push a frame, add a note). Records use the flow
 * log's layout (flow-log.ts: tag, six fields, offset) with the operation
 * in the slot after them and three arguments; one growable Float64Array,
 * no allocation per operation, structured-clonable.
 */
import { PtEvent } from '../../events/event.js';
import type { FlowConsumer, GapKind, TransferKind } from '../../flow/control-flow.js';
import { withRoom } from '../../flow/grow.js';
import { eventFlags, eventOf, LogTag, STRIDE } from '../../flow/parallel/flow-log.js';

/** Slot of the operation code, then its arguments. */
export const OP = 8;

/** Operations kept per summary; more is an error (cut the trace finer), not unbounded memory. */
const MAX_OPS = 1 << 22;

export class OpLog {
  // Small at first: a piece's body may be a few records (a cut at every PSB); it doubles as it fills.
  data = new Float64Array(STRIDE * 16);
  length = 0;

  /** Whether another operation would exceed the bound (a summarizer then gives up, and the body is replayed). */
  get full(): boolean {
    return this.length >= MAX_OPS;
  }

  /** Append an operation; returns its base index. */
  add(op: number, tag: number, a: number, b: number, c: number, d: number, e: number, f: number, offset: number, x = 0, y = 0, z = 0): number {
    if (this.length === MAX_OPS) throw new Error(`a segment summary exceeded ${MAX_OPS} operations: cut the trace into smaller groups`);
    const i = this.length++ * STRIDE;
    this.data = withRoom(this.data, i + STRIDE);
    const r = this.data;
    r[i] = tag;
    r[i + 1] = a;
    r[i + 2] = b;
    r[i + 3] = c;
    r[i + 4] = d;
    r[i + 5] = e;
    r[i + 6] = f;
    r[i + 7] = offset;
    r[i + OP] = op;
    r[i + OP + 1] = x;
    r[i + OP + 2] = y;
    r[i + OP + 3] = z;
    return i;
  }

  transfer(op: number, kind: TransferKind, from: number, to: number, size: number, insns: number, cr3: number, offset: number): void {
    this.add(op, LogTag.Transfer, kind, from, to, size, insns, cr3, offset);
  }

  event(op: number, ev: PtEvent, offset: number): void {
    this.add(op, LogTag.Event, ev.type, eventFlags(ev), ev.ip, ev.at, ev.cr3, ev.mode, offset);
  }

  gap(op: number, kind: GapKind, offset: number): void {
    this.add(op, LogTag.Gap, kind, 0, 0, 0, 0, 0, offset);
  }

  /** The operations, trimmed. */
  take(): Float64Array {
    return this.data.slice(0, this.length * STRIDE);
  }
}

/** Replay the flow record at `i` into `c`, as the walker would have called it. */
export function replayRecord(log: Float64Array, i: number, c: FlowConsumer, ev: PtEvent): void {
  switch (log[i]) {
    case LogTag.Transfer:
      c.onTransfer?.(log[i + 1]! as TransferKind, log[i + 2]!, log[i + 3]!, log[i + 4]!, log[i + 5]!, log[i + 6]!);
      return;
    case LogTag.Event:
      c.onEvent?.(eventOf(log, i, ev));
      return;
    case LogTag.Gap:
      c.onGap?.(log[i + 1]! as GapKind, log[i + 7]!);
      return;
    case LogTag.Error:
      c.onError?.(log[i + 1]!, log[i + 3]!, log[i + 2]!);
      return;
  }
}

export { PtEvent, STRIDE };
