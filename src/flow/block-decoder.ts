/**
 * The block decoder (libipt's pt_block_decoder): the same instruction flow
 * as {@link InsnDecoder}, delivered as blocks of sequential instructions.
 *
 * A block is a run of instructions that executes without the trace having
 * to say anything: it ends after a conditional, indirect or far branch or a
 * return, where an event binds, at an error, when the instruction's section
 * changes, or when it is full. Direct jumps and calls stay inside a block
 * unless `endOnJump`/`endOnCall` ask otherwise (libipt's
 * pt_blk_proceed_no_event rules).
 *
 * Blocks are built on the instruction decoder, so both decoders bind events
 * and report errors identically. The caller-owned {@link Block} lists the
 * addresses of its instructions in a reused typed array.
 */
import type { DecoderConfig } from '../packets/config.js';
import type { PacketDecoder } from '../packets/decoder.js';
import { ErrorCode } from '../packets/errors.js';
import type { PtEvent } from '../events/event.js';
import { Status } from '../events/status.js';
import type { Image } from './image.js';
import { ExecMode, InsnClass, InstructionInfo } from './instruction.js';
import { InsnDecoder, type FlowFlags } from './insn-decoder.js';

/** libipt's limit on instructions per block (pt_block.ninsn is 16 bits). */
export const MAX_BLOCK_INSNS = 0xffff;

export class Block {
  /** Address of the first instruction. */
  ip = 0;
  /** Address of the last instruction. */
  endIp = 0;
  ninsn = 0;
  mode: ExecMode = ExecMode.Unknown;
  /** Class of the last instruction. */
  iclass: InsnClass = InsnClass.Unknown;
  isid = 0;
  speculative = false;
  /** The last instruction crosses a section boundary. */
  truncated = false;
  /** Addresses of the instructions, `ips[0 .. ninsn)`. */
  ips = new Float64Array(64);
  /** Where the failing instruction was, after an error. */
  failIp = 0;

  /** The address ptxed reports an error at (its diagnose_block rule). */
  errorIp(status: number): number {
    if (this.ninsn === 0) return this.failIp;
    if (status === -ErrorCode.NoMap || status === -ErrorCode.BadInsn) return this.failIp;
    return this.endIp;
  }

  push(insn: InstructionInfo): void {
    if (this.ninsn === this.ips.length) {
      const bigger = new Float64Array(this.ips.length * 2);
      bigger.set(this.ips);
      this.ips = bigger;
    }
    if (this.ninsn === 0) {
      this.ip = insn.ip;
      this.mode = insn.mode;
      this.isid = insn.isid;
      this.speculative = insn.speculative;
    }
    this.ips[this.ninsn++] = insn.ip;
    this.endIp = insn.ip;
    this.iclass = insn.iclass;
    this.truncated = insn.truncated;
  }
}

export class BlockDecoder {
  readonly insn: InsnDecoder;
  private readonly scratch = new InstructionInfo();
  private readonly endOnCall: boolean;
  private readonly endOnJump: boolean;

  constructor(
    packets: PacketDecoder,
    config: DecoderConfig,
    image: Image,
    flags: FlowFlags & { endOnCall?: boolean; endOnJump?: boolean },
  ) {
    this.insn = new InsnDecoder(packets, config, image, flags);
    this.endOnCall = flags.endOnCall ?? config.flags.endOnCall;
    this.endOnJump = flags.endOnJump ?? config.flags.endOnJump;
  }

  get offset(): number {
    return this.insn.offset;
  }

  get syncOffset(): number {
    return this.insn.syncOffset;
  }

  set image(image: Image) {
    this.insn.image = image;
  }

  syncForward(): number {
    return this.insn.syncForward();
  }

  syncSet(offset: number): number {
    return this.insn.syncSet(offset);
  }

  /** Continue after a decode error at the next IP in the trace (see {@link InsnDecoder.resync}). */
  resync(): number {
    return this.insn.resync();
  }

  event(out: PtEvent): number {
    return this.insn.event(out);
  }

  /** Does the block end after `insn`? */
  private endsBlock(insn: InstructionInfo, next: InstructionInfo | null): boolean {
    switch (insn.iclass) {
      case InsnClass.Other:
      case InsnClass.Ptwrite:
        break;
      case InsnClass.Call:
        if (!insn.isDirect || this.endOnCall) return true;
        break;
      case InsnClass.Jump:
        if (!insn.isDirect || this.endOnJump) return true;
        break;
      default:
        return true;
    }
    void next;
    return false;
  }

  /**
   * Decode the next block into `block`. Returns status flags or a negative
   * ErrorCode; on error `block` holds the instructions decoded before it.
   */
  next(block: Block): number {
    block.ninsn = 0;
    block.truncated = false;
    const insn = this.scratch;
    const dec = this.insn;
    for (;;) {
      const isid = block.ninsn ? block.isid : -1;
      // A new section starts a new block (blocks never span sections).
      if (block.ninsn && this.peekSectionChanged(isid)) return this.statusNoEvent();
      const status = dec.next(insn);
      if (status < 0) {
        block.failIp = insn.ip;
        if (insn.iclass !== InsnClass.Unknown) block.push(insn);
        return status;
      }
      block.push(insn);
      if (status & (Status.EventPending | Status.Eos)) return status;
      if (!dec.enabled) return status;
      if (this.endsBlock(insn, null)) return status;
      if (block.ninsn >= MAX_BLOCK_INSNS) return status;
    }
  }

  private statusNoEvent(): number {
    return this.insn.enabled ? 0 : Status.IpSuppressed;
  }

  /** Would the next instruction come from another section than `isid`? */
  private peekSectionChanged(isid: number): boolean {
    const msec = this.insn.image.find(this.insn.ip, this.insn.asid);
    return msec !== null && msec.isid !== isid;
  }
}
