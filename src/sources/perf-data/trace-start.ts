import { PacketDecoder } from '../../packets/decoder.js';
import { Packet } from '../../packets/packet.js';
import { PacketType } from '../../packets/packet-type.js';
import type { TraceSource } from '../../packets/trace-source.js';

/**
 * The TSC of the first PSB+ (before any packet that needs code), or null.
 * Reads only the start of the trace.
 */
export function firstPsbTsc(trace: TraceSource | Uint8Array): bigint | null {
  const n = Math.min(1 << 16, trace instanceof Uint8Array ? trace.length : trace.size);
  let head: Uint8Array;
  if (trace instanceof Uint8Array) head = trace.subarray(0, n);
  else {
    head = new Uint8Array(n);
    trace.read(head, 0, 0, n);
  }
  const dec = new PacketDecoder(head);
  if (dec.syncForward() < 0) return null;
  const pkt = new Packet();
  for (;;) {
    if (dec.next(pkt) <= 0) return null;
    switch (pkt.type) {
      case PacketType.Tsc:
        return (BigInt(pkt.hi >>> 0) << 32n) | BigInt(pkt.lo >>> 0);
      case PacketType.PsbEnd:
      case PacketType.TipPge:
      case PacketType.Tip:
      case PacketType.Tnt8:
      case PacketType.Tnt64:
        return null;
    }
  }
}

