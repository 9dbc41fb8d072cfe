/**
 * A thread life's trace on per-CPU streams (report-model.ts
 * buildCpuReportModels): its runs end to end, as if it had a stream of
 * its own. The report's strip and the order of its findings read offsets
 * in it.
 */
import type { Finding } from '../analyses/finding.js';
import type { InsnDecoder } from '../flow/insn-decoder.js';
import type { TracePosition } from './trace-strip.js';

/**
 * A thread life's trace on per-CPU streams: its runs end to end. Its
 * offset (the strip's position) is the bytes of its earlier runs plus how
 * far the current run's decoder is into it.
 */
export class LifeTrace implements TracePosition {
  /** Bytes of its closed runs. */
  bytes = 0;
  private decoder: InsnDecoder | null = null;
  private start = 0;
  private marks: ReadonlyMap<string, number> = new Map();
  /**
   * Every closed run, empty ones too: its span in its CPU's stream, where it
   * begins in the life's trace, and how many findings each detector of the
   * life had made when it began.
   */
  private readonly runs: { start: number; end: number; base: number; marks: ReadonlyMap<string, number> }[] = [];

  /** Between runs (the walk's end), its last byte. */
  get offset(): number {
    return this.decoder === null ? Math.max(0, this.bytes - 1) : this.bytes + Math.max(0, this.decoder.offset - this.start);
  }

  /**
   * A run starts at stream offset `at` of the CPU `decoder` decodes;
   * `found`: how many findings each of the life's detectors (by name) has
   * made so far (the ones made from here on are this run's, or a later one's).
   */
  open(decoder: InsnDecoder, at: number, found: ReadonlyMap<string, number> = new Map()): this {
    this.decoder = decoder;
    this.start = at;
    this.marks = found;
    return this;
  }

  /** The run ends at stream offset `at`. */
  close(at: number): void {
    if (this.decoder === null) return;
    const length = Math.max(0, at - this.start);
    this.runs.push({ start: this.start, end: this.start + length, base: this.bytes, marks: this.marks });
    this.bytes += length;
    this.decoder = null;
  }

  /**
   * Where each finding lies in the life's trace. Runs on different CPUs
   * have offsets in different streams, which may overlap: a finding's
   * offset alone does not say which run it is in. The run does: the last
   * one that began before the detector made it (the counts given to
   * {@link open}); its offset is then placed within that run. `made`: the
   * findings of each detector that rode the walk, in the order it made
   * them; `all`: every finding of the life (one made apart from the walk,
   * as FlowGuard's, goes in the first run whose span holds its offset).
   */
  placeFindings(made: readonly (readonly Finding[])[], all: readonly Finding[]): Map<Finding, number> {
    const at = new Map<Finding, number>();
    for (const findings of made) findings.forEach((f, j) => at.set(f, this.placeMade(f, j)));
    for (const f of all) if (!at.has(f)) at.set(f, this.positionOf(f.offset));
    return at;
  }

  /** The `j`th finding its detector made. */
  private placeMade(f: Finding, j: number): number {
    let run = null;
    for (const r of this.runs) {
      if ((r.marks.get(f.detector) ?? 0) > j) break;
      run = r;
    }
    return run === null ? this.positionOf(f.offset) : run.base + Math.min(run.end - run.start, Math.max(0, f.offset - run.start));
  }

  /** Where stream offset `offset` lies in the life's trace: in the first non-empty run that spans it (its end if none does). */
  positionOf(offset: number): number {
    const run = this.runs.find((r) => r.end > r.start && offset >= r.start && offset <= r.end);
    return run === undefined ? Math.max(0, this.bytes - 1) : run.base + (offset - run.start);
  }
}
