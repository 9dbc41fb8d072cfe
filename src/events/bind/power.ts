/**
 * Power events (libipt's pt_evt_decode_exstop, _mwait, _pwre, _pwrx).
 *
 * - MWAIT binds to the EXSTOP that follows; both then bind to the same FUP
 *   (EXSTOP.IP), or both stand alone, MWAIT first.
 * - EXSTOP with IP binds to the next FUP; without it stands alone.
 * - PWRE binds to the PWRX that ends the C-state and is reported there, with
 *   its own time; a PWRX without a PWRE stands alone.
 */
import { ErrorCode } from '../../packets/errors.js';
import type { Packet } from '../../packets/packet.js';
import { EventType, copyEvent } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';

export function decodeExstop(d: BinderHost, p: Packet): number {
  let ev = d.evq.dequeue(Binding.Exstop);
  if (ev !== null) {
    if (ev.type !== EventType.Mwait) return -ErrorCode.Internal;
    if (p.ip) {
      // MWAIT and EXSTOP bind to the same FUP; EXSTOP is queued below.
      const mwait = d.evq.enqueue(Binding.FupBound);
      if (mwait === null) return -ErrorCode.NoMem;
      copyEvent(mwait, ev);
    } else {
      // Both stand alone: MWAIT now, EXSTOP on the next call (this packet
      // stays current).
      ev.ip = 0;
      ev.ipSuppressed = true;
      d.event = ev;
      d.eventTime(ev);
      return 0;
    }
  }
  if (p.ip) {
    ev = d.evq.enqueue(Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Exstop;
    return 1;
  }
  ev = d.standalone();
  ev.type = EventType.Exstop;
  ev.ip = 0;
  ev.ipSuppressed = true;
  d.eventTime(ev);
  return d.fetchPacket();
}

export function decodeMwait(d: BinderHost, p: Packet): number {
  const ev = d.evq.enqueue(Binding.Exstop);
  if (ev === null) return -ErrorCode.NoMem;
  ev.type = EventType.Mwait;
  ev.hints = p.hints;
  ev.ext = p.ext;
  return 1;
}

export function decodePwre(d: BinderHost, p: Packet): number {
  const ev = d.evq.enqueue(Binding.Pwrx);
  if (ev === null) return -ErrorCode.NoMem;
  ev.type = EventType.Pwre;
  ev.state = p.state;
  ev.subState = p.subState;
  ev.hw = p.hw;
  d.eventTime(ev);
  return 1;
}

export function decodePwrx(d: BinderHost, p: Packet): number {
  const pwre = d.evq.dequeue(Binding.Pwrx);
  if (pwre !== null) {
    if (pwre.type !== EventType.Pwre) return -ErrorCode.Internal;
    // The PWRE comes out now, with its own time; the PWRX stays current.
    d.event = pwre;
    return 0;
  }
  const ev = d.standalone();
  ev.type = EventType.Pwrx;
  ev.last = p.last;
  ev.deepest = p.deepest;
  ev.interrupt = p.wakeInterrupt;
  ev.store = p.wakeStore;
  ev.autonomous = p.wakeAutonomous;
  d.eventTime(ev);
  return d.fetchPacket();
}
