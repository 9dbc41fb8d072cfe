/**
 * The segment summary of hook-skip (hook-skip.ts). Its state across a PSB
 * is one flag per monitored function (control passed the entry since the
 * last entry into the body) and the last calls, for evidence.
 *
 * A fresh detector starts with every flag clear. Within a body, each
 * function's flag is read (a transfer into the body, or tracing resuming
 * there) or written (its entry executed; a body entry clears it). If the
 * first access in the body is a read, the fresh detector judges it with a
 * clear flag: a finding or a note, which the state before the piece might
 * not give. So a body with no finding and no note of its own is *quiet*:
 * every function it accessed was first written, and from there on the
 * fresh flags are the serial ones. Its summary is the flags it wrote and
 * its last calls; applying it sets them. A body that is not quiet is
 * replayed (summary.ts).
 */
import type { Detector } from '../detector-base.js';
import type { RecentCalls } from '../evidence.js';
import type { UncheckedLog } from '../finding.js';
import { intercept, type Summarizer, type SummaryRule } from './summary-rule.js';

/** The fields of the detector a summary reads and sets (private to hook-skip.ts). */
interface HookSkipInternals {
  funcs: { entry: number; armed: boolean; touched: boolean }[];
  calls: RecentCalls;
  log: UncheckedLog;
  [field: string]: unknown;
}

interface HookSkipSummary {
  /** The monitored functions' entries, in the detector's order (both sides resolve the same list). */
  entries: number[];
  /** Per function: -1 not written in the body, else its flag at the body's end (1 set). */
  armed: number[];
  /** The body's calls, oldest first, as (site, target) pairs; at most the ring's capacity. */
  calls: number[];
}

/** Each note reason with its count, to tell the notes a body added from the ones made with the detector. */
function noteCounts(log: UncheckedLog): Map<string, number> {
  return new Map(log.notes().map((n) => [n.reason, n.count]));
}

class HookSkipSummarizer implements Summarizer {
  readonly consumer: Detector;
  private quiet = true;
  private readonly w: HookSkipInternals;
  /** The notes the fresh detector made when it was made (a monitored name not found): the serial one made them too. */
  private readonly notesBefore: Map<string, number>;

  constructor(fresh: Detector) {
    this.consumer = fresh;
    this.w = fresh as unknown as HookSkipInternals;
    this.notesBefore = noteCounts(this.w.log);
    intercept(this.w, 'report', () => {
      this.quiet = false;
    });
  }

  finish(): HookSkipSummary | null {
    if (!this.quiet) return null;
    const notes = noteCounts(this.w.log);
    if (notes.size !== this.notesBefore.size || [...notes].some(([reason, count]) => this.notesBefore.get(reason) !== count)) return null;
    const calls: number[] = [];
    this.w.calls.forEach((site, target) => calls.push(site, target));
    return {
      entries: this.w.funcs.map((f) => f.entry),
      armed: this.w.funcs.map((f) => (f.touched ? (f.armed ? 1 : 0) : -1)),
      calls,
    };
  }
}

export const hookSkipSummaryRule: SummaryRule = {
  summarize: (fresh) => new HookSkipSummarizer(fresh),
  apply(truth, summary): boolean {
    const d = truth as unknown as HookSkipInternals;
    const s = summary as HookSkipSummary;
    if (s.entries.length !== d.funcs.length || s.entries.some((e, i) => d.funcs[i]!.entry !== e)) return false;
    s.armed.forEach((a, i) => {
      if (a < 0) return;
      const f = d.funcs[i]!;
      f.armed = a === 1;
      f.touched = true;
    });
    for (let i = 0; i < s.calls.length; i += 2) d.calls.push(s.calls[i]!, s.calls[i + 1]!);
    return true;
  },
};
