/**
 * Back-pressure on the text that `flow --jobs` and `dump --jobs` hold:
 * pieces decode ahead of the one being printed, and their text waits in
 * memory until its turn. A counter shared by the main thread and the
 * workers holds the bytes of text posted and not yet written or dropped;
 * while it exceeds the budget, a worker holds its decode after posting a
 * run of body text (Atomics.wait), unless its piece is the one being
 * printed, whose text is written as it comes. The head and the end of a
 * piece, which the hand-overs need, are small and never wait, so the
 * printed piece and the next one can always go on: no deadlock.
 */
import type { MessagePort } from 'node:worker_threads';
import type { LineRun, LineSink, PieceEnd, PieceHead } from '../../flow/parallel/zoned-lines.js';

/** [0]: bytes of text held; [1]: a generation, bumped (and notified) when [0] falls or a piece's state changes. */
export interface TextCredit {
  held: Int32Array;
  budget: number;
}

/** A piece's state, in its own shared Int32Array: [0] the state, [1] bytes of text it posted. */
export const enum PieceState {
  Waiting = 0,
  Printing = 1,
  Cancelled = 2,
}

/** Thrown in a worker whose piece was cancelled (its range is decoded again as part of a longer piece). */
export const PIECE_CANCELLED = new Error('piece cancelled');

export function newCredit(budget: number): TextCredit {
  return { held: new Int32Array(new SharedArrayBuffer(8)), budget };
}

export function newPieceState(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(8));
}

function bump(credit: TextCredit): void {
  Atomics.add(credit.held, 1, 1);
  Atomics.notify(credit.held, 1);
}

/** Main thread: `bytes` of text were written or dropped. */
export function release(credit: TextCredit, bytes: number): void {
  if (bytes === 0) return;
  Atomics.sub(credit.held, 0, bytes);
  bump(credit);
}

export function setPieceState(credit: TextCredit, state: Int32Array, to: PieceState): void {
  Atomics.store(state, 0, to);
  bump(credit);
}

export function heldBytes(credit: TextCredit): number {
  return Atomics.load(credit.held, 0);
}

/** What a worker posts for a piece, in order: its head (unless it has no body), body runs, its end. */
export type PieceMessage = { kind: 'head'; head: PieceHead } | { kind: 'body'; lines: LineRun } | { kind: 'end'; end: PieceEnd };

/** The buffers of a message, moved (not copied) to the main thread. */
function buffersOf(m: PieceMessage): ArrayBuffer[] {
  const lines = m.kind === 'head' ? m.head.lines : m.kind === 'body' ? m.lines : m.end.lines;
  const log = m.kind === 'head' ? [m.head.log.buffer] : m.kind === 'end' ? [m.end.log.buffer] : [];
  return [lines.text.buffer as ArrayBuffer, lines.starts.buffer as ArrayBuffer, ...(log as ArrayBuffer[])];
}

/** Worker side: a sink that posts a piece's text to `port`, counted as held, and waits for credit after each body run. */
export class PortSink implements LineSink {
  constructor(
    private readonly port: MessagePort,
    private readonly credit: TextCredit,
    private readonly state: Int32Array,
  ) {}

  get cancelled(): boolean {
    return Atomics.load(this.state, 0) === PieceState.Cancelled;
  }

  private post(m: PieceMessage, bytes: number): void {
    Atomics.add(this.state, 1, bytes);
    Atomics.add(this.credit.held, 0, bytes);
    this.port.postMessage(m, buffersOf(m));
  }

  head(h: PieceHead): void {
    this.post({ kind: 'head', head: h }, h.lines.text.byteLength);
  }

  body(lines: LineRun): void {
    this.post({ kind: 'body', lines }, lines.text.byteLength);
    const { held, budget } = this.credit;
    for (;;) {
      const gen = Atomics.load(held, 1);
      const state = Atomics.load(this.state, 0);
      if (state === PieceState.Cancelled) throw PIECE_CANCELLED;
      if (state === PieceState.Printing || Atomics.load(held, 0) <= budget) return;
      // Woken by any release or state change; the timeout only guards against a lost wake-up.
      Atomics.wait(held, 1, gen, 1000);
    }
  }

  end(e: PieceEnd): void {
    this.post({ kind: 'end', end: e }, e.lines.text.byteLength);
  }
}
