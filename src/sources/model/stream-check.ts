/**
 * Decode one stream with ptscope's instruction decoder and hash the
 * instruction addresses as the emulated recorder does (FNV-1a 64 over each
 * IP as 8 little-endian bytes), so that a decode can be checked against the
 * recorder's ground truth ({@link TraceStream.expected}). Errors are
 * counted and decoding resumes at the next PSB, as ptxed does.
 */
import { PtEvent } from '../../events/event.js';
import { Status } from '../../events/status.js';
import type { InsnDecoder } from '../../flow/insn-decoder.js';
import { InstructionInfo } from '../../flow/instruction.js';
import { ErrorCode } from '../../packets/errors.js';
import { IpSequenceHash } from '../recorder/ip-sequence-hash.js';
import { openInsnDecoder } from './decoders.js';
import type { TraceStream } from './recording.js';

export interface StreamCheck {
  instructions: number;
  fnv1a64: string;
  errors: number;
}

export function hashStream(stream: TraceStream): StreamCheck {
  return hashDecode(openInsnDecoder(stream));
}

/**
 * The same for a decoder already made (over part of a stream, say), from
 * its first PSB, or from where `synced` (its sync's status) put it.
 */
export function hashDecode(dec: InsnDecoder, synced?: number): StreamCheck {
  const insn = new InstructionInfo();
  const ev = new PtEvent();
  const hash = new IpSequenceHash();
  let errors = 0;
  let status = synced ?? dec.syncForward();
  for (;;) {
    if (status < 0) {
      if (status === -ErrorCode.Eos) break;
      errors++;
      status = dec.syncForward();
      continue;
    }
    while (status >= 0 && (status & Status.EventPending) !== 0) status = dec.event(ev);
    if (status < 0) continue;
    if ((status & Status.Eos) !== 0) break;
    status = dec.next(insn);
    if (status >= 0) hash.add(insn.ip);
  }
  return { instructions: hash.count, fnv1a64: hash.hex(), errors };
}
