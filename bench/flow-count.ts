/**
 * One decode of a whole trace with one of ptscope's flow decoders, counting
 * instructions (and blocks): the loop the `flow` benchmark times, and that
 * bench/profile-flow.ts profiles.
 */
import { ErrorCode } from '../src/packets/errors.js';
import { defaultConfig, type DecoderConfig } from '../src/packets/config.js';
import { errataFor, parseCpu } from '../src/packets/cpu.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { Packet } from '../src/packets/packet.js';
import { EventDecoder } from '../src/events/event-decoder.js';
import { PtEvent } from '../src/events/event.js';
import { Status } from '../src/events/status.js';
import { ANY_ASID } from '../src/flow/address-space.js';
import { Block, BlockDecoder } from '../src/flow/block-decoder.js';
import { Image } from '../src/flow/image.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { releaseInstructionDecoder } from '../src/flow/instruction-decoder.js';
import { InsnClass, InstructionInfo } from '../src/flow/instruction.js';
import { ByteSourceCache } from '../src/flow/section.js';

/** What one decode of a trace counted. */
export interface FlowCount {
  insn: number;
  blocks: number;
}

/** Raw code files and the addresses they are loaded at. */
export type RawImages = readonly { file: string; address: number }[];

/** A new image of raw code files (its instruction and block caches start empty). */
export function rawImage(images: RawImages): Image {
  const image = new Image();
  const files = new ByteSourceCache();
  for (const img of images) image.addFile(files, img.file, 0, Infinity, img.address, ANY_ASID);
  return image;
}

/**
 * Decode every instruction of a trace with one of ptscope's flow decoders,
 * from a new image of `images` (cold caches) or from `images` itself.
 */
export function countInstructions(kind: 'insn' | 'block', trace: Uint8Array, images: RawImages | Image, cpu: string): FlowCount {
  if (images instanceof Image) return decodeAll(kind, trace, images, cpu);
  // An image made here is released here, as the C oracle frees its decoder
  // and image each pass: the timed loop never yields to the event loop,
  // where a dropped decoder's WASM memory would otherwise be freed.
  const image = rawImage(images);
  try {
    return decodeAll(kind, trace, image, cpu);
  } finally {
    releaseInstructionDecoder(image);
  }
}

/** The decoder configuration for `cpu` (family/model), with its errata. */
function configFor(cpu: string): DecoderConfig {
  const config = defaultConfig();
  const parsed = parseCpu(cpu);
  if (parsed) {
    config.cpu = parsed;
    const errata = errataFor(parsed);
    if (typeof errata !== 'number') config.errata = errata;
  }
  return config;
}

/**
 * The layers under the flow decoders alone, over the same trace: every
 * packet (the packet decoder the flow decoders read), or every event (the
 * event decoder the block decoder asks for its TNT bits and IPs), resyncing
 * after errors. The count of packets or events.
 */
export function countBelowFlow(layer: 'packets' | 'events', trace: Uint8Array, cpu: string): number {
  const config = configFor(cpu);
  const packets = new PacketDecoder(trace, { skd007: config.errata.skd007 });
  let count = 0;
  if (layer === 'packets') {
    const pkt = new Packet();
    let status = packets.syncForward();
    while (status >= 0) {
      while ((status = packets.next(pkt)) >= 0) count++;
      if (status === -ErrorCode.Eos) break;
      status = packets.syncForward();
    }
    return count;
  }
  const events = new EventDecoder(packets, config);
  const ev = new PtEvent();
  let status = events.syncForward();
  while (status >= 0) {
    while ((status = events.next(ev)) >= 0) count++;
    if (status === -ErrorCode.Eos) break;
    status = events.syncForward();
  }
  return count;
}

function decodeAll(kind: 'insn' | 'block', trace: Uint8Array, image: Image, cpu: string): FlowCount {
  const config = configFor(cpu);
  const packets = new PacketDecoder(trace, { skd007: config.errata.skd007 });
  const ev = new PtEvent();
  let count = 0;
  let blocks = 0;
  if (kind === 'insn') {
    const dec = new InsnDecoder(packets, config, image);
    const insn = new InstructionInfo();
    let status = dec.syncForward();
    for (;;) {
      if (status < 0) {
        if (status === -ErrorCode.Eos) break;
        status = dec.syncForward();
        continue;
      }
      while (status >= 0 && status & Status.EventPending) status = dec.event(ev);
      if (status < 0) continue;
      if (status & Status.Eos) break;
      status = dec.next(insn);
      if (status >= 0 || insn.iclass !== InsnClass.Unknown) count++;
    }
  } else {
    const dec = new BlockDecoder(packets, config, image, { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false });
    const block = new Block();
    let status = dec.syncForward();
    for (;;) {
      if (status < 0) {
        if (status === -ErrorCode.Eos) break;
        status = dec.syncForward();
        continue;
      }
      while (status >= 0 && status & Status.EventPending) status = dec.event(ev);
      if (status < 0) continue;
      if (status & Status.Eos) break;
      status = dec.next(block);
      count += block.ninsn;
      blocks++;
    }
    return { insn: count, blocks };
  }
  return { insn: count, blocks: 0 };
}
