/**
 * FUP (libipt's pt_evt_decode_fup): the IP of an event that binds to it
 * (overflow, TSX, EXSTOP, MWAIT, PTWRITE, a MODE.Exec without its TIP,
 * event tracing, TRIG), and otherwise the source of an asynchronous branch
 * that the next TIP (interrupt) or TIP.PGD (asynchronous disable) completes.
 *
 * Events queued with {@link Binding.FupBound} consume the FUP; those with
 * {@link Binding.Fup} take its IP but leave it free to start the
 * asynchronous branch as well.
 */
import { ipFromHiLo } from '../../packets/address.js';
import { ErrorCode } from '../../packets/errors.js';
import type { Packet } from '../../packets/packet.js';
import { EventType } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';

export function decodeFup(d: BinderHost, p: Packet): number {
  const err = d.ip.update(p);
  if (err < 0) return err;

  if (!d.evq.isEmpty(Binding.FupBound)) d.bound = true;

  const ev = d.evq.dequeue(Binding.Fup | Binding.FupBound);
  if (ev === null) {
    if (d.bound) return 1;
    // An asynchronous branch needs its source IP; the event could not say
    // that it is suppressed, so report it here.
    const st = d.ip.status();
    if (st < 0) return st;
    const branch = d.evq.enqueue(Binding.Tip);
    if (branch === null) return -ErrorCode.NoMem;
    branch.type = EventType.AsyncBranch;
    branch.at = ipFromHiLo(d.ip.hi, d.ip.lo);
    return 1;
  }

  d.event = ev;
  switch (ev.type) {
    case EventType.Overflow:
      // The time of the OVF is kept: compared with the next event's, it
      // tells how long the overflow lasted.
      d.eventIp(ev);
      d.enabled = true;
      break;
    case EventType.Rsm:
    case EventType.Sipi:
      d.eventTime(ev);
      if (!ev.ipSuppressed) return -ErrorCode.Internal;
      break;
    case EventType.Ignore:
      // A packet that made no event bound this FUP: look at it again.
      d.event = null;
      return decodeFup(d, p);
    default:
      if (!takesFupIp(ev.type)) return -ErrorCode.BadContext;
      d.eventTime(ev);
      d.eventIp(ev);
      break;
  }
  return 0;
}

/**
 * Events that happen at an instruction and take its IP from the FUP that
 * binds them (libipt's pt_evt_decode_fup). Pending when an overflow comes,
 * they are published with the IP suppressed.
 */
export function takesFupIp(type: EventType): boolean {
  switch (type) {
    case EventType.Tsx:
    case EventType.Exstop:
    case EventType.Mwait:
    case EventType.Ptwrite:
    case EventType.ExecMode:
    case EventType.Iflags:
    case EventType.Interrupt:
    case EventType.Iret:
    case EventType.Smi:
    case EventType.Init:
    case EventType.Vmentry:
    case EventType.Vmexit:
    case EventType.Shutdown:
    case EventType.Uintr:
    case EventType.Uiret:
    case EventType.Trig:
    case EventType.Swintr:
    case EventType.Syscall:
      return true;
    default:
      return false;
  }
}
