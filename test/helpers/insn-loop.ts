import { ErrorCode } from '../../src/packets/errors.js';
import { Status } from '../../src/events/status.js';
import { InstructionInfo } from '../../src/flow/instruction.js';
import { PtEvent } from '../../src/events/event.js';
import type { InsnDecoder } from '../../src/flow/insn-decoder.js';

/** What ptxed's loop needs of a decoder: the instruction or the block decoder. */
interface SteppingDecoder<T> {
  syncForward(): number;
  event(ev: PtEvent): number;
  next(out: T): number;
  readonly offset: number;
}

/**
 * ptxed's loop over an instruction or block decoder: sync, drain events,
 * hand out each instruction (block) to `each`; a decode error other than
 * the end throws.
 */
export function forEachDecoded<T>(dec: SteppingDecoder<T>, out: T, label: string, each: (out: T) => void): void {
  const ev = new PtEvent();
  for (;;) {
    let status = dec.syncForward();
    if (status < 0) break;
    for (;;) {
      while (status >= 0 && status & Status.EventPending) status = dec.event(ev);
      if (status < 0 || status & Status.Eos) break;
      status = dec.next(out);
      if (status < 0) break;
      each(out);
    }
    if (status < 0 && status !== -ErrorCode.Eos) throw new Error(`${label}: decode error ${status} at 0x${dec.offset.toString(16)}`);
    if (status === -ErrorCode.Eos || status & Status.Eos) break;
  }
}

/** {@link forEachDecoded} over an instruction decoder. */
export function forEachInstruction(dec: InsnDecoder, label: string, each: (insn: InstructionInfo) => void): void {
  forEachDecoded(dec, new InstructionInfo(), label, each);
}
