/**
 * PSB+ (libipt's pt_evt_decode_psb and its header functions): the packets
 * between PSB and PSBEND repeat the current state, in no defined order, so
 * every one of them binds to PSBEND (or to an OVF in its place). They come
 * out as status updates once PSBEND is reached, the enabled/disabled status
 * first: a FUP in PSB+ means tracing is enabled at its IP.
 *
 * BDM70: a PSB+ right before a TIP.PGE may hold a FUP although tracing is
 * still disabled; it then does not enable tracing.
 */
import { ErrorCode } from '../../packets/errors.js';
import { execModeOf } from '../../packets/exec-mode.js';
import { IpCompression, PacketType } from '../../packets/packet-type.js';
import type { Packet } from '../../packets/packet.js';
import { unsignedFromHiLo } from '../../packets/address.js';
import { EventType, type PtEvent } from '../event.js';
import { ANY_BINDING, Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';
import { tipPgeFollows } from './psb-lookahead.js';

function headerFup(d: BinderHost, p: Packet): number {
  let enabled = p.ipc !== IpCompression.Suppressed;
  if (d.config.errata.bdm70) {
    const err = tipPgeFollows(d.packets, d.scan);
    if (err < 0) return err;
    if (err) enabled = false;
  }
  d.enabled = enabled;
  if (!enabled) return 0;
  return d.ip.update(p);
}

function statusUpdate(d: BinderHost, type: EventType): PtEvent | null {
  const ev = d.evq.enqueue(Binding.Psbend);
  if (ev === null) return null;
  ev.statusUpdate = true;
  ev.type = type;
  return ev;
}

function headerModeExec(d: BinderHost, p: Packet): number {
  // With a known MODE.Exec state, PSB+ checks it; otherwise it sets it.
  if (d.modeExecValid) {
    // The IF bit is only tracked in full with event tracing.
    if (d.flags.enableIflags && d.iflag !== p.iflag) return -ErrorCode.BadStatusUpdate;
    if (d.csd !== p.csd) return -ErrorCode.BadStatusUpdate;
    if (d.csl !== p.csl) return -ErrorCode.BadStatusUpdate;
  } else {
    d.modeExecValid = true;
    d.iflag = p.iflag;
    d.csd = p.csd;
    d.csl = p.csl;
  }
  let ev = statusUpdate(d, EventType.ExecMode);
  if (ev === null) return -ErrorCode.NoMem;
  ev.mode = execModeOf(p.csl, p.csd);
  if (d.flags.enableIflags) {
    ev = statusUpdate(d, EventType.Iflags);
    if (ev === null) return -ErrorCode.NoMem;
    ev.iflag = p.iflag;
  }
  return 0;
}

function headerModeTsx(d: BinderHost, p: Packet): number {
  const ev = statusUpdate(d, EventType.Tsx);
  if (ev === null) return -ErrorCode.NoMem;
  ev.speculative = p.intx;
  ev.aborted = p.abrt;
  return 0;
}

function headerPip(d: BinderHost, p: Packet): number {
  const ev = statusUpdate(d, EventType.AsyncPaging);
  if (ev === null) return -ErrorCode.NoMem;
  ev.cr3 = unsignedFromHiLo(p.hi, p.lo);
  ev.nonRoot = p.nr;
  return 0;
}

function headerVmcs(d: BinderHost, p: Packet): number {
  const ev = statusUpdate(d, EventType.AsyncVmcs);
  if (ev === null) return -ErrorCode.NoMem;
  ev.base = unsignedFromHiLo(p.hi, p.lo);
  return 0;
}

function headerMnt(d: BinderHost, p: Packet): number {
  const ev = d.evq.enqueue(Binding.Psbend);
  if (ev === null) return -ErrorCode.NoMem;
  ev.type = EventType.Mnt;
  ev.payloadHi = p.hi;
  ev.payloadLo = p.lo;
  return 0;
}

function headerCbr(d: BinderHost, p: Packet): number {
  const err = d.timing.onCbr(p, true);
  if (err < 0) return err;
  const ev = statusUpdate(d, EventType.Cbr);
  if (ev === null) return -ErrorCode.NoMem;
  ev.ratio = p.ratio;
  return 0;
}

/**
 * Decode PSB+ up to PSBEND or OVF (the current packet is the PSB). Returns
 * 1 (the events wait for PSBEND; PSBEND or OVF is the current packet) or a
 * negative ErrorCode.
 */
export function decodePsb(d: BinderHost): number {
  // Partial events must not be carried across a PSB.
  if (!d.evq.isEmpty(ANY_BINDING)) return -ErrorCode.BadContext;
  d.ip.reset();
  d.enabled = false;
  // The enabled/disabled status goes first; it is filled in at PSBEND.
  const status = d.evq.enqueue(Binding.Psbend);
  if (status === null) return -ErrorCode.NoMem;
  status.statusUpdate = true;

  const p = d.packet;
  for (;;) {
    d.fetchPacket();
    let err = 0;
    switch (p.type) {
      case PacketType.Fup:
        err = headerFup(d, p);
        break;
      case PacketType.ModeExec:
        err = headerModeExec(d, p);
        break;
      case PacketType.ModeTsx:
        err = headerModeTsx(d, p);
        break;
      case PacketType.Pip:
        err = headerPip(d, p);
        break;
      case PacketType.Vmcs:
        err = headerVmcs(d, p);
        break;
      case PacketType.Mnt:
        err = headerMnt(d, p);
        break;
      case PacketType.Tsc:
        err = d.timing.onTsc(p, true);
        break;
      case PacketType.Cbr:
        err = headerCbr(d, p);
        break;
      case PacketType.Tma:
        err = d.timing.onTma(p);
        break;
      case PacketType.Mtc:
        err = d.timing.onMtc(p);
        break;
      case PacketType.Cyc:
        err = d.timing.onCyc(p);
        break;
      case PacketType.PsbEnd:
        if (d.enabled) status.type = EventType.Enabled;
        else {
          status.type = EventType.Disabled;
          status.ipSuppressed = true;
        }
        return 1;
      case PacketType.Ovf:
        // An OVF ends PSB+ like PSBEND. Without a FUP the status event goes:
        // the FUP may have been lost, and the overflow says what happened.
        if (d.enabled) status.type = EventType.Enabled;
        else if (d.evq.dequeue(Binding.Psbend) !== status) return -ErrorCode.Internal;
        return 1;
      case PacketType.Pad:
        break;
      case PacketType.Invalid:
        err = d.status;
        break;
      default:
        err = -ErrorCode.BadContext;
        break;
    }
    if (err < 0) return err;
  }
}

/**
 * Publish the PSB+ events one at a time (libipt's pt_evt_decode_psbend):
 * 0 with an event, or 1 when none is left.
 */
export function decodePsbend(d: BinderHost): number {
  const ev = d.evq.dequeue(Binding.Psbend);
  if (ev === null) return 1;
  d.event = ev;
  switch (ev.type) {
    case EventType.Enabled:
    case EventType.ExecMode:
    case EventType.Iflags:
    case EventType.Tsx:
    case EventType.AsyncPaging:
    case EventType.AsyncVmcs:
      d.eventIp(ev);
      break;
    case EventType.Disabled:
    case EventType.Cbr:
    case EventType.Mnt:
      break;
    default:
      return -ErrorCode.BadContext;
  }
  d.eventTime(ev);
  return 0;
}
