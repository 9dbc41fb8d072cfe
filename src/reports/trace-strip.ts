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

  constructor(
    private readonly position: TracePosition,
    private readonly bytes: number,
    bins: number,
  ) {
    this.bins = Math.max(1, Math.min(Math.floor(bins), Math.max(1, bytes)));
    this.instructions = new Float64Array(this.bins);
    this.syscalls = new Float64Array(this.bins);
    this.gaps = [new Float64Array(this.bins), new Float64Array(this.bins), new Float64Array(this.bins)];
    this.findings = new Float64Array(this.bins);
    this.severity = new Uint8Array(this.bins);
  }

  /** The slice of trace offset `offset` (clamped into the strip). */
  binOf(offset: number): number {
    if (!(offset > 0) || this.bytes <= 0) return 0;
    return Math.min(this.bins - 1, Math.floor((offset * this.bins) / this.bytes));
  }

  onInstruction(insn: InstructionInfo): void {
    this.pending++;
    const k = insn.kind;
    if (k === InsnKind.Syscall || k === InsnKind.Sysenter || k === InsnKind.Int) this.syscalls[this.binOf(this.position.offset)]++;
  }

  onTransfer(): void {
    this.flush();
  }

  onGap(kind: GapKind, offset: number): void {
    this.flush();
    const series = this.gaps[kind];
    if (series !== undefined) series[this.binOf(offset)]++;
  }

  onEnd(): void {
    this.flush();
  }

  private flush(): void {
    if (this.pending === 0) return;
    this.instructions[this.binOf(this.position.offset)] += this.pending;
    this.pending = 0;
  }

  /** Count the detectors' findings (all of them, before any cap). */
  addFindings(findings: readonly Finding[]): void {
    for (const f of findings) {
      const b = this.binOf(f.offset);
      this.findings[b]++;
      this.severity[b] = Math.max(this.severity[b], SEVERITY_RANK[f.severity] ?? 1);
    }
  }

  data(): TraceStripData {
    return {
      bytes: this.bytes,
      bins: this.bins,
      instructions: Array.from(this.instructions),
      syscalls: Array.from(this.syscalls),
      disabled: Array.from(this.gaps[GapKind.Disabled]),
      overflows: Array.from(this.gaps[GapKind.Overflow]),
      errors: Array.from(this.gaps[GapKind.Error]),
      findings: Array.from(this.findings),
      severity: Array.from(this.severity),
    };
  }
}
