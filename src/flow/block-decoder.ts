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
 * How it is fast: it moves through the code by the cached runs of the
 * {@link BlockCache} (libipt's pt_bcache): one lookup per run, the
 * instructions before the run's final one crossed in one step, and one
 * TNT/TIP query for the final one, without decoding or copying an
 * instruction. That holds while no event is pending (the instruction
 * decoder is `quiet`) and, with a synchronous or asynchronous disable or
 * an asynchronous branch pending, for runs it cannot bind inside (see
 * {@link InsnDecoder.canCross}). Anything else (other pending events,
 * instructions a run cannot hold, full blocks) goes one instruction at a
 * time through the instruction decoder, so both decoders bind events and
 * report errors identically.
 *
 * The addresses of a block's instructions ({@link Block.ips}) are not
 * recorded while decoding: they are computed on first use by walking the
 * block's code again.
 */
import type { DecoderConfig } from '../packets/config.js';
import type { PacketDecoder } from '../packets/decoder.js';
import { ErrorCode } from '../packets/errors.js';
import type { PtEvent } from '../events/event.js';
import { Status } from '../events/status.js';
import { ANY_ASID, type Asid } from './address-space.js';
import { BlockCache, blockCacheFor, RUN_CONTIGUOUS, RUN_DIRECT, RUN_FINAL } from './block-cache.js';
import type { Image } from './image.js';
import { instructionDecoderFor } from './instruction-decoder.js';
import { ExecMode, InsnClass, InstructionInfo, insnNextIp } from './instruction.js';
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
  /** Size in bytes of the last instruction (libipt's pt_block.size). */
  size = 0;
  /** The last instruction is a direct call or jump. */
  lastIsDirect = false;
  isid = 0;
  speculative = false;
  /** The last instruction crosses a section boundary. */
  truncated = false;
  /** Where the failing instruction was, after an error. */
  failIp = 0;
  /**
   * After an error: the last instruction is the one that failed (it was
   * decoded, so ptxed prints it, but it did not complete).
   */
  lastFailed = false;

  /** Where {@link ips} re-reads the code. */
  private image: Image | null = null;
  private asid: Asid = ANY_ASID;
  private addresses = new Float64Array(64);
  /** {@link addresses} holds this block's instructions. */
  private addressesReady = false;

  /** The address ptxed reports an error at (its diagnose_block rule). */
  errorIp(status: number): number {
    if (this.ninsn === 0) return this.failIp;
    if (status === -ErrorCode.NoMap || status === -ErrorCode.BadInsn) return this.failIp;
    return this.endIp;
  }

  /**
   * Addresses of the instructions, `ips[0 .. ninsn)`: computed on first use
   * after each decode by following the block's code from {@link ip} (inside
   * a block every instruction leads to the next sequentially or by a direct
   * call or jump). Valid until the block is decoded into again.
   */
  get ips(): Float64Array {
    if (!this.addressesReady) this.computeAddresses();
    return this.addresses;
  }

  /** Start filling the block from `image` in `asid` (for the block decoder). */
  begin(image: Image, asid: Asid): void {
    this.ninsn = 0;
    this.truncated = false;
    this.lastFailed = false;
    this.image = image;
    this.asid = asid;
    this.addressesReady = false;
  }

  /** Append a decoded instruction. */
  push(insn: InstructionInfo): void {
    if (this.ninsn === 0) {
      this.ip = insn.ip;
      this.mode = insn.mode;
      this.isid = insn.isid;
      this.speculative = insn.speculative;
    }
    this.ninsn++;
    this.endIp = insn.ip;
    this.iclass = insn.iclass;
    this.size = insn.size;
    this.lastIsDirect = insn.isDirect;
    this.truncated = insn.truncated;
  }

  private computeAddresses(): void {
    const n = this.ninsn;
    if (this.addresses.length < n) this.addresses = new Float64Array(Math.max(n, this.addresses.length * 2));
    const out = this.addresses;
    this.addressesReady = true;
    if (n === 0) return;
    if (this.image === null) throw new Error('Block.ips: the block was not filled by a block decoder');
    const dec = instructionDecoderFor(this.image);
    const insn = new InstructionInfo();
    let ip = this.ip;
    for (let k = 0; k < n; k++) {
      out[k] = ip;
      if (k === n - 1) break;
      if (dec.decode(insn, ip, this.mode, this.asid) < 0) throw new Error(`Block.ips: no instruction at ${ip}`);
      ip = insnNextIp(insn);
    }
  }
}

export class BlockDecoder {
  readonly insn: InsnDecoder;
  private readonly scratch = new InstructionInfo();
  private readonly endOnCall: boolean;
  private readonly endOnJump: boolean;
  private cache: BlockCache;

  /**
   * Decode `packets` against `image`; or, given an {@link InsnDecoder}
   * instead, drive that one (it must not be used on its own meanwhile;
   * see {@link BlockDecoder.over}).
   */
  constructor(
    packets: PacketDecoder | InsnDecoder,
    config: DecoderConfig,
    image: Image,
    flags: FlowFlags & { endOnCall?: boolean; endOnJump?: boolean },
  ) {
    this.insn = packets instanceof InsnDecoder ? packets : new InsnDecoder(packets, config, image, flags);
    this.endOnCall = flags.endOnCall ?? config.flags.endOnCall;
    this.endOnJump = flags.endOnJump ?? config.flags.endOnJump;
    this.cache = blockCacheFor(this.insn.image, this.endOnJump);
  }

  /** Blocks over an existing instruction decoder: for walkers that need no per-instruction detail. */
  static over(insn: InsnDecoder, endOnCall: boolean, endOnJump: boolean): BlockDecoder {
    return new BlockDecoder(insn, insn.config, insn.image, { ...insn.flags, endOnCall, endOnJump });
  }

  get offset(): number {
    return this.insn.offset;
  }

  get syncOffset(): number {
    return this.insn.syncOffset;
  }

  get image(): Image {
    return this.insn.image;
  }

  set image(image: Image) {
    this.insn.image = image;
  }

  /** Block cache lookups so far: runs found, and runs built. */
  get cacheStats(): { hits: number; misses: number; entries: number } {
    return { hits: this.cache.hits, misses: this.cache.misses, entries: this.cache.size };
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

  /** Does the block end after a (completed) last instruction of class `iclass`? */
  private endsBlock(iclass: InsnClass, isDirect: boolean): boolean {
    switch (iclass) {
      case InsnClass.Other:
      case InsnClass.Ptwrite:
        return false;
      case InsnClass.Call:
        return !isDirect || this.endOnCall;
      case InsnClass.Jump:
        return !isDirect || this.endOnJump;
      default:
        return true;
    }
  }

  /**
   * Decode the next block into `block`. Returns status flags or a negative
   * ErrorCode; on error `block` holds the instructions decoded before it
   * (and the failing one, if it could be decoded: {@link Block.lastFailed}).
   */
  next(block: Block): number {
    const dec = this.insn;
    const image = dec.image;
    let cache = this.cache;
    if (cache.image !== image) cache = this.cache = blockCacheFor(image, this.endOnJump);
    block.begin(image, dec.asid);
    for (;;) {
      // The fast path: whole cached runs.
      if (dec.enabled) {
        const id = cache.lookup(dec.ip, dec.mode, dec.asid);
        if (id >= 0) {
          // A new section starts a new block (blocks never span sections).
          if (block.ninsn !== 0 && cache.isid !== block.isid) return this.statusNoEvent();
          const info = cache.info[id];
          const count = cache.count[id];
          const final = (info & RUN_FINAL) !== 0;
          const endIp = final ? cache.lastIp[id] : cache.nextIp[id];
          const fits = block.ninsn + count + (final ? 1 : 0) <= MAX_BLOCK_INSNS;
          let crossed = count === 0;
          if (!crossed && fits && dec.canCross((info & RUN_CONTIGUOUS) !== 0, endIp)) {
            const from = dec.ip;
            if (dec.cross(count, endIp, cache.directs[id])) {
              crossed = true;
              if (block.ninsn === 0) this.startBlock(block, from, cache.isid);
              block.ninsn += count;
              if (!final) {
                // An open run ends with an ordinary instruction.
                block.endIp = cache.lastIp[id];
                block.iclass = (info >>> 4) & 15;
                block.size = info & 15;
                block.lastIsDirect = (info & RUN_DIRECT) !== 0;
                if (block.ninsn >= MAX_BLOCK_INSNS) return 0;
                continue;
              }
            }
          }
          if (crossed && final && fits && dec.quiet) {
            // The final instruction: one query.
            if (block.ninsn === 0) this.startBlock(block, endIp, cache.isid);
            const iclass = (info >>> 4) & 15;
            const isDirect = (info & RUN_DIRECT) !== 0;
            block.ninsn++;
            block.endIp = endIp;
            block.iclass = iclass;
            block.size = info & 15;
            block.lastIsDirect = isDirect;
            block.truncated = false;
            const status = dec.proceedRun(info, cache.disp[id]);
            if (status < 0) {
              block.failIp = endIp;
              block.lastFailed = true;
              return status;
            }
            if (status & (Status.EventPending | Status.Eos)) return status;
            if (!dec.enabled) return status;
            if (this.endsBlock(iclass, isDirect)) return status;
            if (block.ninsn >= MAX_BLOCK_INSNS) return status;
            continue;
          }
        }
      }
      // One instruction at a time.
      if (block.ninsn !== 0 && this.peekSectionChanged(block.isid)) return this.statusNoEvent();
      const insn = this.scratch;
      const status = dec.next(insn);
      if (status < 0) {
        block.failIp = insn.ip;
        if (insn.iclass !== InsnClass.Unknown) {
          block.push(insn);
          block.lastFailed = true;
        }
        return status;
      }
      block.push(insn);
      if (status & (Status.EventPending | Status.Eos)) return status;
      if (!dec.enabled) return status;
      if (this.endsBlock(insn.iclass, insn.isDirect)) return status;
      if (block.ninsn >= MAX_BLOCK_INSNS) return status;
    }
  }

  private startBlock(block: Block, ip: number, isid: number): void {
    const dec = this.insn;
    block.ip = ip;
    block.mode = dec.mode;
    block.isid = isid;
    block.speculative = dec.speculative;
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
