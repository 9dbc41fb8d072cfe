/**
 * Timing packets (TSC, TMA, MTC, CYC; CBR in bind/standalone.ts): they
 * update the time and its calibration and make no event (libipt's
 * pt_evt_decode_tsc/tma/mtc/cyc). Inside PSB+ the same packets are applied
 * by bind/psb.ts, with PSB+'s rules for TSC and CBR.
 */
import type { Packet } from '../../packets/packet.js';
import type { BinderHost } from './binder-host.js';

export function decodeTsc(d: BinderHost, p: Packet): number {
  const err = d.timing.onTsc(p, false);
  return err < 0 ? err : 1;
}

export function decodeTma(d: BinderHost, p: Packet): number {
  const err = d.timing.onTma(p);
  return err < 0 ? err : 1;
}

export function decodeMtc(d: BinderHost, p: Packet): number {
  const err = d.timing.onMtc(p);
  return err < 0 ? err : 1;
}

export function decodeCyc(d: BinderHost, p: Packet): number {
  const err = d.timing.onCyc(p);
  return err < 0 ? err : 1;
}
