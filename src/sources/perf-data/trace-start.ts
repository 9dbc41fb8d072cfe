import { PacketDecoder } from '../../packets/decoder.js';
import { ErrorCode } from '../../packets/errors.js';
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


/** How much of a trace's end {@link lastTsc} reads: PSB+ (with TSC) recurs far more often. */
const TAIL_BYTES = 1 << 20;

/**
 * The last TSC packet in the trace's last MiB, or null (no TSC there).
 * Exporters place the sideband that follows a trace (EXIT) after it.
 */
export function lastTsc(trace: TraceSource | Uint8Array): bigint | null {
  const size = trace instanceof Uint8Array ? trace.length : trace.size;
  const from = Math.max(0, size - TAIL_BYTES);
  let tail: Uint8Array;
  if (trace instanceof Uint8Array) tail = trace.subarray(from);
  else {
    tail = new Uint8Array(size - from);
    tail = tail.subarray(0, Math.max(0, trace.read(tail, 0, from, tail.length)));
  }
  const dec = new PacketDecoder(tail);
  if (dec.syncForward() < 0) return null;
  const pkt = new Packet();
  let last: bigint | null = null;
  for (;;) {
    const status = dec.next(pkt);
    if (status === -ErrorCode.Eos) return last;
    if (status < 0) {
      // A packet that does not decode: go on from the next PSB.
      if (dec.syncForward() < 0) return last;
      continue;
    }
    if (pkt.type === PacketType.Tsc) last = (BigInt(pkt.hi >>> 0) << 32n) | BigInt(pkt.lo >>> 0);
  }
}
