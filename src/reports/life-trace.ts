/**
 * A thread life's trace on per-CPU streams (report-model.ts
 * buildCpuReportModels): its runs end to end, as if it had a stream of
 * its own. The report's strip and the order of its findings read offsets
 * in it.
 */
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
  /** Each closed run: its span in its CPU's stream and where it begins in the life's trace. */
  private readonly runs: { start: number; end: number; base: number }[] = [];

  /** Between runs (the walk's end), its last byte. */
  get offset(): number {
    return this.decoder === null ? Math.max(0, this.bytes - 1) : this.bytes + Math.max(0, this.decoder.offset - this.start);
  }

  /** A run starts at stream offset `at` of the CPU `decoder` decodes. */
  open(decoder: InsnDecoder, at: number): this {
    this.decoder = decoder;
    this.start = at;
    return this;
  }

  /** The run ends at stream offset `at`. */
  close(at: number): void {
    if (this.decoder === null) return;
    const length = Math.max(0, at - this.start);
    if (length > 0) this.runs.push({ start: this.start, end: at, base: this.bytes });
    this.bytes += length;
    this.decoder = null;
  }

  /** Where stream offset `offset` lies in the life's trace: in the first run that spans it (its end if none does). */
  positionOf(offset: number): number {
    const run = this.runs.find((r) => offset >= r.start && offset <= r.end);
    return run === undefined ? Math.max(0, this.bytes - 1) : run.base + (offset - run.start);
  }
}
