/**
 * The query decoder (libipt's pt_query_decoder, libipt/src/pt_query_decoder.c):
 * answers the questions a flow decoder asks while it walks the code, "was
 * this conditional branch taken?", "where did this indirect branch go?",
 * "is an event due?", on top of the event decoder.
 *
 * It reads one event ahead. TNT events fill a bit cache; TIP events answer
 * indirect-branch queries; anything else is a pending event, fetched with
 * {@link event}. An event is only indicated once the cached TNT bits are
 * used up, so that the caller first reaches the code location the event
 * belongs to.
 *
 * Results follow libipt: a non-negative {@link Status} bit set, or a
 * negative ErrorCode. The address of the last indirect-branch query (and of
 * a synchronization) is {@link ip}; the outcome of the last conditional
 * branch query is {@link taken}.
 */
import type { DecoderConfig } from '../packets/config.js';
import { ErrorCode } from '../packets/errors.js';
import type { TraceInput } from '../packets/packet-stream.js';
import { EventSyncedDecoder } from './decoder-sync.js';
import { EventDecoder, EventDecoderState } from './event-decoder.js';
import type { EventDecoderFlags } from './event-decoder-flags.js';
import { EventType, PtEvent, copyEvent } from './event.js';
import { Status } from './status.js';
import { TimeTracker } from './time.js';
import { TntCache } from './tnt-cache.js';

export class QueryDecoder extends EventSyncedDecoder {
  private readonly tnt = new TntCache();
  /** The next event, read ahead. */
  private readonly ev = new PtEvent();
  /** The event decoder's status: its error, once it has one. */
  private status = -ErrorCode.NoSync;
  /** The time at the last query or event (libipt's last_time). */
  readonly lastTime = new TimeTracker();
  /** The address of the last indirect branch query, or where tracing starts after a sync. */
  ip = 0;
  /** The outcome of the last conditional branch query. */
  taken = false;
  private readonly startState = new EventDecoderState();
  private readonly startEvent = new PtEvent();

  constructor(trace: TraceInput, config: DecoderConfig, flags?: EventDecoderFlags) {
    super(new EventDecoder(trace, config, flags));
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

  protected override reset(): void {
    this.status = -ErrorCode.NoSync;
    this.tnt.reset();
    this.lastTime.reset();
  }

  private get eventPending(): boolean {
    const t = this.ev.type;
    return t !== EventType.Tnt && t !== EventType.Tip;
  }

  private statusFlags(): number {
    let flags = 0;
    if (this.tnt.isEmpty()) {
      if (this.status === -ErrorCode.Eos) flags |= Status.Eos;
      else if (this.eventPending) flags |= Status.EventPending;
    }
    return flags;
  }

  private fetchEvent(): void {
    const err = this.events.next(this.ev);
    if (err < 0) {
      this.status = err;
      this.ev.type = EventType.Invalid;
    }
  }

  /**
   * After synchronizing: the PSB+ status events say whether tracing is
   * enabled and where ({@link ip}); a copy of the event decoder reads them,
   * so that they are still reported as events.
   */
  protected override start(): number {
    const events = this.events;
    let status: number = Status.IpSuppressed;
    events.save(this.startState);
    const at = events.position;
    try {
      for (;;) {
        if (events.position !== at) break;
        const err = events.next(this.startEvent);
        if (err < 0) {
          if (err !== -ErrorCode.Eos) return err;
          break;
        }
        if (!this.startEvent.statusUpdate) break;
        if (this.startEvent.type !== EventType.Enabled) continue;
        status &= ~Status.IpSuppressed;
        this.ip = this.startEvent.ip;
        break;
      }
    } finally {
      events.restore(this.startState);
    }
    this.status = 0;
    this.fetchEvent();
    return status | this.statusFlags();
  }

  private cacheTnt(): number {
    if (this.status < 0) return this.status;
    if (this.ev.type !== EventType.Tnt) return 0;
    const err = this.tnt.add(this.ev.tntBits, this.ev.tntSize);
    if (err < 0) return err;
    this.fetchEvent();
    return 0;
  }

  /** Query a conditional branch: sets {@link taken}; status flags or a negative ErrorCode. */
  condBranch(): number {
    let q = this.tnt.query();
    if (q < 0) {
      if (q !== -ErrorCode.BadQuery) return q;
      this.lastTime.copyFrom(this.events.timing.time);
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

  /** Query an indirect branch: sets {@link ip} unless IpSuppressed; status flags or a negative ErrorCode. */
  indirectBranch(): number {
    if (this.status < 0) return this.status;
    const ev = this.ev;
    if (ev.type !== EventType.Tip) {
      const err = this.cacheTnt();
      if (err < 0) return err;
      // Caching the TNT read the next event into `ev`.
      if ((ev.type as EventType) !== EventType.Tip) {
        if (this.status < 0) return this.status;
        return -ErrorCode.BadQuery;
      }
    }
    let status = 0;
    if (ev.ipSuppressed) status |= Status.IpSuppressed;
    else this.ip = ev.ip;
    this.lastTime.copyFrom(this.events.timing.time);
    this.fetchEvent();
    return status | this.statusFlags();
  }

  /** Fetch the pending event into `out`; status flags or a negative ErrorCode. */
  event(out: PtEvent): number {
    if (!this.tnt.isEmpty()) return -ErrorCode.BadQuery;
    if (this.status < 0) return this.status;
    if (!this.eventPending) return -ErrorCode.BadQuery;
    copyEvent(out, this.ev);
    this.lastTime.copyFrom(this.events.timing.time);
    this.fetchEvent();
    return this.statusFlags();
  }

  /** The time at the last query or event: 0, or -NoTime (the value is relative then). */
  time(): number {
    return this.lastTime.queryTsc();
  }

  /** The core:bus ratio at the last query or event, or -NoCbr. */
  coreBusRatio(): number {
    return this.lastTime.queryCbr();
  }
}
