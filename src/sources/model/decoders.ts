/**
 * Decoder construction, written once: a stream of the model (trace +
 * configuration + image) becomes a packet, instruction or block decoder.
 * The CPU and errata set-up lives here too, so every command and analysis
 * decodes a stream the same way.
 */
import { defaultConfig, type DecoderConfig } from '../../packets/config.js';
import { errataFor, parseCpu } from '../../packets/cpu.js';
import { PacketStream, packetOptionsFor } from '../../packets/packet-stream.js';
import { BufferSource, readAt, type TraceSource } from '../../packets/trace-source.js';
import { BlockDecoder } from '../../flow/block-decoder.js';
import { InsnDecoder, type FlowFlags } from '../../flow/insn-decoder.js';
import { psbOffsetsOf } from '../../flow/parallel/psb-split.js';
import type { TraceStream } from './recording.js';

const DEFAULT_FLAGS: FlowFlags = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false };

/**
 * A decoder configuration for `--cpu TEXT` (`f/m[/s]`, `none` or undefined
 * for no CPU), with that CPU's errata. Throws an Error with one line for a
 * malformed CPU.
 */
export function configForCpu(cpu: string | undefined, base: DecoderConfig = defaultConfig()): DecoderConfig {
  const config = { ...base, flags: { ...base.flags }, addrFilter: { ...base.addrFilter } };
  if (cpu === undefined || cpu === 'none') return config;
  const parsed = parseCpu(cpu);
  if (!parsed) throw new Error(`--cpu ${cpu}: expected family/model[/stepping]`);
  config.cpu = parsed;
  const errata = errataFor(parsed);
  if (typeof errata !== 'number') config.errata = errata;
  return config;
}

/** All bytes of a source. */
function bytesOf(source: TraceSource): Uint8Array {
  if (source instanceof BufferSource) return source.bytes;
  const bytes = new Uint8Array(source.size);
  const done = readAt(source, bytes, 0);
  return done === bytes.length ? bytes : bytes.subarray(0, done);
}


/**
 * The trace bytes of a stream, whole, for the few packet-level passes that
 * index a trace in memory (FlowGuard's and the learned model's features).
 * Decoding never needs it: the decoders below read the stream in windows.
 */
export function readStream(stream: TraceStream): Uint8Array {
  const source = stream.open();
  try {
    return bytesOf(source);
  } finally {
    source.close();
  }
}

/**
 * Bytes [from, to) of a stream, read through its source (a piece of a
 * parallel decode, without the rest); into `into` if given (at least
 * `to - from` bytes long: the result is its start).
 */
export function streamBytes(stream: TraceStream, from: number, to: number, into?: Uint8Array): Uint8Array {
  const source = stream.open();
  try {
    if (into !== undefined && into.length < to - from) throw new Error(`trace stream ${stream.index}: a buffer of ${into.length} bytes cannot hold bytes [${from}, ${to})`);
    const bytes = into === undefined ? new Uint8Array(to - from) : into.subarray(0, to - from);
    const done = readAt(source, bytes, from);
    if (done < bytes.length) throw new Error(`trace stream ${stream.index}: cannot read bytes [${from + done}, ${to})`);
    return bytes;
  } finally {
    source.close();
  }
}

/** Trace offsets of every PSB of a stream (the decoders' own sync search), read through a sliding window: memory flat in trace size. */
export function streamPsbOffsets(stream: TraceStream): number[] {
  const packets = new PacketStream(stream.open(), { pebs: false, skd007: stream.config.errata.skd007 });
  try {
    return psbOffsetsOf(packets);
  } finally {
    packets.close();
  }
}

/**
 * A packet stream over the stream's bytes, read on demand in windows
 * (memory flat in trace size), with the stream's errata. Close it when done.
 */
export function openPacketDecoder(stream: TraceStream, options: { pebs?: boolean } = {}): PacketStream {
  return new PacketStream(stream.open(), { ...packetOptionsFor(stream.config), pebs: options.pebs });
}

/**
 * An instruction decoder over the stream and its image, reading the trace
 * in windows (memory flat in trace size).
 */
export function openInsnDecoder(stream: TraceStream, flags: FlowFlags = DEFAULT_FLAGS, config: DecoderConfig = stream.config): InsnDecoder {
  return new InsnDecoder(new PacketStream(stream.open(), packetOptionsFor(config)), config, stream.image, flags);
}

/**
 * A block decoder over the stream and its image, reading the trace in
 * windows (memory flat in trace size).
 */
export function openBlockDecoder(
  stream: TraceStream,
  flags: FlowFlags & { endOnCall?: boolean; endOnJump?: boolean } = DEFAULT_FLAGS,
  config: DecoderConfig = stream.config,
): BlockDecoder {
  return new BlockDecoder(new PacketStream(stream.open(), packetOptionsFor(config)), config, stream.image, flags);
}
