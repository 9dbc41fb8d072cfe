/**
 * Edges from the exact block decoder: the definition the edge decoder is
 * held to, and its fallback for traces the fast path does not handle.
 *
 * It drives a {@link BlockDecoder} whose blocks end at every branch over the
 * whole trace as ptxed does (after an error: on at the next PSB) and turns
 * its blocks and events into edges (see edge-coverage.ts):
 * - a block starts at the first instruction that runs after a branch
 *   instruction, an asynchronous branch, a tracing enable, an overflow, or
 *   the start of decoding (a block the decoder splits for an event, a
 *   section change or its size limit goes on);
 * - each block start makes an edge from the previous block's start; after
 *   an overflow or a decode error there is none (AFL's `prev_loc = 0`);
 * - an instruction that failed does not count as run.
 */
import type { DecoderConfig } from '../../packets/config.js';
import { PacketDecoder } from '../../packets/decoder.js';
import { ErrorCode } from '../../packets/errors.js';
import { EventType, PtEvent } from '../../events/event.js';
import { Status } from '../../events/status.js';
import { Block, BlockDecoder } from '../block-decoder.js';
import type { Image } from '../image.js';
import { InsnClass, InstructionInfo } from '../instruction.js';
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

/** Count the edges of `trace` with the exact block decoder. */
export function exactEdges(
  trace: Uint8Array,
  config: DecoderConfig,
  image: Image,
  counts: EdgeCounts,
  pairs: EdgePairs | null,
): ExactStats {
  const dec = new BlockDecoder(packetDecoderFor(trace, config), config, image, {
    enableTickEvents: config.flags.enableTickEvents,
    keepTcalOnOvf: config.flags.keepTcalOnOvf,
    enableIflags: config.flags.enableIflagsEvents,
    endOnCall: true,
    endOnJump: true,
  });
  const mask = counts.mask;
  const block = new Block();
  const last = new InstructionInfo();
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
    status = dec.next(block);
    // A failing instruction ran (libipt counts it), but where it went is unknown.
    const failedLast = status < 0;
    const ran = block.ninsn;
    if (ran > 0) {
      stats.instructions += ran;
      if (boundary) {
        const addr = block.ip;
        const loc = blockHash(addr) & mask;
        counts.hit((curLoc >>> 1) ^ loc);
        if (pairs !== null) pairs.add(curAddr, addr);
        curLoc = loc;
        curAddr = addr;
        boundary = false;
      }
      let c = block.iclass;
      // The block cache may leave the class unknown: look at the instruction.
      if (c === InsnClass.Unknown && !failedLast) c = block.lastInsn(last) < 0 ? InsnClass.Unknown : last.iclass;
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
