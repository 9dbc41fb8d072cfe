/**
 * Event tracing (IA32_RTIT_CTL.EventEn): CFE and EVD packets (libipt's
 * pt_evt_decode_cfe, _evd; SDM "Control Flow Event (CFE) Packet", "Event
 * Data (EVD) Packet").
 *
 * EVD carries data for the CFE that follows: a page-fault address (CR2)
 * for an interrupt, the VMX exit reason and qualification for a VM exit. The
 * first EVD queues the event its CFE completes.
 *
 * A CFE with CFE.IP binds to the next FUP, which gives its IP. Without
 * CFE.IP, while tracing is enabled, interrupt-like events (interrupt, SMI,
 * RSM, SIPI, INIT, VM exit, user and software interrupts) take the IP of the
 * next FUP but leave it free for the asynchronous branch it starts; RSM and
 * SIPI have no IP of their own. Otherwise a CFE stands alone, and the flow
 * decoders bind IRET, VM entry, UIRET, SWINTR and SYSCALL events to their
 * instruction. Unknown CFE and EVD types are ignored (a CFE.IP's FUP too).
 */
import { ErrorCode } from '../../packets/errors.js';
import { CfeType, EvdType } from '../../packets/packet-type.js';
import type { Packet } from '../../packets/packet.js';
import { EventType, type PtEvent } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';

/** Publish `ev` (not queued) as a standalone event without an IP. */
function standaloneNoIp(d: BinderHost, ev: PtEvent): number {
  d.eventTime(ev);
  ev.ipSuppressed = true;
  d.event = ev;
  return d.fetchPacket();
}

/**
 * An event that may have been started by EVD (`expected`), completed by this
 * CFE: it binds to the FUP with CFE.IP, takes the next FUP's IP while
 * tracing, else stands alone.
 */
function completeWithData(d: BinderHost, p: Packet, ev: PtEvent): number {
  if (p.ip) return d.evq.requeue(ev, Binding.FupBound) === null ? -ErrorCode.NoMem : 1;
  if (d.enabled) return d.evq.requeue(ev, Binding.Fup) === null ? -ErrorCode.NoMem : 1;
  return standaloneNoIp(d, ev);
}

/** A CFE event that binds to the FUP with CFE.IP, else stands alone. */
function bindOrStandalone(d: BinderHost, p: Packet, type: EventType): number {
  if (p.ip) {
    const ev = d.evq.enqueue(Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = type;
    return 1;
  }
  const ev = d.evq.standalone();
  ev.type = type;
  return standaloneNoIp(d, ev);
}

/** A CFE event that binds to the FUP with CFE.IP, takes the next FUP's IP while tracing, else stands alone. */
function bindTakeOrStandalone(d: BinderHost, p: Packet, type: EventType, vector: number): number {
  if (p.ip || d.enabled) {
    const ev = d.evq.enqueue(p.ip ? Binding.FupBound : Binding.Fup);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = type;
    ev.vector = vector;
    return 1;
  }
  const ev = d.evq.standalone();
  ev.type = type;
  ev.vector = vector;
  return standaloneNoIp(d, ev);
}

/** RSM and SIPI: no IP; they take the next FUP's place while tracing, else stand alone. */
function noIpEvent(d: BinderHost, p: Packet, type: EventType, vector: number): number {
  if (p.ip) return -ErrorCode.BadPacket;
  if (d.enabled) {
    const ev = d.evq.enqueue(Binding.Fup);
    if (ev === null) return -ErrorCode.NoMem;
    ev.ipSuppressed = true;
    ev.type = type;
    ev.vector = vector;
    return 1;
  }
  const ev = d.evq.standalone();
  ev.ipSuppressed = true;
  ev.type = type;
  ev.vector = vector;
  d.eventTime(ev);
  d.event = ev;
  return d.fetchPacket();
}

export function decodeCfe(d: BinderHost, p: Packet): number {
  // An EVD may have queued the event this CFE completes.
  let ev = d.evq.dequeue(Binding.Cfe);
  switch (p.cfeType) {
    case CfeType.Intr:
      if (ev === null) {
        ev = d.evq.standalone();
        ev.type = EventType.Interrupt;
      }
      if (ev.type !== EventType.Interrupt) return -ErrorCode.BadContext;
      ev.vector = p.vector;
      ev.hasVector = true;
      return completeWithData(d, p, ev);
    case CfeType.Iret:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindOrStandalone(d, p, EventType.Iret);
    case CfeType.Smi:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindTakeOrStandalone(d, p, EventType.Smi, 0);
    case CfeType.Rsm:
      if (ev !== null) return -ErrorCode.BadContext;
      return noIpEvent(d, p, EventType.Rsm, 0);
    case CfeType.Sipi:
      if (ev !== null) return -ErrorCode.BadContext;
      return noIpEvent(d, p, EventType.Sipi, p.vector);
    case CfeType.Init:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindTakeOrStandalone(d, p, EventType.Init, 0);
    case CfeType.VmEntry:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindOrStandalone(d, p, EventType.Vmentry);
    case CfeType.VmExit:
    case CfeType.VmExitIntr:
      if (ev === null) {
        ev = d.evq.standalone();
        ev.type = EventType.Vmexit;
      }
      if (ev.type !== EventType.Vmexit) return -ErrorCode.BadContext;
      if (p.cfeType === CfeType.VmExitIntr) {
        ev.hasVector = true;
        ev.vector = p.vector;
      }
      return completeWithData(d, p, ev);
    case CfeType.Shutdown:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindOrStandalone(d, p, EventType.Shutdown);
    case CfeType.Uintr:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindTakeOrStandalone(d, p, EventType.Uintr, p.vector);
    case CfeType.Uiret:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindOrStandalone(d, p, EventType.Uiret);
    case CfeType.SwIntr: {
      if (ev !== null) return -ErrorCode.BadContext;
      const sw = d.evq.standalone();
      sw.type = EventType.Swintr;
      sw.vector = p.vector;
      return completeWithData(d, p, sw);
    }
    case CfeType.Syscall:
      if (ev !== null) return -ErrorCode.BadContext;
      return bindOrStandalone(d, p, EventType.Syscall);
  }
  // EVD only queues events for the CFE types above.
  if (ev !== null) return -ErrorCode.Internal;
  // An unknown CFE adds nothing we need; its FUP must still be consumed.
  if (p.ip) {
    const ign = d.evq.enqueue(Binding.FupBound);
    if (ign === null) return -ErrorCode.NoMem;
    ign.type = EventType.Ignore;
  }
  return 1;
}

export function decodeEvd(d: BinderHost, p: Packet): number {
  let ev = d.evq.peek(Binding.Cfe);
  switch (p.evdType) {
    case EvdType.Cr2:
      if (ev !== null) return -ErrorCode.BadContext;
      ev = d.evq.enqueue(Binding.Cfe);
      if (ev === null) return -ErrorCode.NoMem;
      ev.type = EventType.Interrupt;
      ev.hasCr2 = true;
      ev.cr2Hi = p.hi;
      ev.cr2Lo = p.lo;
      return 1;
    case EvdType.VmxQualification:
    case EvdType.VmxReason:
      if (ev === null) {
        ev = d.evq.enqueue(Binding.Cfe);
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
  // Unknown data is ignored: it is not needed to decode the trace.
  return 1;
}
