/**
 * Decoder construction, written once: a stream of the model (trace +
 * configuration + image) becomes a packet, instruction or block decoder.
 * The CPU and errata set-up lives here too, so every command and analysis
 * decodes a stream the same way.
 */
import { defaultConfig, type DecoderConfig } from '../../packets/config.js';
import { errataFor, parseCpu } from '../../packets/cpu.js';
import { PacketDecoder } from '../../packets/decoder.js';
import { BufferSource, type TraceSource } from '../../packets/trace-source.js';
import { BlockDecoder } from '../../flow/block-decoder.js';
import { InsnDecoder, type FlowFlags } from '../../flow/insn-decoder.js';
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

/** All bytes of a source (the decoders below still take one buffer). */
function bytesOf(source: TraceSource): Uint8Array {
  if (source instanceof BufferSource) return source.bytes;
  const bytes = new Uint8Array(source.size);
  let done = 0;
  while (done < bytes.length) {
    const n = source.read(bytes, done, done, bytes.length - done);
    if (n <= 0) break;
    done += n;
  }
  return done === bytes.length ? bytes : bytes.subarray(0, done);
}

/** The trace bytes of a stream (for packet-level passes that need them whole). */
export function readStream(stream: TraceStream): Uint8Array {
  const source = stream.open();
  try {
    return bytesOf(source);
  } finally {
    source.close();
  }
}

/** A packet decoder over the stream, with the stream's errata. */
export function openPacketDecoder(stream: TraceStream, options: { pebs?: boolean } = {}): PacketDecoder {
  return new PacketDecoder(readStream(stream), { pebs: options.pebs, skd007: stream.config.errata.skd007 });
}

/** An instruction decoder over the stream and its image. */
export function openInsnDecoder(stream: TraceStream, flags: FlowFlags = DEFAULT_FLAGS, config: DecoderConfig = stream.config): InsnDecoder {
  const packets = new PacketDecoder(readStream(stream), { pebs: false, skd007: config.errata.skd007 });
  return new InsnDecoder(packets, config, stream.image, flags);
}

/** A block decoder over the stream and its image. */
export function openBlockDecoder(
  stream: TraceStream,
  flags: FlowFlags & { endOnCall?: boolean; endOnJump?: boolean } = DEFAULT_FLAGS,
  config: DecoderConfig = stream.config,
): BlockDecoder {
  const packets = new PacketDecoder(readStream(stream), { pebs: false, skd007: config.errata.skd007 });
  return new BlockDecoder(packets, config, stream.image, flags);
}
