/**
 * Where things happen along the trace, for the report's strip of trace time
 * (svg-timeline-strip.ts): the trace is cut into a fixed number of equal
 * slices of trace offset, and each slice counts the instructions decoded
 * from it, the system calls, the gaps by kind (tracing disabled, overflow,
 * decode error) and the findings.
 *
 * A control-flow consumer that rides the report's one decode walk: it reads
 * the decoder's trace offset at each transfer and gap, and allocates nothing
 * per instruction. The slices are fixed in number, so the model stays small
 * whatever the trace size.
 *
 * A thread's strip on per-CPU streams spans its own runs end to end, whose
 * total is known only when the walk ends: such a strip ({@link
 * TraceStrip.growing}) starts at one byte per slice and, when the position
 * passes its end, merges slices in pairs and doubles its span.
 */
import { GapKind, type FlowConsumer } from '../flow/control-flow.js';
import { InsnKind, type InstructionInfo } from '../flow/instruction.js';
import type { Finding, Severity } from '../analyses/finding.js';

/** The strip's data in the report model (plain JSON-safe numbers). */
export interface TraceStripData {
  /** Trace size in bytes: the strip spans offsets [0, bytes). */
  bytes: number;
  /** Number of slices; slice i covers offsets [i * bytes / bins, (i + 1) * bytes / bins). */
  bins: number;
  /** Instructions decoded per slice. */
  instructions: number[];
  /** syscall, sysenter and `int n` instructions per slice. */
  syscalls: number[];
  /** Tracing disabled (TIP.PGD: a system call in a user-only trace, a filter boundary). */
  disabled: number[];
  /** Overflows (OVF): execution is missing. */
  overflows: number[];
  /** Decode errors (the decoder resynchronised at the next PSB). */
  errors: number[];
  /** All findings per slice (the findings list itself is capped; this is not). */
  findings: number[];
  /** Highest severity per slice: 0 none, 1 low, 2 medium, 3 high. */
  severity: number[];
}

/** The decoder position the strip reads (an instruction decoder's `offset`). */
export interface TracePosition {
  readonly offset: number;
}

const SEVERITY_RANK: Record<Severity, number> = { low: 1, medium: 2, high: 3 };

/** Collects {@link TraceStripData} during a decode walk. */
export class TraceStrip implements FlowConsumer {
  readonly bins: number;
  private readonly instructions: Float64Array;
  private readonly syscalls: Float64Array;
  private readonly gaps: Float64Array[];
  private readonly findings: Float64Array;
  private readonly severity: Uint8Array;
  /** Instructions since the last transfer or gap, not yet put in a slice. */
  private pending = 0;
  /** A closed growing strip's slice count (its last slice holds the trace's last byte), or -1. */
  private closedBins = -1;

  /** A strip over offsets [0, bytes). */
  constructor(
    private readonly position: TracePosition,
    private bytes: number,
    bins: number,
    private readonly grows = false,
  ) {
    this.bins = Math.max(1, Math.min(Math.floor(bins), Math.max(1, bytes)));
    this.instructions = new Float64Array(this.bins);
    this.syscalls = new Float64Array(this.bins);
    this.gaps = [new Float64Array(this.bins), new Float64Array(this.bins), new Float64Array(this.bins)];
    this.findings = new Float64Array(this.bins);
    this.severity = new Uint8Array(this.bins);
  }

  /** A strip whose trace length is known only at its end ({@link close}). */
  static growing(position: TracePosition, bins: number): TraceStrip {
    const n = Math.max(1, Math.floor(bins));
    return new TraceStrip(position, n, n, true);
  }

  /** The slice of trace offset `offset` (clamped into the strip; a growing strip grows to hold it). */
  binOf(offset: number): number {
    if (!(offset > 0) || this.bytes <= 0) return 0;
    while (this.grows && this.closedBins < 0 && offset >= this.bytes) this.double();
    const last = this.closedBins < 0 ? this.bins - 1 : this.closedBins - 1;
    return Math.min(last, Math.floor((offset * this.bins) / this.bytes));
  }

  /** Twice the span: slices merge in pairs into the first half. */
  private double(): void {
    for (let i = 0; i < this.bins; i++) this.moveSlice(i, i >> 1);
    this.bytes *= 2;
  }

  /** Slice `from`'s counts added into slice `to` (severity: the higher), `from` emptied (`to` may be `from`). */
  private moveSlice(from: number, to: number): void {
    for (const a of [this.instructions, this.syscalls, ...this.gaps, this.findings]) {
      const v = a[from]!;
      a[from] = 0;
      a[to] += v;
    }
    const s = this.severity[from]!;
    this.severity[from] = 0;
    this.severity[to] = Math.max(this.severity[to]!, s);
  }

  /** A growing strip's trace length: the strip ends at the slice that holds it. */
  close(total: number): void {
    const last = this.binOf(total - 1);
    // What was counted at the trace's very end (the decoder's offset after its last byte) is the last slice's.
    for (let i = last + 1; i < this.bins; i++) this.moveSlice(i, last);
    this.closedBins = last + 1;
  }

  onInstruction(insn: InstructionInfo): void {
    this.pending++;
    const k = insn.kind;
    if (k === InsnKind.Syscall || k === InsnKind.Sysenter || k === InsnKind.Int) this.syscalls[this.binOf(this.position.offset)]++;
  }

  onTransfer(): void {
    this.flush();
  }

  /** At the position's offset (the walker's gap offset is the decoder's, which a thread's strip re-bases). */
  onGap(kind: GapKind): void {
    this.flush();
    const series = this.gaps[kind];
    if (series !== undefined) series[this.binOf(this.position.offset)]++;
  }

  onEnd(): void {
    this.flush();
  }

  private flush(): void {
    if (this.pending === 0) return;
    this.instructions[this.binOf(this.position.offset)] += this.pending;
    this.pending = 0;
  }

  /** Count the detectors' findings (all of them, before any cap); `at` places one on the strip. */
  addFindings(findings: readonly Finding[], at: (f: Finding) => number = (f) => f.offset): void {
    for (const f of findings) {
      const b = this.binOf(at(f));
      this.findings[b]++;
      this.severity[b] = Math.max(this.severity[b], SEVERITY_RANK[f.severity] ?? 1);
    }
  }

  /** The slices (a closed growing strip: up to the one holding its end, spanning whole slices). */
  data(): TraceStripData {
    const width = this.bytes / this.bins;
    const bins = this.closedBins < 0 ? this.bins : this.closedBins;
    const part = (a: Float64Array | Uint8Array): number[] => Array.from(a.subarray(0, bins));
    return {
      bytes: this.closedBins < 0 ? this.bytes : bins * width,
      bins,
      instructions: part(this.instructions),
      syscalls: part(this.syscalls),
      disabled: part(this.gaps[GapKind.Disabled]),
      overflows: part(this.gaps[GapKind.Overflow]),
      errors: part(this.gaps[GapKind.Error]),
      findings: part(this.findings),
      severity: part(this.severity),
    };
  }
}
