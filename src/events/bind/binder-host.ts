/**
 * What a binder under `bind/` sees of the event decoder: its state and the
 * few calls shared by every binder. The decoder (../event-decoder.ts)
 * implements it and dispatches each packet to its binder, so the binders
 * depend on this declaration only, never on the decoder (libipt's sections
 * of pt_event_decoder.c share the struct pt_event_decoder the same way).
 *
 * A type only: binders receive the decoder object itself, with no wrapper.
 */
import type { DecoderConfig } from '../../packets/config.js';
import type { Packet } from '../../packets/packet.js';
import type { LastIp } from '../../packets/last-ip.js';
import type { PacketStream } from '../../packets/packet-stream.js';
import type { Timing } from '../time.js';
import type { PtEvent } from '../event.js';
import type { EventQueue } from '../event-queue.js';
import type { EventDecoderFlags } from '../event-decoder-flags.js';

export interface BinderHost {
  readonly config: DecoderConfig;
  readonly flags: EventDecoderFlags;
  /** The packet stream, read ahead by lookahead and returned to. */
  readonly packets: PacketStream;
  /**
   * The packet being processed: valid while packets are available; of type
   * Invalid after the packet decoder failed ({@link status} holds why).
   */
  readonly packet: Packet;
  /** The last IP. */
  readonly ip: LastIp;
  /** Time and its calibration. */
  readonly timing: Timing;
  /** Events waiting for their binding packet. */
  readonly evq: EventQueue;
  /** The event made by the last binder (a queue slot or a standalone one), until delivered. */
  event: PtEvent | null;
  /** The packet decoder's last status, kept until the packet is processed. */
  status: number;
  /** The MODE.Exec state (libipt's mode_exec_valid, iflag, csd, csl). */
  modeExecValid: boolean;
  iflag: boolean;
  csd: boolean;
  csl: boolean;
  /** Tracing is enabled. */
  enabled: boolean;
  /** The current packet is already bound: it must not be read as standalone once events are out. */
  bound: boolean;
  /** TNT events have their own slot: only their few fields are ever written. */
  readonly tntEvent: PtEvent;

  /** Scratch for lookahead (never the current packet). */
  readonly scan: Packet;
  readonly scanFup: Packet;
  /** Time and calibration while skipping packets in a lookahead. */
  readonly scanTiming: Timing;

  /** Start over (libipt's pt_evt_reset): no packet, no state, no pending events. */
  resetState(): void;
  /**
   * Fetch the next packet that is not PAD into {@link packet} and return 0;
   * a packet decoder error is kept in {@link status} and the packet becomes
   * Invalid (libipt's pt_evt_fetch_packet). Binders return this when they are
   * done with the current packet and made an event.
   */
  fetchPacket(): number;
  /** Stamp `ev` with the current time (libipt's pt_evt_event_time). */
  eventTime(ev: PtEvent): void;
  /** Give `ev` the last IP; without one the event's IP is suppressed (libipt's pt_evt_event_ip). */
  eventIp(ev: PtEvent): void;
  /** Publish a standalone event: a cleared slot that becomes {@link event}. */
  standalone(): PtEvent;
}
