/**
 * The block decoder (libipt's pt_block_decoder, libipt/src/pt_block_decoder.c):
 * reconstructs the executed instructions from the trace and the memory
 * image, as blocks of sequential instructions, and indicates the events of
 * the trace where they bind in the instruction flow. It reads the event
 * decoder directly: TNT events answer conditional branches and compressed
 * returns, TIP events indirect branches; other events are reported with
 * {@link Status.EventPending} once the code has reached where they bind.
 *
 * A block ends where the trace must say something (a conditional, indirect
 * or far branch, a return), where an event binds, when the section changes,
 * when it is full, and with `endOnCall`/`endOnJump` after a direct call or
 * jump.
 *
 * How it is fast (libipt's pt_bcache, done our way): while no event is due,
 * it moves through the code by the cached runs of the {@link BlockCache},
 * one lookup per run, and handles each run's final instruction from its
 * cached classification. Where an event is due, it steps one instruction at
 * a time through the instruction decoder, as libipt does.
 *
 * Loop guard (not in libipt): more than {@link MAX_STEPS_WITHOUT_TRACE}
 * instructions without consuming any trace (a direct-jump loop, from a bad
 * image or trace) fail the next call with -BadQuery instead of producing
 * blocks forever.
 *
 * Usage (what ptxed does):
 *
 *     let status = dec.syncForward();          // < 0: error or -Eos
 *     for (;;) {
 *       while (status & Status.EventPending) { status = dec.event(ev); ... }
 *       if (status < 0 || status & Status.Eos) break;
 *       status = dec.next(block);
 *       ...
 *     }
 */
import type { DecoderConfig } from '../packets/config.js';
import { addrFilterCheck, addrCfgBits } from '../packets/config.js';
import { ErrorCode } from '../packets/errors.js';
import type { TraceInput } from '../packets/packet-stream.js';
import { EventType, PtEvent, copyEvent } from '../events/event.js';
import { EventSyncedDecoder } from '../events/decoder-sync.js';
import { EventDecoder, EventDecoderState } from '../events/event-decoder.js';
import { Status } from '../events/status.js';
import { ANY_ASID, Asid, ipToBigInt } from './address-space.js';
import { Block, MAX_BLOCK_INSNS } from './block.js';
import { Bq, bceDisplacement, bceIsize, bceIsValid, bceMake, bceMode, bceNinsn, bceQualifier, existingSectionBlockCache, packDecodeStop, sectionBlockCache, type SectionBlockCache } from './bcache.js';
import type { Image, MappedSection } from './image.js';
import type { ImageTimeline, TimelineCursor } from './image-timeline.js';
import type { Section } from './section.js';
import { instructionDecoderFor, type InstructionDecoder } from './instruction-decoder.js';
import {
  ExecMode,
  InsnClass,
  InsnKind,
  InstructionInfo,
  assignInstruction,
  insnBindsToPip,
  insnBindsToVmcs,
  insnChangesCr3,
  insnIsBranch,
  insnIsIret,
  insnIsPtwrite,
  insnIsSwint,
  insnIsSyscall,
  insnIsUiret,
  insnIsVmentry,
  insnNextIp,
  insnNextIpError,
} from './instruction.js';
import { ReturnStack } from './return-stack.js';

export { Block, MAX_BLOCK_INSNS } from './block.js';

/** Instructions allowed in a row without consuming trace (see the file comment). */
export const MAX_STEPS_WITHOUT_TRACE = 1 << 24;

/** Instructions the block cache fill steps through before it leaves a trampoline (libipt's bcache_fill_steps). */
const BCACHE_FILL_STEPS = 0x400;

/** {@link BlockDecoder.decodeStop}: go on from the block cache. */
const CONTINUE = 1;

/**
 * A trampoline entry at `ioff` to the entry of the next instruction at
 * `noff`, or a decode stop if the displacement does not fit (libipt's
 * pt_blk_add_trampoline).
 */
function addTrampoline(bcache: SectionBlockCache, ioff: number, noff: number, mode: ExecMode): void {
  const disp = noff - ioff;
  if (bceDisplacement(disp) !== disp) bcache.add(ioff, bceMake(0, 1, mode, Bq.Decode, 0));
  else bcache.add(ioff, bceMake(disp, 1, mode, Bq.Again, 0));
}

/** Steps to try reaching a TSX event's IP for the BDM64 check (libipt's bdm64_max_steps). */
const BDM64_MAX_STEPS = 0x100;

/** Flags of the flow layer (libipt's pt_conf_flags.variant.block / .insn). */
export interface FlowFlags {
  /** Report a tick event when a branch's time differs from the last one (`--event:tick`). */
  enableTickEvents: boolean;
  keepTcalOnOvf: boolean;
  enableIflags: boolean;
  /** End a block after a direct call. */
  endOnCall?: boolean;
  /** End a block after a direct jump. */
  endOnJump?: boolean;
}

type Predicate = (insn: InstructionInfo) => boolean;

const never: Predicate = () => false;

/** SKL014: the instructions a TIP.PGD without IP may bind to under address filtering. */
const skl014: Predicate = (insn) => {
  switch (insn.iclass) {
    case InsnClass.Jump:
    case InsnClass.Call:
      return insn.isDirect;
    case InsnClass.Other:
      return insnChangesCr3(insn);
    default:
      return false;
  }
};

export class BlockDecoder extends EventSyncedDecoder {
  /** End blocks after direct calls / jumps (libipt's end_on_call, end_on_jump). */
  endOnCall: boolean;
  endOnJump: boolean;
  private img: Image;
  private idec: InstructionDecoder;
  /** The mapping of the last lookup (libipt's pt_msec_cache), with the image version and address space it was found for. */
  private msec: MappedSection | null = null;
  private msecImage: Image | null = null;
  private msecVersion = -1;
  /** The block cache of the last section {@link proceedNoEvent} found one for (a WeakMap look-up saved per block). */
  private bcache: SectionBlockCache | null = null;
  private bcacheSection: Section | null = null;
  private bcacheEndOnJump = false;

  /** The current event (libipt's decoder->event): valid while {@link status} is not negative. */
  private readonly ev = new PtEvent();
  private readonly retstack = new ReturnStack();
  /** The instruction whose events are being processed (libipt's insn/iext), while {@link processInsn}. */
  private readonly insn = new InstructionInfo();
  /** The start IP of the next block; with tracing disabled, where it is expected to resume. */
  ip = 0;
  /** The time of the last event (libipt's tsc, lost_mtc, lost_cyc); for tick events. */
  private tscHi = 0;
  private tscLo = 0;
  private lostMtc = 0;
  private lostCyc = 0;
  private cbr = 0;
  /** Instructions since the last TRIG anchor, valid if {@link hasIcnt}. */
  private icnt = 0;
  mode: ExecMode = ExecMode.Unknown;
  /** The event decoder's last status. */
  private status = -ErrorCode.NoSync;
  enabled = false;
  speculative = false;
  private hasTsc = false;
  private hasCbr = false;
  private hasIcnt = false;
  private processInsn = false;
  private boundPaging = false;
  private boundVmcs = false;
  private boundPtwrite = false;
  private boundIret = false;
  private boundVmentry = false;
  private boundUiret = false;
  private boundSwintr = false;
  private boundSyscall = false;
  /** The current address space. */
  asid: Asid = ANY_ASID;
  /** Rewritten code: the image for each part of the trace, and the part in use (-1: none yet). */
  private timeline: ImageTimeline<Image> | null = null;
  private cursor: TimelineCursor<Image> | null = null;
  private epoch = -1;
  /** Told when the image changes (the instruction decoder keeps caches of it). */
  onImage: ((image: Image) => void) | null = null;
  /**
   * Where the trace this decoder reads starts in its whole stream (a piece
   * decodes a slice from a PSB inside it): the image timeline's offsets are
   * the stream's.
   */
  traceOrigin = 0;
  /** Instructions since trace was last consumed (the loop guard). */
  private steps = 0;

  // Scratch, so that nothing is allocated per call.
  private readonly reached = new InstructionInfo();
  private readonly probe = new InstructionInfo();
  private readonly fillInsn = new InstructionInfo();
  private readonly saved = new EventDecoderState();
  private readonly savedEvent = new PtEvent();

  constructor(
    trace: TraceInput,
    readonly config: DecoderConfig,
    image: Image,
    readonly flags: FlowFlags = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false },
  ) {
    super(new EventDecoder(trace, config, { keepTcalOnOvf: flags.keepTcalOnOvf, enableIflags: flags.enableIflags }));
    this.endOnCall = flags.endOnCall ?? config.flags.endOnCall;
    this.endOnJump = flags.endOnJump ?? config.flags.endOnJump;
    this.img = image;
    this.idec = instructionDecoderFor(image);
    this.image = image;
    this.reset();
  }

  /**
   * The memory image the code is read from now (sideband may switch it;
   * with an {@link ImageTimeline}, the part of it for the trace position).
   */
  get image(): Image {
    return this.img;
  }

  set image(image: Image) {
    this.timeline = image.timeline;
    this.cursor = this.timeline?.cursor() ?? null;
    this.epoch = -1;
    this.useImage(this.cursor !== null ? this.cursor.imageFor(0) : image);
  }

  private useImage(image: Image): void {
    this.img = image;
    this.idec = instructionDecoderFor(image);
    this.onImage?.(image);
  }

  /**
   * Take the timeline's image for the last PSB passed. Called where the
   * position is known before the next instruction: after a synchronisation
   * and at a status update or tracing enable (image-timeline.ts).
   */
  private followTimeline(): void {
    const t = this.timeline;
    if (t === null) return;
    const k = t.indexAt(this.events.syncOffset + this.traceOrigin);
    if (k === this.epoch) return;
    this.epoch = k;
    this.useImage(this.cursor!.imageFor(k));
  }

  /** Trace offset of the next packet (libipt's pt_blk_get_offset). */
  get offset(): number {
    return this.events.offset;
  }

  get syncOffset(): number {
    return this.events.syncOffset;
  }

  /** The time of the last event: 0 (wall clock) or -NoTime (the value is relative). */
  time(): number {
    return this.hasTsc ? 0 : -ErrorCode.NoTime;
  }

  /** The last core:bus ratio, or -NoCbr. */
  coreBusRatio(): number {
    return this.hasCbr ? this.cbr : -ErrorCode.NoCbr;
  }

  protected override reset(): void {
    this.tscHi = 0;
    this.tscLo = 0;
    this.lostMtc = 0;
    this.lostCyc = 0;
    this.cbr = 0;
    this.icnt = 0;
    this.mode = ExecMode.Unknown;
    this.ip = 0;
    this.status = -ErrorCode.NoSync;
    this.enabled = false;
    this.speculative = false;
    this.hasTsc = false;
    this.hasCbr = false;
    this.hasIcnt = false;
    this.steps = 0;
    this.clearPostponed();
    this.ev.clear();
    this.ev.type = EventType.Invalid;
    this.retstack.reset();
    this.asid = ANY_ASID;
  }

  private statusFlags(flags: number): number {
    if (!this.enabled) flags |= Status.IpSuppressed;
    if (this.status === -ErrorCode.Eos) flags |= Status.Eos;
    return flags;
  }

  // --- TRIG anchors --------------------------------------------------------------

  /**
   * Where a TRIG without IP counts its instructions from: the last event
   * that gave an IP (libipt's pt_blk_find_trig_anchor).
   */
  private findTrigAnchor(ev: PtEvent): number {
    switch (ev.type) {
      case EventType.Paging:
      case EventType.Sipi:
      case EventType.Cbr:
      case EventType.Mnt:
      case EventType.Stop:
      case EventType.Vmcs:
      case EventType.Mwait:
      case EventType.Pwre:
      case EventType.Pwrx:
        return 0;
      case EventType.Enabled:
      case EventType.AsyncBranch:
      case EventType.Tip:
      case EventType.Tnt:
        if (ev.ipSuppressed) return -ErrorCode.Internal;
        this.hasIcnt = true;
        this.icnt = 0;
        return 0;
      case EventType.Disabled:
      case EventType.AsyncDisabled:
        this.hasIcnt = false;
        this.icnt = 0;
        return 0;
      case EventType.Overflow:
        this.hasIcnt = !ev.ipSuppressed;
        this.icnt = 0;
        return 0;
      case EventType.Invalid:
        return -ErrorCode.Internal;
      default:
        if (ev.ipSuppressed) return 0;
        this.hasIcnt = true;
        this.icnt = 0;
        return 0;
    }
  }

  /** Done with the current event: remember its time and read the next one. */
  private fetchEvent(): number {
    const ev = this.ev;
    this.tscHi = ev.tscHi;
    this.tscLo = ev.tscLo;
    this.hasTsc = ev.hasTsc;
    this.lostMtc = ev.lostMtc;
    this.lostCyc = ev.lostCyc;
    this.steps = 0;
    // A TRIG is an anchor for the next TRIG, so the anchor moves on once we
    // are done with an event.
    const err = this.findTrigAnchor(ev);
    if (err < 0) return err;
    const status = this.events.next(ev);
    if (status < 0) {
      this.status = status;
      ev.type = EventType.Invalid;
    }
    return 0;
  }

  // --- synchronizing ---------------------------------------------------------------

  /**
   * Process the PSB+ status updates to learn whether tracing is enabled and
   * where; a copy of the event decoder reads them (restored afterwards), so
   * that they are reported as events all the same (libipt's pt_blk_start).
   */
  protected override start(): number {
    const events = this.events;
    const ev = this.savedEvent;
    events.save(this.saved);
    const at = events.position;
    try {
      for (;;) {
        // Only the initial PSB+: an adjacent one is for later.
        if (events.position !== at) break;
        const err = events.next(ev);
        if (err < 0) {
          if (err !== -ErrorCode.Eos) return err;
          break;
        }
        if (!ev.statusUpdate) break;
        if (ev.type !== EventType.Enabled) continue;
        this.enabled = true;
        this.ip = ev.ip;
        break;
      }
    } finally {
      events.restore(this.saved);
    }
    this.status = events.next(this.ev);
    if (this.status < 0) this.ev.type = EventType.Invalid;
    this.followTimeline();
    return this.proceedTrailingEvent(null);
  }

  // --- using the trace ---------------------------------------------------------------

  /**
   * We used a TIP or TNT event: synthesize a tick event in its place if
   * asked to and the time changed, else read the next event.
   */
  private tick(ip: number): number {
    if (this.flags.enableTickEvents) {
      const ev = this.ev;
      if (ev.tscHi !== this.tscHi || ev.tscLo !== this.tscLo) {
        ev.type = EventType.Tick;
        ev.ip = ip;
        return 0;
      }
    }
    return this.fetchEvent();
  }

  /** An indirect branch: its target from a TIP event. 0 or a negative ErrorCode. */
  private proceedIndirect(): number {
    const ev = this.ev;
    switch (ev.type) {
      case EventType.Tip: {
        if (ev.ipSuppressed) return -ErrorCode.BadPacket;
        const ip = this.ip;
        this.ip = ev.ip;
        this.steps = 0;
        return this.tick(ip);
      }
      case EventType.Tnt: {
        // A deferred TIP may hide behind a TNT still in use: read ahead for
        // the TIP, then put the TNT back. Keep the decoder state in case
        // this is no deferred TIP after all.
        const events = this.events;
        events.save(this.saved);
        copyEvent(this.savedEvent, ev);
        const err = events.next(ev);
        if (err < 0 || (ev.type as EventType) !== EventType.Tip) {
          events.restore(this.saved);
          copyEvent(ev, this.savedEvent);
          return -ErrorCode.BadQuery;
        }
        this.ip = ev.ip;
        this.steps = 0;
        // No tick for this TIP: the TNT must stay.
        copyEvent(ev, this.savedEvent);
        return 0;
      }
      default:
        return -ErrorCode.BadQuery;
    }
  }

  /** A conditional branch: 1 taken, 0 not taken, or a negative ErrorCode. */
  private condBranch(): number {
    const ev = this.ev;
    if (ev.type !== EventType.Tnt) return -ErrorCode.BadQuery;
    let size = ev.tntSize;
    if (!size) return -ErrorCode.Internal;
    size -= 1;
    // The next event is fetched later, once used up, for tick events on
    // one-bit TNT events.
    ev.tntSize = size;
    this.steps = 0;
    // `>>>` takes its operand modulo 2^32 (ToUint32), so the low word needs
    // no `%` (a floating-point remainder, the costliest step here).
    return size >= 32 ? Math.floor(ev.tntBits / 2 ** size) & 1 : (ev.tntBits >>> size) & 1;
  }

  /**
   * We could not go on without trace, which ends the block: use the trace
   * to find the start of the next one (libipt's pt_blk_proceed_with_trace).
   */
  private proceedWithTrace(insn: InstructionInfo): number {
    switch (insn.iclass) {
      case InsnClass.CondJump: {
        let ip = insn.ip + insn.size;
        const tnt = this.condBranch();
        if (tnt !== 0) {
          if (tnt < 0) return tnt;
          ip += insn.displacement;
        }
        this.ip = ip;
        return 0;
      }
      case InsnClass.Return: {
        // A taken TNT bit is a compressed return.
        const tnt = this.condBranch();
        if (tnt <= 0) {
          if (tnt === -ErrorCode.BadQuery) break;
          return tnt === 0 ? -ErrorCode.BadRetcomp : tnt;
        }
        return this.popReturn();
      }
      case InsnClass.Jump:
      case InsnClass.Call:
        // A direct jump or call does not need trace.
        if (insn.isDirect) return -ErrorCode.Internal;
        break;
      case InsnClass.FarCall:
      case InsnClass.FarReturn:
      case InsnClass.FarJump:
      case InsnClass.Indirect:
        break;
      case InsnClass.Ptwrite:
      case InsnClass.Other:
        return -ErrorCode.Internal;
      default:
        return -ErrorCode.BadInsn;
    }
    return this.proceedIndirect();
  }

  private popReturn(): number {
    const err = this.retstack.pop();
    if (err < 0) return err;
    this.ip = this.retstack.ip;
    return 0;
  }

  /** Push a near call's return address for return compression (not for `call next`). */
  private logCall(insn: InstructionInfo): void {
    if (insn.iclass !== InsnClass.Call) return;
    if (insn.isDirect && insn.displacement === 0) return;
    this.retstack.push(insn.ip + insn.size);
  }

  // --- stepping one instruction ------------------------------------------------

  /**
   * Decode the instruction at {@link ip}, add it to `block` and give it in
   * `insn` (libipt's pt_blk_proceed_one_insn): 1, 0 if it does not fit (the
   * block is full, would change sections, or ends with a truncated
   * instruction), or a negative ErrorCode.
   */
  private proceedOneInsn(block: Block, insn: InstructionInfo): number {
    const ninsn = block.ninsn + 1;
    if (ninsn > MAX_BLOCK_INSNS) return 0;
    if (block.truncated) return 0;
    // Decoded straight into `insn` (libipt decodes into a scratch copy):
    // no caller reads `insn` after a result other than 1.
    const status = this.idec.decode(insn, this.ip, this.mode, this.asid);
    if (status < 0) return status;
    if (insn.isid !== block.isid) {
      if (block.ninsn !== 0) return 0;
      block.isid = insn.isid;
    }
    // The bytes of an instruction that spans sections go with the block.
    if (insn.truncated) {
      block.raw.set(insn.raw());
      block.size = insn.size;
      block.truncated = true;
    }
    this.logCall(insn);
    block.iclass = insn.iclass;
    block.endIp = insn.ip;
    block.ninsn = ninsn;
    if (this.hasIcnt) {
      if (this.icnt === 0xffffffff) return -ErrorCode.Overflow;
      this.icnt++;
    }
    this.steps++;
    return 1;
  }

  /** After a direct call or jump: end the block if asked to. */
  private endsAfter(insn: InstructionInfo): boolean {
    return (this.endOnCall && insn.iclass === InsnClass.Call) || (this.endOnJump && insn.iclass === InsnClass.Jump);
  }

  /**
   * Step without trace until an instruction for which `predicate` holds
   * (1), or until the block is full or would change sections (0), or a
   * negative ErrorCode: -BadQuery if trace is needed. `insn` is the last
   * instruction reached; {@link ip} is at it if it matched or needs trace,
   * else after it (libipt's pt_blk_proceed_to_insn).
   */
  private proceedToInsn(block: Block, insn: InstructionInfo, predicate: Predicate): number {
    for (;;) {
      let status = this.proceedOneInsn(block, insn);
      if (status <= 0) return status;
      if (predicate(insn)) return 1;
      const next = insnNextIp(insn);
      if (Number.isNaN(next)) return insnNextIpError(insn);
      this.ip = next;
      if (this.endsAfter(insn)) return 0;
      status = 0;
    }
  }

  /**
   * Step without trace until {@link ip} is `ip` (1), or the block is full or
   * would change sections (0), or a negative ErrorCode (libipt's
   * pt_blk_proceed_to_ip).
   */
  private proceedToIp(block: Block, insn: InstructionInfo, ip: number): number {
    for (;;) {
      if (this.ip === ip) return 1;
      const status = this.proceedOneInsn(block, insn);
      if (status <= 0) return status;
      const next = insnNextIp(insn);
      if (Number.isNaN(next)) return insnNextIpError(insn);
      this.ip = next;
      // The call that ends the block may have reached `ip`.
      if (this.endsAfter(insn)) return this.ip === ip ? 1 : 0;
    }
  }

  /**
   * SKL014: under address filtering a TIP.PGD without IP may also come from
   * a direct branch out of the filter region or into a TraceStop region.
   * The filter configuration tells which branch.
   */
  private proceedSkl014(block: Block, insn: InstructionInfo): number {
    const filter = this.config.addrFilter;
    for (;;) {
      let status = this.proceedToInsn(block, insn, skl014);
      if (status <= 0) return status;
      // Not the erratum if a CR3 change explains the disable.
      if (insnChangesCr3(insn)) return status;
      const target = insnNextIp(insn);
      if (Number.isNaN(target)) return insnNextIpError(insn);
      status = addrFilterCheck(filter, ipToBigInt(target));
      // The event binds here if the target is not traced.
      if (status <= 0) return status === 0 ? 1 : status;
      this.ip = target;
      if (this.endsAfter(insn)) return status;
    }
  }

  /** Proceed to where a synchronous disable binds. */
  private proceedToDisabled(block: Block, insn: InstructionInfo, ev: PtEvent): number {
    if (!ev.ipSuppressed) return this.proceedToIp(block, insn, ev.ip);
    // Without a filter configuration the erratum is assumed not to apply:
    // we might disable tracing too early otherwise.
    if (addrCfgBits(this.config.addrFilter) !== 0 && this.config.errata.skl014) return this.proceedSkl014(block, insn);
    // It also binds to far branches and CPL changes, which need trace:
    // our caller handles that error.
    return this.proceedToInsn(block, insn, insnChangesCr3);
  }

  /**
   * Where tracing is expected to resume after a synchronous disable at
   * `insn`: after a call, the return; otherwise unknown.
   */
  private setDisableResumeIp(insn: InstructionInfo): void {
    switch (insn.iclass) {
      case InsnClass.Call:
      case InsnClass.FarCall:
        this.ip = insn.ip + insn.size;
        break;
      default:
        this.ip = 0;
        break;
    }
  }

  /**
   * Proceed to the instruction an event binds to and past it: the next one
   * for which `predicate` holds, or the one at the event's IP.
   */
  private proceedPastInsn(block: Block, insn: InstructionInfo, ev: PtEvent, predicate: Predicate): number {
    if (ev.ipSuppressed) return this.proceedToInsn(block, insn, predicate);
    const status = this.proceedToIp(block, insn, ev.ip);
    if (status <= 0) return status;
    // At the instruction, `insn` still the one before: account for it. The
    // block may still be full, which postpones instruction and event.
    return this.proceedOneInsn(block, insn);
  }

  /** Give a TRIG its anchor IP unless it has one (libipt's pt_blk_provide_trig_anchor). */
  private provideTrigAnchor(ev: PtEvent): number {
    if (ev.type !== EventType.Trig || ev.ipSuppressed) return -ErrorCode.Internal;
    if (ev.ip) return 0;
    // We count instructions from an anchor; there must be one, in range.
    if (!this.hasIcnt) return -ErrorCode.BadPacket;
    if (ev.icnt < this.icnt) return -ErrorCode.BadPacket;
    ev.icnt -= this.icnt;
    ev.ip = this.ip;
    return 0;
  }

  private proceedToTrig(block: Block, insn: InstructionInfo, ev: PtEvent): number {
    // Without an IP, this is as close as we get.
    if (ev.ipSuppressed) return 1;
    let status = this.provideTrigAnchor(ev);
    if (status < 0) return status;
    // With tracing disabled, the IP must be precise already.
    if (!this.enabled) return ev.icnt ? -ErrorCode.Internal : 1;
    // Reach the anchor, then count the instructions; progress is kept in
    // the event in case the block fills up on the way.
    status = this.proceedToIp(block, insn, ev.ip);
    if (status <= 0) return status;
    while (ev.icnt) {
      status = this.proceedOneInsn(block, insn);
      if (status <= 0) return status;
      const next = insnNextIp(insn);
      if (Number.isNaN(next)) return insnNextIpError(insn);
      this.ip = next;
      ev.ip = next;
      ev.icnt -= 1;
    }
    return 1;
  }

  /**
   * SKD022: an asynchronous disable at VMLAUNCH or VMRESUME may come from a
   * bogus FUP: make it a synchronous disable. 1 if it does, 0 if not.
   */
  private handleSkd022(ev: PtEvent): number {
    const insn = this.probe;
    if (this.idec.decode(insn, ev.at, this.mode, this.asid) < 0) return 0;
    if (insn.kind !== InsnKind.Vmlaunch && insn.kind !== InsnKind.Vmresume) return 0;
    ev.type = EventType.Disabled;
    return 1;
  }

  // --- postponed instructions ---------------------------------------------------

  /** More events may bind to `insn`: proceed past it only once they are processed. */
  private postponeInsn(insn: InstructionInfo): number {
    if (this.processInsn) return -ErrorCode.Internal;
    this.processInsn = true;
    assignInstruction(this.insn, insn);
    return this.statusFlags(Status.EventPending);
  }

  private clearPostponed(): void {
    this.processInsn = false;
    this.boundPaging = false;
    this.boundVmcs = false;
    this.boundPtwrite = false;
    this.boundIret = false;
    this.boundVmentry = false;
    this.boundUiret = false;
    this.boundSwintr = false;
    this.boundSyscall = false;
  }

  private proceedPostponedInsn(): number {
    if (!this.processInsn) return 0;
    if (!this.enabled) {
      this.clearPostponed();
      return 0;
    }
    const next = insnNextIp(this.insn);
    if (Number.isNaN(next)) {
      const err = insnNextIpError(this.insn);
      if (err !== -ErrorCode.BadQuery) return err;
      const status = this.proceedWithTrace(this.insn);
      if (status < 0) return status;
    } else {
      this.ip = next;
    }
    this.clearPostponed();
    return 0;
  }

  // --- proceeding to an event --------------------------------------------------------

  /**
   * An event is pending: proceed to where it binds and indicate it; or, if
   * that cannot be reached in this block, end it and return 0 (libipt's
   * pt_blk_proceed_event).
   */
  private proceedEvent(block: Block): number {
    const insn = this.reached;
    const ev = this.ev;
    let status: number;
    switch (ev.type) {
      case EventType.Enabled:
        break;
      case EventType.Disabled:
        if (ev.statusUpdate) break;
        status = this.proceedToDisabled(block, insn, ev);
        if (status <= 0) {
          // A synchronous disable also binds to the next branch that needs trace.
          if (status !== -ErrorCode.BadQuery) return status;
          this.setDisableResumeIp(insn);
        }
        break;
      case EventType.AsyncDisabled:
        status = this.proceedToIp(block, insn, ev.at);
        if (status <= 0) return status;
        if (this.config.errata.skd022 && this.handleSkd022(ev)) return this.proceedEvent(block);
        break;
      case EventType.AsyncBranch:
        status = this.proceedToIp(block, insn, ev.at);
        if (status <= 0) return status;
        break;
      case EventType.Paging:
        if (!this.enabled) break;
        status = this.proceedToInsn(block, insn, insnBindsToPip);
        if (status <= 0) return status;
        this.boundPaging = true;
        return this.postponeInsn(insn);
      case EventType.Vmcs:
        if (!this.enabled) break;
        status = this.proceedToInsn(block, insn, insnBindsToVmcs);
        if (status <= 0) return status;
        this.boundVmcs = true;
        return this.postponeInsn(insn);
      case EventType.AsyncPaging:
      case EventType.AsyncVmcs:
      case EventType.ExecMode:
      case EventType.Tsx:
      case EventType.Iflags:
      case EventType.Interrupt:
      case EventType.Smi:
      case EventType.Init:
      case EventType.Vmexit:
      case EventType.Shutdown:
      case EventType.Uintr:
        if (ev.ipSuppressed) break;
        status = this.proceedToIp(block, insn, ev.ip);
        if (status <= 0) return status;
        break;
      case EventType.Exstop:
      case EventType.Mwait:
        if (!this.enabled || ev.ipSuppressed) break;
        status = this.proceedToIp(block, insn, ev.ip);
        if (status <= 0) return status;
        break;
      case EventType.Ptwrite:
        if (!this.enabled) break;
        status = this.proceedPastInsn(block, insn, ev, insnIsPtwrite);
        if (status <= 0) return status;
        this.boundPtwrite = true;
        return this.postponeInsn(insn);
      case EventType.Iret:
        if (!this.enabled) break;
        status = this.proceedPastInsn(block, insn, ev, insnIsIret);
        if (status <= 0) return status;
        this.boundIret = true;
        return this.postponeInsn(insn);
      case EventType.Vmentry:
        if (!this.enabled) break;
        status = this.proceedPastInsn(block, insn, ev, insnIsVmentry);
        if (status <= 0) return status;
        this.boundVmentry = true;
        return this.postponeInsn(insn);
      case EventType.Uiret:
        if (!this.enabled) break;
        status = this.proceedPastInsn(block, insn, ev, insnIsUiret);
        if (status <= 0) return status;
        this.boundUiret = true;
        return this.postponeInsn(insn);
      case EventType.Swintr:
      case EventType.Syscall:
        // Not past the instruction: an asynchronous branch (INT) or a TIP
        // (SYSCALL) at it may follow.
        if (!this.enabled) break;
        // With an IP where the decoder already is, no instruction was
        // crossed to get there, so none is postponed (libipt postpones its
        // uninitialised pt_insn then, pt_blk_proceed_event: undefined).
        if (!ev.ipSuppressed && this.ip === ev.ip) break;
        status = ev.ipSuppressed
          ? this.proceedToInsn(block, insn, ev.type === EventType.Swintr ? insnIsSwint : insnIsSyscall)
          : this.proceedToIp(block, insn, ev.ip);
        if (status <= 0) return status;
        this.setBound(ev.type);
        return this.postponeInsn(insn);
      case EventType.Trig:
        status = this.proceedToTrig(block, insn, ev);
        if (status <= 0) return status;
        break;
      case EventType.Overflow:
      case EventType.Stop:
      case EventType.Pwre:
      case EventType.Pwrx:
      case EventType.Tick:
      case EventType.Cbr:
      case EventType.Mnt:
      case EventType.Rsm:
      case EventType.Sipi:
        break;
      case EventType.Tip:
      case EventType.Tnt:
        return -ErrorCode.Internal;
      default:
        break;
    }
    return this.statusFlags(Status.EventPending);
  }

  // --- proceeding without events (the fast path) ---------------------------------------

  /**
   * The mapping that holds `ip` from the one-entry mapping cache (libipt's
   * pt_msec_cache_read): null if the cache does not hold it.
   */
  private msecRead(ip: number): MappedSection | null {
    const m = this.msec;
    if (m !== null && m.vaddr <= ip && ip < m.end && this.msecImage === this.img && this.msecVersion === this.img.version) return m;
    return null;
  }

  /** Find the mapping that holds `ip` and cache it (libipt's pt_msec_cache_fill); null if none. */
  private msecFill(ip: number): MappedSection | null {
    const m = this.img.find(ip, this.asid);
    this.msec = m;
    this.msecImage = this.img;
    this.msecVersion = this.img.version;
    return m;
  }

  /**
   * The mapping that holds {@link ip} (libipt's pt_blk_msec_lookup): from
   * the cache, or found and cached, which also allocates its section's
   * block cache (libipt's pt_section_request_bcache). Null if none.
   */
  private msecLookup(): MappedSection | null {
    const ip = this.ip;
    let m = this.msecRead(ip);
    if (m !== null) return m;
    m = this.msecFill(ip);
    if (m !== null) sectionBlockCache(m.section, this.endOnJump);
    return m;
  }

  /**
   * The instruction decoder's look-up of the mapping that holds `ip`
   * (libipt's pt_insn_msec_lookup): through this decoder's mapping cache,
   * as in libipt, but without allocating a block cache. Until this decoder
   * finds that mapping itself again, it steps through it uncached, as
   * libipt's does. The image section identifier, or -NoMap.
   */
  lookupSection(ip: number): number {
    let m = this.msecRead(ip);
    if (m === null) m = this.msecFill(ip);
    return m === null ? -ErrorCode.NoMap : m.isid;
  }

  /**
   * No event is pending and tracing is enabled: go as far as the code goes
   * without trace, then one step with trace to the start of the next block
   * (libipt's pt_blk_proceed_no_event). 0 or a negative ErrorCode.
   */
  private proceedNoEvent(block: Block): number {
    const msec = this.msecLookup();
    // Nothing mapped: the slow path reports why.
    if (msec === null) return this.proceedNoEventUncached(block);
    // Blocks do not switch sections.
    if (msec.isid !== block.isid) {
      if (block.ninsn !== 0) return 0;
      block.isid = msec.isid;
    }
    // No block cache for the section: the slow path (libipt's, when the
    // instruction decoder found the mapping first).
    let bcache = this.bcache;
    if (msec.section !== this.bcacheSection || this.endOnJump !== this.bcacheEndOnJump) {
      bcache = existingSectionBlockCache(msec.section, this.endOnJump);
      // Once allocated, a section's cache stays: remember only those.
      if (bcache !== null) {
        this.bcache = bcache;
        this.bcacheSection = msec.section;
        this.bcacheEndOnJump = this.endOnJump;
      }
    }
    if (bcache === null) return this.proceedNoEventUncached(block);
    return this.proceedNoEventCached(block, bcache, msec);
  }

  /**
   * Decode the instruction at `ip` from `msec` alone (libipt's
   * pt_blk_decode_in_section): 0, or -BadInsn if it does not decode there
   * (it may run past the mapping's end).
   */
  private decodeInSection(insn: InstructionInfo, ip: number, mode: ExecMode, msec: MappedSection): number {
    const status = this.idec.decode(insn, ip, mode, this.asid);
    if (status < 0) return status;
    if (insn.truncated || insn.section !== msec) return -ErrorCode.BadInsn;
    return 0;
  }

  /**
   * Proceed to the next decision point by the block cache (libipt's
   * pt_blk_proceed_no_event_cached; its tail calls are this loop). All
   * reads are from `msec`: blocks do not switch sections.
   */
  private proceedNoEventCached(block: Block, bcache: SectionBlockCache, msec: MappedSection): number {
    const insn = this.probe;
    for (;;) {
      const bce = bcache.lookup(this.ip - msec.vaddr + msec.offset);
      // Not cached yet: fill the cache on the way.
      if (!bceIsValid(bce)) return this.proceedNoEventFillCache(block, bcache, msec, BCACHE_FILL_STEPS);
      // A decision point outside the mapping: the section was split
      // underneath us; the slow path takes us to the end of it.
      const nip = this.ip + bceDisplacement(bce);
      if (nip < msec.vaddr || nip >= msec.end) return this.proceedNoEventUncached(block);
      // If the way to the decision point does not fit, end the block; the
      // next one starts empty and has room.
      const n = bceNinsn(bce);
      const ninsn = block.ninsn + n;
      if (ninsn > MAX_BLOCK_INSNS) return 0;
      if (this.hasIcnt) {
        const icnt = this.icnt + n;
        if (icnt > 0xffffffff) return -ErrorCode.Overflow;
        this.icnt = icnt;
      }
      this.steps += n;
      this.ip = nip;
      block.endIp = nip;
      block.ninsn = ninsn;
      const mode: ExecMode = bceMode(bce);
      block.mode = mode;
      const q = bceQualifier(bce);
      switch (q) {
        case Bq.Again:
          // A trampoline: the instruction there is not known.
          block.iclass = InsnClass.Unknown;
          continue;
        case Bq.IndCall: {
          block.iclass = InsnClass.Call;
          let ip = nip;
          const isize = bceIsize(bce);
          if (isize) ip += isize;
          else {
            const status = this.decodeInSection(insn, nip, mode, msec);
            if (status < 0) return status;
            ip += insn.size;
          }
          this.retstack.push(ip);
          return this.proceedIndirect();
        }
        case Bq.Return: {
          block.iclass = InsnClass.Return;
          // A taken TNT bit is a compressed return.
          const tnt = this.condBranch();
          if (tnt <= 0) {
            if (tnt === -ErrorCode.BadQuery) return this.proceedIndirect();
            return tnt === 0 ? -ErrorCode.BadRetcomp : tnt;
          }
          return this.popReturn();
        }
        case Bq.Indirect:
          // An indirect jump, JMPABS or far transfer: which one, libipt does not say.
          block.iclass = InsnClass.Indirect;
          return this.proceedIndirect();
        case Bq.Cond: {
          block.iclass = InsnClass.CondJump;
          const isize = bceIsize(bce);
          if (isize) {
            // Not taken: no need to decode it. Taken: the displacement,
            // handled here since the TNT bit is used.
            let ip = nip;
            const tnt = this.condBranch();
            if (tnt !== 0) {
              if (tnt < 0) return tnt;
              // The displacement kept with the branch's own entry, if that
              // entry is still this one and the branch lies in the mapping
              // (a decode would give the same); else decode.
              const noff = nip - msec.vaddr + msec.offset;
              const disp = nip + isize <= msec.end ? bcache.condDisplacement(noff, bceMake(0, 1, mode, Bq.Cond, isize)) : NaN;
              if (Number.isNaN(disp)) {
                const status = this.decodeInSection(insn, ip, mode, msec);
                if (status < 0) return status;
                ip += insn.displacement;
              } else {
                ip += disp;
              }
            }
            this.ip = ip + isize;
            return 0;
          }
          const status = this.decodeStop(block, nip, mode, msec, bcache);
          if (status !== CONTINUE) return status;
          continue;
        }
        case Bq.Decode: {
          const status = this.decodeStop(block, nip, mode, msec, bcache);
          if (status !== CONTINUE) return status;
          continue;
        }
        default:
          return -ErrorCode.Internal;
      }
    }
  }

  /**
   * A decision point the cache says to decode (libipt's ptbq_decode case):
   * the instruction is counted already; decode it and act on it. A status,
   * or {@link CONTINUE} to go on from the cache.
   */
  private decodeStop(block: Block, ip: number, mode: ExecMode, msec: MappedSection, bcache: SectionBlockCache): number {
    const insn = this.probe;
    if (!this.stopFromCache(insn, ip, mode, msec, bcache)) {
      const status = this.decodeInSection(insn, ip, mode, msec);
      if (status < 0) {
        if (status !== -ErrorCode.BadInsn) return status;
        return this.proceedTruncated(block);
      }
    }
    block.iclass = insn.iclass;
    this.logCall(insn);
    const next = insnNextIp(insn);
    if (Number.isNaN(next)) {
      const err = insnNextIpError(insn);
      if (err !== -ErrorCode.BadQuery) return err;
      return this.proceedWithTrace(insn);
    }
    this.ip = next;
    if (this.endsAfter(insn)) return 0;
    // Onwards from the cache as long as we stay in the mapping.
    if (next < msec.vaddr || next >= msec.end) return 0;
    return CONTINUE;
  }

  /**
   * The instruction of a decode stop from what the cache fill kept of it
   * (what {@link decodeInSection} would give, without decoding): false if
   * it kept nothing for this entry and mode, or the instruction does not
   * end inside the mapping.
   */
  private stopFromCache(insn: InstructionInfo, ip: number, mode: ExecMode, msec: MappedSection, bcache: SectionBlockCache): boolean {
    const off = ip - msec.vaddr + msec.offset;
    const info = bcache.decodeStopInfo(off, bceMake(0, 1, mode, Bq.Decode, 0), mode);
    if (info === 0) return false;
    const size = info & 15;
    if (ip + size > msec.end) return false;
    insn.ip = ip;
    insn.mode = mode;
    insn.size = size;
    insn.iclass = (info >>> 4) & 15;
    insn.kind = (info >>> 8) & 255;
    if ((info & (1 << 16)) !== 0) {
      const disp = bcache.stopDisplacement(off);
      insn.isDirect = true;
      insn.displacement = disp;
      insn.target = ip + size + disp;
    } else {
      insn.isDirect = false;
      insn.displacement = 0;
      insn.target = 0;
    }
    insn.truncated = false;
    insn.section = msec;
    insn.isid = msec.isid;
    insn.rawBuffer = msec.section.source.bytes;
    insn.rawOffset = msec.sourceOffset + (ip - msec.vaddr);
    return true;
  }

  /**
   * Proceed one instruction by decoding it, then on by the cache, and on
   * the way back add the entry for that instruction (libipt's
   * pt_blk_proceed_no_event_fill_cache; recursive, at most `steps` deep).
   */
  private proceedNoEventFillCache(block: Block, bcache: SectionBlockCache, msec: MappedSection, steps: number): number {
    // One scratch for every level: what is needed after the recursive call
    // (the instruction's address and mode) is kept in locals.
    const insn = this.fillInsn;
    let status = this.proceedOneInsn(block, insn);
    if (status <= 0) return status;
    const ioff = insn.ip - msec.vaddr + msec.offset;
    const nip = insnNextIp(insn);
    if (Number.isNaN(nip)) {
      // A decision point: the trace must say where it goes.
      const err = insnNextIpError(insn);
      if (err !== -ErrorCode.BadQuery) return err;
      let q: Bq;
      switch (insn.iclass) {
        case InsnClass.Jump:
          // Direct jumps need no trace (JMPABS is not direct here).
          if (insn.isDirect) return -ErrorCode.Internal;
          q = Bq.Indirect;
          break;
        case InsnClass.Call:
          if (insn.isDirect) return -ErrorCode.Internal;
          q = Bq.IndCall;
          break;
        case InsnClass.Return:
          q = Bq.Return;
          break;
        case InsnClass.CondJump:
          q = Bq.Cond;
          break;
        case InsnClass.FarCall:
        case InsnClass.FarReturn:
        case InsnClass.FarJump:
        case InsnClass.Indirect:
          q = Bq.Indirect;
          break;
        default:
          return -ErrorCode.Internal;
      }
      // A truncated instruction must be decoded each time.
      if (block.truncated) q = Bq.Decode;
      const entry = bceMake(0, 1, insn.mode, q, insn.size < 8 ? insn.size : 0);
      if (q === Bq.Cond && insn.isDirect) bcache.addCond(ioff, entry, insn.displacement);
      else bcache.add(ioff, entry);
      return this.proceedWithTrace(insn);
    }
    this.ip = nip;
    const noff = nip - msec.vaddr + msec.offset;
    // Stops without trace: at direct calls (for the return stack), at
    // direct backward jumps (to notice section splits), at every direct
    // jump with endOnJump, when leaving the mapping, after a truncated
    // instruction.
    if (
      insn.iclass === InsnClass.Call ||
      (insn.iclass === InsnClass.Jump && (insn.displacement < 0 || this.endOnJump)) ||
      nip < msec.vaddr ||
      nip >= msec.end ||
      block.truncated
    ) {
      // Indirect jumps need trace: handled above.
      if (insn.iclass === InsnClass.Jump && !insn.isDirect) return -ErrorCode.Internal;
      const entry = bceMake(0, 1, insn.mode, Bq.Decode, 0);
      if (insn.truncated) bcache.add(ioff, entry);
      else bcache.addDecodeStop(ioff, entry, packDecodeStop(insn.size, insn.iclass, insn.kind, insn.isDirect, insn.mode), insn.displacement);
      return 0;
    }
    const iip = insn.ip;
    const imode = insn.mode;
    // One instruction done: is the next one cached?
    let bce = bcache.lookup(noff);
    const fill = !bceIsValid(bce);
    if (fill) {
      // Out of steps: a trampoline to the next instruction, to go on from
      // there next time.
      steps -= 1;
      if (!steps) {
        addTrampoline(bcache, ioff, noff, imode);
        return 0;
      }
      status = this.proceedNoEventFillCache(block, bcache, msec, steps);
      if (status < 0) return status;
      bce = bcache.lookup(noff);
      // Still none: most likely the block is full.
      if (!bceIsValid(bce)) return 0;
    }
    // No mode changes without an event.
    if (bceMode(bce) !== imode) return -ErrorCode.Internal;
    const dip = nip + bceDisplacement(bce);
    const disp = dip - iip;
    // A split section: no entry, the slow path to the end of the section.
    if (dip < msec.vaddr || dip >= msec.end) return 0;
    // Reach the next instruction's decision point from here, or, if the
    // count or the displacement overflow, by a trampoline to it.
    const ninsn = (bceNinsn(bce) + 1) & 0xff;
    if (ninsn === 0 || disp !== bceDisplacement(disp)) {
      addTrampoline(bcache, ioff, noff, imode);
      return 0;
    }
    bcache.add(ioff, bceMake(disp, ninsn, bceMode(bce), bceQualifier(bce), bceIsize(bce)));
    // Filling the cache may have extended the block: we cannot go on.
    if (fill) return 0;
    return this.proceedNoEventCached(block, bcache, msec);
  }

  /**
   * The instruction at {@link ip} does not decode from its mapping alone:
   * decode it from the whole image, expect it to run past the mapping's
   * end, and end the block with it (libipt's pt_blk_proceed_truncated).
   */
  private proceedTruncated(block: Block): number {
    const insn = this.probe;
    const status = this.idec.decode(insn, this.ip, this.mode, this.asid);
    if (status < 0) return status;
    if (!insn.truncated) return -ErrorCode.Internal;
    block.raw.set(insn.raw());
    block.iclass = insn.iclass;
    block.size = insn.size;
    block.truncated = true;
    this.logCall(insn);
    const next = insnNextIp(insn);
    if (Number.isNaN(next)) {
      const err = insnNextIpError(insn);
      if (err !== -ErrorCode.BadQuery) return err;
      return this.proceedWithTrace(insn);
    }
    this.ip = next;
    return 0;
  }

  /**
   * The slow path without events: step instruction by instruction until
   * trace is needed, then use it (libipt's pt_blk_proceed_no_event_uncached).
   */
  private proceedNoEventUncached(block: Block): number {
    const insn = this.reached;
    insn.iclass = InsnClass.Unknown;
    const status = this.proceedToInsn(block, insn, never);
    if (status < 0) {
      if (status !== -ErrorCode.BadQuery) return status;
      return this.proceedWithTrace(insn);
    }
    return 0;
  }

  /**
   * Proceed to the next event or decision point (libipt's pt_blk_proceed):
   * status flags or a negative ErrorCode.
   */
  private proceed(block: Block): number {
    if (this.steps > MAX_STEPS_WITHOUT_TRACE) return -ErrorCode.BadQuery;
    let status = this.status;
    if (status < 0) {
      if (status !== -ErrorCode.Eos) return status;
      // Out of trace: the code may still be followed until it needs trace
      // (so that traces of adjacent PSB segments can be stitched), if
      // tracing is enabled; the end is indicated on every call.
      if (!this.enabled) return -ErrorCode.Eos;
      status = this.proceedNoEvent(block);
      if (status < 0) return status;
      return Status.Eos;
    }
    switch (this.ev.type) {
      case EventType.Tnt:
      case EventType.Tip:
        if (!this.enabled) return -ErrorCode.NoEnable;
        status = this.proceedNoEvent(block);
        if (status < 0) return status;
        return this.proceedTrailingEvent(block);
      default:
        return this.proceedEvent(block);
    }
  }

  // --- trailing events ------------------------------------------------------------------

  /**
   * BDM64: a TSX abort right after a branch that produced trace may come
   * with that branch's trace corrupted. If the abort's IP cannot be reached
   * from where the branch took us, assume the erratum hit and that the
   * branch went there. 1 if handled, 0 if not, or a negative ErrorCode.
   */
  private handleBdm64(block: Block, ev: PtEvent): number {
    if (!ev.aborted) return 0;
    // Only branches that need trace, which ended the block.
    if (block.ninsn === 0) return 0;
    const insn = this.probe;
    if (this.idec.decode(insn, block.endIp, block.mode, this.asid) < 0) return 0;
    if (!insnIsBranch(insn)) return 0;
    const status = this.rangeIsContiguous(this.ip, ev.ip, BDM64_MAX_STEPS);
    if (status > 0) return status;
    this.ip = ev.ip;
    return 1;
  }

  /** Can `end` be reached from `begin` following the code alone, within `steps`? 1, 0, or an error. */
  private rangeIsContiguous(begin: number, end: number, steps: number): number {
    const insn = this.probe;
    let ip = begin;
    while (ip !== end) {
      if (!steps--) return 0;
      const err = this.idec.decode(insn, ip, this.mode, this.asid);
      if (err < 0) return err;
      const next = insnNextIp(insn);
      if (Number.isNaN(next)) return insnNextIpError(insn);
      ip = next;
    }
    return 1;
  }

  /** Should a trailing TSX event wait? 1 yes, 0 no, or a negative ErrorCode. */
  private postponeTrailingTsx(block: Block | null, ev: PtEvent): number {
    if (ev.ipSuppressed) return 0;
    if (block !== null && this.config.errata.bdm64) {
      if (this.handleBdm64(block, ev) < 0) return 1;
    }
    return this.ip !== ev.ip ? 1 : 0;
  }

  /**
   * Is there an event at the current IP to indicate (after a sync, at the
   * end of a block, or after an event)? Status flags or a negative
   * ErrorCode (libipt's pt_blk_proceed_trailing_event).
   */
  private proceedTrailingEvent(block: Block | null): number {
    let status = this.status;
    if (status < 0) {
      const err = this.proceedPostponedInsn();
      if (err < 0) return err;
      // Let the layer above ask for the event decode error, unless this is
      // just the end of the trace.
      return this.statusFlags(status !== -ErrorCode.Eos ? Status.EventPending : 0);
    }
    const ev = this.ev;
    switch (ev.type) {
      case EventType.Tnt:
        // A tick event on the first TNT bit used, if asked, during normal
        // processing, and once.
        if (!this.flags.enableTickEvents || block === null || !ev.hasTsc || (ev.tscHi === this.tscHi && ev.tscLo === this.tscLo)) {
          if (ev.tntSize) break;
          // All bits used: the next event was postponed for ticks on one-bit TNTs.
          status = this.fetchEvent();
          if (status < 0) return status;
          return this.proceedTrailingEvent(block);
        }
        // Postpone the tick if the block was broken for another reason.
        if (block.iclass !== InsnClass.CondJump && block.iclass !== InsnClass.Return) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Tip:
        break;
      case EventType.Disabled:
        if (!this.processInsn) {
          if (ev.statusUpdate) return this.statusFlags(Status.EventPending);
          break;
        }
        // A synchronous disable may bind to a CR3-changing instruction.
        if (ev.ipSuppressed && insnChangesCr3(this.insn)) return this.statusFlags(Status.EventPending);
        // Or to the next branch that needs trace: try to proceed past the
        // postponed instruction; if that needs trace, the disable applies.
        {
          const next = insnNextIp(this.insn);
          if (Number.isNaN(next)) {
            const err = insnNextIpError(this.insn);
            if (err !== -ErrorCode.BadQuery) return err;
            this.setDisableResumeIp(this.insn);
            return this.statusFlags(Status.EventPending);
          }
          this.ip = next;
        }
        this.clearPostponed();
        if (!ev.ipSuppressed && this.ip === ev.ip) return this.statusFlags(Status.EventPending);
        break;
      case EventType.Enabled:
      case EventType.Tick:
      case EventType.Overflow:
      case EventType.Stop:
      case EventType.Pwre:
      case EventType.Pwrx:
      case EventType.Cbr:
      case EventType.Mnt:
        // These do not bind to an instruction.
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        return this.statusFlags(Status.EventPending);
      case EventType.AsyncDisabled:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        if (this.ip !== ev.at) break;
        // With SKD022 it may become a synchronous disable, processed on the next proceed.
        if (this.config.errata.skd022 && this.handleSkd022(ev)) break;
        return this.statusFlags(Status.EventPending);
      case EventType.AsyncBranch:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        if (this.ip !== ev.at) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Paging:
      case EventType.Vmcs: {
        // Applied right away while not tracing.
        if (!this.enabled) return this.statusFlags(Status.EventPending);
        // Normally indicated on the event flow, unless it binds to the same
        // instruction as a previous event; at most one per instruction.
        const paging = ev.type === EventType.Paging;
        if (!this.processInsn || (paging ? this.boundPaging : this.boundVmcs)) break;
        if (!(paging ? insnBindsToPip(this.insn) : insnBindsToVmcs(this.insn))) break;
        if (paging) this.boundPaging = true;
        else this.boundVmcs = true;
        return this.statusFlags(Status.EventPending);
      }
      case EventType.AsyncPaging:
      case EventType.AsyncVmcs:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        if (!ev.ipSuppressed && this.ip !== ev.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.ExecMode:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        // With event tracing, mode events may come with an IP while tracing
        // is disabled (BranchEn=0, or IF changes outside the filter).
        if (!this.enabled) return this.statusFlags(Status.EventPending);
        if (!ev.ipSuppressed && this.ip !== ev.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Tsx:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        status = this.postponeTrailingTsx(block, ev);
        if (status !== 0) {
          if (status < 0) return status;
          break;
        }
        return this.statusFlags(Status.EventPending);
      case EventType.Exstop:
      case EventType.Mwait:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        if (!ev.ipSuppressed && this.enabled && this.ip !== ev.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Iflags:
      case EventType.Interrupt:
      case EventType.Smi:
      case EventType.Init:
      case EventType.Vmexit:
      case EventType.Shutdown:
      case EventType.Uintr:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        if (this.enabled && !ev.ipSuppressed && this.ip !== ev.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Rsm:
      case EventType.Sipi:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        if (!ev.ipSuppressed) return -ErrorCode.Internal;
        return this.statusFlags(Status.EventPending);
      case EventType.Ptwrite:
      case EventType.Iret:
      case EventType.Vmentry:
      case EventType.Uiret:
      case EventType.Swintr:
      case EventType.Syscall: {
        // Applied right away while not tracing; normally indicated on the
        // event flow, unless it binds to the same instruction as a previous
        // event (at most one of each kind per instruction).
        if (!this.enabled) return this.statusFlags(Status.EventPending);
        if (!this.processInsn || this.boundTo(ev.type)) break;
        if (!ev.ipSuppressed || !this.bindsTo(ev.type, this.insn)) break;
        this.setBound(ev.type);
        return this.statusFlags(Status.EventPending);
      }
      case EventType.Trig:
        status = this.proceedPostponedInsn();
        if (status < 0) return status;
        // Placing it needs an IP and tracing enabled.
        if (!this.enabled || ev.ipSuppressed) return this.statusFlags(Status.EventPending);
        status = this.provideTrigAnchor(ev);
        if (status < 0) return status;
        // Only at the current location; otherwise proceed there next time.
        if (ev.icnt) break;
        if (ev.ip !== this.ip) return -ErrorCode.BadPacket;
        return this.statusFlags(Status.EventPending);
      default:
        break;
    }
    // No more events here: proceed past a postponed instruction.
    status = this.proceedPostponedInsn();
    if (status < 0) return status;
    return this.statusFlags(0);
  }

  private boundTo(type: EventType): boolean {
    switch (type) {
      case EventType.Ptwrite:
        return this.boundPtwrite;
      case EventType.Iret:
        return this.boundIret;
      case EventType.Vmentry:
        return this.boundVmentry;
      case EventType.Uiret:
        return this.boundUiret;
      case EventType.Swintr:
        return this.boundSwintr;
      default:
        return this.boundSyscall;
    }
  }

  private setBound(type: EventType): void {
    switch (type) {
      case EventType.Ptwrite:
        this.boundPtwrite = true;
        break;
      case EventType.Iret:
        this.boundIret = true;
        break;
      case EventType.Vmentry:
        this.boundVmentry = true;
        break;
      case EventType.Uiret:
        this.boundUiret = true;
        break;
      case EventType.Swintr:
        this.boundSwintr = true;
        break;
      default:
        this.boundSyscall = true;
        break;
    }
  }

  private bindsTo(type: EventType, insn: InstructionInfo): boolean {
    switch (type) {
      case EventType.Ptwrite:
        return insnIsPtwrite(insn);
      case EventType.Iret:
        return insnIsIret(insn);
      case EventType.Vmentry:
        return insnIsVmentry(insn);
      case EventType.Uiret:
        return insnIsUiret(insn);
      case EventType.Swintr:
        return insnIsSwint(insn);
      default:
        return insnIsSyscall(insn);
    }
  }

  // --- the API ----------------------------------------------------------------------

  /**
   * Decode the next block into `block` (libipt's pt_blk_next). Returns
   * status flags or a negative ErrorCode; on error `block` holds what was
   * decoded before it.
   */
  next(block: Block): number {
    block.begin(this.img, this.asid);
    block.ip = this.ip;
    block.mode = this.mode;
    block.speculative = this.speculative;
    return this.proceed(block);
  }

  private processEnabled(ev: PtEvent): number {
    // A status update checks consistency.
    if (ev.statusUpdate) return this.enabled ? 0 : -ErrorCode.BadStatusUpdate;
    if (ev.ipSuppressed) return -ErrorCode.NoIp;
    if (this.enabled) return -ErrorCode.BadContext;
    this.ip = ev.ip;
    this.enabled = true;
    return 0;
  }

  private processDisabled(ev: PtEvent): number {
    if (ev.statusUpdate) return this.enabled ? -ErrorCode.BadStatusUpdate : 0;
    if (!this.enabled) return -ErrorCode.BadContext;
    // The IP stays: tracing is expected to resume there.
    this.enabled = false;
    // While disabled the IP is stale: TRIG anchors count from the anchor IP.
    this.icnt = 0;
    return 0;
  }

  private processPaging(ev: PtEvent): void {
    if (this.asid.cr3 !== ev.cr3) {
      this.msec = null;
      this.asid = new Asid(ev.cr3, this.asid.vmcs);
    }
  }

  private processVmcs(ev: PtEvent): void {
    if (this.asid.vmcs !== ev.base) {
      this.msec = null;
      this.asid = new Asid(this.asid.cr3, ev.base);
    }
  }

  private processOverflow(ev: PtEvent): number {
    if (ev.statusUpdate) return -ErrorCode.BadContext;
    if (ev.ipSuppressed) {
      // Resolved while tracing was disabled: the old IP would mislead.
      this.enabled = false;
      this.ip = 0;
    } else {
      this.enabled = true;
      this.ip = ev.ip;
    }
    // The TSX state is unknown: assume normal execution. The mode is kept.
    this.speculative = false;
    return 0;
  }

  /**
   * Fetch the pending event into `out` and apply it (libipt's
   * pt_blk_event). Returns status flags (more events may be pending) or a
   * negative ErrorCode.
   */
  event(out: PtEvent): number {
    let err = this.status;
    if (err < 0) return err;
    const ev = this.ev;
    switch (ev.type) {
      case EventType.Tnt: {
        // A tick event on the first TNT bit used.
        if (!this.flags.enableTickEvents) return -ErrorCode.BadQuery;
        if (!ev.hasTsc || (ev.tscHi === this.tscHi && ev.tscLo === this.tscLo)) return -ErrorCode.BadQuery;
        out.clear();
        out.type = EventType.Tick;
        out.hasTsc = true;
        out.tscHi = ev.tscHi;
        out.tscLo = ev.tscLo;
        out.lostMtc = ev.lostMtc;
        out.lostCyc = ev.lostCyc;
        out.ip = this.ip;
        // The TNT stays current; its time marks the tick as done.
        this.hasTsc = true;
        this.tscHi = ev.tscHi;
        this.tscLo = ev.tscLo;
        this.lostMtc = ev.lostMtc;
        this.lostCyc = ev.lostCyc;
        if (!ev.tntSize) {
          err = this.fetchEvent();
          if (err < 0) return err;
        }
        return this.proceedTrailingEvent(null);
      }
      case EventType.Enabled:
        this.followTimeline();
        // Tracing resumes where it was disabled.
        if (ev.ip === this.ip) ev.resumed = true;
        err = this.processEnabled(ev);
        break;
      case EventType.AsyncDisabled:
        if (this.ip !== ev.at) return -ErrorCode.BadQuery;
        err = this.processDisabled(ev);
        break;
      case EventType.Disabled:
        err = this.processDisabled(ev);
        break;
      case EventType.AsyncBranch:
        if (this.ip !== ev.at) return -ErrorCode.BadQuery;
        if (ev.statusUpdate || !this.enabled) return -ErrorCode.BadContext;
        this.ip = ev.ip;
        break;
      case EventType.AsyncPaging:
        if (!ev.ipSuppressed && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        this.processPaging(ev);
        break;
      case EventType.Paging:
        this.processPaging(ev);
        break;
      case EventType.AsyncVmcs:
        if (!ev.ipSuppressed && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        this.processVmcs(ev);
        break;
      case EventType.Vmcs:
        this.processVmcs(ev);
        break;
      case EventType.Overflow:
        err = this.processOverflow(ev);
        break;
      case EventType.ExecMode:
        if (this.enabled && !ev.ipSuppressed && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        if (ev.statusUpdate) this.followTimeline();
        // A status update checks consistency.
        if (ev.statusUpdate && this.enabled && this.mode !== ExecMode.Unknown && this.mode !== ev.mode) {
          return -ErrorCode.BadStatusUpdate;
        }
        this.mode = ev.mode;
        break;
      case EventType.Tsx:
        if (!ev.ipSuppressed && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        this.speculative = ev.speculative;
        break;
      case EventType.Stop:
        if (ev.statusUpdate) return -ErrorCode.BadContext;
        // Tracing is always disabled before it stops.
        if (this.enabled) return -ErrorCode.BadContext;
        break;
      case EventType.Exstop:
      case EventType.Mwait:
        if (!ev.ipSuppressed && this.enabled && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        break;
      case EventType.Cbr:
        this.hasCbr = true;
        this.cbr = ev.ratio;
        break;
      case EventType.Tip:
        return -ErrorCode.BadQuery;
      case EventType.Iflags:
      case EventType.Interrupt:
      case EventType.Smi:
      case EventType.Init:
      case EventType.Vmexit:
      case EventType.Shutdown:
      case EventType.Uintr:
      case EventType.Trig:
      case EventType.Swintr:
      case EventType.Syscall:
        if (this.enabled && !ev.ipSuppressed && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        break;
      case EventType.Rsm:
      case EventType.Sipi:
        if (!ev.ipSuppressed) return -ErrorCode.Internal;
        break;
      default:
        // Pwre, Pwrx, Ptwrite, Tick, Mnt, Iret, Vmentry, Uiret.
        break;
    }
    if (err < 0) return err;
    copyEvent(out, ev);
    err = this.fetchEvent();
    if (err < 0) return err;
    return this.proceedTrailingEvent(null);
  }

  // --- resynchronizing after an error (--resync-on-error) ------------------------------

  /** Start over at the last PSB: we are inside PSB+ and cannot tell where. */
  private resyncAtSync(): number {
    const offset = this.syncOffset;
    if (offset < 0) return offset;
    return this.syncSet(offset);
  }

  /** Resume at the current event, which gives the IP; consume it. */
  private resyncAtEvent(): number {
    const err = this.fetchEvent();
    if (err < 0) return err;
    return this.proceedTrailingEvent(null);
  }

  /**
   * Continue after an error at the next place the trace gives an IP,
   * without going to the next PSB (libipt's pt_blk_resync, ptxed's
   * --resync-on-error). Returns status flags, -EventIgnored when an event
   * must be fetched with {@link event} first (then call again), or a
   * negative ErrorCode.
   */
  resync(): number {
    this.clearPostponed();
    const ev = this.ev;
    for (;;) {
      let err = this.status;
      if (err < 0) return err;
      if (ev.statusUpdate) return this.resyncAtSync();
      switch (ev.type) {
        case EventType.Enabled:
          this.enabled = false;
          return this.statusFlags(Status.EventPending);
        case EventType.Disabled:
          this.enabled = true;
          this.ip = 0;
          err = this.processDisabled(ev);
          if (err < 0) return err;
          return this.resyncAtEvent();
        case EventType.AsyncDisabled:
          this.ip = ev.at;
          if (this.config.errata.skd022 && this.handleSkd022(ev)) break;
          return this.statusFlags(Status.EventPending);
        case EventType.AsyncBranch:
          this.ip = ev.at;
          return this.statusFlags(Status.EventPending);
        case EventType.AsyncPaging:
          if (!ev.ipSuppressed) {
            this.ip = ev.ip;
            return this.statusFlags(Status.EventPending);
          }
          this.processPaging(ev);
          break;
        case EventType.Paging:
          this.processPaging(ev);
          break;
        case EventType.AsyncVmcs:
          if (!ev.ipSuppressed) {
            this.ip = ev.ip;
            return this.statusFlags(Status.EventPending);
          }
          this.processVmcs(ev);
          break;
        case EventType.Vmcs:
          this.processVmcs(ev);
          break;
        case EventType.Overflow:
          return this.statusFlags(Status.EventPending);
        case EventType.ExecMode:
        case EventType.Tsx:
        case EventType.Iflags:
        case EventType.Interrupt:
          if (ev.ipSuppressed) this.enabled = false;
          else {
            this.enabled = true;
            this.ip = ev.ip;
          }
          return this.statusFlags(Status.EventPending);
        case EventType.Ptwrite:
          // Without an IP it binds to an instruction we cannot find: the
          // caller fetches it with event() and calls again.
          if (ev.ipSuppressed) return -ErrorCode.EventIgnored;
          this.ip = ev.ip;
          // Reported after the instruction.
          return this.statusFlags(0);
        case EventType.Vmentry:
        case EventType.Uiret:
          if (ev.ipSuppressed) break;
          this.ip = ev.ip;
          return this.statusFlags(0);
        case EventType.Tip:
          this.ip = ev.ip;
          return this.resyncAtEvent();
        case EventType.Exstop:
        case EventType.Mwait:
        case EventType.Tick:
        case EventType.Iret:
        case EventType.Smi:
        case EventType.Rsm:
        case EventType.Init:
        case EventType.Vmexit:
        case EventType.Shutdown:
        case EventType.Uintr:
        case EventType.Swintr:
        case EventType.Syscall:
          if (ev.ipSuppressed) break;
          this.ip = ev.ip;
          return this.statusFlags(Status.EventPending);
        default:
          // Stop, Pwre, Pwrx, Cbr, Mnt, Tnt, Sipi, Trig: nothing to resume at.
          break;
      }
      err = this.fetchEvent();
      if (err < 0) return err;
    }
  }
}
