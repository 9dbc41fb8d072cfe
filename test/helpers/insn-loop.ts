import { ErrorCode } from '../../src/packets/errors.js';
import { Status } from '../../src/events/status.js';
import { InstructionInfo } from '../../src/flow/instruction.js';
import { PtEvent } from '../../src/events/event.js';
import type { InsnDecoder } from '../../src/flow/insn-decoder.js';

/**
 * ptxed's loop over an instruction decoder: sync, drain events, hand out
 * each instruction to `each`; a decode error other than the end throws.
 */
export function forEachInstruction(dec: InsnDecoder, label: string, each: (insn: InstructionInfo) => void): void {
  const insn = new InstructionInfo();
  const ev = new PtEvent();
  for (;;) {
    let status = dec.syncForward();
    if (status < 0) break;
    for (;;) {
      while (status >= 0 && status & Status.EventPending) status = dec.event(ev);
      if (status < 0 || status & Status.Eos) break;
      status = dec.next(insn);
      if (status < 0) break;
      each(insn);
    }
    if (status < 0 && status !== -ErrorCode.Eos) throw new Error(`${label}: decode error ${status} at 0x${dec.offset.toString(16)}`);
    if (status === -ErrorCode.Eos || status & Status.Eos) break;
  }
}
