/**
 * Edges from the exact block decoder: the definition the edge decoder is
 * held to, and its fallback for traces the fast path does not handle.
 *
 * It drives a {@link BlockDecoder} in libipt's default mode over the whole
 * trace as ptxed does (after an error: on at the next PSB) and turns its
 * blocks and events into edges (see edge-coverage.ts). A decoder block may
 * go through direct calls and jumps; those are found by decoding its
 * instructions. (Asking the decoder to end blocks there instead, libipt's
 * end_on_call/end_on_jump, is not the same flow: libipt's SKL014 binding of
 * a TIP.PGD without IP then stops at the first direct branch that stays in
 * the filter region and reports the disable there, so the instructions up
 * to the branch that really left the region go missing; the instruction
 * decoder and ptxed's default block decoder run them.)
 *
 * The rules:
 * - a block starts at the first instruction that runs after a branch
 *   instruction, an asynchronous branch, a tracing enable, an overflow, or
 *   the start of decoding (a block the decoder splits for an event, a
 *   section change or its size limit goes on);
 * - each block start makes an edge from the previous block's start; after
 *   an overflow or a decode error there is none (AFL's `prev_loc = 0`);
 * - an instruction that failed counts as run (libipt counts it in the
 *   block) but ends no block: where it went is unknown.
 */
import type { DecoderConfig } from '../../packets/config.js';
import { PacketDecoder } from '../../packets/decoder.js';
import type { TraceSource } from '../../packets/trace-source.js';
import { ErrorCode } from '../../packets/errors.js';
import { EventType, PtEvent } from '../../events/event.js';
import { Status } from '../../events/status.js';
import { Block, BlockDecoder } from '../block-decoder.js';
import type { Image } from '../image.js';
import { instructionDecoderFor } from '../instruction-decoder.js';
import { InsnClass, InstructionInfo, insnNextIp } from '../instruction.js';
import { blockHash, type EdgeCounts } from './edge-map.js';
import type { EdgePairs } from './edge-pairs.js';

/** What an exact decode saw. */
export interface ExactStats {
  /** Instructions that ran. */
  instructions: number;
  /** Decode errors (each followed by a resync at the next PSB). */
  errors: number;
}

/** The packet decoder the exact and fast paths read a trace with (ptxed's settings). */
export function packetDecoderFor(trace: Uint8Array, config: DecoderConfig): PacketDecoder {
  return new PacketDecoder(trace, { pebs: false, skd007: config.errata.skd007 });
}

/**
 * Count the edges of `trace` with the exact block decoder. A source is read
 * through a window, in flat memory.
 */
export function exactEdges(
  trace: Uint8Array | TraceSource,
  config: DecoderConfig,
  image: Image,
  counts: EdgeCounts,
  pairs: EdgePairs | null,
): ExactStats {
  const dec = new BlockDecoder(trace instanceof Uint8Array ? packetDecoderFor(trace, config) : trace, config, image, {
    enableTickEvents: config.flags.enableTickEvents,
    keepTcalOnOvf: config.flags.keepTcalOnOvf,
    enableIflags: config.flags.enableIflagsEvents,
    endOnCall: false,
    endOnJump: false,
  });
  // The decoder's current image (it changes along a timeline of rewritten code).
  let idec = instructionDecoderFor(dec.image);
  dec.onImage = (im) => (idec = instructionDecoderFor(im));
  const insn = new InstructionInfo();
  const mask = counts.mask;
  const block = new Block();
  const ev = new PtEvent();
  const stats: ExactStats = { instructions: 0, errors: 0 };
  let curLoc = 0;
  let curAddr = NaN;
  let boundary = true;
  const restart = (): void => {
    curLoc = 0;
    curAddr = NaN;
    boundary = true;
  };
  let status = dec.syncForward();
  for (;;) {
    if (status < 0) {
      if (status === -ErrorCode.Eos) break;
      stats.errors++;
      restart();
      status = dec.syncForward();
      continue;
    }
    while (status >= 0 && (status & Status.EventPending) !== 0) {
      status = dec.event(ev);
      if (status < 0) break;
      switch (ev.type) {
        case EventType.AsyncBranch:
          boundary = true;
          break;
        case EventType.Enabled:
          if (!ev.statusUpdate) boundary = true;
          break;
        case EventType.Overflow:
          restart();
          break;
        default:
          break;
      }
    }
    if (status < 0) continue;
    if ((status & Status.Eos) !== 0) break;
    const asid = dec.asid;
    status = dec.next(block);
    // A failing instruction ran (libipt counts it), but where it went is unknown.
    const failedLast = status < 0;
    const n = block.ninsn;
    if (n > 0) {
      stats.instructions += n;
      let ip = block.ip;
      for (let k = 0; ; k++) {
        if (boundary) {
          const loc = blockHash(ip) & mask;
          counts.hit((curLoc >>> 1) ^ loc);
          if (pairs !== null) pairs.add(curAddr, ip);
          curLoc = loc;
          curAddr = ip;
          boundary = false;
        }
        if (k === n - 1) break;
        // Inside a block every instruction ran and led on without trace:
        // a branch here is a direct call or jump.
        if (idec.decode(insn, ip, block.mode, asid) < 0) throw new Error(`exactEdges: no instruction at ${ip} inside a decoded block`);
        if (insn.iclass !== InsnClass.Other && insn.iclass !== InsnClass.Ptwrite) boundary = true;
        ip = insnNextIp(insn);
      }
      let c = block.iclass;
      // The block cache may leave the class unknown: look at the instruction.
      if (c === InsnClass.Unknown && !failedLast) c = block.lastInsn(insn) < 0 ? InsnClass.Unknown : insn.iclass;
      if (!failedLast && c !== InsnClass.Other && c !== InsnClass.Ptwrite && c !== InsnClass.Unknown) boundary = true;
    }
    if (status < 0) {
      if (status === -ErrorCode.Eos) break;
      // A disabled decoder asking for an enable is no decode error, but it also resyncs.
      if (status !== -ErrorCode.NoEnable) stats.errors++;
      restart();
      status = dec.syncForward();
    }
  }
  return stats;
}
