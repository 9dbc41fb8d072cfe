/**
 * The last instructions before the crash: a ring of IPs filled from the
 * control-flow stream, with the positions of gaps (tracing disabled,
 * overflow, decode errors) so that reverse execution never runs across
 * missing instructions.
 */
import { ControlFlowWalker, GapKind, type FlowConsumer } from '../../flow/control-flow.js';
import { InsnDecoder } from '../../flow/insn-decoder.js';
import type { InstructionInfo } from '../../flow/instruction.js';
import { insnDecoderFor, type TraceInput } from '../trace-input.js';

export interface InstructionWindow {
  /** IPs in execution order; the last one is the last traced instruction. */
  ips: Float64Array;
  /** Instructions in the whole trace. */
  total: number;
  /** Index (into ips) of the first instruction after the last gap inside the window, or 0. */
  contiguousFrom: number;
  /** The last gap before the end: its kind and how many instructions ran after it (null: none in the trace). */
  lastGap: { kind: GapKind; instructionsAfter: number } | null;
  decodeErrors: number;
}

export const GAP_NAMES = ['tracing disabled', 'trace overflow', 'decode error'];

class Collector implements FlowConsumer {
  readonly ring: Float64Array;
  count = 0;
  lastGapAt = -1;
  lastGapKind: GapKind = GapKind.Disabled;
  errors = 0;

  constructor(size: number) {
    this.ring = new Float64Array(size);
  }

  onInstruction(insn: InstructionInfo): void {
    this.ring[this.count % this.ring.length] = insn.ip;
    this.count++;
  }

  onGap(kind: GapKind): void {
    this.lastGapAt = this.count;
    this.lastGapKind = kind;
  }

  onError(): void {
    this.errors++;
  }
}

/** Decode the trace and keep the last `size` instructions. */
export function lastInstructions(input: TraceInput, size: number): InstructionWindow {
  const dec = insnDecoderFor(input);
  const c = new Collector(size);
  new ControlFlowWalker(dec, [c]).run();
  const n = Math.min(c.count, size);
  const ips = new Float64Array(n);
  const first = c.count - n;
  for (let i = 0; i < n; i++) ips[i] = c.ring[(first + i) % size];
  // A disable gap right at the end (the crash itself ends tracing) is not a hole.
  let contiguousFrom = 0;
  let lastGap: InstructionWindow['lastGap'] = null;
  if (c.lastGapAt >= 0 && c.lastGapAt < c.count) {
    lastGap = { kind: c.lastGapKind, instructionsAfter: c.count - c.lastGapAt };
    if (c.lastGapAt > first) contiguousFrom = c.lastGapAt - first;
  }
  return { ips, total: c.count, contiguousFrom, lastGap, decodeErrors: c.errors };
}
