/**
 * PIP and VMCS (libipt's pt_evt_decode_pip, _vmcs): a CR3 or VMCS change.
 * Between the FUP and TIP of an asynchronous branch they bind to that TIP
 * (asynchronous paging/VMCS, VMCS ordered before PIP); otherwise they stand
 * alone and the flow decoders bind them to the instruction that made the
 * change (MOV CR3, VMPTRLD, VMLAUNCH, VMRESUME, far branches).
 */
import { unsignedFromHiLo } from '../../packets/address.js';
import { ErrorCode } from '../../packets/errors.js';
import type { Packet } from '../../packets/packet.js';
import { EventType, copyEvent } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';

export function decodePip(d: BinderHost, p: Packet): number {
  // An unbound FUP queued an asynchronous branch for the TIP: bind there too.
  if (d.evq.find(Binding.Tip, EventType.AsyncBranch) !== null) {
    const ev = d.evq.enqueue(Binding.Tip);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.AsyncPaging;
    ev.cr3 = unsignedFromHiLo(p.hi, p.lo);
    ev.nonRoot = p.nr;
    return 1;
  }
  const ev = d.standalone();
  ev.type = EventType.Paging;
  ev.cr3 = unsignedFromHiLo(p.hi, p.lo);
  ev.nonRoot = p.nr;
  d.eventTime(ev);
  return d.fetchPacket();
}

export function decodeVmcs(d: BinderHost, p: Packet): number {
  const base = unsignedFromHiLo(p.hi, p.lo);
  // VMCS goes before a PIP of the same asynchronous branch: the PIP's slot
  // takes the VMCS, and the PIP moves to a new one.
  const paging = d.evq.find(Binding.Tip, EventType.AsyncPaging);
  if (paging !== null) {
    const moved = d.evq.enqueue(Binding.Tip);
    if (moved === null) return -ErrorCode.NoMem;
    copyEvent(moved, paging);
    paging.type = EventType.AsyncVmcs;
    paging.base = base;
    return 1;
  }
  if (d.evq.find(Binding.Tip, EventType.AsyncBranch) !== null) {
    const ev = d.evq.enqueue(Binding.Tip);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.AsyncVmcs;
    ev.base = base;
    return 1;
  }
  const ev = d.standalone();
  ev.type = EventType.Vmcs;
  ev.base = base;
  d.eventTime(ev);
  return d.fetchPacket();
}
