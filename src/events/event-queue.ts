/**
 * Events waiting for the packet they bind to (libipt's pt_event_queue).
 *
 * Intel PT packets often describe one event together: a MODE.Exec binds to
 * the next TIP, a PTW with IP to the next FUP, everything in PSB+ to PSBEND.
 * Each binding point has a small FIFO; the decoder enqueues when it sees the
 * first packet and dequeues when it sees the packet it binds to. Slots are
 * preallocated and reused.
 */
import { PtEvent } from './event.js';

/** What an event waits for (libipt's `pt_event_binding`). */
export const enum Binding {
  Psbend = 0,
  Tip = 1,
  Fup = 2,
  Exstop = 3,
  /** Event tracing: an EVD waits for its CFE. */
  Cfe = 4,
}

const BINDINGS = 5;
/** Slots per binding (libipt's evq_max is 8; one stays free to tell full from empty). */
const SLOTS = 8;

export class EventQueue {
  private readonly slots: PtEvent[][] = [];
  private readonly begin = new Int32Array(BINDINGS);
  private readonly end = new Int32Array(BINDINGS);
  private readonly single = new PtEvent();

  constructor() {
    for (let b = 0; b < BINDINGS; b++) {
      const list: PtEvent[] = [];
      for (let i = 0; i < SLOTS; i++) list.push(new PtEvent());
      this.slots.push(list);
    }
  }

  /** Empty every queue. */
  reset(): void {
    this.begin.fill(0);
    this.end.fill(0);
  }

  /** The standalone event slot, cleared. */
  standalone(): PtEvent {
    this.single.clear();
    return this.single;
  }

  /** A cleared slot at the tail of `binding`'s queue, or null if it is full. */
  enqueue(binding: Binding): PtEvent | null {
    const end = this.end[binding]!;
    const next = (end + 1) % SLOTS;
    if (next === this.begin[binding]) return null;
    const ev = this.slots[binding]![end]!;
    this.end[binding] = next;
    ev.clear();
    return ev;
  }

  /** Remove and return the head of `binding`'s queue, or null. */
  dequeue(binding: Binding): PtEvent | null {
    const begin = this.begin[binding]!;
    if (begin === this.end[binding]) return null;
    this.begin[binding] = (begin + 1) % SLOTS;
    return this.slots[binding]![begin]!;
  }

  /** The first queued event of `type` in `binding`'s queue, or null. */
  find(binding: Binding, type: number): PtEvent | null {
    const list = this.slots[binding]!;
    for (let i = this.begin[binding]!; i !== this.end[binding]; i = (i + 1) % SLOTS) {
      if (list[i]!.type === type) return list[i]!;
    }
    return null;
  }

  /** Is an event queued on `binding` that binds its packet (not {@link PtEvent.fupUnbound})? */
  findBound(binding: Binding): boolean {
    const list = this.slots[binding]!;
    for (let i = this.begin[binding]!; i !== this.end[binding]; i = (i + 1) % SLOTS) {
      if (!list[i]!.fupUnbound) return true;
    }
    return false;
  }

  /** The type of the head of `binding`'s queue, or -1 if it is empty. */
  headType(binding: Binding): number {
    const begin = this.begin[binding]!;
    return begin === this.end[binding] ? -1 : this.slots[binding]![begin]!.type;
  }

  isEmpty(binding: Binding): boolean {
    return this.begin[binding] === this.end[binding];
  }

  /** Number of events queued on `binding`. */
  pending(binding: Binding): number {
    return (this.end[binding]! - this.begin[binding]! + SLOTS) % SLOTS;
  }
}
