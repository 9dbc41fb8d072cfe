/**
 * Reading ahead in a PSB+ and going back: for its FUP, and for erratum
 * BDM70 (a PSB+ may carry a FUP even though tracing is off, when a TIP.PGE
 * follows it). The event decoder and the edge scanner both ask.
 */
import { ErrorCode } from '../../packets/errors.js';
import { PacketType } from '../../packets/packet-type.js';
import type { Packet } from '../../packets/packet.js';

/** A packet position that can read ahead and go back (the packet decoder, the packet stream). */
export interface PacketLookahead {
  readonly offset: number;
  readonly syncOffset: number;
  next(p: Packet): number;
  restore(offset: number, syncOffset: number): void;
}

/**
 * Read packets into `p` until `decide` gives a result (undefined: read
 * on), then go back to where the scan started. A packet decoder error ends
 * the scan with `onError(error)`.
 */
export function scanAhead(packets: PacketLookahead, p: Packet, decide: (p: Packet) => number | undefined, onError: (error: number) => number = (e) => e): number {
  const offset = packets.offset;
  const sync = packets.syncOffset;
  try {
    for (;;) {
      const size = packets.next(p);
      if (size < 0) return onError(size);
      const result = decide(p);
      if (result !== undefined) return result;
    }
  } finally {
    packets.restore(offset, sync);
  }
}

/**
 * Search the rest of a PSB+ for a FUP (libipt's pt_evt_find_header_fup): 1
 * with the FUP in `out`, 0 if the PSB+ has none, or a negative ErrorCode;
 * the position is kept.
 */
export function findHeaderFup(packets: PacketLookahead, out: Packet): number {
  return scanAhead(packets, out, (p) => {
    switch (p.type) {
      case PacketType.Fup:
        return 1;
      case PacketType.ModeExec:
      case PacketType.ModeTsx:
      case PacketType.Pip:
      case PacketType.Vmcs:
      case PacketType.Mnt:
      case PacketType.Tsc:
      case PacketType.Cbr:
      case PacketType.Tma:
      case PacketType.Mtc:
      case PacketType.Cyc:
      case PacketType.Pad:
      case PacketType.Invalid:
        return undefined;
      case PacketType.PsbEnd:
      case PacketType.Ovf:
        return 0;
      default:
        return -ErrorCode.BadContext;
    }
  });
}

/** BDM70: is the PSB+ followed by a TIP.PGE? 1 yes, 0 no, or a negative ErrorCode; the position is kept and `p` is scratch. */
export function tipPgeFollows(packets: PacketLookahead, p: Packet): number {
  return scanAhead(
    packets,
    p,
    (q) => {
      switch (q.type) {
        case PacketType.TipPge:
          return 1;
        case PacketType.Pad:
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.PsbEnd:
        case PacketType.Pip:
        case PacketType.ModeExec:
        case PacketType.ModeTsx:
        case PacketType.Vmcs:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
        case PacketType.Mnt:
          return undefined;
        default:
          // Any other packet, including ones not known here, ends the search.
          return 0;
      }
    },
    // Running out of packets is not an error.
    (e) => (e === -ErrorCode.Eos ? 0 : e),
  );
}
