/**
 * The query decoder (libipt's pt_query_decoder, libipt/src/pt_query_decoder.c):
 * answers the questions a flow decoder asks while it walks the code —
 * "was this conditional branch taken?", "where did this indirect branch
 * go?", "is an event due?" — on top of the event decoder.
 *
 * It reads one event ahead. TNT events fill a bit cache; TIP events answer
 * indirect-branch queries; everything else is a pending event that the flow
 * decoder fetches with {@link event}. An event is only indicated once the
 * cached TNT bits are used up, so that the caller first reaches the code
 * location the event belongs to.
 *
 * Results follow libipt: a non-negative {@link Status} bit set, or a
 * negative ErrorCode.
 */
import type { DecoderConfig } from '../packets/config.js';
import type { PacketDecoder } from '../packets/decoder.js';
import { ErrorCode } from '../packets/errors.js';
import { EventDecoder, type EventDecoderFlags } from './event-decoder.js';
import { copyEvent as assignEvent } from './event.js';
import { EventType, PtEvent } from './event.js';
import { Status } from './status.js';
import { TntCache } from './tnt-cache.js';

/** The read-ahead event when there is none (never modified). */
const NO_EVENT = new PtEvent();

export class QueryDecoder {
  readonly events: EventDecoder;
  private readonly tnt = new TntCache();
  /**
   * The next event, read ahead: the event decoder's slot itself (valid until
   * its next call, which only {@link fetchEvent} makes), or {@link NO_EVENT}.
   */
  private ev: PtEvent = NO_EVENT;
  /** Deferred error of the event decoder. */
  private status = -ErrorCode.NoSync;
  /**
   * The time at the last query or event the caller consumed (libipt's
   * last_time): the fields of it that are reported, copied at each query
   * (a whole TimeTracker copy costs more than the query itself).
   */
  lastTscHi = 0;
  lastTscLo = 0;
  lastLostMtc = 0;
  lastLostCyc = 0;
  /** A TSC had been seen: the last time is wall-clock time. */
  lastHaveTsc = false;
  /** Result of the last query that gives an address. */
  ip = 0;
  /** Result of the last conditional-branch query. */
  taken = false;

  constructor(packets: PacketDecoder, config: DecoderConfig, flags?: EventDecoderFlags) {
    this.events = new EventDecoder(packets, config, flags);
  }

  get config(): DecoderConfig {
    return this.events.config;
  }

  get offset(): number {
    return this.events.offset;
  }

  get syncOffset(): number {
    return this.events.syncOffset;
  }

  private reset(): void {
    this.status = -ErrorCode.NoSync;
    this.ev = NO_EVENT;
    this.tnt.reset();
    this.lastTscHi = 0;
    this.lastTscLo = 0;
    this.lastLostMtc = 0;
    this.lastLostCyc = 0;
    this.lastHaveTsc = false;
  }

  private eventPending(): boolean {
    const t = this.ev.type;
    return t !== EventType.Tnt && t !== EventType.Tip;
  }

  private statusFlags(): number {
    let flags = 0;
    if (this.tnt.isEmpty()) {
      if (this.status < 0) {
        if (this.status === -ErrorCode.Eos) flags |= Status.Eos;
      } else if (this.eventPending()) {
        flags |= Status.EventPending;
      }
    }
    return flags;
  }

  private fetchEvent(): void {
    const err = this.events.next();
    if (err < 0) {
      this.status = err;
      this.ev = NO_EVENT;
    } else {
      this.ev = this.events.event;
    }
  }

  /**
   * After synchronizing: read the first event. If PSB+ said tracing is
   * enabled, {@link ip} is the start address and IpSuppressed is clear.
   */
  private start(err: number): number {
    if (err < 0) return err;
    this.status = 0;
    this.fetchEvent();
    let status: number = Status.IpSuppressed;
    if (this.status < 0) {
      if (this.status !== -ErrorCode.Eos) return this.status;
    } else if (this.ev.statusUpdate && this.ev.type === EventType.Enabled) {
      status &= ~Status.IpSuppressed;
      this.ip = this.ev.ip;
    }
    return status | this.statusFlags();
  }

  syncForward(): number {
    this.reset();
    return this.start(this.events.syncForward());
  }

  syncSet(offset: number): number {
    this.reset();
    return this.start(this.events.syncSet(offset));
  }

  private cacheTnt(): number {
    if (this.status < 0) return this.status;
    if (this.ev.type !== EventType.Tnt) return 0;
    const err = this.tnt.add(this.ev.tntBits, this.ev.tntSize);
    if (err < 0) return err;
    this.fetchEvent();
    return 0;
  }

  /** Query a conditional branch: sets {@link taken}; status flags or error. */
  condBranch(): number {
    let q = this.tnt.query();
    if (q < 0) {
      if (q !== -ErrorCode.BadQuery) return q;
      this.takeTime();
      const err = this.cacheTnt();
      if (err < 0) return err;
      q = this.tnt.query();
      if (q < 0) {
        if (q !== -ErrorCode.BadQuery) return q;
        if (this.status < 0) return this.status;
        return q;
      }
    }
    this.taken = q === 1;
    return this.statusFlags();
  }

  /** Query an indirect branch: sets {@link ip} unless IpSuppressed; status or error. */
  indirectBranch(): number {
    if (this.status < 0) return this.status;
    let ev = this.ev;
    if (ev.type !== EventType.Tip) {
      const err = this.cacheTnt();
      if (err < 0) return err;
      ev = this.ev;
      if (ev.type !== EventType.Tip) {
        if (this.status < 0) return this.status;
        return -ErrorCode.BadQuery;
      }
    }
    let status = 0;
    if (ev.ipSuppressed) status |= Status.IpSuppressed;
    else this.ip = ev.ip;
    this.takeTime();
    this.fetchEvent();
    return status | this.statusFlags();
  }

  /** Fetch the pending event into `out`; status flags or error. */
  event(out: PtEvent): number {
    if (!this.tnt.isEmpty()) return -ErrorCode.BadQuery;
    if (this.status < 0) return this.status;
    if (!this.eventPending()) return -ErrorCode.BadQuery;
    assignEvent(out, this.ev);
    this.takeTime();
    this.fetchEvent();
    // A decode error right behind the event is reported now: the caller
    // would otherwise move on in the code past the place of the error.
    const err = this.error;
    return err < 0 ? err : this.statusFlags();
  }

  /**
   * The decode error the caller runs into next (0 if none): a deferred
   * error of the event decoder once the cached TNT bits are used up.
   */
  get error(): number {
    return this.status < 0 && this.status !== -ErrorCode.Eos && this.tnt.isEmpty() ? this.status : 0;
  }

  /** Is the next trace item an indirect-branch target (TIP)? */
  get tipPending(): boolean {
    return this.status >= 0 && this.tnt.isEmpty() && this.ev.type === EventType.Tip;
  }

  /**
   * After a decode error (libipt's resync): drop the cached TNT bits and
   * any TNT read ahead. Status flags, or the error if it persists.
   */
  dropTnt(): number {
    this.tnt.reset();
    while (this.status >= 0 && this.ev.type === EventType.Tnt) this.fetchEvent();
    const err = this.error;
    return err < 0 ? err : this.statusFlags();
  }

  /** Copy the pending event into `out` without consuming it: 0 or error. */
  peekEvent(out: PtEvent): number {
    if (!this.tnt.isEmpty()) return -ErrorCode.BadQuery;
    if (this.status < 0) return this.status;
    if (!this.eventPending()) return -ErrorCode.BadQuery;
    assignEvent(out, this.ev);
    return 0;
  }

  /** Time at the last consumed event: 0, or -NoTime (the value is relative then). */
  time(): number {
    return this.lastHaveTsc ? 0 : -ErrorCode.NoTime;
  }

  private takeTime(): void {
    const t = this.events.timing.time;
    this.lastTscHi = t.tscHi;
    this.lastTscLo = t.tscLo;
    this.lastLostMtc = t.lostMtc;
    this.lastLostCyc = t.lostCyc;
    this.lastHaveTsc = t.haveTsc;
  }
}
