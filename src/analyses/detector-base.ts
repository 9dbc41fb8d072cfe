/**
 * Shared plumbing of the detectors: the context they run in, the findings
 * list with its cap, and the unchecked log. (Separate from detector.ts,
 * whose registry imports every detector, so that no import cycle exists.)
 */
import type { DecoderConfig } from '../packets/config.js';
import type { TraceSource } from '../packets/trace-source.js';
import type { Image } from '../flow/image.js';
import type { FlowConsumer } from '../flow/control-flow.js';
import type { CodeFacts } from './code-facts.js';
import type { EvidenceBuilder } from './evidence.js';
import type { DetectedFinding, Finding, ThreadRef, UncheckedNote } from './finding.js';
import { UncheckedLog } from './finding.js';
import type { ModuleMap } from './modules.js';
import { paramValue, parseParam } from './detector-params.js';

/** What a detector may use besides the control-flow stream. */
export interface DetectorContext {
  image: Image;
  modules: ModuleMap;
  facts: CodeFacts;
  evidence: EvidenceBuilder;
  /**
   * The thread whose stream this is. Every stream gets its own detectors, so
   * per-thread state (a shadow stack) is per thread, and dropped with the
   * detector when the thread's stream ends.
   */
  thread: ThreadRef;
  /** The decoder's current trace offset (for findings). */
  offset(): number;
  /** Detector parameters from the command line (`name.key=value`), by key. */
  params: Record<string, string>;
  /** `--policy FILE`, for detectors that read a policy. */
  policyFile: string | null;
  /** `--monitor SYMS`: functions hook-skip watches. */
  monitor: string[];
  /**
   * True when the stream is decoded from a PSB in the middle of the trace
   * (FlowGuard's slow path): events before it are unseen (stack-switch.ts).
   */
  historyUnseen?: boolean;
  /**
   * Open the raw trace (FlowGuard's fast path reads packets), with its
   * decoder configuration below: a source read in windows, which the
   * caller closes. A function, not a field that opens it: a context is
   * copied (FlowGuard's slow path spreads it) without opening anything.
   */
  openTrace: (() => TraceSource) | null;
  config: DecoderConfig | null;
}

/** A security detector: a consumer of the control-flow stream that produces findings. */
export interface Detector extends FlowConsumer {
  readonly name: string;
  /** Effective parameters (defaults merged with overrides), for reports. */
  readonly parameters: Readonly<Record<string, number | string | boolean>>;
  findings(): Finding[];
  unchecked(): UncheckedNote[];
  /** Extra numbers for reports (checks done, fast-path fraction, ...). */
  stats?(): Record<string, number>;
  /**
   * Recompute the ratios among `stats` once several instances' stats are
   * merged (counts are summed, maxima kept): a rate or a fraction is not a sum.
   */
  deriveStats?(stats: Record<string, number>): void;
}

/** Findings kept per detector; the rest are counted. */
export const MAX_FINDINGS = 200;

export abstract class DetectorBase implements Detector {
  protected readonly found: Finding[] = [];
  protected readonly log: UncheckedLog;
  protected dropped = 0;

  constructor(
    readonly name: string,
    protected readonly ctx: DetectorContext,
  ) {
    this.log = new UncheckedLog(name);
    // Every given key must be declared (and its value valid), even ones this run does not read.
    for (const [key, text] of Object.entries(ctx.params)) parseParam(name, key, text);
  }

  abstract readonly parameters: Readonly<Record<string, number | string | boolean>>;

  /**
   * A declared parameter (detector-params.ts): `--param name.key=value`,
   * type- and range-checked, or `dflt` (the declared default when omitted).
   * Throws ParamError (one line) for a bad value.
   */
  protected numParam(key: string, dflt?: number): number {
    return paramValue(this.name, key, this.ctx.params, dflt);
  }

  /** Keep a finding, labelled with the stream's thread (in place: a detector may still extend it). */
  protected report(f: DetectedFinding): void {
    if (this.found.length >= MAX_FINDINGS) {
      this.dropped++;
      return;
    }
    this.found.push(Object.assign(f, { pid: this.ctx.thread.pid, tid: this.ctx.thread.tid }));
  }

  findings(): Finding[] {
    return this.found;
  }

  unchecked(): UncheckedNote[] {
    const notes = this.log.notes();
    if (this.dropped > 0) {
      notes.push({ detector: this.name, reason: `${this.dropped} further findings not kept (limit ${MAX_FINDINGS})`, count: this.dropped, firstOffset: 0 });
    }
    return notes;
  }
}

/** CR3 as reported in findings. */
export function cr3Text(cr3: number): string | null {
  return Number.isNaN(cr3) ? null : '0x' + cr3.toString(16);
}
