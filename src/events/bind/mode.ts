/**
 * MODE packets (libipt's pt_evt_decode_mode_exec, _mode_tsx).
 *
 * MODE.Exec holds the execution mode and, with event tracing, the interrupt
 * flag; it binds to the next TIP (or TIP.PGE, TIP.PGD), or to a FUP when
 * only the IF changed (CLI/STI with event tracing). Only what changed makes
 * an event; a MODE.Exec that changes nothing still binds its packet, through
 * an Ignore event dropped there.
 *
 * MODE.TSX binds to the next FUP while tracing is enabled (an abort's FUP
 * is also the abort's asynchronous branch); otherwise it stands alone.
 */
import { ErrorCode } from '../../packets/errors.js';
import { execModeOf } from '../../packets/exec-mode.js';
import type { Packet } from '../../packets/packet.js';
import { EventType } from '../event.js';
import { Binding } from '../event-queue.js';
import type { BinderHost } from './binder-host.js';

export function decodeModeExec(d: BinderHost, p: Packet): number {
  let events = 0;
  if (!d.modeExecValid || d.csl !== p.csl || d.csd !== p.csd) {
    const ev = d.evq.enqueue(Binding.Tip | Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.ExecMode;
    ev.mode = execModeOf(p.csl, p.csd);
    d.csl = p.csl;
    d.csd = p.csd;
    events++;
  }
  if (d.flags.enableIflags && (!d.modeExecValid || d.iflag !== p.iflag)) {
    const ev = d.evq.enqueue(Binding.Tip | Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Iflags;
    ev.iflag = p.iflag;
    d.iflag = p.iflag;
    events++;
  }
  if (events === 0) {
    const ev = d.evq.enqueue(Binding.Tip | Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Ignore;
  }
  d.modeExecValid = true;
  return 1;
}

export function decodeModeTsx(d: BinderHost, p: Packet): number {
  if (d.enabled) {
    const ev = d.evq.enqueue(p.abrt ? Binding.Fup : Binding.FupBound);
    if (ev === null) return -ErrorCode.NoMem;
    ev.type = EventType.Tsx;
    ev.speculative = p.intx;
    ev.aborted = p.abrt;
    return 1;
  }
  const ev = d.standalone();
  ev.type = EventType.Tsx;
  ev.speculative = p.intx;
  ev.aborted = p.abrt;
  ev.ip = 0;
  ev.ipSuppressed = true;
  d.eventTime(ev);
  return d.fetchPacket();
}
