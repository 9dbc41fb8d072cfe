/**
 * Summaries for the detectors whose state across a PSB is small: cfi,
 * inter-module and rop judge each transfer against the image, and carry
 * only their stack-switch tracker (stack-switch.ts), the last calls (for
 * evidence), counters, notes and, for rop, the kBouncer window and the
 * dispatcher's recent targets.
 *
 * A body is *quiet* when the fresh detector found nothing suspicious in it:
 * no finding, no gadget, no stack-switch classification (each of which
 * reads state from before the piece). A quiet body's summary is the
 * records the stack-switch tracker must see (calls to context APIs, system
 * calls, interrupts, tracing on/off, resets), the notes, the last calls,
 * the counters, and rop's window and dispatcher ring; applying it gives the
 * serial state exactly. A body that is not quiet is replayed (summary.ts).
 */
import { EventType, PtEvent } from '../../events/event.js';
import { GapKind, TransferKind, type FlowConsumer } from '../../flow/control-flow.js';
import { eventOf, LogTag, STRIDE } from '../../flow/parallel/flow-log.js';
import type { Detector } from '../detector-base.js';
import type { RecentCalls } from '../evidence.js';
import type { UncheckedLog, UncheckedNote } from '../finding.js';
import { ContextApi, type StackSwitches, type SwitchTap } from '../stack-switch.js';
import { OpLog } from './op-log.js';
import { intercept, type Summarizer, type SummaryRule } from './summary-rule.js';

/** The fields of these detectors a summary reads and sets (they are private to each detector file). */
interface QuietInternals {
  switches: StackSwitches<null>;
  calls: RecentCalls;
  log: UncheckedLog;
  [field: string]: unknown;
}

/** What differs between the quiet detectors. */
export interface QuietExtras {
  /** Methods whose call means the body is not quiet. */
  notQuiet: readonly string[];
  /** The detector's own part of the summary (worker). */
  take(w: QuietInternals, transfers: number): unknown;
  /** Whether the state before the piece admits a quiet summary (main). */
  admits?(d: QuietInternals): boolean;
  fold(d: QuietInternals, extra: unknown): void;
}

/** The stack-switch tracker's fields that system calls, interrupts and tracing on/off change (private to stack-switch.ts). */
interface TrackerState {
  afterSyscall: number;
  stoppedAt: number;
  signalsInHandler: number;
}

/** Once the tracker's state no longer depends on the state before the piece: what to set at the end. */
interface TrackerEnd {
  afterSyscall: number;
  stoppedAt: number;
  /** Signals to add, or (after a reset) the count to set. */
  signals: number;
  absolute: boolean;
}

interface QuietSummary {
  ops: Float64Array;
  tracker: TrackerEnd | null;
  notes: UncheckedNote[];
  calls: number[];
  extra: unknown;
}

/** Reason UncheckedLog folds new reasons into once full: its order then depends on the state before. */
const FOLDED = 'further unchecked items (reason list full)';

/**
 * The worker side: the fresh detector takes the body's records itself (no
 * layer in between), and this summarizer taps its stack-switch tracker,
 * writing down the tracker's inputs that the state before the piece
 * decides (stack-switch.ts SwitchTap): every call to a context API, and
 * system calls, interrupts and tracing on/off until the tracker's state no
 * longer depends on what came before. A gap (a reset) is written down
 * always. A call to any of the detector's notQuiet methods (or a
 * stack-switch classification) marks the body not quiet.
 */
class QuietSummarizer implements Summarizer, SwitchTap {
  readonly consumer: FlowConsumer;
  private quiet = true;
  /**
   * Whether the tracker's `afterSyscall` and `stoppedAt` are known from the
   * body alone. Until both are, its inputs are written down to be replayed;
   * from then on the worker's tracker is exact, and only its end state
   * (and the signals it counted) is handed over.
   */
  private afterKnown = false;
  private stoppedKnown = false;
  private signalsBase = 0;
  private absolute = false;
  private readonly ops = new OpLog();
  private readonly w: QuietInternals;

  constructor(
    det: Detector,
    private readonly at: () => number,
    private readonly extras: QuietExtras,
  ) {
    this.consumer = det;
    this.w = det as unknown as QuietInternals;
    const stop = (): void => {
      this.quiet = false;
    };
    for (const name of ['report', ...extras.notQuiet]) intercept(this.w, name, stop);
    intercept(this.w.switches as unknown as Record<string, unknown>, 'classify', stop);
    this.w.switches.tap = this;
  }

  transfer(kind: TransferKind, from: number, to: number, size: number, api: ContextApi): void {
    if (!this.room()) return;
    if (api !== ContextApi.None) this.ops.transfer(0, kind, from, to, size, 0, 0, this.at());
    else if ((kind === TransferKind.FarCall || kind === TransferKind.Async) && !this.trackerKnown()) {
      this.ops.transfer(0, kind, from, to, size, 0, 0, this.at());
      // (Taken after the tracker saw it: the signals counted from here on are the body's own.)
      if (kind === TransferKind.FarCall) this.learned(true, this.stoppedKnown);
    }
  }

  event(ev: PtEvent): void {
    if (!this.room() || this.trackerKnown() || (ev.type !== EventType.Enabled && ev.type !== EventType.Disabled && ev.type !== EventType.AsyncDisabled)) return;
    this.ops.event(0, ev, this.at());
    // Disabled: stoppedAt = afterSyscall, afterSyscall = NaN; the others set stoppedAt.
    if (ev.type === EventType.Disabled) this.learned(true, this.afterKnown);
    else this.learned(this.afterKnown, true);
  }

  reset(): void {
    if (!this.room()) return;
    // Replayed in order (it also ends an unwind); the tracker is known from here, its signals counted afresh.
    this.ops.gap(0, GapKind.Error, this.at());
    if (this.trackerKnown()) this.absolute = true;
    this.learned(true, true);
  }

  private trackerKnown(): boolean {
    return this.afterKnown && this.stoppedKnown;
  }

  /** Whether inputs are still written down: not once the body is not quiet, nor past the summary's bound (then it is replayed). */
  private room(): boolean {
    if (this.quiet && this.ops.full) this.quiet = false;
    return this.quiet;
  }

  /** After the worker's tracker has seen the input: which fields the body has now decided. */
  private learned(after: boolean, stopped: boolean): void {
    const was = this.trackerKnown();
    this.afterKnown = after;
    this.stoppedKnown = stopped;
    if (!was && this.trackerKnown()) this.signalsBase = this.tracker().signalsInHandler;
  }

  private tracker(): TrackerState {
    return this.w.switches as unknown as TrackerState;
  }

  finish(): QuietSummary | null {
    this.w.switches.tap = null;
    const notes = this.w.log.notes();
    if (!this.quiet || notes.some((n) => n.reason === FOLDED)) return null;
    const calls: number[] = [];
    this.w.calls.forEach((site, target) => calls.push(site, target));
    const t = this.tracker();
    const tracker: TrackerEnd | null = this.trackerKnown()
      ? { afterSyscall: t.afterSyscall, stoppedAt: t.stoppedAt, signals: this.absolute ? t.signalsInHandler : t.signalsInHandler - this.signalsBase, absolute: this.absolute }
      : null;
    // Each of these detectors feeds its tracker every transfer.
    return { ops: this.ops.take(), tracker, notes, calls, extra: this.extras.take(this.w, this.w.switches.observed) };
  }
}

export function quietSummaryRule(extras: QuietExtras): SummaryRule {
  return {
    summarize: (fresh, at) => new QuietSummarizer(fresh, at, extras),
    apply(truth, summary, setAt): boolean {
      const d = truth as unknown as QuietInternals;
      const s = summary as QuietSummary;
      if (extras.admits !== undefined && !extras.admits(d)) return false;
      const ev = new PtEvent();
      for (let i = 0; i < s.ops.length; i += STRIDE) {
        const o = s.ops;
        setAt(o[i + 7]!);
        if (o[i] === LogTag.Transfer) d.switches.observe(o[i + 1]! as TransferKind, o[i + 2]!, o[i + 3]!, o[i + 4]!, null);
        else if (o[i] === LogTag.Event) d.switches.observeEvent(eventOf(o, i, ev));
        else if (o[i] === LogTag.Gap) d.switches.reset();
      }
      if (s.tracker !== null) {
        const t = d.switches as unknown as TrackerState;
        t.afterSyscall = s.tracker.afterSyscall;
        t.stoppedAt = s.tracker.stoppedAt;
        t.signalsInHandler = s.tracker.absolute ? s.tracker.signals : t.signalsInHandler + s.tracker.signals;
      }
      for (const n of s.notes) d.log.note(n.reason, n.firstOffset, n.count);
      for (let i = 0; i < s.calls.length; i += 2) d.calls.push(s.calls[i]!, s.calls[i + 1]!);
      extras.fold(d, s.extra);
      return true;
    },
  };
}

function num(o: QuietInternals, field: string): number {
  const v = o[field];
  if (typeof v !== 'number') throw new Error(`summary: no counter '${field}'`);
  return v;
}

/** Counters that add up across pieces. */
function counters(...fields: string[]): Pick<QuietExtras, 'take' | 'fold'> {
  return {
    take: (w) => fields.map((f) => num(w, f)),
    fold: (d, extra) => {
      const v = extra as number[];
      fields.forEach((f, i) => (d[f] = num(d, f) + v[i]!));
    },
  };
}

export const cfiExtras: QuietExtras = { notQuiet: ['violation'], ...counters('checked', 'unboundedJumps') };

export const interModuleExtras: QuietExtras = { notQuiet: ['violation'], ...counters('crossings') };

interface RopExtra {
  returns: number;
  /** The last indirect-jump targets the dispatcher check keeps, oldest first. */
  jumps: number[];
  /** Indirect jumps the ring saw in all. */
  jumpCount: number;
  cr3: number;
  transfers: number;
}

/**
 * rop: a quiet body starts no gadget, so it needs a state before it with
 * no gadget, chain or SROP check open; its returns push non-violations
 * into the kBouncer window and its short indirect jumps push targets into
 * the dispatcher ring.
 */
export const ropExtras: QuietExtras = {
  notQuiet: ['reportChain', 'startGadget', 'checkSrop'],
  admits: (d) => d.inGadget === false && d.links === 0 && d.sropPending === false,
  take(w, transfers): RopExtra {
    const ring = w.ijmpTargets as Float64Array;
    const count = num(w, 'ijmpCount');
    const n = Math.min(count, ring.length);
    const jumps: number[] = [];
    for (let k = count - n; k < count; k++) jumps.push(ring[k % ring.length]!);
    return { returns: num(w, 'returnIndex'), jumps, jumpCount: count, cr3: num(w, 'cr3'), transfers };
  },
  fold(d, extra): void {
    const e = extra as RopExtra;
    const window = d.recentReturns as Uint8Array;
    const w = window.length;
    let index = num(d, 'returnIndex');
    let inWindow = num(d, 'violationsInWindow');
    for (let k = 0; k < Math.min(e.returns, w); k++) {
      const slot = (index + k) % w;
      inWindow -= window[slot]!;
      window[slot] = 0;
    }
    index += e.returns;
    d.returnIndex = index;
    d.violationsInWindow = inWindow;
    const ring = d.ijmpTargets as Float64Array;
    const count = num(d, 'ijmpCount');
    // The serial walk wrote the body's k-th target at count + k; only the last ring.length survive.
    const first = count + e.jumpCount - e.jumps.length;
    e.jumps.forEach((t, i) => (ring[(first + i) % ring.length] = t));
    d.ijmpCount = count + e.jumpCount;
    if (e.transfers > 0) d.cr3 = e.cr3;
  },
};
