/**
 * Events waiting for the packet they bind to (libipt's pt_event_queue,
 * libipt/src/pt_event_queue.c).
 *
 * Intel PT packets often describe one event together: a MODE.Exec binds to
 * the next TIP, a PTW with IP to the next FUP, everything in PSB+ to PSBEND.
 * The decoder enqueues an event when it sees the first packet, with the
 * set of packets it may bind to ({@link Binding}, a bit set), and dequeues
 * it at the first of those. One queue holds them all, in order: a dequeue
 * takes the oldest event that binds to the packet at hand, from the middle
 * if need be, and the order of the others is kept.
 *
 * Slots are preallocated and reused; an enqueued or standalone event comes
 * cleared.
 */
import { PtEvent, copyEvent } from './event.js';

/** What an event binds to (libipt's `pt_event_binding`); a bit set. */
export const enum Binding {
  Psbend = 1 << 0,
  Tip = 1 << 1,
  /** A FUP that also stays free to start an asynchronous branch. */
  Fup = 1 << 2,
  /** A FUP that is consumed by the event. */
  FupBound = 1 << 3,
  Exstop = 1 << 4,
  /** Event tracing: the CFE that EVD data belongs to. */
  Cfe = 1 << 5,
  Pwrx = 1 << 6,
}

/** Every binding. */
export const ANY_BINDING = 0x7f;

/** Queue slots (libipt's evq_max); one stays free so the last dequeued event is not overwritten. */
export const EVQ_MAX = 16;

function inc(i: number): number {
  return (i + 1) % EVQ_MAX;
}

function dec(i: number): number {
  return (i + EVQ_MAX - 1) % EVQ_MAX;
}

export class EventQueue {
  private readonly slots: PtEvent[] = [];
  private readonly bindings = new Int32Array(EVQ_MAX);
  private begin = 0;
  private end = 0;
  private readonly single = new PtEvent();

  constructor() {
    for (let i = 0; i < EVQ_MAX; i++) this.slots.push(new PtEvent());
  }

  /** Empty the queue (libipt's pt_evq_init / pt_evq_clear). */
  reset(): void {
    this.begin = 0;
    this.end = 0;
  }

  /** The event to publish right away, cleared. */
  standalone(): PtEvent {
    this.single.clear();
    return this.single;
  }

  /** A cleared event at the tail, binding to `binding`; null if the queue is full. */
  enqueue(binding: number): PtEvent | null {
    const idx = this.end;
    const end = inc(idx);
    // Leave a gap so we don't overwrite the last dequeued event.
    if (this.begin === inc(end)) return null;
    this.end = end;
    this.bindings[idx] = binding;
    const ev = this.slots[idx]!;
    ev.clear();
    return ev;
  }

  /** Enqueue a copy of `ev`, binding to `binding`; null if the queue is full. */
  requeue(ev: PtEvent, binding: number): PtEvent | null {
    const slot = this.enqueue(binding);
    if (slot === null) return null;
    return copyEvent(slot, ev);
  }

  /**
   * Remove and return the oldest event that binds to any of `binding`, or
   * null. An event from the middle moves to the front first: the ones
   * before it keep their order.
   */
  dequeue(binding: number): PtEvent | null {
    const begin = this.begin;
    const end = this.end;
    if (begin === end) return null;
    if ((this.bindings[begin]! & binding) !== 0) {
      this.begin = inc(begin);
      return this.slots[begin]!;
    }
    let idx = begin;
    for (;;) {
      idx = inc(idx);
      if (idx === end) return null;
      if ((this.bindings[idx]! & binding) !== 0) break;
    }
    // Move the preceding entries up by one and put this one first.
    const slot = this.slots[idx]!;
    const bound = this.bindings[idx]!;
    for (;;) {
      const prev = dec(idx);
      this.slots[idx] = this.slots[prev]!;
      this.bindings[idx] = this.bindings[prev]!;
      if (prev === begin) break;
      idx = prev;
    }
    this.begin = idx;
    this.slots[begin] = slot;
    this.bindings[begin] = bound;
    return slot;
  }

  /** Is no event waiting for any of `binding`? */
  isEmpty(binding: number): boolean {
    for (let i = this.begin; i !== this.end; i = inc(i)) {
      if ((this.bindings[i]! & binding) !== 0) return false;
    }
    return true;
  }

  /** The oldest event of `type` waiting for any of `binding`, or null. */
  find(binding: number, type: number): PtEvent | null {
    for (let i = this.begin; i !== this.end; i = inc(i)) {
      if ((this.bindings[i]! & binding) !== 0 && this.slots[i]!.type === type) return this.slots[i]!;
    }
    return null;
  }

  /** The oldest event waiting for any of `binding`, left in place; or null. */
  peek(binding: number): PtEvent | null {
    for (let i = this.begin; i !== this.end; i = inc(i)) {
      if ((this.bindings[i]! & binding) !== 0) return this.slots[i]!;
    }
    return null;
  }

  /** Make this queue an exact copy of `other` (for decoder snapshots). */
  copyFrom(other: EventQueue): void {
    for (let i = 0; i < EVQ_MAX; i++) copyEvent(this.slots[i]!, other.slots[i]!);
    this.bindings.set(other.bindings);
    copyEvent(this.single, other.single);
    this.begin = other.begin;
    this.end = other.end;
  }
}
