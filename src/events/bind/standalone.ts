/**
 * Packets that make an event on their own, right away: STOP, MNT and CBR
 * (libipt's pt_evt_decode_stop/mnt/cbr). A CBR outside PSB+ also restarts
 * the timing calibration (a frequency change).
 */
import type { Packet } from '../../packets/packet.js';
import { EventType } from '../event.js';
import type { BinderHost } from './binder-host.js';

export function decodeStop(d: BinderHost): number {
  const ev = d.standalone();
  ev.type = EventType.Stop;
  d.eventTime(ev);
  return d.fetchPacket();
}

export function decodeMnt(d: BinderHost, p: Packet): number {
  const ev = d.standalone();
  ev.type = EventType.Mnt;
  ev.payloadHi = p.hi;
  ev.payloadLo = p.lo;
  d.eventTime(ev);
  return d.fetchPacket();
}

export function decodeCbr(d: BinderHost, p: Packet): number {
  const err = d.timing.onCbr(p, false);
  if (err < 0) return err;
  const ev = d.standalone();
  ev.type = EventType.Cbr;
  ev.ratio = p.ratio;
  d.eventTime(ev);
  return d.fetchPacket();
}
