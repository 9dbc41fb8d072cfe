/**
 * The trace-driven instruction decoder (libipt's pt_insn_decoder,
 * libipt/src/pt_insn_decoder.c): walks the code in the memory image one
 * instruction at a time and asks the query decoder only where the code
 * cannot tell: conditional branches and compressed returns take a TNT bit,
 * indirect branches and uncompressed returns a TIP. Events are indicated
 * with {@link Status.EventPending} where they bind:
 *
 * - to an instruction (synchronous disable at a branch, PIP at MOV CR3 or a
 *   far branch, VMCS at VMPTRLD/VMLAUNCH/VMRESUME, PTWRITE): the
 *   instruction is returned first and the decoder proceeds past it only
 *   after the events were fetched;
 * - to an IP (asynchronous branch/disable at its source, MODE.Exec/TSX at
 *   their IP, overflow and enable where they resume): before the
 *   instruction at that IP;
 * - event tracing: IRET, VM entry, UIRET and SYSCALL events to their
 *   instruction (the one at their IP, else the next of that kind), the
 *   others to their IP;
 * - a TRIG without IP after its ICNT instructions, counted from the last
 *   IP or branch outcome the trace gave (or the previous TRIG).
 *
 * A decode error in the trace ahead is returned by the next call instead
 * of an instruction; {@link InsnDecoder.resync} continues after it at the
 * next IP the trace gives (ptxed's --resync-on-error).
 *
 * Usage (what ptxed does):
 *
 *     let status = dec.syncForward();          // < 0: error or -Eos
 *     for (;;) {
 *       while (status & Status.EventPending) { status = dec.event(ev); ... }
 *       if (status < 0 || status & Status.Eos) break;
 *       status = dec.next(insn);               // insn: InstructionInfo
 *       ...
 *     }
 *
 * Nothing is allocated per instruction: `insn` and the event are
 * caller-owned structs that are overwritten.
 *
 * Speed: while no event is pending (the common case: events are only due
 * once the cached TNT bits run out), no instruction can bind one, so the
 * decoder skips the event checks and walks the cached runs of the
 * {@link BlockCache} (one lookup per run, each instruction's classification
 * read in order from the run) instead of looking each instruction up;
 * the block decoder crosses those runs whole ({@link quiet},
 * {@link canCross}, {@link cross}, {@link proceedRun}).
 *
 * Loop guard (not in libipt): a stretch of more than {@link MAX_STEPS_WITHOUT_TRACE}
 * instructions that consumes no trace (a direct-jump loop with no packets,
 * from a bad image or bad trace) fails with -ErrorCode.BadQuery instead of
 * running forever. No real code runs 16 M instructions without a single
 * conditional or indirect branch.
 */
import type { DecoderConfig } from '../packets/config.js';
import { addrFilterCheck } from '../packets/config.js';
import type { PacketDecoder } from '../packets/decoder.js';
import { ErrorCode } from '../packets/errors.js';
import { EventType, PtEvent } from '../events/event.js';
import { copyEvent as assignEvent, resetEvent } from '../events/event.js';
import { QueryDecoder } from '../events/query-decoder.js';
import { Status } from '../events/status.js';
import { ANY_ASID, Asid, NO_CR3, NO_VMCS, ipToBigInt } from './address-space.js';
import type { Image, MappedSection } from './image.js';
import { instructionDecoderFor, type InstructionDecoder } from './instruction-decoder.js';
import { BlockCache, blockCacheFor, RUN_DIRECT, RUN_FINAL } from './block-cache.js';
import {
  ExecMode,
  InsnClass,
  InsnKind,
  InstructionInfo,
  copyInstruction,
  insnBindsToPip,
  insnBindsToVmcs,
  insnChangesCpl,
  insnChangesCr3,
  insnIsBranch,
  insnIsFarBranch,
  insnIsPtwrite,
  insnNextIp,
  insnNextIpError,
} from './instruction.js';
import { ReturnStack } from './return-stack.js';

/** Is `insn` the instruction an IRET/VM entry/UIRET/SYSCALL event reports? */
function insnIsCfeSource(insn: InstructionInfo, type: EventType): boolean {
  switch (type) {
    case EventType.Iret:
      return insn.kind === InsnKind.Iret || insn.kind === InsnKind.Erets || insn.kind === InsnKind.Eretu;
    case EventType.Vmentry:
      return insn.kind === InsnKind.Vmlaunch || insn.kind === InsnKind.Vmresume;
    case EventType.Uiret:
      return insn.kind === InsnKind.Uiret;
    case EventType.Syscall:
      return insn.kind === InsnKind.Syscall;
    default:
      return false;
  }
}

/** Instructions allowed in a row without consuming trace (see the file comment). */
export const MAX_STEPS_WITHOUT_TRACE = 1 << 24;

/** Steps to try reaching a TSX event's IP for the BDM64 check (libipt's bdm64_max_steps). */
const BDM64_MAX_STEPS = 0x100;

/** Flags of the flow layer (libipt's pt_conf_flags.variant.insn/block). */
export interface FlowFlags {
  enableTickEvents: boolean;
  keepTcalOnOvf: boolean;
  enableIflags: boolean;
}

export class InsnDecoder {
  readonly query: QueryDecoder;
  private img: Image;
  /** The instruction decoder (and cache) of {@link image}. */
  private idec: InstructionDecoder;

  /** The memory image the code is read from (sideband may switch it). */
  get image(): Image {
    return this.img;
  }

  set image(image: Image) {
    this.img = image;
    this.idec = instructionDecoderFor(image);
    this.runs = blockCacheFor(image, false);
    this.runLeft = 0;
  }

  // The cached run (block-cache.ts) being walked by next(): its next
  // instruction's index in the cache, how many are left, and what it was
  // looked up for; a run is only walked while the decoder is where the run
  // left it, in the same mode, address space and image version.
  private runs: BlockCache;
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

  /** The current execution mode. */
  mode: ExecMode = ExecMode.Unknown;
  /** The address of the next instruction. */
  ip = 0;
  /** Status flags of the last query. */
  private status = 0;
  /** Tracing is enabled. */
  enabled = false;
  /** An event is being processed: {@link event} holds it. */
  private processEvent = false;
  /** Inside a transaction. */
  speculative = false;
  /** An instruction waits for its events before we proceed past it. */
  private processInsn = false;
  private boundPaging = false;
  private boundVmcs = false;
  private boundPtwrite = false;
  /** An IRET/VM entry/UIRET/SYSCALL event was bound to the postponed instruction. */
  private boundCfe = false;
  /** The event being processed. */
  private readonly ev = new PtEvent();
  private readonly postponed = new InstructionInfo();
  private readonly retstack = new ReturnStack();
  asid: Asid = ANY_ASID;
  private readonly scratch = new InstructionInfo();
  private readonly consumed = new PtEvent();
  private steps = 0;
  /**
   * Instructions completed since the last point the trace gave an IP or a
   * branch outcome (a TNT bit, a TIP, an event with an IP) or since the
   * last trigger: a TRIG without IP binds after its ICNT instructions.
   */
  private icnt = 0;

  constructor(
    packets: PacketDecoder,
    readonly config: DecoderConfig,
    image: Image,
    readonly flags: FlowFlags = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false },
  ) {
    this.query = new QueryDecoder(packets, config, {
      keepTcalOnOvf: flags.keepTcalOnOvf,
      enableIflags: flags.enableIflags,
    });
    this.img = image;
    this.idec = instructionDecoderFor(image);
    this.runs = blockCacheFor(image, false);
  }

  /** Trace offset of the next packet (libipt's pt_insn_get_offset). */
  get offset(): number {
    return this.query.offset;
  }

  get syncOffset(): number {
    return this.query.syncOffset;
  }

  private reset(): void {
    this.mode = ExecMode.Unknown;
    this.ip = 0;
    this.status = 0;
    this.enabled = false;
    this.processEvent = false;
    this.speculative = false;
    this.processInsn = false;
    this.boundPaging = false;
    this.boundVmcs = false;
    this.boundPtwrite = false;
    this.boundCfe = false;
    this.retstack.reset();
    this.fromQuery = false;
    this.asid = ANY_ASID;
    this.steps = 0;
    this.icnt = 0;
    this.resyncing = false;
  }

  private statusFlags(flags: number): number {
    if (!this.enabled) flags |= Status.IpSuppressed;
    if (this.status & Status.Eos && !this.processEvent) flags |= Status.Eos;
    return flags;
  }

  private start(status: number): number {
    if (status < 0) return status;
    this.status = status;
    if (!(status & Status.IpSuppressed)) {
      this.enabled = true;
      this.ip = this.query.ip;
    }
    return this.checkIpEvent(null);
  }

  /** Synchronize at the next PSB: status flags or a negative ErrorCode (-Eos at the end). */
  syncForward(): number {
    this.reset();
    return this.start(this.query.syncForward());
  }

  /** Synchronize at the PSB at `offset`. */
  syncSet(offset: number): number {
    this.reset();
    return this.start(this.query.syncSet(offset));
  }

  /** The time of the last event or branch: 0 (wall clock) or -NoTime (relative). */
  get time(): number {
    return this.query.time();
  }

  // --- queries ---------------------------------------------------------------

  /** Synthesize a tick event if the time changed (`--event:tick`). 1 if created. */
  private tick(ip: number): number {
    if (!this.enabled) return -ErrorCode.Internal;
    if (this.processEvent) return 0;
    const q = this.query;
    const ev = this.ev;
    if (q.lastTscHi === ev.tscHi && q.lastTscLo === ev.tscLo) return 0;
    resetEvent(ev);
    ev.type = EventType.Tick;
    ev.ip = ip;
    ev.hasTsc = q.lastHaveTsc;
    ev.tscHi = q.lastTscHi;
    ev.tscLo = q.lastTscLo;
    ev.lostMtc = q.lastLostMtc;
    ev.lostCyc = q.lastLostCyc;
    this.processEvent = true;
    return 1;
  }

  private indirectBranch(): number {
    const evip = this.ip;
    const status = this.query.indirectBranch();
    if (status < 0) return status;
    this.steps = 0;
    this.icnt = 0;
    if (this.flags.enableTickEvents) {
      const err = this.tick(evip);
      if (err < 0) return err;
    }
    return status;
  }

  private condBranch(): number {
    const status = this.query.condBranch();
    if (status < 0) return status;
    this.steps = 0;
    this.icnt = 0;
    if (this.flags.enableTickEvents) {
      const err = this.tick(this.ip);
      if (err < 0) return err;
    }
    return status;
  }

  /** Fetch the next event from the query decoder if one is pending. 1, 0, or error. */
  private eventPending(): number {
    if (this.processEvent) return 1;
    if (!(this.status & Status.EventPending)) return 0;
    // Peek: the query decoder moves on only once the event is fetched, so
    // error offsets point at the event that was due, not beyond it.
    const status = this.query.peekEvent(this.ev);
    if (status < 0) return status;
    this.steps = 0;
    this.processEvent = true;
    this.fromQuery = true;
    if (this.resyncing) this.resumeAtEvent(this.ev);
    return 1;
  }

  /** The event being processed came from the query decoder (not a tick). */
  private fromQuery = false;

  // --- moving on ------------------------------------------------------------------

  /** Set {@link ip} past `insn` (libipt's pt_insn_proceed). 0 or error. */
  proceed(insn: InstructionInfo): number {
    return this.proceedWith(insn.iclass, insn.size, insn.isDirect, insn.displacement);
  }

  /** {@link proceed} for an instruction given by its class, size and (direct) displacement. */
  private proceedWith(iclass: InsnClass, size: number, isDirect: boolean, displacement: number): number {
    this.ip += size;
    this.icnt++;
    switch (iclass) {
      case InsnClass.Ptwrite:
      case InsnClass.Other:
        return 0;
      case InsnClass.CondJump: {
        const status = this.condBranch();
        if (status < 0) return status;
        this.status = status;
        if (!this.query.taken) return 0;
        break;
      }
      case InsnClass.Call:
        // Calls to the next instruction (position-independent code) are not returns.
        if (displacement !== 0 || !isDirect) this.retstack.push(this.ip);
        break;
      case InsnClass.Return: {
        // A taken TNT bit is a compressed return.
        const status = this.condBranch();
        if (status >= 0) {
          this.status = status;
          if (!this.query.taken) return -ErrorCode.BadRetcomp;
          const err = this.retstack.pop();
          if (err < 0) return err;
          this.ip = this.retstack.ip;
          return 0;
        }
        break;
      }
      case InsnClass.Jump:
      case InsnClass.FarCall:
      case InsnClass.FarReturn:
      case InsnClass.FarJump:
      case InsnClass.Indirect:
        break;
      default:
        return -ErrorCode.BadInsn;
    }
    if (isDirect) {
      this.ip += displacement;
      if (++this.steps > MAX_STEPS_WITHOUT_TRACE) return -ErrorCode.BadQuery;
    } else {
      const status = this.indirectBranch();
      if (status < 0) return status;
      this.status = status;
      if (status & Status.IpSuppressed) return -ErrorCode.NoIp;
      this.ip = this.query.ip;
    }
    return 0;
  }

  // --- event binding -----------------------------------------------------------

  /** SKL014: a TIP.PGD without IP after a direct branch out of the filter. */
  private atSkl014(insn: InstructionInfo): boolean {
    if (!this.ev.ipSuppressed) return false;
    if ((insn.iclass === InsnClass.Call || insn.iclass === InsnClass.Jump) && insn.isDirect) {
      return addrFilterCheck(this.config.addrFilter, ipToBigInt(insn.ip + insn.size + insn.displacement)) <= 0;
    }
    return false;
  }

  /** Does the disabled event bind to `insn`? 1, 0, or error. */
  private atDisabledEvent(insn: InstructionInfo): number {
    const ev = this.ev;
    if (ev.ipSuppressed) {
      if (insnIsFarBranch(insn) || insnChangesCpl(insn) || insnChangesCr3(insn)) return 1;
      const filter = this.config.addrFilter.ranges;
      const haveFilter = filter[0].cfg !== 0 || filter[1].cfg !== 0 || filter[2].cfg !== 0 || filter[3].cfg !== 0;
      if (haveFilter && this.config.errata.skl014 && this.atSkl014(insn)) return 1;
      return 0;
    }
    switch (insn.iclass) {
      case InsnClass.Ptwrite:
      case InsnClass.Other:
        return 0;
      case InsnClass.Call:
      case InsnClass.Jump:
        // A direct branch elsewhere than the disable IP does not bind.
        if (insn.isDirect && insn.ip + insn.size + insn.displacement !== ev.ip) return 0;
        return 1;
      case InsnClass.Return:
      case InsnClass.FarCall:
      case InsnClass.FarReturn:
      case InsnClass.FarJump:
      case InsnClass.Indirect:
      case InsnClass.CondJump:
        return 1;
      default:
        return -ErrorCode.BadInsn;
    }
  }

  private postpone(insn: InstructionInfo): number {
    if (!this.processInsn) {
      this.processInsn = true;
      copyInstruction(insn, this.postponed);
    }
    return this.statusFlags(Status.EventPending);
  }

  private clearPostponed(): void {
    this.processInsn = false;
    this.boundPaging = false;
    this.boundVmcs = false;
    this.boundPtwrite = false;
    this.boundCfe = false;
  }

  private proceedPostponed(): number {
    if (!this.processInsn) return -ErrorCode.Internal;
    if (!this.enabled) {
      this.clearPostponed();
      return 0;
    }
    const err = this.proceed(this.postponed);
    if (err < 0) return err;
    this.clearPostponed();
    return 0;
  }

  /** Events that bind to `insn` (libipt's pt_insn_check_insn_event). */
  private checkInsnEvent(insn: InstructionInfo): number {
    let status = this.eventPending();
    if (status <= 0) return status;
    const ev = this.ev;
    switch (ev.type) {
      case EventType.Tip:
      case EventType.Tnt:
        return -ErrorCode.Internal;
      case EventType.Disabled: {
        if (ev.statusUpdate) return 0;
        status = this.atDisabledEvent(insn);
        if (status <= 0) return status;
        // Where tracing is expected to resume.
        const next = insnNextIp(insn);
        if (Number.isNaN(next)) {
          this.ip = 0;
          const err = insnNextIpError(insn);
          if (err !== -ErrorCode.BadQuery) return err;
          if (insn.iclass === InsnClass.Call || insn.iclass === InsnClass.FarCall) this.ip = insn.ip + insn.size;
        } else {
          this.ip = next;
        }
        break;
      }
      case EventType.Paging:
        if (this.boundPaging || !insnBindsToPip(insn)) return 0;
        this.boundPaging = true;
        return this.postpone(insn);
      case EventType.Vmcs:
        if (this.boundVmcs || !insnBindsToVmcs(insn)) return 0;
        this.boundVmcs = true;
        return this.postpone(insn);
      case EventType.Ptwrite:
        if (this.boundPtwrite) return 0;
        // Without an IP in the trace, the event stays without one (as in
        // ptxed's output); it binds to the next PTWRITE instruction.
        if (ev.ipSuppressed) {
          if (!insnIsPtwrite(insn)) return 0;
        } else if (this.ip !== ev.ip) {
          return 0;
        }
        this.boundPtwrite = true;
        return this.postpone(insn);
      case EventType.Iret:
      case EventType.Vmentry:
      case EventType.Uiret:
      case EventType.Syscall:
        // Event tracing events of an instruction: with an IP, the one at
        // that IP; without, the next instruction of that kind.
        if (this.boundCfe) return 0;
        if (ev.ipSuppressed) {
          if (!insnIsCfeSource(insn, ev.type)) return 0;
        } else if (this.ip !== ev.ip) {
          return 0;
        }
        this.boundCfe = true;
        return this.postpone(insn);
      default:
        // Only the events above bind to instructions.
        return 0;
    }
    return this.statusFlags(Status.EventPending);
  }

  /** SKD022: a VMLAUNCH/VMRESUME at the async disable's source makes it synchronous. */
  private handleSkd022(): number {
    const insn = this.scratch;
    const err = this.idec.decode(insn, this.ip, this.mode, this.asid);
    if (err < 0) return 0;
    if (insn.kind !== InsnKind.Vmlaunch && insn.kind !== InsnKind.Vmresume) return 0;
    const ev = this.ev;
    ev.type = EventType.Disabled;
    return 1;
  }

  /** Can we reach `end` from `begin` following the code alone? 1, 0, or error. */
  private rangeIsContiguous(begin: number, end: number, steps: number): number {
    const insn = this.scratch;
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

  /** BDM64: an abort right after a branch may come with corrupted branch trace. */
  private handleBdm64(insn: InstructionInfo): number {
    const ev = this.ev;
    if (!ev.aborted || !insnIsBranch(insn)) return 0;
    const status = this.rangeIsContiguous(this.ip, ev.ip, BDM64_MAX_STEPS);
    if (status > 0) return 0;
    this.ip = ev.ip;
    return 1;
  }

  private postponeTsx(insn: InstructionInfo | null): number {
    const ev = this.ev;
    if (ev.ipSuppressed) return 0;
    if (insn !== null && this.config.errata.bdm64) {
      const status = this.handleBdm64(insn);
      if (status < 0) return status;
    }
    return this.ip !== ev.ip ? 1 : 0;
  }

  /** Events that bind to the current IP (libipt's pt_insn_check_ip_event). */
  private checkIpEvent(insn: InstructionInfo | null): number {
    const status = this.eventPending();
    if (status <= 0) {
      if (status < 0) return status;
      return this.statusFlags(0);
    }
    const ev = this.ev;
    switch (ev.type) {
      case EventType.Disabled:
        // While resyncing there is no instruction for it to bind to.
        if (ev.statusUpdate || this.resyncing) return this.statusFlags(Status.EventPending);
        break;
      case EventType.Enabled:
        return this.statusFlags(Status.EventPending);
      case EventType.AsyncDisabled:
        if (ev.at !== this.ip) break;
        if (this.config.errata.skd022) {
          const err = this.handleSkd022();
          if (err !== 0) {
            if (err < 0) return err;
            break;
          }
        }
        return this.statusFlags(Status.EventPending);
      case EventType.Tsx: {
        const st = this.postponeTsx(insn);
        if (st !== 0) {
          if (st < 0) return st;
          break;
        }
        return this.statusFlags(Status.EventPending);
      }
      case EventType.AsyncBranch:
        if (ev.at !== this.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Overflow:
        return this.statusFlags(Status.EventPending);
      case EventType.ExecMode:
      case EventType.Iflags:
        // While tracing is off there is no code location to wait for.
        if (!ev.ipSuppressed && this.enabled && ev.ip !== this.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.AsyncPaging:
      case EventType.AsyncVmcs:
        if (!ev.ipSuppressed && ev.ip !== this.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Paging:
      case EventType.Vmcs:
        if (this.enabled) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Trig:
        if (ev.ipSuppressed && ev.hasIcnt && this.enabled) {
          // ICNT instructions after the last IP or branch outcome.
          if (this.icnt < ev.icnt) break;
          ev.ip = this.ip;
          ev.ipSuppressed = false;
          return this.statusFlags(Status.EventPending);
        }
        if (!ev.ipSuppressed && this.enabled && this.ip !== ev.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Exstop:
      case EventType.Mwait:
        if (!ev.ipSuppressed && this.enabled && this.ip !== ev.ip) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Ptwrite:
      case EventType.Iret:
      case EventType.Vmentry:
      case EventType.Uiret:
      case EventType.Syscall:
        // These bind to instructions (checkInsnEvent) while tracing is on.
        if (this.enabled) break;
        return this.statusFlags(Status.EventPending);
      case EventType.Rsm:
      case EventType.Sipi:
        return this.statusFlags(Status.EventPending);
      case EventType.Stop:
      case EventType.Pwre:
      case EventType.Pwrx:
      case EventType.Tick:
      case EventType.Cbr:
      case EventType.Mnt:
        return this.statusFlags(Status.EventPending);
      case EventType.Tip:
      case EventType.Tnt:
        return -ErrorCode.Internal;
      default:
        // Event tracing events bind to their IP, if they have one.
        if (!ev.ipSuppressed && this.enabled && this.ip !== ev.ip) break;
        return this.statusFlags(Status.EventPending);
    }
    return this.statusFlags(0);
  }

  // --- the API ---------------------------------------------------------------------

  /**
   * Decode the instruction at {@link ip} into `insn` and move past it.
   * Returns status flags, or a negative ErrorCode; on error `insn.ip` and
   * `insn.mode` tell where, and `insn.iclass` is not Unknown if the
   * instruction itself was decoded (ptxed still prints it then).
   */
  next(insn: InstructionInfo): number {
    if (!this.enabled) {
      insn.iclass = InsnClass.Unknown;
      insn.ip = this.ip;
      return this.status & Status.Eos ? -ErrorCode.Eos : -ErrorCode.NoEnable;
    }
    const quiet = !this.processEvent && (this.status & Status.EventPending) === 0;
    if (
      quiet &&
      this.runLeft !== 0 &&
      this.ip === this.runIp &&
      this.mode === this.runMode &&
      this.asid === this.runAsid &&
      this.img.version === this.runVersion
    ) {
      return this.nextInRun(insn);
    }
    this.runLeft = 0;
    // A decode error in the trace ahead stops us here, before the code
    // runs on past the place it describes.
    const err = this.query.error;
    if (err < 0) {
      insn.iclass = InsnClass.Unknown;
      insn.ip = this.ip;
      insn.mode = this.mode;
      return err;
    }
    if (quiet && this.startRun()) return this.nextInRun(insn);
    let status = this.idec.decode(insn, this.ip, this.mode, this.asid);
    insn.speculative = this.speculative;
    if (status < 0) {
      insn.iclass = InsnClass.Unknown;
      return status;
    }
    if (quiet) {
      // No event is pending, so none binds here: what checkInsnEvent and
      // checkIpEvent would conclude, without asking (statusFlags(0) is
      // just the end-of-stream flag while tracing is enabled).
      const c = insn.iclass;
      if (c === InsnClass.Other || c === InsnClass.Ptwrite) {
        this.ip += insn.size;
        this.icnt++;
        return this.status & Status.Eos;
      }
      status = this.proceed(insn);
      if (status < 0) return status;
      if (!this.processEvent && (this.status & Status.EventPending) === 0) return this.status & Status.Eos;
      return this.checkIpEvent(insn);
    }
    status = this.checkInsnEvent(insn);
    if (status !== 0) {
      if (status < 0) return status;
      if (status & Status.EventPending) return status;
    }
    status = this.proceed(insn);
    if (status < 0) return status;
    return this.checkIpEvent(insn);
  }

  // --- walking cached runs (next() while no event is pending) ---------------------

  /** Look up the run at {@link ip}; true if there is one to walk. */
  private startRun(): boolean {
    const runs = this.runs;
    const id = runs.lookup(this.ip, this.mode, this.asid);
    if (id < 0) return false;
    const n = runs.count[id] + ((runs.info[id] & RUN_FINAL) !== 0 ? 1 : 0);
    if (n === 0) return false;
    const m = runs.mapping!;
    this.runNext = runs.first[id];
    this.runLeft = n;
    this.runMode = this.mode;
    this.runAsid = this.asid;
    this.runVersion = this.img.version;
    if (m !== this.runMapping) {
      this.runMapping = m;
      this.runBytes = m.section.source.bytes;
      this.runDelta = m.sourceOffset - m.vaddr;
    }
    return true;
  }

  /**
   * The next instruction of the run, while no event is pending: reported
   * from the run's cached classification, then proceeded past as
   * {@link next} does.
   */
  private nextInRun(insn: InstructionInfo): number {
    const runs = this.runs;
    const k = this.runNext++;
    this.runLeft--;
    const info = runs.insnInfo[k];
    const ip = this.ip;
    const size = info & 15;
    const iclass: InsnClass = (info >>> 4) & 15;
    const m = this.runMapping!;
    insn.ip = ip;
    insn.mode = this.mode;
    insn.size = size;
    insn.iclass = iclass;
    insn.kind = (info >>> 8) & 255;
    if ((info & RUN_DIRECT) !== 0) {
      const disp = runs.insnDisp[k];
      insn.isDirect = true;
      insn.displacement = disp;
      insn.target = ip + size + disp;
    } else {
      insn.isDirect = false;
      insn.displacement = 0;
      insn.target = 0;
    }
    insn.truncated = false;
    insn.speculative = this.speculative;
    insn.section = m;
    insn.isid = m.isid;
    insn.rawBuffer = this.runBytes;
    insn.rawOffset = ip + this.runDelta;
    if (iclass === InsnClass.Other || iclass === InsnClass.Ptwrite) {
      this.ip = this.runIp = ip + size;
      this.icnt++;
      return this.status & Status.Eos;
    }
    const status = this.proceed(insn);
    if (status < 0) {
      this.runLeft = 0;
      return status;
    }
    this.runIp = this.ip;
    if (!this.processEvent && (this.status & Status.EventPending) === 0) return this.status & Status.Eos;
    return this.checkIpEvent(insn);
  }

  // --- crossing cached runs (for the block decoder) ------------------------------

  /**
   * No event is pending or being processed, tracing is on and no error is
   * due: until the next trace query, no instruction needs an event check
   * and each one's status is 0. What lets the block decoder cross cached
   * runs (see block-cache.ts) and proceed past their final instruction
   * with {@link proceedRun}.
   */
  get quiet(): boolean {
    return (
      this.enabled &&
      !this.processEvent &&
      (this.status & (Status.EventPending | Status.Eos)) === 0 &&
      this.query.error === 0
    );
  }

  /**
   * May the `count` instructions from {@link ip} up to (not including) the
   * one at `endIp` be crossed without checking each for events? Yes while
   * {@link quiet}; with an event pending, only where stepping would give
   * each of them status 0 too: a synchronous disable with an IP binds to
   * none of them unless one is a direct jump (`contiguous` says there is
   * none), and an asynchronous branch or disable binds only at its source
   * IP, which must not lie in (ip, endIp] (the run's addresses when
   * `contiguous`).
   */
  canCross(contiguous: boolean, endIp: number): boolean {
    if (this.quiet) return true;
    if (!this.enabled || !contiguous || this.resyncing || this.query.error !== 0) return false;
    if (!this.processEvent) {
      if (!(this.status & Status.EventPending)) return false; // Eos: each instruction reports it
      if (this.eventPending() <= 0) return false; // stepping reports the error
    }
    const ev = this.ev;
    switch (ev.type) {
      case EventType.Disabled:
        return !ev.statusUpdate && !ev.ipSuppressed;
      case EventType.AsyncBranch:
      case EventType.AsyncDisabled:
        return !(ev.at > this.ip && ev.at <= endIp);
      default:
        return false;
    }
  }

  /**
   * Cross `count` instructions (see {@link canCross}) to `endIp`, taking
   * `directs` direct jumps. False, and nothing done, if that would trip the
   * loop guard: stepping then fails at the exact instruction.
   */
  cross(count: number, endIp: number, directs: number): boolean {
    if (directs !== 0) {
      if (this.steps + directs >= MAX_STEPS_WITHOUT_TRACE) return false;
      this.steps += directs;
    }
    this.ip = endIp;
    this.icnt += count;
    return true;
  }

  /** The final instruction of a run, decoded only when an event needs it. */
  private readonly runInsn = new InstructionInfo();

  /**
   * While {@link quiet}: proceed past the instruction at {@link ip} given by
   * its packed classification (block-cache.ts) and displacement, as
   * {@link next} would. Status flags, or a negative ErrorCode.
   */
  proceedRun(info: number, displacement: number): number {
    const at = this.ip;
    const status = this.proceedWith((info >>> 4) & 15, info & 15, (info & RUN_DIRECT) !== 0, displacement);
    if (status < 0) return status;
    if (!this.processEvent && (this.status & Status.EventPending) === 0) return this.status & Status.Eos;
    // An event became due: binding a TSX event may look at the instruction.
    const insn = this.runInsn;
    const err = this.idec.decode(insn, at, this.mode, this.asid);
    if (err < 0) return err;
    insn.speculative = this.speculative;
    return this.checkIpEvent(insn);
  }

  private processEnabled(): number {
    const ev = this.ev;
    if (ev.statusUpdate) return this.enabled ? 0 : -ErrorCode.BadStatusUpdate;
    if (ev.ipSuppressed) return -ErrorCode.NoIp;
    if (this.enabled) return -ErrorCode.BadContext;
    this.ip = ev.ip;
    this.enabled = true;
    return 0;
  }

  private processDisabled(): number {
    const ev = this.ev;
    if (ev.statusUpdate) return this.enabled ? -ErrorCode.BadStatusUpdate : 0;
    if (!this.enabled) return -ErrorCode.BadContext;
    // Keep ip: tracing is expected to resume there.
    this.enabled = false;
    return 0;
  }

  private setCr3(cr3: number): void {
    if (this.asid.cr3 !== cr3) this.asid = new Asid(cr3, this.asid.vmcs);
  }

  private setVmcs(base: number): void {
    if (this.asid.vmcs !== base) this.asid = new Asid(this.asid.cr3, base);
  }

  /**
   * Fetch the pending event into `out` and apply it. Returns status flags
   * (more events may be pending) or a negative ErrorCode.
   */
  event(out: PtEvent): number {
    if (!this.processEvent) return -ErrorCode.BadQuery;
    const ev = this.ev;
    let status = 0;
    switch (ev.type) {
      case EventType.Enabled:
        if (this.ip === ev.ip) ev.resumed = true;
        status = this.processEnabled();
        break;
      case EventType.AsyncDisabled:
        if (!ev.ipSuppressed && this.ip !== ev.at) return -ErrorCode.BadQuery;
        status = this.processDisabled();
        break;
      case EventType.Disabled:
        // While resyncing, tracing is off already and we keep looking for an IP.
        if (!this.resyncing || ev.statusUpdate) status = this.processDisabled();
        break;
      case EventType.AsyncBranch:
        if (this.ip !== ev.at) return -ErrorCode.BadQuery;
        if (ev.statusUpdate || !this.enabled) return -ErrorCode.BadContext;
        this.ip = ev.ip;
        break;
      case EventType.AsyncPaging:
        if (!ev.ipSuppressed && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        this.setCr3(ev.cr3);
        break;
      case EventType.Paging:
        this.setCr3(ev.cr3);
        break;
      case EventType.AsyncVmcs:
        if (!ev.ipSuppressed && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        this.setVmcs(ev.base);
        break;
      case EventType.Vmcs:
        this.setVmcs(ev.base);
        break;
      case EventType.Overflow:
        if (ev.statusUpdate) return -ErrorCode.BadContext;
        if (ev.ipSuppressed) {
          this.enabled = false;
          this.ip = 0;
        } else {
          this.ip = ev.ip;
          this.enabled = true;
        }
        this.speculative = false;
        break;
      case EventType.ExecMode:
        if (ev.statusUpdate && this.enabled && this.mode !== ExecMode.Unknown && this.mode !== ev.mode) {
          return -ErrorCode.BadStatusUpdate;
        }
        this.mode = ev.mode;
        break;
      case EventType.Tsx:
        this.speculative = ev.speculative;
        break;
      case EventType.Stop:
        if (ev.statusUpdate || this.enabled) return -ErrorCode.BadContext;
        break;
      case EventType.Exstop:
      case EventType.Mwait:
      case EventType.Trig:
        if (!ev.ipSuppressed && this.enabled && this.ip !== ev.ip) return -ErrorCode.BadQuery;
        break;
      case EventType.Pwre:
      case EventType.Pwrx:
      case EventType.Ptwrite:
      case EventType.Tick:
      case EventType.Cbr:
      case EventType.Mnt:
      case EventType.Iflags:
        break;
      case EventType.Tip:
      case EventType.Tnt:
        return -ErrorCode.Internal;
      default:
        if (ev.type === EventType.Invalid) return -ErrorCode.BadQuery;
        break;
    }
    if (status < 0) return status;
    assignEvent(out, ev);
    this.processEvent = false;
    // An IP from the trace, or a trigger, restarts the trigger count.
    if ((this.fromQuery && !ev.ipSuppressed) || ev.type === EventType.Trig) this.icnt = 0;
    if (this.fromQuery) {
      this.fromQuery = false;
      status = this.query.event(this.consumed);
      if (status < 0) return status;
      this.status = status;
    }

    if (this.processInsn) {
      status = this.checkInsnEvent(this.postponed);
      if (status !== 0) {
        if (status < 0) return status;
        if (status & Status.EventPending) return status;
      }
      status = this.proceedPostponed();
      if (status < 0) return status;
    }
    return this.resume();
  }

  // --- resynchronization after errors ------------------------------------------

  /** Looking for the first IP in the trace after an error (see {@link resync}). */
  private resyncing = false;

  /**
   * Continue after a decode error without going to the next PSB (libipt's
   * resync, ptxed's --resync-on-error): the cached TNT bits are dropped, as
   * their branches are lost, and decoding resumes at the first IP the trace
   * gives (a TIP, an event with an IP, an enable or a PSB+). Events before
   * it are reported as with tracing disabled. Execution mode and address
   * space are kept. Returns status flags or the error, if it persists.
   */
  resync(): number {
    this.processEvent = false;
    this.fromQuery = false;
    this.clearPostponed();
    this.retstack.reset();
    this.enabled = false;
    this.ip = 0;
    this.steps = 0;
    this.icnt = 0;
    this.status = 0;
    const status = this.query.dropTnt();
    if (status < 0) return status;
    this.status = status;
    this.resyncing = true;
    return this.resume();
  }

  /** Bind pending IP events; while resyncing, a TIP ahead is where we resume. */
  private resume(): number {
    if (this.resyncing && !this.processEvent && !(this.status & Status.EventPending) && this.query.tipPending) {
      const status = this.query.indirectBranch();
      if (status < 0) return status;
      this.status = status;
      if (!(status & Status.IpSuppressed)) {
        this.ip = this.query.ip;
        this.enabled = true;
        this.resyncing = false;
      }
    }
    return this.checkIpEvent(null);
  }

  /** While resyncing: an event that gives an IP is where decoding resumes. */
  private resumeAtEvent(ev: PtEvent): void {
    let ip: number;
    switch (ev.type) {
      case EventType.Disabled:
        if (ev.statusUpdate) this.resyncing = false;
        return;
      case EventType.Enabled:
        // A tracing enable sets the IP itself; a PSB+ status says where we are.
        if (!ev.statusUpdate) {
          this.resyncing = false;
          return;
        }
        ip = ev.ip;
        break;
      case EventType.Overflow:
        this.resyncing = false;
        return;
      case EventType.AsyncBranch:
      case EventType.AsyncDisabled:
        ip = ev.at;
        break;
      case EventType.Paging:
      case EventType.Vmcs:
      case EventType.Tick:
      case EventType.Trig:
        return;
      default:
        if (ev.ipSuppressed) return;
        ip = ev.ip;
        break;
    }
    this.ip = ip;
    this.enabled = true;
    this.resyncing = false;
  }

  /** The address space the decoder is in (CR3 and VMCS from PIP/VMCS). */
  get currentAsid(): Asid {
    return this.asid;
  }
}

export { NO_CR3, NO_VMCS };
