import { openTraceInput, type TraceInput } from '../../src/analyses/trace-input.js';

/** A raw trace with ptxed-style images as an analysis input (the first stream). */
export function rawInput(spec: { trace: string; raw?: string[]; elf?: string[]; cpu?: string }): TraceInput {
  return openTraceInput(spec.trace, { raw: spec.raw ?? [], elf: spec.elf ?? [], cpu: spec.cpu });
}
