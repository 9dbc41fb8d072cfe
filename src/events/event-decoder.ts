/**
 * The event decoder (libipt's pt_event_decoder, libipt/src/pt_event_decoder.c):
 * turns packets into events, binding the packets that describe one event
 * together (SDM Vol. 3C "Intel Processor Trace", "Packet Generation
 * Scenarios"). TNT and TIP come out as events, too, for the layers above.
 *
 * This file holds the decoder's state, synchronization and the fetch loop;
 * what each packet kind means is in its binder under `bind/` (libipt keeps
 * them as sections of one file):
 *
 * - `bind/psb.ts`: PSB+ (status updates bound to PSBEND), BDM70;
 * - `bind/fup.ts`: FUP (events bound to it, asynchronous branches);
 * - `bind/tip.ts`: TIP, TIP.PGE, TIP.PGD, TNT;
 * - `bind/mode.ts`: MODE.Exec, MODE.TSX;
 * - `bind/paging.ts`: PIP, VMCS;
 * - `bind/power.ts`: EXSTOP, MWAIT, PWRE, PWRX;
 * - `bind/ptwrite.ts`, `bind/trig.ts`, `bind/event-tracing.ts` (CFE, EVD);
 * - `bind/standalone.ts`: STOP, MNT, CBR;
 * - `bind/timing.ts`: TSC, TMA, MTC, CYC, CBR into time and calibration;
 * - `bind/overflow.ts`, `bind/overflow-errata.ts`: OVF and SKD010, APL11, APL12.
 *
 * Each binder returns libipt's codes: 0 when it made an event (and fetched
 * the next packet if it is done with this one), 1 when it needs more
 * packets, or a negative ErrorCode.
 *
 * Lookahead (errata, OVF, BDM70) reads ahead on the same packet stream and
 * returns to the saved position, or stays there to resume from it; libipt
 * copies its packet decoder for that.
 */
import type { DecoderConfig } from '../packets/config.js';
import { ErrorCode } from '../packets/errors.js';
import { ipFromHiLo } from '../packets/address.js';
import { LastIp } from '../packets/last-ip.js';
import { PacketType } from '../packets/packet-type.js';
import { Packet, copyPacket } from '../packets/packet.js';
import { packetStreamFor, type PacketStream, type TraceInput } from '../packets/packet-stream.js';
import { Timing } from './time.js';
import { EventType, PtEvent, copyBranchEvent, copyEvent } from './event.js';
import { EventQueue } from './event-queue.js';
import type { EventDecoderFlags } from './event-decoder-flags.js';
import type { BinderHost } from './bind/binder-host.js';
import { decodePsb, decodePsbend } from './bind/psb.js';
import { decodeFup } from './bind/fup.js';
import { decodeTip, decodeTipPge, decodeTipPgd, decodeTnt } from './bind/tip.js';
import { decodeModeExec, decodeModeTsx } from './bind/mode.js';
import { decodePip, decodeVmcs } from './bind/paging.js';
import { decodeExstop, decodeMwait, decodePwre, decodePwrx } from './bind/power.js';
import { decodePtw } from './bind/ptwrite.js';
import { decodeTrig } from './bind/trig.js';
import { decodeCfe, decodeEvd } from './bind/event-tracing.js';
import { decodeCbr, decodeMnt, decodeStop } from './bind/standalone.js';
import { decodeCyc, decodeMtc, decodeTma, decodeTsc } from './bind/timing.js';
import { decodeOvf } from './bind/overflow.js';

/** A copy of an event decoder's state (libipt copies the struct), see {@link EventDecoder.save}. */
export class EventDecoderState {
  offset = 0;
  syncOffset = 0;
  readonly packet = new Packet();
  readonly ip = new LastIp();
  timing: Timing | null = null;
  readonly evq = new EventQueue();
  status = 0;
  modeExecValid = false;
  iflag = false;
  csd = false;
  csl = false;
  enabled = false;
  bound = false;
}

/** The decoder's plain fields, which {@link EventDecoder.save} and {@link EventDecoder.restore} copy as they are. */
type DecoderScalars = Pick<EventDecoderState, 'status' | 'modeExecValid' | 'iflag' | 'csd' | 'csl' | 'enabled' | 'bound'>;

function copyScalars(to: DecoderScalars, from: DecoderScalars): void {
  to.status = from.status;
  to.modeExecValid = from.modeExecValid;
  to.iflag = from.iflag;
  to.csd = from.csd;
  to.csl = from.csl;
  to.enabled = from.enabled;
  to.bound = from.bound;
}

/** The fields and calls the binders share are documented on {@link BinderHost}. */
export class EventDecoder implements BinderHost {
  readonly packets: PacketStream;
  readonly packet = new Packet();
  readonly ip = new LastIp();
  readonly timing: Timing;
  readonly evq = new EventQueue();
  event: PtEvent | null = null;
  status = -ErrorCode.NoSync;
  modeExecValid = false;
  iflag = false;
  csd = false;
  csl = false;
  enabled = false;
  bound = false;
  readonly tntEvent = new PtEvent();
  readonly scan = new Packet();
  readonly scanFup = new Packet();
  readonly scanTiming: Timing;

  constructor(
    trace: TraceInput,
    readonly config: DecoderConfig,
    readonly flags: EventDecoderFlags = { keepTcalOnOvf: false, enableIflags: false },
  ) {
    this.packets = packetStreamFor(trace, config);
    const timingConfig = flags.keepTcalOnOvf ? { ...config, flags: { ...config.flags, keepTcalOnOvf: true } } : config;
    this.timing = new Timing(timingConfig);
    this.scanTiming = new Timing(timingConfig);
  }

  resetState(): void {
    // The packet's size stays: after an OVF, offsets still point at it.
    this.packet.type = PacketType.Invalid;
    this.status = -ErrorCode.NoSync;
    this.event = null;
    this.enabled = false;
    this.bound = false;
    this.modeExecValid = false;
    this.ip.reset();
    this.timing.reset();
    this.evq.reset();
  }

  // --- libipt's decoder calls -------------------------------------------------

  /** Trace offset of the packet being processed (libipt's pt_evt_get_offset). */
  get offset(): number {
    const off = this.packets.offset;
    return off < 0 ? off : off - this.packet.size;
  }

  get syncOffset(): number {
    return this.packets.syncOffset;
  }

  /** Position of the packet decoder (libipt's pt_evt_pos): tells whether decoding moved on. */
  get position(): number {
    return this.packets.offset;
  }

  syncForward(): number {
    this.resetState();
    const err = this.packets.syncForward();
    if (err < 0) return err;
    return this.start();
  }

  /**
   * Synchronize at the PSB before the current position (before the end if
   * not synchronized): libipt's pt_evt_sync_backward. A PSB whose start
   * reads no further than where we were is skipped for the one before it.
   */
  syncBackward(): number {
    let start = this.packets.offset;
    if (start < 0) start = this.packets.size;
    let sync = start;
    for (;;) {
      this.resetState();
      let pos: number;
      do {
        const err = this.packets.syncBackward();
        if (err < 0) return err;
        pos = this.packets.offset;
      } while (sync <= pos);
      sync = pos;
      const err = this.start();
      pos = this.packets.offset;
      if (pos < start) return err;
    }
  }

  syncSet(offset: number): number {
    this.resetState();
    const err = this.packets.syncSet(offset);
    if (err < 0) return err;
    return this.start();
  }

  /** Fetch the next event into `out`: 0 or a negative ErrorCode (libipt's pt_evt_next). */
  next(out: PtEvent): number {
    const err = this.fetchEvent();
    if (err < 0) return err;
    const ev = this.event;
    this.event = null;
    if (ev === null) return -ErrorCode.Internal;
    if (ev === this.tntEvent || ev.type === EventType.Tip) copyBranchEvent(out, ev);
    else copyEvent(out, ev);
    return 0;
  }

  // --- saving and restoring the whole state ----------------------------------

  /** Copy the decoder's state into `into` (between {@link next} calls). */
  save(into: EventDecoderState): void {
    into.offset = this.packets.offset;
    into.syncOffset = this.packets.syncOffset;
    copyPacket(this.packet, into.packet);
    into.ip.copyFrom(this.ip);
    if (into.timing === null) into.timing = new Timing(this.timing.config);
    into.timing.copyFrom(this.timing);
    into.evq.copyFrom(this.evq);
    copyScalars(into, this);
  }

  /** Go back to a state saved with {@link save}. */
  restore(from: EventDecoderState): void {
    this.packets.restore(from.offset, from.syncOffset);
    copyPacket(from.packet, this.packet);
    this.ip.copyFrom(from.ip);
    this.timing.copyFrom(from.timing!);
    this.evq.copyFrom(from.evq);
    copyScalars(this, from);
    this.event = null;
  }

  // --- shared by the binders (see BinderHost) ----------------------------------

  fetchPacket(): number {
    const pkt = this.packet;
    for (;;) {
      const size = this.packets.next(pkt);
      if (size < 0) {
        pkt.type = PacketType.Invalid;
        pkt.size = 0;
        this.status = size;
        return 0;
      }
      if (pkt.type !== PacketType.Pad) return 0;
    }
  }

  eventTime(ev: PtEvent): void {
    const t = this.timing.time;
    ev.tscHi = t.tscHi;
    ev.tscLo = t.tscLo;
    ev.lostMtc = t.lostMtc;
    ev.lostCyc = t.lostCyc;
    ev.hasTsc = t.haveTsc;
  }

  eventIp(ev: PtEvent): void {
    if (this.ip.status() < 0) ev.ipSuppressed = true;
    else ev.ip = ipFromHiLo(this.ip.hi, this.ip.lo);
  }

  standalone(): PtEvent {
    const ev = this.evq.standalone();
    this.event = ev;
    return ev;
  }

  /** Save the packet stream's position, to return to after a lookahead. */
  markOffset = 0;
  markSync = 0;

  mark(): void {
    this.markOffset = this.packets.offset;
    this.markSync = this.packets.syncOffset;
  }

  // --- the fetch loop ---------------------------------------------------------

  private start(): number {
    this.status = 0;
    this.fetchPacket();
    switch (this.packet.type) {
      case PacketType.Psb: {
        const err = decodePsb(this);
        return err < 0 ? err : 0;
      }
      case PacketType.Invalid:
        return this.status < 0 ? this.status : -ErrorCode.Internal;
      default:
        return -ErrorCode.NoSync;
    }
  }

  /** Process the current packet with its binder (libipt's pt_evt_decode_packet). */
  decodePacket(): number {
    const p = this.packet;
    switch (p.type) {
      case PacketType.Tnt8:
      case PacketType.Tnt64:
        return decodeTnt(this, p);
      case PacketType.Cyc:
        return decodeCyc(this, p);
      case PacketType.Pad:
        return 1;
      case PacketType.Fup:
        return decodeFup(this, p);
      case PacketType.Tip:
        return decodeTip(this, p);
      case PacketType.Mtc:
        return decodeMtc(this, p);
      case PacketType.Tsc:
        return decodeTsc(this, p);
      case PacketType.Cbr:
        return decodeCbr(this, p);
      case PacketType.Tma:
        return decodeTma(this, p);
      case PacketType.ModeExec:
        return decodeModeExec(this, p);
      case PacketType.ModeTsx:
        return decodeModeTsx(this, p);
      case PacketType.Pip:
        return decodePip(this, p);
      case PacketType.Ptw:
        return decodePtw(this, p);
      case PacketType.Psb: {
        const err = decodePsb(this);
        if (err <= 0) return err;
        return this.decodePacket();
      }
      case PacketType.PsbEnd:
        return decodePsbend(this);
      case PacketType.TipPge:
        return decodeTipPge(this, p);
      case PacketType.TipPgd:
        return decodeTipPgd(this, p);
      case PacketType.Exstop:
        return decodeExstop(this, p);
      case PacketType.Pwre:
        return decodePwre(this, p);
      case PacketType.Pwrx:
        return decodePwrx(this, p);
      case PacketType.Mwait:
        return decodeMwait(this, p);
      case PacketType.Vmcs:
        return decodeVmcs(this, p);
      case PacketType.Ovf:
        return decodeOvf(this);
      case PacketType.Stop:
        return decodeStop(this);
      case PacketType.Mnt:
        return decodeMnt(this, p);
      case PacketType.Cfe:
        return decodeCfe(this, p);
      case PacketType.Evd:
        return decodeEvd(this, p);
      case PacketType.Trig:
        return decodeTrig(this, p);
      case PacketType.Invalid:
        return this.status < 0 ? this.status : 1;
      default:
        // PEBS-via-PT blocks (libipt does not know them) mean nothing here.
        return 1;
    }
  }

  /**
   * Process packets until a binder made an event (libipt's
   * pt_evt_fetch_event): 0, or a negative ErrorCode.
   */
  private fetchEvent(): number {
    for (;;) {
      const err = this.decodePacket();
      if (err <= 0) return err;
      if (this.event !== null) return -ErrorCode.Internal;
      // The binder asked for a new packet without making an event: that
      // packet is not bound.
      this.bound = false;
      this.fetchPacket();
    }
  }
}
