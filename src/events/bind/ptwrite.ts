/**
 * PTW (libipt's pt_evt_decode_ptw): a PTWRITE payload. With PTW.IP it binds
 * to the next FUP (the PTWRITE's IP); without it stands alone and the flow
 * decoders bind it to the next PTWRITE instruction.
 */
import { ErrorCode } from '../../packets/errors.js';
import type { Packet } from '../../packets/packet.js';
import { EventType, type PtEvent } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';

/** Payload bytes for PTW's payload-length code (SDM "PTW Packet"); -BadPacket for reserved ones. */
function ptwSize(plc: number): number {
  switch (plc) {
    case 0:
      return 4;
    case 1:
      return 8;
    default:
      return -ErrorCode.BadPacket;
  }
}

function fill(ev: PtEvent, p: Packet, size: number): void {
  ev.type = EventType.Ptwrite;
  ev.size = size;
  ev.payloadHi = p.hi;
  ev.payloadLo = p.lo;
}

export function decodePtw(d: BinderHost, p: Packet): number {
  const size = ptwSize(p.plc);
  if (size < 0) return size;
  if (p.ip) {
    const ev = d.evq.enqueue(Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    fill(ev, p, size);
    return 1;
  }
  const ev = d.standalone();
  fill(ev, p, size);
  ev.ip = 0;
  ev.ipSuppressed = true;
  d.eventTime(ev);
  return d.fetchPacket();
}
