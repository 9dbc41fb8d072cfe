/**
 * The event decoder (libipt's pt_event_decoder, libipt/src/pt_event_decoder.c):
 * turns packets into events, binding packets that describe one event
 * together (SDM Vol. 3C "Intel Processor Trace", "Packet Generation
 * Scenarios"):
 *
 * - PSB+ packets give the current state; all bind to PSBEND (or OVF) and
 *   come out as status updates, the enabled/disabled status first.
 * - MODE.Exec and PIP/VMCS after a FUP bind to the next TIP (TIP.PGE/PGD).
 * - A FUP without a pending event starts an asynchronous branch completed by
 *   TIP (interrupt) or TIP.PGD (asynchronous disable).
 * - MODE.TSX, PTW with IP, EXSTOP with IP and OVF bind to the next FUP;
 *   MWAIT binds to EXSTOP.
 * - A MODE.Exec followed by a FUP instead of a TIP (event tracing: an
 *   interrupt flag change) reports at the FUP's IP.
 * - Event tracing (CFE/EVD): EVD binds to the next CFE; a CFE with IP binds
 *   to the next FUP, which then needs no TIP of its own; interrupt-like
 *   CFEs without IP take the next FUP's IP but leave it to its TIP.
 * - TRIG with IP binds to the next FUP; without, the flow decoders place it
 *   by its instruction count.
 * - A PSB+ whose MODE.Exec contradicts the current mode is a bad status
 *   update, reported at that packet.
 * - TNT and TIP come out as internal events for the query layer.
 *
 * Lookahead (errata, OVF, BDM70) scans the same packet decoder and restores
 * its position afterwards, so nothing is copied.
 *
 * `next()` returns 0 with {@link event} filled, or a negative ErrorCode.
 */
import type { DecoderConfig } from '../packets/config.js';
import type { PacketDecoder } from '../packets/decoder.js';
import { ErrorCode } from '../packets/errors.js';
import { LastIp } from '../packets/last-ip.js';
import { CfeType, EvdType, IpCompression, PacketType } from '../packets/packet-type.js';
import { Packet, copyPacket } from '../packets/packet.js';
import { ipFromHiLo, unsignedFromHiLo } from '../flow/address-space.js';
import { ExecMode } from '../flow/instruction.js';
import { Timing } from './time.js';
import { EventType, PtEvent, copyEvent, resetEvent } from './event.js';
import { Binding, EventQueue } from './event-queue.js';


/** Flags of the event layer (libipt's pt_conf_flags.variant.event). */
export interface EventDecoderFlags {
  keepTcalOnOvf: boolean;
  /** Report interrupt-flag changes from MODE.Exec (event tracing). */
  enableIflags: boolean;
}

/** MODE.Exec CS.L/CS.D to an execution mode (libipt's pt_get_exec_mode). */
export function execModeOf(csl: boolean, csd: boolean): ExecMode {
  if (csl) return csd ? ExecMode.Unknown : ExecMode.Bit64;
  return csd ? ExecMode.Bit32 : ExecMode.Bit16;
}

export class EventDecoder {
  /**
   * The event `next()` delivered: one of the decoder's own slots, valid
   * (and not to be modified) until the next call. Not copied, as TNT and
   * TIP events come once per few branches.
   */
  get event(): PtEvent {
    return this.delivered;
  }
  private delivered = new PtEvent();
  /**
   * TNT and TIP events have their own slots: only their few fields are ever
   * written, so they need no clearing per packet.
   */
  private readonly tntEvent = new PtEvent();
  private readonly tipEvent = new PtEvent();

  private readonly pkt = new Packet();
  private readonly scratch = new Packet();
  private readonly scratch2 = new Packet();
  /** Size of the current packet; 0 after an error (libipt's packet.size). */
  private pktSize = 0;
  /** Deferred packet decoder error (libipt's status). */
  private status = -ErrorCode.NoSync;
  private current: PtEvent | null = null;
  private enabled = false;
  private bound = false;
  /** The interrupt flag from the last MODE.Exec (for iflags events). */
  private iflag = false;
  private haveIflag = false;

  readonly ip = new LastIp();
  readonly timing: Timing;
  private readonly scanTiming: Timing;
  private readonly evq = new EventQueue();

  constructor(
    readonly packets: PacketDecoder,
    readonly config: DecoderConfig,
    readonly flags: EventDecoderFlags = { keepTcalOnOvf: false, enableIflags: false },
  ) {
    this.timing = new Timing(flags.keepTcalOnOvf ? { ...config, flags: { ...config.flags, keepTcalOnOvf: true } } : config);
    this.scanTiming = new Timing(this.timing.config);
  }

  /** Trace offset of the packet being decoded (libipt's pt_evt_get_offset). */
  get offset(): number {
    const off = this.packets.offset;
    return off < 0 ? off : off - this.pktSize;
  }

  get syncOffset(): number {
    return this.packets.syncOffset;
  }

  /** Position of the packet decoder (to tell whether decoding moved on). */
  get position(): number {
    return this.packets.offset;
  }

  private reset(): void {
    this.pkt.type = PacketType.Invalid;
    this.pktSize = 0;
    this.status = -ErrorCode.NoSync;
    this.current = null;
    this.enabled = false;
    this.bound = false;
    this.haveIflag = false;
    this.lastMode = ExecMode.Unknown;
    this.modeChanged = false;
    this.modeValid = false;
    this.release = false;
    this.ip.reset();
    this.timing.reset();
    this.evq.reset();
  }

  syncForward(): number {
    this.reset();
    const err = this.packets.syncForward();
    if (err < 0) return err;
    return this.start();
  }

  syncBackward(): number {
    this.reset();
    const err = this.packets.syncBackward();
    if (err < 0) return err;
    return this.start();
  }

  syncSet(offset: number): number {
    this.reset();
    const err = this.packets.syncSet(offset);
    if (err < 0) return err;
    return this.start();
  }

  /** Fetch the next event into {@link event}: 0 or a negative ErrorCode. */
  next(): number {
    const err = this.fetchEvent();
    if (err < 0) return err;
    const ev = this.current;
    this.current = null;
    if (ev === null) return -ErrorCode.Internal;
    this.delivered = ev;
    return 0;
  }

  // --- packet fetching -----------------------------------------------------

  /** Fetch the next non-PAD packet; errors are stored for later. Returns 0. */
  private fetchPacket(): number {
    const pkt = this.pkt;
    for (;;) {
      const size = this.packets.next(pkt);
      if (size < 0) {
        pkt.type = PacketType.Invalid;
        this.pktSize = 0;
        this.status = size;
        return 0;
      }
      this.pktSize = pkt.size;
      if (pkt.type !== PacketType.Pad) return 0;
    }
  }

  private start(): number {
    this.status = 0;
    this.fetchPacket();
    switch (this.pkt.type) {
      case PacketType.Psb: {
        const err = this.decodePsb();
        return err < 0 ? err : 0;
      }
      case PacketType.Invalid:
        return this.status < 0 ? this.status : -ErrorCode.Internal;
      default:
        return -ErrorCode.NoSync;
    }
  }

  private eventTime(ev: PtEvent): void {
    const t = this.timing.time;
    ev.tscHi = t.tscHi;
    ev.tscLo = t.tscLo;
    ev.lostMtc = t.lostMtc;
    ev.lostCyc = t.lostCyc;
    ev.hasTsc = t.queryTsc() === 0;
  }

  /** Fill `ev.ip` from the last IP; a missing IP only suppresses it. */
  private eventIp(ev: PtEvent): void {
    if (this.ip.status() < 0) ev.ipSuppressed = true;
    else ev.ip = ipFromHiLo(this.ip.hi, this.ip.lo);
  }

  /** The slot for events that bind to no other packet. */
  private readonly single = new PtEvent();

  private standalone(): PtEvent {
    const ev = this.single;
    resetEvent(ev);
    this.current = ev;
    return ev;
  }

  // --- lookahead -------------------------------------------------------------

  /** Run `scan` from the current position and restore it afterwards. */
  private lookahead<T>(scan: () => T): T {
    const off = this.packets.offset;
    const sync = this.packets.syncOffset;
    try {
      return scan();
    } finally {
      this.packets.restore(off, sync);
    }
  }

  /**
   * Search the rest of a PSB+ for a FUP (libipt's pt_evt_find_header_fup),
   * from the packet decoder's current position. 1 (FUP in `out`), 0, or error.
   */
  private findHeaderFup(out: Packet): number {
    for (;;) {
      const size = this.packets.next(out);
      if (size < 0) return size;
      switch (out.type) {
        case PacketType.Fup:
          return 1;
        case PacketType.ModeExec:
        case PacketType.ModeTsx:
        case PacketType.Pip:
        case PacketType.Vmcs:
        case PacketType.Mnt:
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
        case PacketType.Pad:
          break;
        case PacketType.PsbEnd:
        case PacketType.Ovf:
          return 0;
        default:
          return -ErrorCode.BadContext;
      }
    }
  }

  /** BDM70: is the FUP in PSB+ followed by a TIP.PGE? 1 yes, 0 no, or error. */
  private checkBdm70(): number {
    return this.lookahead(() => {
      const p = this.scratch;
      for (;;) {
        const size = this.packets.next(p);
        if (size < 0) return size === -ErrorCode.Eos ? 0 : size;
        switch (p.type) {
          case PacketType.TipPge:
            return 1;
          case PacketType.Pad:
          case PacketType.Tsc:
          case PacketType.Cbr:
          case PacketType.PsbEnd:
          case PacketType.Pip:
          case PacketType.ModeExec:
          case PacketType.ModeTsx:
          case PacketType.Vmcs:
          case PacketType.Tma:
          case PacketType.Mtc:
          case PacketType.Cyc:
          case PacketType.Mnt:
            break;
          default:
            return 0;
        }
      }
    });
  }

  // --- timing packets ----------------------------------------------------------

  private applyTiming(timing: Timing, p: Packet, inHeader: boolean): number {
    switch (p.type) {
      case PacketType.Tsc:
        return timing.onTsc(p, inHeader);
      case PacketType.Cbr:
        return timing.onCbr(p, inHeader);
      case PacketType.Tma:
        return timing.onTma(p);
      case PacketType.Mtc:
        return timing.onMtc(p);
      case PacketType.Cyc:
        return timing.onCyc(p);
      default:
        return 0;
    }
  }

  // --- PSB+ ------------------------------------------------------------------

  private headerFup(p: Packet): number {
    let enabled = p.ipc !== IpCompression.Suppressed;
    if (this.config.errata.bdm70) {
      const err = this.checkBdm70();
      if (err < 0) return err;
      if (err) enabled = false;
    }
    this.enabled = enabled;
    if (!enabled) return 0;
    return this.ip.update(p);
  }

  private enqueueStatus(type: EventType): PtEvent | null {
    const ev = this.evq.enqueue(Binding.Psbend);
    if (ev === null) return null;
    ev.statusUpdate = true;
    ev.type = type;
    return ev;
  }

  /**
   * Decode PSB+ up to PSBEND or OVF; every packet binds to its end. The
   * enabled/disabled status event goes first. Returns 1 or an error.
   */
  private decodePsb(): number {
    if (!this.evq.isEmpty(Binding.Psbend) || !this.evq.isEmpty(Binding.Tip) || !this.evq.isEmpty(Binding.Fup)) {
      return -ErrorCode.BadContext;
    }
    this.ip.reset();
    this.enabled = false;
    const status = this.evq.enqueue(Binding.Psbend);
    if (status === null) return -ErrorCode.NoMem;
    status.statusUpdate = true;

    const p = this.pkt;
    for (;;) {
      this.fetchPacket();
      let err = 0;
      switch (p.type) {
        case PacketType.Fup:
          err = this.headerFup(p);
          break;
        case PacketType.ModeExec: {
          // PSB+ repeats the current state: a different one is inconsistent.
          const mode = execModeOf(p.csl, p.csd);
          if (this.modeValid) {
            if (mode !== this.lastMode) return -ErrorCode.BadStatusUpdate;
            if (this.flags.enableIflags && this.haveIflag && p.iflag !== this.iflag) return -ErrorCode.BadStatusUpdate;
          }
          const ev = this.enqueueStatus(EventType.ExecMode);
          if (ev === null) return -ErrorCode.NoMem;
          ev.mode = mode;
          this.noteMode(ev.mode);
          this.noteIflag(p.iflag);
          break;
        }
        case PacketType.ModeTsx: {
          const ev = this.enqueueStatus(EventType.Tsx);
          if (ev === null) return -ErrorCode.NoMem;
          ev.speculative = p.intx;
          ev.aborted = p.abrt;
          break;
        }
        case PacketType.Pip: {
          const ev = this.enqueueStatus(EventType.AsyncPaging);
          if (ev === null) return -ErrorCode.NoMem;
          ev.cr3 = unsignedFromHiLo(p.hi, p.lo);
          ev.nonRoot = p.nr;
          break;
        }
        case PacketType.Vmcs: {
          const ev = this.enqueueStatus(EventType.AsyncVmcs);
          if (ev === null) return -ErrorCode.NoMem;
          ev.base = unsignedFromHiLo(p.hi, p.lo);
          break;
        }
        case PacketType.Mnt: {
          const ev = this.evq.enqueue(Binding.Psbend);
          if (ev === null) return -ErrorCode.NoMem;
          ev.type = EventType.Mnt;
          ev.payloadHi = p.hi;
          ev.payloadLo = p.lo;
          break;
        }
        case PacketType.Cbr: {
          err = this.timing.onCbr(p, true);
          if (err < 0) return err;
          const ev = this.enqueueStatus(EventType.Cbr);
          if (ev === null) return -ErrorCode.NoMem;
          ev.ratio = p.ratio;
          break;
        }
        case PacketType.Tsc:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
          err = this.applyTiming(this.timing, p, true);
          break;
        case PacketType.PsbEnd:
          if (this.enabled) status.type = EventType.Enabled;
          else {
            status.type = EventType.Disabled;
            status.ipSuppressed = true;
          }
          return 1;
        case PacketType.Ovf:
          // An OVF ends PSB+ like PSBEND; without a FUP the status event goes.
          if (this.enabled) status.type = EventType.Enabled;
          else if (this.evq.dequeue(Binding.Psbend) !== status) return -ErrorCode.Internal;
          return 1;
        case PacketType.Pad:
          break;
        case PacketType.Invalid:
          err = this.status;
          break;
        default:
          err = -ErrorCode.BadContext;
          break;
      }
      if (err < 0) return err;
    }
  }

  /** Remember the interrupt flag of a MODE.Exec; true if it changed. */
  private noteIflag(iflag: boolean): boolean {
    const changed = this.haveIflag && this.iflag !== iflag;
    this.iflag = iflag;
    this.haveIflag = true;
    return changed;
  }

  /** Publish the PSB+ events one by one; 1 when none is left. */
  private decodePsbend(): number {
    const ev = this.evq.dequeue(Binding.Psbend);
    if (ev === null) return 1;
    this.current = ev;
    switch (ev.type) {
      case EventType.Enabled:
      case EventType.ExecMode:
      case EventType.Tsx:
      case EventType.AsyncPaging:
      case EventType.AsyncVmcs:
      case EventType.Iflags:
        this.eventIp(ev);
        break;
      case EventType.Disabled:
      case EventType.Cbr:
      case EventType.Mnt:
        break;
      default:
        return -ErrorCode.BadContext;
    }
    this.eventTime(ev);
    return 0;
  }

  // --- packets after PSB+ -------------------------------------------------

  private decodeFup(p: Packet): number {
    const err = this.ip.update(p);
    if (err < 0) return err;
    if (!this.bound && this.evq.isEmpty(Binding.Fup)) this.bindModeToFup();
    // Events that only take the FUP's IP leave it free for an asynchronous branch.
    if (this.evq.findBound(Binding.Fup)) this.bound = true;
    const ev = this.evq.dequeue(Binding.Fup);
    if (ev === null) {
      if (this.bound) {
        this.release = true;
        return 1;
      }
      // An asynchronous branch: it needs a source IP.
      const st = this.ip.status();
      if (st < 0) return st;
      const async = this.evq.enqueue(Binding.Tip);
      if (async === null) return -ErrorCode.NoMem;
      async.type = EventType.AsyncBranch;
      async.at = ipFromHiLo(this.ip.hi, this.ip.lo);
      return 1;
    }
    this.current = ev;
    switch (ev.type) {
      case EventType.Overflow:
        this.eventIp(ev);
        this.enabled = true;
        this.bound = true;
        break;
      case EventType.Tsx:
        this.eventTime(ev);
        this.eventIp(ev);
        if (!ev.aborted) this.bound = true;
        break;
      case EventType.Exstop:
      case EventType.Mwait:
      case EventType.Ptwrite:
      case EventType.Trig:
      case EventType.ExecMode:
      case EventType.Iflags:
        this.eventTime(ev);
        this.eventIp(ev);
        this.bound = true;
        break;
      case EventType.Ignore:
        // An unknown CFE's FUP: consumed without an event.
        this.current = null;
        this.bound = true;
        return this.decodeFup(p);
      default:
        if (isCfeEvent(ev.type)) {
          this.eventTime(ev);
          if (!ev.ipSuppressed) this.eventIp(ev);
          break;
        }
        return -ErrorCode.BadContext;
    }
    return 0;
  }

  /**
   * A MODE.Exec followed by a FUP rather than a TIP reports an interrupt
   * flag change (event tracing, e.g. CLI/STI) at the FUP's IP: its events
   * move to the FUP; the execution mode is reported only if it changed.
   */
  private bindModeToFup(): void {
    const head = this.evq.headType(Binding.Tip);
    if (head !== EventType.ExecMode && head !== EventType.Iflags) return;
    if (this.evq.find(Binding.Tip, EventType.AsyncBranch)) return;
    for (let ev = this.evq.dequeue(Binding.Tip); ev !== null; ev = this.evq.dequeue(Binding.Tip)) {
      if (ev.type === EventType.ExecMode && !this.modeChanged) continue;
      const slot = this.evq.enqueue(Binding.Fup);
      if (slot === null) return;
      copyEvent(slot, ev);
    }
  }

  /** The execution mode of the last MODE.Exec, and whether the latest one changed it. */
  private lastMode: ExecMode = ExecMode.Unknown;
  private modeChanged = false;

  /** A MODE.Exec was seen since the last reset. */
  private modeValid = false;

  private noteMode(mode: ExecMode): void {
    this.modeChanged = !this.modeValid || mode !== this.lastMode;
    this.lastMode = mode;
    this.modeValid = true;
  }

  private decodeModeExec(p: Packet): number {
    const ev = this.evq.enqueue(Binding.Tip);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.ExecMode;
    ev.mode = execModeOf(p.csl, p.csd);
    this.noteMode(ev.mode);
    if (this.noteIflag(p.iflag) && this.flags.enableIflags) {
      const fl = this.evq.enqueue(Binding.Tip);
      if (fl === null) return -ErrorCode.NoMem;
      fl.type = EventType.Iflags;
      fl.iflag = p.iflag;
    }
    return 1;
  }

  private decodeModeTsx(p: Packet): number {
    if (this.enabled) {
      const ev = this.evq.enqueue(Binding.Fup);
      if (ev === null) return -ErrorCode.NoMem;
      ev.type = EventType.Tsx;
      ev.speculative = p.intx;
      ev.aborted = p.abrt;
      // An abort takes the FUP's IP; the FUP is also the abort's branch.
      ev.fupUnbound = p.abrt;
      return 1;
    }
    const ev = this.standalone();
    ev.type = EventType.Tsx;
    ev.speculative = p.intx;
    ev.aborted = p.abrt;
    ev.ipSuppressed = true;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  private decodePip(p: Packet): number {
    if (this.evq.find(Binding.Tip, EventType.AsyncBranch)) {
      const ev = this.evq.enqueue(Binding.Tip);
      if (ev === null) return -ErrorCode.NoMem;
      ev.type = EventType.AsyncPaging;
      ev.cr3 = unsignedFromHiLo(p.hi, p.lo);
      ev.nonRoot = p.nr;
      return 1;
    }
    const ev = this.standalone();
    ev.type = EventType.Paging;
    ev.cr3 = unsignedFromHiLo(p.hi, p.lo);
    ev.nonRoot = p.nr;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  private decodeVmcs(p: Packet): number {
    const base = unsignedFromHiLo(p.hi, p.lo);
    // VMCS orders before a PIP of the same asynchronous branch.
    const paging = this.evq.find(Binding.Tip, EventType.AsyncPaging);
    if (paging) {
      const slot = this.evq.enqueue(Binding.Tip);
      if (slot === null) return -ErrorCode.NoMem;
      copyEvent(slot, paging);
      resetEvent(paging);
      paging.type = EventType.AsyncVmcs;
      paging.base = base;
      return 1;
    }
    if (this.evq.find(Binding.Tip, EventType.AsyncBranch)) {
      const ev = this.evq.enqueue(Binding.Tip);
      if (ev === null) return -ErrorCode.NoMem;
      ev.type = EventType.AsyncVmcs;
      ev.base = base;
      return 1;
    }
    const ev = this.standalone();
    ev.type = EventType.Vmcs;
    ev.base = base;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  private decodeStandalone(type: EventType, p: Packet): number {
    const ev = this.standalone();
    ev.type = type;
    switch (type) {
      case EventType.Mnt:
        ev.payloadHi = p.hi;
        ev.payloadLo = p.lo;
        break;
      case EventType.Pwre:
        ev.state = p.state;
        ev.subState = p.subState;
        ev.hw = p.hw;
        break;
      case EventType.Pwrx:
        ev.last = p.last;
        ev.deepest = p.deepest;
        ev.interrupt = p.wakeInterrupt;
        ev.store = p.wakeStore;
        ev.autonomous = p.wakeAutonomous;
        break;
      case EventType.Cbr:
        ev.ratio = p.ratio;
        break;
      default:
        break;
    }
    this.eventTime(ev);
    return this.fetchPacket();
  }

  private decodeExstop(p: Packet): number {
    const head = this.evq.find(Binding.Exstop, EventType.Mwait);
    const mwait = head !== null && this.firstIs(Binding.Exstop, head) ? this.evq.dequeue(Binding.Exstop) : null;
    if (mwait) {
      if (p.ip) {
        // MWAIT and EXSTOP both bind to the same FUP.
        const slot = this.evq.enqueue(Binding.Fup);
        if (slot === null) return -ErrorCode.NoMem;
        copyEvent(slot, mwait);
      } else {
        // Both standalone: MWAIT now, EXSTOP on the next call.
        mwait.ip = 0;
        mwait.ipSuppressed = true;
        this.current = mwait;
        this.eventTime(mwait);
        return 0;
      }
    }
    if (p.ip) {
      const ev = this.evq.enqueue(Binding.Fup);
      if (ev === null) return -ErrorCode.NoMem;
      ev.type = EventType.Exstop;
      return 1;
    }
    const ev = this.standalone();
    ev.type = EventType.Exstop;
    ev.ipSuppressed = true;
    this.eventTime(ev);
    this.release = true;
    return this.fetchPacket();
  }

  /** Is `ev` the head of `binding`'s queue? */
  private firstIs(binding: Binding, ev: PtEvent): boolean {
    return this.evq.find(binding, ev.type) === ev && this.evq.headType(binding) === ev.type;
  }

  /** Release events held for an EXSTOP (PWRE) before the next packet. */
  private release = false;

  /**
   * PWRE waits for the EXSTOP of the same C-state entry and is reported
   * after it (and after an MWAIT bound with it); PWRX, OVF or the EXSTOP's
   * FUP release it.
   */
  private decodePwre(p: Packet): number {
    const ev = this.evq.enqueue(Binding.Exstop);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Pwre;
    ev.state = p.state;
    ev.subState = p.subState;
    ev.hw = p.hw;
    return 1;
  }

  /** Publish the head of `binding`'s queue as a standalone event; false if empty. */
  private releaseOne(binding: Binding): boolean {
    const ev = this.evq.dequeue(binding);
    if (ev === null) return false;
    ev.ipSuppressed = true;
    this.eventTime(ev);
    this.current = ev;
    return true;
  }

  private decodeMwait(p: Packet): number {
    const ev = this.evq.enqueue(Binding.Exstop);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Mwait;
    ev.hints = p.hints;
    ev.ext = p.ext;
    return 1;
  }

  private decodePtw(p: Packet): number {
    const size = p.plc === 0 ? 4 : p.plc === 1 ? 8 : -1;
    if (size < 0) return -ErrorCode.BadPacket;
    if (p.ip) {
      const ev = this.evq.enqueue(Binding.Fup);
      if (ev === null) return -ErrorCode.NoMem;
      ev.type = EventType.Ptwrite;
      ev.size = size;
      ev.payloadHi = p.hi;
      ev.payloadLo = p.lo;
      return 1;
    }
    const ev = this.standalone();
    ev.type = EventType.Ptwrite;
    ev.size = size;
    ev.payloadHi = p.hi;
    ev.payloadLo = p.lo;
    ev.ipSuppressed = true;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  private decodeTrig(p: Packet): number {
    const fill = (ev: PtEvent): void => {
      ev.type = EventType.Trig;
      ev.trbv = p.trbv;
      ev.hasIcnt = p.icntv;
      ev.icnt = p.icnt;
    };
    if (p.ip) {
      // The FUP gives the precise IP: an instruction count makes no sense then.
      if (!p.icntv || p.icnt !== 0) return -ErrorCode.BadPacket;
      const ev = this.evq.enqueue(Binding.Fup);
      if (ev === null) return -ErrorCode.NoMem;
      fill(ev);
      return 1;
    }
    // Instructions are only counted while tracing is enabled.
    if (p.icntv && p.icnt !== 0 && !this.enabled) return -ErrorCode.BadPacket;
    const ev = this.standalone();
    fill(ev);
    ev.ipSuppressed = true;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  /**
   * EVD: data for the next CFE. The first EVD queues the event its CFE is
   * expected to complete (CR2: an interrupt; VMX reason/qualification: a VM
   * exit); each datum may come once. Unknown data types are ignored.
   */
  private decodeEvd(p: Packet): number {
    let ev = this.evq.find(Binding.Cfe, EventType.Interrupt) ?? this.evq.find(Binding.Cfe, EventType.Vmexit);
    switch (p.evdType) {
      case EvdType.Cr2:
        if (ev !== null) return -ErrorCode.BadContext;
        ev = this.evq.enqueue(Binding.Cfe);
        if (ev === null) return -ErrorCode.NoMem;
        ev.type = EventType.Interrupt;
        ev.hasCr2 = true;
        ev.cr2Hi = p.hi;
        ev.cr2Lo = p.lo;
        return 1;
      case EvdType.VmxQualification:
      case EvdType.VmxReason: {
        if (ev === null) {
          ev = this.evq.enqueue(Binding.Cfe);
          if (ev === null) return -ErrorCode.NoMem;
          ev.type = EventType.Vmexit;
        }
        if (ev.type !== EventType.Vmexit) return -ErrorCode.BadContext;
        if (p.evdType === EvdType.VmxQualification) {
          if (ev.hasVmxq) return -ErrorCode.BadContext;
          ev.hasVmxq = true;
          ev.vmxqHi = p.hi;
          ev.vmxqLo = p.lo;
        } else {
          if (ev.hasVmxr) return -ErrorCode.BadContext;
          ev.hasVmxr = true;
          ev.vmxrHi = p.hi;
          ev.vmxrLo = p.lo;
        }
        return 1;
      }
      default:
        return 1;
    }
  }

  /**
   * CFE: a control-flow event of event tracing (SDM "Control Flow Event
   * Packet"). With CFE.IP it binds to the next FUP, which gives its IP and
   * needs no TIP of its own. Without, while tracing is enabled, events that
   * interrupt the flow (interrupt, SMI, RSM, SIPI, INIT, VM exit, user and
   * software interrupts) take the IP of the next FUP without binding it (the
   * FUP still starts the asynchronous branch); the others (IRET, VM entry,
   * shutdown, UIRET, SYSCALL) are standalone and the flow decoders bind them
   * to their instruction. While tracing is disabled every CFE is standalone.
   */
  private decodeCfe(p: Packet): number {
    const type = cfeEventType(p.cfeType);
    const expected = this.evq.dequeue(Binding.Cfe);
    if (type === EventType.Invalid) {
      // Unknown CFE types are ignored, and so is the FUP they bind.
      if (expected !== null) return -ErrorCode.BadContext;
      if (p.ip) {
        const ign = this.evq.enqueue(Binding.Fup);
        if (ign === null) return -ErrorCode.NoMem;
        ign.type = EventType.Ignore;
      }
      return 1;
    }
    const takesData = type === EventType.Interrupt || type === EventType.Vmexit;
    if (expected !== null && (!takesData || expected.type !== type)) return -ErrorCode.BadContext;
    const noIp = type === EventType.Rsm || type === EventType.Sipi;
    if (noIp && p.ip) return -ErrorCode.BadPacket;
    const scratch = this.scratchEvent;
    if (expected !== null) copyEvent(scratch, expected);
    else {
      resetEvent(scratch);
      scratch.type = type;
    }
    if (cfeHasVector(p.cfeType)) {
      scratch.vector = p.vector;
      scratch.hasVector = true;
    }
    const interrupts = takesData || noIp || type === EventType.Smi || type === EventType.Init ||
      type === EventType.Uintr || type === EventType.Swintr;
    if (p.ip || (this.enabled && interrupts)) {
      const ev = this.evq.enqueue(Binding.Fup);
      if (ev === null) return -ErrorCode.NoMem;
      copyEvent(ev, scratch);
      ev.fupUnbound = !p.ip;
      ev.ipSuppressed = noIp;
      return 1;
    }
    const ev = this.standalone();
    copyEvent(ev, scratch);
    ev.ipSuppressed = true;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  private decodeTnt(p: Packet): number {
    if (!this.enabled) return -ErrorCode.BadContext;
    const ev = this.tntEvent;
    this.current = ev;
    ev.type = EventType.Tnt;
    ev.tntBits = p.tntBits;
    ev.tntSize = p.tntSize;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  private decodeTipEvent(): number {
    this.bound = true;
    const async = this.evq.find(Binding.Tip, EventType.AsyncBranch);
    if (async) {
      const ev = this.evq.dequeue(Binding.Tip);
      if (ev === null) return -ErrorCode.Internal;
      if (ev !== async) {
        // Swap the asynchronous branch to the front.
        const tmp = copyEvent(this.scratchEvent, async);
        copyEvent(async, ev);
        copyEvent(ev, tmp);
      }
      if (ev.type !== EventType.AsyncBranch) return -ErrorCode.Internal;
      this.current = ev;
      this.eventIp(ev);
      this.eventTime(ev);
      return 0;
    }
    const ev = this.tipEvent;
    this.current = ev;
    ev.type = EventType.Tip;
    ev.ipSuppressed = false;
    this.eventIp(ev);
    this.eventTime(ev);
    return 0;
  }

  private readonly scratchEvent = new PtEvent();

  private decodeTip(p: Packet): number {
    if (!this.enabled) return -ErrorCode.BadContext;
    const err = this.ip.update(p);
    if (err < 0) return err;
    if (!this.bound) return this.decodeTipEvent();
    const ev = this.evq.dequeue(Binding.Tip);
    if (ev === null) return 1;
    this.current = ev;
    switch (ev.type) {
      case EventType.AsyncBranch:
        return -ErrorCode.Internal;
      case EventType.ExecMode:
      case EventType.AsyncPaging:
      case EventType.AsyncVmcs:
      case EventType.Iflags:
        this.eventIp(ev);
        break;
      default:
        return -ErrorCode.BadContext;
    }
    this.eventTime(ev);
    return 0;
  }

  private decodeTipPge(p: Packet): number {
    const err = this.ip.update(p);
    if (err < 0) return err;
    if (!this.bound) {
      const ev = this.standalone();
      ev.type = EventType.Enabled;
      this.eventIp(ev);
      this.enabled = true;
      this.bound = true;
      this.eventTime(ev);
      return 0;
    }
    const ev = this.evq.dequeue(Binding.Tip);
    if (ev === null) return 1;
    this.current = ev;
    switch (ev.type) {
      case EventType.ExecMode:
      case EventType.Iflags:
        this.eventIp(ev);
        break;
      default:
        return -ErrorCode.BadContext;
    }
    this.eventTime(ev);
    return 0;
  }

  private decodeTipPgd(p: Packet): number {
    const err = this.ip.update(p);
    if (err < 0) return err;
    const ev = this.evq.dequeue(Binding.Tip);
    if (ev === null) {
      if (this.bound) return 1;
      const dis = this.standalone();
      dis.type = EventType.Disabled;
      this.eventIp(dis);
      this.eventTime(dis);
      this.enabled = false;
      return this.fetchPacket();
    }
    this.current = ev;
    switch (ev.type) {
      case EventType.AsyncBranch: {
        const at = ev.at;
        ev.type = EventType.AsyncDisabled;
        ev.at = at;
        this.eventIp(ev);
        this.enabled = false;
        this.bound = true;
        break;
      }
      case EventType.AsyncPaging:
      case EventType.AsyncVmcs:
        if (!this.bound) return -ErrorCode.Internal;
        ev.ipSuppressed = true;
        break;
      case EventType.ExecMode:
      case EventType.Iflags:
        // Tracing is off when these apply: their IP is not reached.
        ev.ipSuppressed = true;
        break;
      default:
        return -ErrorCode.BadContext;
    }
    this.eventTime(ev);
    return 0;
  }

  // --- overflow ------------------------------------------------------------

  /**
   * Scan for the FUP that an OVF binds to: its offset after the current
   * position (> 0), 0 if a packet shows tracing was disabled, or an error.
   */
  private findOvfFup(): number {
    return this.lookahead(() => {
      const p = this.scratch;
      let offset = 0;
      for (;;) {
        const size = this.packets.next(p);
        if (size < 0) return size;
        offset += size;
        switch (p.type) {
          case PacketType.Fup:
            return offset;
          case PacketType.Pad:
          case PacketType.Mnt:
          case PacketType.Cbr:
          case PacketType.Tsc:
          case PacketType.Tma:
          case PacketType.Mtc:
          case PacketType.Cyc:
          case PacketType.Invalid:
          case PacketType.Trig:
          case PacketType.Evd:
          case PacketType.Bbp:
          case PacketType.Bip:
          case PacketType.Bep:
            break;
          case PacketType.Psb:
          case PacketType.TipPge:
          case PacketType.ModeExec:
          case PacketType.ModeTsx:
          case PacketType.Pip:
          case PacketType.Vmcs:
          case PacketType.Stop:
          case PacketType.Ovf:
          case PacketType.Exstop:
          case PacketType.Mwait:
          case PacketType.Pwre:
          case PacketType.Pwrx:
          case PacketType.Ptw:
          case PacketType.Cfe:
            return 0;
          case PacketType.PsbEnd:
          case PacketType.Tip:
          case PacketType.TipPgd:
          case PacketType.Tnt8:
          case PacketType.Tnt64:
            return -ErrorCode.BadContext;
        }
      }
    });
  }

  /**
   * Resume after an OVF at the IP of `ipPkt` (a FUP, TIP or PSB+ FUP found
   * ahead), with `curPkt` as the current packet and the packet decoder at
   * `resumeOffset`; the time becomes the scan's time.
   */
  private recoverOvfAtIp(ipPkt: Packet, curPkt: Packet, resumeOffset: number, resumeSync: number): number {
    const err = this.ip.update(ipPkt);
    if (err < 0) return err;
    const ev = this.standalone();
    ev.type = EventType.Overflow;
    this.eventTime(ev);
    this.packets.restore(resumeOffset, resumeSync);
    if (curPkt !== this.pkt) copyPacket(curPkt, this.pkt);
    this.pktSize = this.pkt.size;
    this.timing.copyFrom(this.scanTiming);
    this.enabled = true;
    this.eventIp(ev);
    return 0;
  }

  /** Resume after an OVF with tracing disabled, at `resumeOffset`. */
  private recoverOvfDisabled(resumeOffset: number, resumeSync: number, size: number): void {
    const ev = this.standalone();
    ev.type = EventType.Overflow;
    ev.ipSuppressed = true;
    this.eventTime(ev);
    this.packets.restore(resumeOffset, resumeSync);
    this.pktSize = size;
    this.timing.copyFrom(this.scanTiming);
  }

  /** Skip `offset` bytes of packets, tracking time, then report an OVF (APL12). */
  private recoverOvfAtOffset(offset: number): number {
    const p = this.pkt;
    for (;;) {
      const size = this.packets.next(p);
      if (size < 0) return size;
      this.pktSize = p.size;
      if (offset <= size) {
        if (offset < size) return -ErrorCode.Internal;
        break;
      }
      offset -= size;
      let err = 0;
      switch (p.type) {
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
          err = this.applyTiming(this.timing, p, false);
          break;
        case PacketType.ModeExec:
        case PacketType.ModeTsx:
        case PacketType.Pip:
        case PacketType.Vmcs:
        case PacketType.Invalid:
          return -ErrorCode.Internal;
        default:
          break;
      }
      if (err < 0) return err;
    }
    const ev = this.standalone();
    ev.type = EventType.Overflow;
    ev.ipSuppressed = true;
    this.eventTime(ev);
    return this.fetchPacket();
  }

  /** SKD010: the FUP after an OVF may be missing. 0 handled, 1 not, or error. */
  private handleSkd010(): number {
    const startOff = this.packets.offset;
    const startSync = this.packets.syncOffset;
    const t = this.scanTiming;
    t.copyFrom(this.timing);
    let tsxFound = false;
    let tsxIntx = false;
    let tsxAbrt = false;
    const p = this.scratch;
    const restore = (): void => this.packets.restore(startOff, startSync);
    for (;;) {
      const size = this.packets.next(p);
      if (size < 0) {
        restore();
        return size === -ErrorCode.Eos ? 1 : size;
      }
      switch (p.type) {
        case PacketType.TipPge:
          restore();
          return 1;
        case PacketType.TipPgd:
          this.recoverOvfDisabled(this.packets.offset, this.packets.syncOffset, p.size);
          return this.fetchPacket();
        case PacketType.Tnt8:
        case PacketType.Tnt64:
          restore();
          return 1;
        case PacketType.Pip:
        case PacketType.Vmcs:
        case PacketType.ModeExec:
          break;
        case PacketType.ModeTsx:
          if (tsxFound) {
            restore();
            return 1;
          }
          tsxFound = true;
          tsxIntx = p.intx;
          tsxAbrt = p.abrt;
          break;
        case PacketType.Fup: {
          // Resume at this FUP: it becomes the current packet.
          if (tsxFound) {
            const ev = this.evq.enqueue(Binding.Fup);
            if (ev === null) return -ErrorCode.NoMem;
            ev.type = EventType.Tsx;
            ev.speculative = tsxIntx;
            ev.aborted = tsxAbrt;
            ev.fupUnbound = tsxAbrt;
          }
          const off = this.packets.offset;
          const sync = this.packets.syncOffset;
          return this.recoverOvfAtIp(p, p, off, sync);
        }
        case PacketType.Tip: {
          const off = this.packets.offset;
          const sync = this.packets.syncOffset;
          const err = this.recoverOvfAtIp(p, p, off, sync);
          if (err < 0) return err;
          return this.fetchPacket();
        }
        case PacketType.Psb: {
          const off = this.packets.offset;
          const sync = this.packets.syncOffset;
          const fup = this.scratch2;
          const found = this.findHeaderFup(fup);
          if (found <= 0) {
            restore();
            if (found < 0) return found === -ErrorCode.Eos ? 1 : found;
            return 1;
          }
          // Resume at the PSB with the FUP's IP.
          return this.recoverOvfAtIp(fup, p, off, sync);
        }
        case PacketType.PsbEnd:
          restore();
          return -ErrorCode.BadContext;
        case PacketType.Ovf:
        case PacketType.Stop:
          restore();
          return 1;
        case PacketType.Pad:
        case PacketType.Mnt:
        case PacketType.Pwre:
        case PacketType.Pwrx:
          break;
        case PacketType.Exstop:
          if (!p.ip) break;
          restore();
          return 1;
        case PacketType.Mwait:
          restore();
          return 1;
        case PacketType.Ptw:
          if (!p.ip) break;
          restore();
          return 1;
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc: {
          const err = this.applyTiming(t, p, false);
          if (err < 0) {
            restore();
            return err;
          }
          break;
        }
        default:
          restore();
          return 1;
      }
    }
  }

  /** APL11: an OVF may be followed by a spurious TIP.PGD. 0 handled, 1 not, or error. */
  private handleApl11(): number {
    const startOff = this.packets.offset;
    const startSync = this.packets.syncOffset;
    const t = this.scanTiming;
    t.copyFrom(this.timing);
    const p = this.scratch;
    for (;;) {
      const size = this.packets.next(p);
      if (size < 0) {
        this.packets.restore(startOff, startSync);
        return size;
      }
      switch (p.type) {
        case PacketType.TipPgd:
          this.recoverOvfDisabled(this.packets.offset, this.packets.syncOffset, p.size);
          return this.fetchPacket();
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc: {
          const err = this.applyTiming(t, p, false);
          if (err < 0) {
            this.packets.restore(startOff, startSync);
            return err;
          }
          break;
        }
        case PacketType.Pad:
        case PacketType.Mnt:
          break;
        default:
          this.packets.restore(startOff, startSync);
          return 1;
      }
    }
  }

  /** APL12: a FUP after OVF although tracing is disabled. 0 handled, 1 not, or error. */
  private handleApl12(offset: number): number {
    const decision = this.lookahead(() => {
      const p = this.scratch;
      // Skip to after the FUP.
      let skipped = 0;
      while (skipped < offset) {
        const size = this.packets.next(p);
        if (size < 0) return -ErrorCode.Internal;
        skipped += size;
      }
      for (;;) {
        const size = this.packets.next(p);
        if (size < 0) return size === -ErrorCode.Eos ? 1 : size;
        switch (p.type) {
          case PacketType.Tnt8:
          case PacketType.Tnt64:
          case PacketType.Tip:
          case PacketType.TipPgd:
            return 1;
          case PacketType.Psb: {
            const found = this.findHeaderFup(this.scratch2);
            if (found !== 0) return found === -ErrorCode.Eos ? 1 : found < 0 ? found : 1;
            return 0;
          }
          case PacketType.Stop:
          case PacketType.TipPge:
            return 0;
          case PacketType.PsbEnd:
          case PacketType.Ovf:
            return 1;
          case PacketType.Invalid:
            return 1;
          default:
            break;
        }
      }
    });
    if (decision !== 0) return decision;
    return this.recoverOvfAtOffset(offset);
  }

  private decodeOvf(): number {
    // An OVF ends PSB+ like PSBEND: publish pending PSB+ events first.
    let err = this.decodePsbend();
    if (err <= 0) return err;
    // Events still waiting for their packets are reported without an IP.
    if (this.releaseOne(Binding.Exstop) || this.releaseOne(Binding.Fup)) return 0;

    // Reset the decoder state but keep the time.
    this.scanTiming.copyFrom(this.timing);
    this.reset();
    this.status = 0;
    this.pkt.type = PacketType.Ovf;
    this.pktSize = this.scratchOvfSize;
    this.timing.copyFrom(this.scanTiming);
    err = this.timing.onOvf();
    if (err < 0) return err;

    const offset = this.findOvfFup();
    if (offset <= 0) {
      if (this.config.errata.skd010) {
        err = this.handleSkd010();
        if (err <= 0) return err;
      }
      if (this.config.errata.apl11 && offset === -ErrorCode.BadContext) {
        err = this.handleApl11();
        if (err <= 0) return err;
      }
      if (offset < 0 && offset !== -ErrorCode.Eos) return offset;
      const ev = this.standalone();
      ev.type = EventType.Overflow;
      ev.ipSuppressed = true;
      this.eventTime(ev);
      return this.fetchPacket();
    }
    if (this.config.errata.apl12) {
      err = this.handleApl12(offset);
      if (err <= 0) return err;
    }
    const ev = this.evq.enqueue(Binding.Fup);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Overflow;
    this.eventTime(ev);
    return 1;
  }

  private scratchOvfSize = 0;

  // --- dispatch ------------------------------------------------------------

  private decodePacket(): number {
    const p = this.pkt;
    switch (p.type) {
      case PacketType.Tnt8:
      case PacketType.Tnt64:
        return this.decodeTnt(p);
      case PacketType.Cyc:
      case PacketType.Mtc:
      case PacketType.Tma:
      case PacketType.Tsc: {
        const err = this.applyTiming(this.timing, p, false);
        return err < 0 ? err : 1;
      }
      case PacketType.Pad:
        return 1;
      case PacketType.Fup:
        return this.decodeFup(p);
      case PacketType.Tip:
        return this.decodeTip(p);
      case PacketType.Cbr: {
        const err = this.timing.onCbr(p, false);
        if (err < 0) return err;
        return this.decodeStandalone(EventType.Cbr, p);
      }
      case PacketType.ModeExec:
        return this.decodeModeExec(p);
      case PacketType.ModeTsx:
        return this.decodeModeTsx(p);
      case PacketType.Pip:
        return this.decodePip(p);
      case PacketType.Ptw:
        return this.decodePtw(p);
      case PacketType.Psb: {
        const err = this.decodePsb();
        if (err <= 0) return err;
        return this.decodePacket();
      }
      case PacketType.PsbEnd:
        return this.decodePsbend();
      case PacketType.TipPge:
        return this.decodeTipPge(p);
      case PacketType.TipPgd:
        return this.decodeTipPgd(p);
      case PacketType.Exstop:
        return this.decodeExstop(p);
      case PacketType.Pwre:
        return this.decodePwre(p);
      case PacketType.Pwrx:
        // Power entries still waiting for an EXSTOP come first.
        if (this.releaseOne(Binding.Exstop)) return 0;
        return this.decodeStandalone(EventType.Pwrx, p);
      case PacketType.Mwait:
        return this.decodeMwait(p);
      case PacketType.Vmcs:
        return this.decodeVmcs(p);
      case PacketType.Ovf:
        this.scratchOvfSize = this.pktSize;
        return this.decodeOvf();
      case PacketType.Stop:
        return this.decodeStandalone(EventType.Stop, p);
      case PacketType.Mnt:
        return this.decodeStandalone(EventType.Mnt, p);
      case PacketType.Trig:
        return this.decodeTrig(p);
      case PacketType.Cfe:
        return this.decodeCfe(p);
      case PacketType.Evd:
        return this.decodeEvd(p);
      case PacketType.Invalid:
        return this.status < 0 ? this.status : 1;
      default:
        // Packets without meaning here (PEBS blocks) are skipped.
        return 1;
    }
  }

  /** Decode packets until one produces an event; 0 or an error. */
  private fetchEvent(): number {
    for (;;) {
      if (this.release) {
        if (this.releaseOne(Binding.Exstop)) return 0;
        this.release = false;
      }
      const err = this.decodePacket();
      if (err <= 0) return err;
      if (this.current !== null) return -ErrorCode.Internal;
      // The packet needed more packets: the next one is not bound.
      this.bound = false;
      this.fetchPacket();
    }
  }
}

/** The event type for a CFE type, or Invalid for unknown types. */
export function cfeEventType(t: number): EventType {
  switch (t) {
    case CfeType.Intr:
      return EventType.Interrupt;
    case CfeType.Iret:
      return EventType.Iret;
    case CfeType.Smi:
      return EventType.Smi;
    case CfeType.Rsm:
      return EventType.Rsm;
    case CfeType.Sipi:
      return EventType.Sipi;
    case CfeType.Init:
      return EventType.Init;
    case CfeType.VmEntry:
      return EventType.Vmentry;
    case CfeType.VmExit:
    case CfeType.VmExitIntr:
      return EventType.Vmexit;
    case CfeType.Shutdown:
      return EventType.Shutdown;
    case CfeType.Uintr:
      return EventType.Uintr;
    case CfeType.Uiret:
      return EventType.Uiret;
    case CfeType.SwIntr:
      return EventType.Swintr;
    case CfeType.Syscall:
      return EventType.Syscall;
    default:
      return EventType.Invalid;
  }
}

function cfeHasVector(t: number): boolean {
  return t === CfeType.Intr || t === CfeType.VmExitIntr || t === CfeType.Sipi || t === CfeType.Uintr || t === CfeType.SwIntr;
}

/** True for the event tracing (CFE) event types. */
export function isCfeEvent(t: EventType): boolean {
  return t >= EventType.Interrupt && t <= EventType.Syscall;
}
