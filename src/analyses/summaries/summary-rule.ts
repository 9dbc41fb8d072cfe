/**
 * The two halves of a detector's segment summary (summary.ts explains how
 * `analyze --jobs N` uses them): a worker summarizes a piece's body with a
 * fresh detector, and the main thread applies the summary to the detector
 * holding the serial state.
 */
import type { FlowConsumer } from '../../flow/control-flow.js';
import type { Detector } from '../detector-base.js';

/** The worker side: what the body's records go to, and the summary once they have. */
export interface Summarizer {
  /** Takes the body's records: the fresh detector itself, or a layer that watches what it does. */
  readonly consumer: FlowConsumer;
  /** The summary (structured-clonable), or null: replay the body into the detector instead. */
  finish(): unknown;
}

export interface SummaryRule {
  /** Summarise a fresh detector that sees only the body; `at()` is the current record's trace offset. */
  summarize(fresh: Detector, at: () => number): Summarizer;
  /**
   * Apply a summary to the detector holding the serial state at the body's
   * start; `setAt` sets the offset its findings and notes report. False
   * (and nothing changed): an assumption failed, replay the body instead.
   */
  apply(truth: Detector, summary: unknown, setAt: (offset: number) => void): boolean;
}

/** Call `then` whenever `obj[name]` is called (the method still runs). */
export function intercept(obj: Record<string, unknown>, name: string, then: () => void): void {
  const original = obj[name];
  if (typeof original !== 'function') throw new Error(`summary: no method '${name}' to watch`);
  obj[name] = (...args: unknown[]): unknown => {
    then();
    return (original as (...a: unknown[]) => unknown).apply(obj, args);
  };
}
