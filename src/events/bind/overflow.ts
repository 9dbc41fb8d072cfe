/**
 * OVF (libipt's pt_evt_decode_ovf): the trace overflowed and packets were
 * lost. An OVF ends PSB+ like PSBEND; pending events are published (without
 * an IP) or dropped; the decoder starts over, keeping the time.
 *
 * If the overflow resolved while tracing was enabled, the OVF binds to a
 * FUP (only timing packets may come between): tracing resumes at its IP.
 * Otherwise (any other packet first) the overflow event stands alone and
 * tracing is disabled; a TIP.PGE enables it later. The errata SKD010, APL11
 * and APL12 break these rules; their work-arounds are in overflow-errata.ts.
 */
import { ErrorCode } from '../../packets/errors.js';
import { PacketType } from '../../packets/packet-type.js';
import { EventType } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';
import { takesFupIp } from './fup.js';
import { scanAhead } from './psb-lookahead.js';
import { decodePsbend } from './psb.js';
import { handleApl11, handleApl12, handleSkd010 } from './overflow-errata.js';

/**
 * Search for the FUP the OVF binds to, from the packet stream's position,
 * which is restored afterwards (libipt's pt_evt_find_ovf_fup): the offset
 * from there to just after the FUP (> 0), 0 if a packet that needs tracing
 * disabled comes first, or a negative ErrorCode.
 */
function findOvfFup(d: BinderHost): number {
  let offset = 0;
  return scanAhead(d.packets, d.scan, (p) => {
    if (!p.size) return -ErrorCode.BadPacket;
    offset += p.size;
    switch (p.type) {
      case PacketType.Fup:
        return offset;
      case PacketType.Pad:
      case PacketType.Mnt:
      case PacketType.Cbr:
      case PacketType.Tsc:
      case PacketType.Tma:
      case PacketType.Mtc:
      case PacketType.Cyc:
      case PacketType.Invalid:
      case PacketType.Bbp:
      case PacketType.Bip:
      case PacketType.Bep:
        break;
      case PacketType.Psb:
      case PacketType.TipPge:
      case PacketType.ModeExec:
      case PacketType.ModeTsx:
      case PacketType.Pip:
      case PacketType.Vmcs:
      case PacketType.Stop:
      case PacketType.Ovf:
      case PacketType.Exstop:
      case PacketType.Mwait:
      case PacketType.Pwre:
      case PacketType.Pwrx:
      case PacketType.Ptw:
      case PacketType.Cfe:
      case PacketType.Evd:
      case PacketType.Trig:
        return 0;
      case PacketType.PsbEnd:
      case PacketType.Tip:
      case PacketType.TipPgd:
      case PacketType.Tnt8:
      case PacketType.Tnt64:
        return -ErrorCode.BadContext;
    }
    return undefined;
  });
}

export function decodeOvf(d: BinderHost): number {
  // Publish pending PSB+ events first.
  let err = decodePsbend(d);
  if (err <= 0) return err;

  // Publish other pending events too, without an IP: with tracing enabled
  // they could not be placed, so they are dropped.
  while (!d.enabled) {
    const ev = d.evq.dequeue(Binding.FupBound | Binding.Fup | Binding.Tip | Binding.Exstop | Binding.Pwrx);
    if (ev === null) break;
    if (takesFupIp(ev.type)) {
      ev.ipSuppressed = true;
      d.event = ev;
      return 0;
    }
    switch (ev.type) {
      case EventType.Pwre:
      case EventType.Rsm:
      case EventType.Sipi:
        d.event = ev;
        return 0;
      default:
        continue;
    }
  }

  // Start over, but keep the time (and, if asked, the calibration).
  const saved = d.scanTiming;
  saved.copyFrom(d.timing);
  d.resetState();
  d.timing.time.copyFrom(saved.time);
  if (d.flags.keepTcalOnOvf) {
    err = saved.tcal.onOvf();
    if (err < 0) return err;
    d.timing.tcal.copyFrom(saved.tcal);
  }

  const offset = findOvfFup(d);
  if (offset <= 0) {
    // SKD010: the FUP may have been dropped.
    if (d.config.errata.skd010) {
      err = handleSkd010(d);
      if (err <= 0) return err;
    }
    // APL11: an extra TIP.PGD, which the search above diagnosed.
    if (d.config.errata.apl11 && offset === -ErrorCode.BadContext) {
      err = handleApl11(d);
      if (err <= 0) return err;
    }
    // The search's error stands unless an erratum explained it; an
    // overflow at the end of the trace stands alone.
    if (offset < 0 && offset !== -ErrorCode.Eos) return offset;
    const ev = d.standalone();
    ev.type = EventType.Overflow;
    ev.ipSuppressed = true;
    d.eventTime(ev);
    return d.fetchPacket();
  }

  // APL12: an extra FUP although the overflow resolved with tracing disabled.
  if (d.config.errata.apl12) {
    err = handleApl12(d, offset);
    if (err <= 0) return err;
  }

  const ev = d.evq.enqueue(Binding.FupBound);
  if (ev === null) return -ErrorCode.NoMem;
  ev.type = EventType.Overflow;
  d.eventTime(ev);
  return 1;
}
