/**
 * TRIG (libipt's pt_evt_decode_trig): a trigger fired. With TRIG.IP it binds
 * to the next FUP, which gives the precise IP (so an instruction count must
 * be present and zero). Without, it stands alone: with a valid count its IP
 * is that many instructions after an anchor the flow decoders track (so it
 * is not suppressed), otherwise there is no IP.
 */
import { ErrorCode } from '../../packets/errors.js';
import type { Packet } from '../../packets/packet.js';
import { EventType } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';

export function decodeTrig(d: BinderHost, p: Packet): number {
  if (p.ip) {
    // A FUP without a valid count would be allowed but is suspicious.
    if (!p.icntv) return -ErrorCode.BadPacket;
    // The FUP gives the precise IP.
    if (p.icnt) return -ErrorCode.BadPacket;
    const ev = d.evq.enqueue(Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Trig;
    ev.trbv = p.trbv;
    ev.mult = p.mult;
    return 1;
  }
  const ev = d.standalone();
  ev.type = EventType.Trig;
  ev.trbv = p.trbv;
  ev.mult = p.mult;
  if (p.icntv) {
    // Instructions are only counted while tracing is enabled; with tracing
    // disabled the IP is precise.
    if (p.icnt && !d.enabled) return -ErrorCode.BadPacket;
    ev.icnt = p.icnt;
    ev.ipSuppressed = false;
  } else {
    ev.icnt = 0;
    ev.ipSuppressed = true;
  }
  d.eventTime(ev);
  return d.fetchPacket();
}
