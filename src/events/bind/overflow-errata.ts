/**
 * Errata that break the OVF binding rules (libipt's pt_evt_handle_skd010,
 * _apl11, _apl12). Each scans ahead from the packet after the OVF. If it
 * finds out that the erratum hit, it resumes where the scan stopped (or,
 * for APL12, after the FUP) with an overflow event and returns 0; if not,
 * it returns to where it started and returns 1 so that the OVF is handled
 * normally. Timing packets on the way are tracked in the decoder's scan
 * timing, which becomes the time if the scan's position is kept.
 */
import { ErrorCode } from '../../packets/errors.js';
import { PacketType } from '../../packets/packet-type.js';
import { copyPacket, type Packet } from '../../packets/packet.js';
import type { Timing } from '../time.js';
import { EventType } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';
import { findHeaderFup } from './psb-lookahead.js';

/**
 * Resume after an OVF at the IP of `ipPkt`, found by a lookahead that stays
 * where it is: `cur` becomes the current packet and `time` the time; the
 * overflow event keeps the time of the OVF (libipt's pt_evt_recover_ovf_at_ip).
 */
export function recoverOvfAtIp(d: BinderHost, cur: Packet, ipPkt: Packet, time: Timing): number {
  const err = d.ip.update(ipPkt);
  if (err < 0) return err;
  const ev = d.standalone();
  ev.type = EventType.Overflow;
  d.eventTime(ev);
  if (cur !== d.packet) copyPacket(cur, d.packet);
  d.timing.copyFrom(time);
  d.enabled = true;
  d.eventIp(ev);
  return 0;
}

/** Resume after an OVF with tracing disabled, past `cur` (libipt's pt_evt_recover_ovf_disabled). */
export function recoverOvfDisabled(d: BinderHost, cur: Packet, time: Timing): void {
  const ev = d.standalone();
  ev.type = EventType.Overflow;
  ev.ipSuppressed = true;
  d.eventTime(ev);
  if (cur !== d.packet) copyPacket(cur, d.packet);
  d.timing.copyFrom(time);
}

/**
 * Resume after an OVF with tracing disabled, after the FUP that ends
 * `offset` bytes ahead, keeping track of time on the way (libipt's
 * pt_evt_recover_ovf_at_offset, for APL12).
 */
export function recoverOvfAtOffset(d: BinderHost, offset: number): number {
  if (!offset) return -ErrorCode.Internal;
  const p = d.packet;
  for (;;) {
    const size = d.packets.next(p);
    if (size < 0) return size;
    if (offset <= p.size) {
      if (offset < p.size) return -ErrorCode.Internal;
      break;
    }
    offset -= p.size;
    switch (p.type) {
      case PacketType.ModeExec:
      case PacketType.ModeTsx:
      case PacketType.Pip:
      case PacketType.Vmcs:
      case PacketType.Invalid:
        // State-relevant packets cannot lie on this path.
        return -ErrorCode.Internal;
    }
    const err = d.timing.onTimingPacket(p, false);
    if (err < 0) return err;
  }
  const ev = d.standalone();
  ev.type = EventType.Overflow;
  ev.ipSuppressed = true;
  d.eventTime(ev);
  return d.fetchPacket();
}


/**
 * SKD010: after an OVF without a FUP the FUP (or TIP.PGE) may have been
 * dropped although the overflow resolved with tracing enabled. Look for a
 * sign either way: a TIP.PGD, TNT, FUP, TIP or a PSB+ with a FUP means
 * tracing is enabled (resume at the next IP where one can); TIP.PGE, a
 * second MODE.TSX, OVF, STOP or a PSB+ without FUP mean it is disabled.
 */
export function handleSkd010(d: BinderHost): number {
  const packets = d.packets;
  const start = packets.offset;
  const sync = packets.syncOffset;
  const time = d.scanTiming;
  time.copyFrom(d.timing);
  const p = d.scan;
  // A MODE.TSX may bind to the FUP we resume at.
  let tsxFound = false;
  let tsxIntx = false;
  let tsxAbrt = false;
  let keep = false;
  try {
    for (;;) {
      const size = packets.next(p);
      // Out of packets: assume the trace is correct.
      if (size < 0) return size === -ErrorCode.Eos ? 1 : size;
      switch (p.type) {
        case PacketType.TipPge:
          return 1;
        case PacketType.TipPgd:
          // Clearly the erratum: resume after the disable.
          keep = true;
          recoverOvfDisabled(d, p, time);
          return d.fetchPacket();
        case PacketType.Tnt8:
        case PacketType.Tnt64:
          // The erratum, but we cannot tell how many bits will have been
          // used by the time an IP comes: leave it.
          return 1;
        case PacketType.Pip:
        case PacketType.Vmcs:
          // Changes lost with the overflow anyway.
          break;
        case PacketType.ModeExec:
          // Binds to a TIP (the erratum) or TIP.PGE (fine); either way the
          // mode change is dropped, as others were in the overflow.
          break;
        case PacketType.ModeTsx:
          // A second one means tracing is disabled.
          if (tsxFound) return 1;
          tsxFound = true;
          tsxIntx = p.intx;
          tsxAbrt = p.abrt;
          break;
        case PacketType.Fup: {
          // Tracing is enabled: resume at this FUP.
          keep = true;
          if (tsxFound) {
            const ev = d.evq.enqueue(Binding.FupBound);
            if (ev === null) return -ErrorCode.NoMem;
            ev.type = EventType.Tsx;
            ev.speculative = tsxIntx;
            ev.aborted = tsxAbrt;
          }
          return recoverOvfAtIp(d, p, p, time);
        }
        case PacketType.Tip: {
          // Resume at the TIP's IP, after the TIP.
          keep = true;
          const err = recoverOvfAtIp(d, p, p, time);
          if (err < 0) return err;
          return d.fetchPacket();
        }
        case PacketType.Psb: {
          // Tracing is enabled if and only if this PSB+ has a FUP.
          const found = findHeaderFup(d.packets, d.scanFup);
          if (found < 0) return found === -ErrorCode.Eos ? 1 : found;
          if (!found) return 1;
          if (d.scanFup.type !== PacketType.Fup) return -ErrorCode.Internal;
          keep = true;
          return recoverOvfAtIp(d, p, d.scanFup, time);
        }
        case PacketType.PsbEnd:
          return -ErrorCode.BadContext;
        case PacketType.Ovf:
        case PacketType.Stop:
          return 1;
        case PacketType.Pad:
        case PacketType.Mnt:
        case PacketType.Pwre:
        case PacketType.Pwrx:
        case PacketType.Evd:
        case PacketType.Trig:
          break;
        case PacketType.Exstop:
          // A standalone EXSTOP may be skipped; one with a FUP may not.
          if (!p.ip) break;
          return 1;
        case PacketType.Mwait:
          return 1;
        case PacketType.Ptw:
          if (!p.ip) break;
          return 1;
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc: {
          const err = time.onTimingPacket(p, false);
          if (err < 0) return err;
          break;
        }
        case PacketType.Cfe:
          if (!p.ip) break;
          return 1;
        default:
          // Invalid and unknown packets cannot be skipped.
          return 1;
      }
    }
  } finally {
    if (!keep) packets.restore(start, sync);
  }
}

/**
 * APL11: an OVF may be followed by a spurious TIP.PGD. If one comes before
 * anything that shows the state, resume after it with tracing disabled.
 */
export function handleApl11(d: BinderHost): number {
  const packets = d.packets;
  const start = packets.offset;
  const sync = packets.syncOffset;
  const time = d.scanTiming;
  time.copyFrom(d.timing);
  const p = d.scan;
  let keep = false;
  try {
    for (;;) {
      const size = packets.next(p);
      if (size < 0) return size;
      switch (p.type) {
        case PacketType.TipPgd:
          keep = true;
          recoverOvfDisabled(d, p, time);
          return d.fetchPacket();
        case PacketType.Fup:
        case PacketType.Psb:
        case PacketType.TipPge:
        case PacketType.Stop:
        case PacketType.Ovf:
        case PacketType.ModeExec:
        case PacketType.ModeTsx:
        case PacketType.Pip:
        case PacketType.Vmcs:
        case PacketType.Exstop:
        case PacketType.Mwait:
        case PacketType.Pwre:
        case PacketType.Pwrx:
        case PacketType.Ptw:
          // The erratum does not apply.
          return 1;
        case PacketType.PsbEnd:
        case PacketType.Tip:
        case PacketType.Tnt8:
        case PacketType.Tnt64:
          // Normal decoding diagnoses those.
          return 1;
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc: {
          const err = time.onTimingPacket(p, false);
          if (err < 0) return err;
          break;
        }
        case PacketType.Pad:
        case PacketType.Mnt:
        case PacketType.Cfe:
        case PacketType.Evd:
        case PacketType.Trig:
          break;
        default:
          return 1;
      }
    }
  } finally {
    if (!keep) packets.restore(start, sync);
  }
}

/**
 * APL12: an OVF followed by a FUP (`offset` bytes ahead, up to its end) may
 * have resolved with tracing disabled all the same. Tracing is disabled if a
 * PSB+ without FUP, a STOP or a TIP.PGE comes before a packet that needs it
 * enabled (TNT, TIP, TIP.PGD): then skip to after the FUP, tracking time.
 */
export function handleApl12(d: BinderHost, offset: number): number {
  const status = apl12Applies(d, offset);
  if (status !== 0) return status;
  return recoverOvfAtOffset(d, offset);
}

/** Scan past the FUP: 0 if tracing turns out disabled, 1 if not (or unknown), or an error. */
function apl12Applies(d: BinderHost, offset: number): number {
  const packets = d.packets;
  const start = packets.offset;
  const sync = packets.syncOffset;
  const p = d.scan;
  try {
    const after = start + offset;
    if (after > packets.size) return -ErrorCode.Internal;
    packets.restore(after, sync);
    for (;;) {
      const size = packets.next(p);
      if (size < 0) return size === -ErrorCode.Eos ? 1 : size;
      switch (p.type) {
        case PacketType.Tnt8:
        case PacketType.Tnt64:
        case PacketType.Tip:
        case PacketType.TipPgd:
          return 1;
        case PacketType.Psb: {
          const found = findHeaderFup(d.packets, d.scanFup);
          if (found !== 0) return found === -ErrorCode.Eos ? 1 : found;
          return 0;
        }
        case PacketType.Stop:
        case PacketType.TipPge:
          return 0;
        case PacketType.PsbEnd:
        case PacketType.Ovf:
          return 1;
        case PacketType.Pad:
        case PacketType.Fup:
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
        case PacketType.Exstop:
        case PacketType.Mwait:
        case PacketType.Pwre:
        case PacketType.Pwrx:
        case PacketType.Ptw:
        case PacketType.Mnt:
        case PacketType.Pip:
        case PacketType.Vmcs:
        case PacketType.ModeExec:
        case PacketType.ModeTsx:
        case PacketType.Cfe:
        case PacketType.Evd:
        case PacketType.Trig:
          break;
        default:
          return 1;
      }
    }
  } finally {
    packets.restore(start, sync);
  }
}
