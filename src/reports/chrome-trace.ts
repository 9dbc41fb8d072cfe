/**
 * A function-level timeline of a trace, as Chrome trace event JSON (the
 * format Perfetto UI, chrome://tracing and speedscope open).
 *
 * {@link CallTimeline} consumes the control-flow stream: a call opens a
 * frame ("B" event named after the callee), a return closes frames ("E")
 * up to the one whose return address it goes to; a return that matches no
 * frame (a ROP chain, a longjmp to an unknown frame) closes the innermost
 * one, so the view never nests deeper than the calls it saw. Each address
 * space (CR3) is its own track (thread); a trace without paging events has
 * one. Overflows and decode errors close every open frame of the track:
 * what happened in between is unknown.
 *
 * Time: the trace has no clock the timeline can rely on (the emulated
 * recorder writes no timing packets by default), so `ts` counts retired
 * instructions: 1 µs on the time axis is one instruction.
 *
 * Huge traces: at most `maxEvents` begin events are kept (their end events
 * are always kept, so the output stays well nested); the rest are counted.
 */
import { hexAddress } from '../analyses/finding.js';
import { TransferKind, GapKind, type FlowConsumer } from '../flow/control-flow.js';

const PHASE_BEGIN = 0;
const PHASE_END = 1;

/** Per-track call stack: return addresses and whether the frame's B event was kept. */
class Track {
  returns = new Float64Array(64);
  kept = new Uint8Array(64);
  depth = 0;
  /** Deepest depth seen. */
  maxDepth = 0;

  constructor(readonly id: number, readonly cr3: number) {}

  push(ret: number, kept: boolean): void {
    if (this.depth === this.returns.length) {
      const r = new Float64Array(this.depth * 2);
      r.set(this.returns);
      this.returns = r;
      const k = new Uint8Array(this.depth * 2);
      k.set(this.kept);
      this.kept = k;
    }
    this.returns[this.depth] = ret;
    this.kept[this.depth] = kept ? 1 : 0;
    this.depth++;
    if (this.depth > this.maxDepth) this.maxDepth = this.depth;
  }
}

/** One call as the report lists it. */
export interface TimelineCall {
  /** Instruction count when the call happened. */
  at: number;
  depth: number;
  site: number;
  target: number;
  /** Track (address space) index. */
  track: number;
}

export class CallTimeline implements FlowConsumer {
  /** Events: phase, track, timestamp, and for B the callee and call site. */
  private phase = new Uint8Array(4096);
  private track = new Uint16Array(4096);
  private ts = new Float64Array(4096);
  private target = new Float64Array(4096);
  private site = new Float64Array(4096);
  private depthAt = new Uint32Array(4096);
  private used = 0;
  private readonly tracks: Track[] = [];
  private readonly trackByCr3 = new Map<number, Track>();
  private current: Track | null = null;
  /** Instructions so far (the clock). */
  private now = 0;
  /** Calls seen (kept or not). */
  calls = 0;
  returns = 0;
  /** Returns that matched no open frame. */
  unmatchedReturns = 0;
  /** Begin events not kept because of the cap. */
  dropped = 0;

  constructor(readonly maxEvents = 500_000) {}

  get eventCount(): number {
    return this.used;
  }

  get trackCount(): number {
    return this.tracks.length;
  }

  private trackFor(cr3: number): Track {
    const cur = this.current;
    if (cur !== null && (cur.cr3 === cr3 || (cr3 !== cr3 && cur.cr3 !== cur.cr3))) return cur;
    const key = cr3 !== cr3 ? -1 : cr3;
    let t = this.trackByCr3.get(key);
    if (t === undefined) {
      t = new Track(this.tracks.length, cr3);
      this.tracks.push(t);
      this.trackByCr3.set(key, t);
    }
    this.current = t;
    return t;
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, insnsBefore: number, cr3: number): void {
    this.now += insnsBefore;
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) {
      const t = this.trackFor(cr3);
      this.calls++;
      const keep = this.used < this.maxEvents;
      if (keep) this.add(PHASE_BEGIN, t.id, to, from, t.depth);
      else this.dropped++;
      t.push(from + size, keep);
    } else if (kind === TransferKind.Return) {
      const t = this.trackFor(cr3);
      this.returns++;
      if (t.depth === 0) {
        this.unmatchedReturns++;
        return;
      }
      // Unwind to the frame this return belongs to; without one, close the innermost.
      let d = t.depth - 1;
      while (d >= 0 && t.returns[d] !== to) d--;
      if (d < 0) {
        this.unmatchedReturns++;
        d = t.depth - 1;
      }
      while (t.depth > d) this.pop(t);
    }
  }

  onGap(kind: GapKind): void {
    // Tracing off (a system call in a user-only trace) keeps the stack; lost data does not.
    if (kind === GapKind.Disabled) return;
    for (const t of this.tracks) while (t.depth > 0) this.pop(t);
  }

  onEnd(): void {
    for (const t of this.tracks) while (t.depth > 0) this.pop(t);
  }

  private pop(t: Track): void {
    t.depth--;
    if (t.kept[t.depth] === 1) this.add(PHASE_END, t.id, NaN, NaN, t.depth);
  }

  private add(phase: number, track: number, target: number, site: number, depth: number): void {
    const i = this.used;
    if (i === this.phase.length) this.grow();
    this.phase[i] = phase;
    this.track[i] = track;
    this.ts[i] = this.now;
    this.target[i] = target;
    this.site[i] = site;
    this.depthAt[i] = depth;
    this.used++;
  }

  private grow(): void {
    const n = this.phase.length * 2;
    const g = <T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a as never);
      return b;
    };
    this.phase = g(this.phase, (k) => new Uint8Array(k));
    this.track = g(this.track, (k) => new Uint16Array(k));
    this.ts = g(this.ts, (k) => new Float64Array(k));
    this.target = g(this.target, (k) => new Float64Array(k));
    this.site = g(this.site, (k) => new Float64Array(k));
    this.depthAt = g(this.depthAt, (k) => new Uint32Array(k));
  }

  /** The first `limit` kept calls, in order. */
  firstCalls(limit: number): TimelineCall[] {
    const out: TimelineCall[] = [];
    for (let i = 0; i < this.used && out.length < limit; i++) {
      if (this.phase[i] === PHASE_BEGIN) out.push({ at: this.ts[i], depth: this.depthAt[i], site: this.site[i], target: this.target[i], track: this.track[i] });
    }
    return out;
  }

  /** Deepest call nesting over all tracks. */
  get maxDepth(): number {
    return this.tracks.reduce((m, t) => Math.max(m, t.maxDepth), 0);
  }

  /** Track names: the address space, or "trace" when there is only one without CR3. */
  trackName(i: number): string {
    const t = this.tracks[i];
    return t.cr3 !== t.cr3 ? 'trace (one address space)' : `address space cr3=${hexAddress(t.cr3)}`;
  }

  /**
   * Chrome trace event JSON, streamed as chunks (a long trace's JSON can be
   * far bigger than one string should be). `name(ip)` names a callee
   * (symbolize; called once per distinct target).
   */
  *chromeTraceChunks(name: (ip: number) => string, meta: { processName: string; otherData?: Record<string, string | number> }): Generator<string> {
    const names = new Map<number, string>();
    const nameOf = (ip: number): string => {
      let n = names.get(ip);
      if (n === undefined) {
        n = JSON.stringify(name(ip));
        names.set(ip, n);
      }
      return n;
    };
    const other = {
      clock: 'instructions (1 us on the time axis = 1 retired instruction)',
      calls: this.calls,
      returns: this.returns,
      unmatchedReturns: this.unmatchedReturns,
      droppedCalls: this.dropped,
      ...meta.otherData,
    };
    yield `{"displayTimeUnit":"ms","otherData":${JSON.stringify(other)},"traceEvents":[\n`;
    yield `{"ph":"M","pid":1,"tid":0,"name":"process_name","args":{"name":${JSON.stringify(meta.processName)}}}`;
    for (let i = 0; i < this.tracks.length; i++) {
      yield `,\n{"ph":"M","pid":1,"tid":${i + 1},"name":"thread_name","args":{"name":${JSON.stringify(this.trackName(i))}}}`;
    }
    const open: number[][] = this.tracks.map(() => []);
    let chunk: string[] = [];
    for (let i = 0; i < this.used; i++) {
      const tid = this.track[i] + 1;
      if (this.phase[i] === PHASE_BEGIN) {
        open[this.track[i]].push(i);
        chunk.push(`,\n{"ph":"B","pid":1,"tid":${tid},"ts":${this.ts[i]},"name":${nameOf(this.target[i])},"args":{"site":"${hexAddress(this.site[i])}"}}`);
      } else {
        const b = open[this.track[i]].pop();
        chunk.push(`,\n{"ph":"E","pid":1,"tid":${tid},"ts":${this.ts[i]}${b === undefined ? '' : `,"name":${nameOf(this.target[b])}`}}`);
      }
      if (chunk.length >= 4096) {
        yield chunk.join('');
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk.join('');
    yield '\n]}\n';
  }
}
