/**
 * ptscope's public API. Each layer is usable alone:
 * packets → events (query/time) → flow (images, instruction/block decoders)
 * → analyses → reports.
 */
export { PacketType, PACKET_NAMES, PACKET_TYPE_COUNT, IpCompression, CfeType, EvdType } from './packets/packet-type.js';
export { Packet, copyPacket } from './packets/packet.js';
export { ErrorCode, PtError, errorMessage, errorName } from './packets/errors.js';
export { PacketDecoder, type PacketDecoderOptions } from './packets/decoder.js';
export { PacketStream } from './packets/packet-stream.js';
export { FileSource, BufferSource, type TraceSource } from './packets/trace-source.js';
export { LastIp } from './packets/last-ip.js';
export { PSB_SIZE } from './packets/sync.js';
export { hex64, hex64Pad } from './reports/hex.js';
export { packetToJson } from './reports/packet-json.js';
export { PtdumpFormatter } from './reports/ptdump-format.js';
export { main } from './cli/main.js';
