/**
 * The instruction decoder (libipt's pt_insn_decoder, libipt/src/pt_insn_decoder.c):
 * the executed instructions one at a time, built on the block decoder as in
 * libipt: it takes a block and hands out its instructions; events and
 * errors apply at the end of a block.
 *
 * How it is fast: the instructions of a block are read from the runs of the
 * {@link BlockCache} the block decoder just crossed (one lookup per run,
 * each instruction's classification read in order), not decoded again; only
 * instructions a run cannot hold are decoded one by one.
 *
 * Usage is the block decoder's, with `next(insn)` for `next(block)`:
 *
 *     let status = dec.syncForward();
 *     for (;;) {
 *       while (status & Status.EventPending) { status = dec.event(ev); ... }
 *       if (status < 0 || status & Status.Eos) break;
 *       status = dec.next(insn);   // -EventIgnored: an event is pending after all
 *       ...
 *     }
 *
 * Nothing is allocated per instruction: `insn` and the event are
 * caller-owned structs that are overwritten.
 */
import type { DecoderConfig } from '../packets/config.js';
import { ErrorCode } from '../packets/errors.js';
import type { TraceInput } from '../packets/packet-stream.js';
import type { PtEvent } from '../events/event.js';
import { Status } from '../events/status.js';
import { ANY_ASID, type Asid } from './address-space.js';
import { Block } from './block.js';
import { BlockDecoder, type FlowFlags } from './block-decoder.js';
import { blockCacheFor, RUN_DIRECT, RUN_FINAL, type BlockCache } from './block-cache.js';
import type { Image, MappedSection } from './image.js';
import { instructionDecoderFor, type InstructionDecoder } from './instruction-decoder.js';
import { ExecMode, InsnClass, InstructionInfo, insnNextIp, insnNextIpError } from './instruction.js';

export type { FlowFlags } from './block-decoder.js';
export { MAX_STEPS_WITHOUT_TRACE } from './block-decoder.js';

export class InsnDecoder {
  readonly blocks: BlockDecoder;
  /** The block being handed out; `ip` is its next instruction, `ninsn` how many are left. */
  private readonly block = new Block();
  /** The block decoder's status for the block (libipt's decoder->status). */
  private status = 0;
  /**
   * Blocks fetched from the block decoder so far. The packets are read
   * when a block is fetched: between two fetches (the instructions of one
   * block) the trace position does not move.
   */
  blocksFetched = 0;

  // The run being read: its next instruction's index in the cache, how many
  // are left, and what it was looked up for.
  private runs: BlockCache;
  private idec: InstructionDecoder;
  private runNext = 0;
  private runLeft = 0;
  private runIp = 0;
  private runMode = ExecMode.Unknown;
  private runAsid: Asid = ANY_ASID;
  private runVersion = -1;
  private runMapping: MappedSection | null = null;
  private runBytes: Uint8Array = new Uint8Array(0);
  /** Source offset minus address: rawOffset = ip + runDelta. */
  private runDelta = 0;

  constructor(
    trace: TraceInput,
    readonly config: DecoderConfig,
    image: Image,
    readonly flags: FlowFlags = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false },
  ) {
    // Block boundaries do not matter here.
    this.blocks = new BlockDecoder(trace, config, image, { ...flags, endOnCall: false, endOnJump: false });
    this.runs = blockCacheFor(this.blocks.image, false);
    this.idec = instructionDecoderFor(this.blocks.image);
    // The block decoder switches images along a timeline (rewritten code): follow it.
    this.blocks.onImage = (im) => this.imageChanged(im);
  }

  /** The memory image the code is read from (sideband may switch it). */
  get image(): Image {
    return this.blocks.image;
  }

  set image(image: Image) {
    this.blocks.image = image;
  }

  /** Where the trace read starts in its whole stream (see {@link BlockDecoder.traceOrigin}). */
  get traceOrigin(): number {
    return this.blocks.traceOrigin;
  }

  set traceOrigin(offset: number) {
    this.blocks.traceOrigin = offset;
  }

  private imageChanged(image: Image): void {
    this.runs = blockCacheFor(image, false);
    this.idec = instructionDecoderFor(image);
    this.runLeft = 0;
  }

  /**
   * Instructions of the current block still to hand out: while it is not
   * 0, the next {@link next} stays in this block (no block is fetched).
   */
  get leftInBlock(): number {
    return this.block.ninsn;
  }

  /** Trace offset of the next packet (libipt's pt_insn_get_offset). */
  get offset(): number {
    return this.blocks.offset;
  }

  get syncOffset(): number {
    return this.blocks.syncOffset;
  }

  /** The address space the decoder is in (CR3 and VMCS from PIP/VMCS). */
  get asid(): Asid {
    return this.blocks.asid;
  }

  /** Where decoding stands: the next instruction's address, or where tracing is expected to resume. */
  get ip(): number {
    return this.block.ninsn ? this.block.ip : this.blocks.ip;
  }

  /** The time of the last event: 0 (wall clock) or -NoTime (relative). */
  time(): number {
    return this.blocks.time();
  }

  coreBusRatio(): number {
    return this.blocks.coreBusRatio();
  }

  private reset(): void {
    this.block.ninsn = 0;
    this.status = 0;
    this.runLeft = 0;
  }

  private started(status: number): number {
    if (status < 0) return status;
    this.status = status;
    return status;
  }

  syncForward(): number {
    this.reset();
    return this.started(this.blocks.syncForward());
  }

  syncBackward(): number {
    this.reset();
    return this.started(this.blocks.syncBackward());
  }

  syncSet(offset: number): number {
    this.reset();
    return this.started(this.blocks.syncSet(offset));
  }

  /** Continue after an error at the next IP in the trace (see {@link BlockDecoder.resync}). */
  resync(): number {
    this.reset();
    return this.started(this.blocks.resync());
  }

  /**
   * The next instruction into `insn` (libipt's pt_insn_next). Returns status
   * flags, or a negative ErrorCode: -EventIgnored if an event is pending
   * after all (fetch it, then go on). With an error, `insn` is the last
   * instruction if it was decoded (`iclass` not Unknown), else `insn.ip` and
   * `insn.mode` tell where decoding stood.
   */
  next(insn: InstructionInfo): number {
    const block = this.block;
    // The common case: an instruction of the cached run the block decoder
    // just crossed, not the block's last.
    if (block.ninsn > 1 && this.runLeft !== 0 && block.ip === this.runIp) return this.nextInRun(insn, block);
    return this.nextGeneral(insn, block);
  }

  /** {@link next} in every case. */
  private nextGeneral(insn: InstructionInfo, block: Block): number {
    insn.iclass = InsnClass.Unknown;
    insn.speculative = block.speculative;
    insn.isid = block.isid;
    insn.mode = block.mode;
    insn.ip = block.ip;
    insn.size = 0;
    // Fetch the next block once this one is used up.
    while (block.ninsn === 0) {
      // Errors and events apply at the end of a block.
      let status = this.status;
      if (status < 0) return status;
      // The event should have been indicated at the last instruction.
      if (status & Status.EventPending) return -ErrorCode.EventIgnored;
      status = this.blocks.next(block);
      this.blocksFetched++;
      this.status = status;
      insn.speculative = block.speculative;
      insn.isid = block.isid;
      insn.mode = block.mode;
      insn.ip = block.ip;
      if (block.ninsn) break;
      if (status < 0) return status;
      // An event behind an empty block could not be indicated before.
      if (status & Status.EventPending) return -ErrorCode.EventIgnored;
    }

    // libipt looks the mapping up through the block decoder's cache first,
    // which decides whether that decoder uses its block cache there.
    if (block.isid !== 0 && !(block.truncated && block.ninsn === 1)) {
      const isid = this.blocks.lookupSection(block.ip);
      if (isid < 0) return isid;
    }
    const status = this.decodeAt(insn, block);
    if (status < 0) {
      insn.iclass = InsnClass.Unknown;
      insn.ip = block.ip;
      insn.mode = block.mode;
      return status;
    }
    insn.speculative = block.speculative;
    // Status indications wait for the block's last instruction.
    block.ninsn -= 1;
    if (block.ninsn) {
      const next = insnNextIp(insn);
      if (Number.isNaN(next)) return insnNextIpError(insn);
      block.ip = next;
      return 0;
    }
    if (block.ip !== block.endIp) return -ErrorCode.Internal;
    return this.status;
  }

  /**
   * {@link next} for an instruction of the current run that is not the
   * block's last: what the general path does, without its checks that the
   * run ends or the block does. Falls back to that path where the run does
   * not apply (mode, address space or image changed, no mapping).
   */
  private nextInRun(insn: InstructionInfo, block: Block): number {
    const blocks = this.blocks;
    const ip = block.ip;
    if (
      block.mode !== this.runMode ||
      blocks.asid !== this.runAsid ||
      blocks.image.version !== this.runVersion ||
      // As the general path: the mapping look-up only for a section with an identifier.
      (block.isid !== 0 && blocks.lookupSection(ip) < 0)
    ) {
      return this.nextGeneral(insn, block);
    }
    const runs = this.runs;
    const k = this.runNext++;
    this.runLeft--;
    const info = runs.insnInfo[k]!;
    const size = info & 15;
    const iclass: InsnClass = (info >>> 4) & 15;
    const m = this.runMapping!;
    insn.ip = ip;
    insn.mode = block.mode;
    insn.size = size;
    insn.iclass = iclass;
    insn.kind = (info >>> 8) & 255;
    insn.truncated = false;
    insn.speculative = block.speculative;
    insn.section = m;
    insn.isid = m.isid;
    insn.rawBuffer = this.runBytes;
    insn.rawOffset = ip + this.runDelta;
    block.ninsn -= 1;
    let next: number;
    if ((info & RUN_DIRECT) !== 0) {
      const disp = runs.insnDisp[k]!;
      next = ip + size + disp;
      insn.isDirect = true;
      insn.displacement = disp;
      insn.target = next;
      // Only direct calls and jumps go on to their target without trace.
      if (iclass !== InsnClass.Call && iclass !== InsnClass.Jump) {
        this.runIp = next;
        return -ErrorCode.BadQuery;
      }
    } else {
      next = ip + size;
      insn.isDirect = false;
      insn.displacement = 0;
      insn.target = 0;
      if (iclass !== InsnClass.Other && iclass !== InsnClass.Ptwrite) {
        this.runIp = next;
        return insnNextIpError(insn);
      }
    }
    this.runIp = next;
    block.ip = next;
    return 0;
  }

  /**
   * Fill `insn` with the block's next instruction: from the cached run if
   * there is one, else decoded.
   */
  private decodeAt(insn: InstructionInfo, block: Block): number {
    const ip = block.ip;
    const image = this.blocks.image;
    if (
      this.runLeft === 0 ||
      ip !== this.runIp ||
      block.mode !== this.runMode ||
      this.blocks.asid !== this.runAsid ||
      image.version !== this.runVersion
    ) {
      if (!this.startRun(ip, block.mode)) return this.idec.decode(insn, ip, block.mode, this.blocks.asid);
    }
    const runs = this.runs;
    const k = this.runNext++;
    this.runLeft--;
    const info = runs.insnInfo[k]!;
    const size = info & 15;
    const iclass: InsnClass = (info >>> 4) & 15;
    const m = this.runMapping!;
    insn.ip = ip;
    insn.mode = block.mode;
    insn.size = size;
    insn.iclass = iclass;
    insn.kind = (info >>> 8) & 255;
    if ((info & RUN_DIRECT) !== 0) {
      const disp = runs.insnDisp[k]!;
      insn.isDirect = true;
      insn.displacement = disp;
      insn.target = ip + size + disp;
      this.runIp = insn.target;
    } else {
      insn.isDirect = false;
      insn.displacement = 0;
      insn.target = 0;
      this.runIp = ip + size;
    }
    insn.truncated = false;
    insn.section = m;
    insn.isid = m.isid;
    insn.rawBuffer = this.runBytes;
    insn.rawOffset = ip + this.runDelta;
    return 0;
  }

  /** Look up the run at `ip`; false if there is none to read. */
  private startRun(ip: number, mode: ExecMode): boolean {
    const image = this.blocks.image;
    let runs = this.runs;
    if (runs.image !== image) runs = this.runs = blockCacheFor(image, false);
    const asid = this.blocks.asid;
    const id = runs.lookup(ip, mode, asid);
    if (id < 0) {
      this.runLeft = 0;
      return false;
    }
    const n = runs.count[id]! + ((runs.info[id]! & RUN_FINAL) !== 0 ? 1 : 0);
    if (n === 0) {
      this.runLeft = 0;
      return false;
    }
    const m = runs.mapping!;
    this.runNext = runs.first[id]!;
    this.runLeft = n;
    this.runIp = ip;
    this.runMode = mode;
    this.runAsid = asid;
    this.runVersion = image.version;
    if (m !== this.runMapping) {
      this.runMapping = m;
      this.runBytes = m.section.source.bytes;
      this.runDelta = m.sourceOffset - m.vaddr;
    }
    return true;
  }

  /**
   * Fetch the pending event into `out` and apply it (libipt's
   * pt_insn_event): status flags or a negative ErrorCode.
   */
  event(out: PtEvent): number {
    // No events in the middle of a block.
    if (this.block.ninsn) return -ErrorCode.BadQuery;
    const status = this.blocks.event(out);
    if (status < 0) return status;
    this.status = status;
    return status;
  }
}
