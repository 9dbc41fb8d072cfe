/**
 * The branch packets (libipt's pt_evt_decode_tip, _tip_pge, _tip_pgd, _tnt):
 *
 * - TNT: conditional branch outcomes, as a TNT event.
 * - TIP: an indirect branch target, as a TIP event; or, after a FUP, the
 *   target of an asynchronous branch, reported first, then the events that
 *   bound to this TIP (MODE.Exec, PIP, VMCS between FUP and TIP).
 * - TIP.PGE: tracing enabled, reported first, then the events that bound to it.
 * - TIP.PGD: tracing disabled; after a FUP an asynchronous disable.
 *
 * Events bound to a TIP come out one per call while the TIP stays the
 * current packet; {@link BinderHost.bound} says the TIP itself is done.
 */
import { ErrorCode } from '../../packets/errors.js';
import type { Packet } from '../../packets/packet.js';
import { EventType, copyEvent } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';
import { PtEvent } from '../event.js';

const swap = new PtEvent();

export function decodeTnt(d: BinderHost, p: Packet): number {
  if (!d.enabled) return -ErrorCode.BadContext;
  const ev = d.tntEvent;
  d.event = ev;
  ev.type = EventType.Tnt;
  ev.statusUpdate = false;
  ev.ipSuppressed = false;
  ev.tntBits = p.tntBits;
  ev.tntSize = p.tntSize;
  d.eventTime(ev);
  return d.fetchPacket();
}

/** The event of the TIP itself: an asynchronous branch's target, or an indirect branch. */
function decodeTipEvent(d: BinderHost): number {
  d.bound = true;
  const branch = d.evq.find(Binding.Tip, EventType.AsyncBranch);
  if (branch !== null) {
    const ev = d.evq.dequeue(Binding.Tip);
    if (ev === null) return -ErrorCode.Internal;
    // The asynchronous branch goes first.
    if (ev !== branch) {
      copyEvent(swap, branch);
      copyEvent(branch, ev);
      copyEvent(ev, swap);
    }
    if (ev.type !== EventType.AsyncBranch) return -ErrorCode.Internal;
    d.event = ev;
    d.eventIp(ev);
    d.eventTime(ev);
    return 0;
  }
  const ev = d.standalone();
  ev.type = EventType.Tip;
  d.eventIp(ev);
  d.eventTime(ev);
  return 0;
}

export function decodeTip(d: BinderHost, p: Packet): number {
  if (!d.enabled) return -ErrorCode.BadContext;
  const err = d.ip.update(p);
  if (err < 0) return err;
  // The branch comes first: events bound to the TIP apply at its target.
  if (!d.bound) return decodeTipEvent(d);
  const ev = d.evq.dequeue(Binding.Tip);
  if (ev === null) return 1;
  d.event = ev;
  switch (ev.type) {
    case EventType.AsyncBranch:
      return -ErrorCode.Internal;
    case EventType.ExecMode:
    case EventType.AsyncPaging:
    case EventType.AsyncVmcs:
    case EventType.Iflags:
      d.eventIp(ev);
      break;
    case EventType.Ignore:
      d.event = null;
      return decodeTip(d, p);
    default:
      return -ErrorCode.BadContext;
  }
  d.eventTime(ev);
  return 0;
}

export function decodeTipPge(d: BinderHost, p: Packet): number {
  const err = d.ip.update(p);
  if (err < 0) return err;
  // The enable comes first, so that users need not hold back the events
  // that bind to it.
  if (!d.bound) {
    const ev = d.standalone();
    ev.type = EventType.Enabled;
    d.eventIp(ev);
    d.enabled = true;
    d.bound = true;
    d.eventTime(ev);
    return 0;
  }
  const ev = d.evq.dequeue(Binding.Tip);
  if (ev === null) return 1;
  d.event = ev;
  switch (ev.type) {
    case EventType.ExecMode:
    case EventType.Iflags:
      d.eventIp(ev);
      break;
    case EventType.Ignore:
      d.event = null;
      return decodeTipPge(d, p);
    default:
      return -ErrorCode.BadContext;
  }
  d.eventTime(ev);
  return 0;
}

export function decodeTipPgd(d: BinderHost, p: Packet): number {
  const err = d.ip.update(p);
  if (err < 0) return err;
  const ev = d.evq.dequeue(Binding.Tip);
  if (ev === null) {
    if (d.bound) return 1;
    const dis = d.standalone();
    dis.type = EventType.Disabled;
    d.eventIp(dis);
    d.eventTime(dis);
    d.enabled = false;
    return d.fetchPacket();
  }
  d.event = ev;
  switch (ev.type) {
    case EventType.AsyncBranch:
      // FUP + TIP.PGD: an asynchronous disable from the FUP's IP.
      ev.type = EventType.AsyncDisabled;
      d.eventIp(ev);
      d.enabled = false;
      d.bound = true;
      break;
    case EventType.AsyncPaging:
    case EventType.AsyncVmcs:
      // These come after the asynchronous disable made from the branch above.
      if (!d.bound) return -ErrorCode.Internal;
      ev.ipSuppressed = true;
      break;
    case EventType.ExecMode:
      // Tracing is disabled where this applies, so the TIP.PGD's IP is not
      // reached and there is no TIP to bind to: the IP is suppressed.
      ev.ipSuppressed = true;
      break;
    default:
      return -ErrorCode.BadContext;
  }
  d.eventTime(ev);
  return 0;
}
