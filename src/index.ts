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

// Decoder configuration, CPU errata and time.
export { defaultConfig, type DecoderConfig } from './packets/config.js';
export { parseCpu, errataFor, type Cpu, type Errata } from './packets/cpu.js';
export { encodePacket } from './packets/encoder.js';
export { TraceWriter } from './packets/trace-writer.js';

// Events and instruction flow.
export { EventType, PtEvent } from './events/event.js';
export { Status } from './events/status.js';
export { Image } from './flow/image.js';
export { ByteSourceCache } from './flow/section.js';
export { ANY_ASID, Asid, formatIp } from './flow/address-space.js';
export { ElfFile, loadElf } from './flow/elf.js';
export { InstructionInfo, InsnClass, ExecMode } from './flow/instruction.js';
export { InstructionDecoder } from './flow/instruction-decoder.js';
export { InsnDecoder, type FlowFlags } from './flow/insn-decoder.js';
export { Block, BlockDecoder } from './flow/block-decoder.js';
export { ControlFlowWalker, TransferKind, GapKind, type FlowConsumer, type FlowStats } from './flow/control-flow.js';

// Edge coverage for fuzzers.
export { EdgeCoverage, fastPathUnavailable, type EdgeCoverageOptions, type EdgeCoverageStats, type DecodePath } from './flow/edges/edge-coverage.js';
export { AFL_MAP_SIZE, EdgeCounts, aflBucket, showmapClass, blockHash, edgeId, bitmapFnv1a64 } from './flow/edges/edge-map.js';
export { EdgePairs } from './flow/edges/edge-pairs.js';

// Inputs: every format becomes one Recording model.
export type { Recording, TraceStream, RecordedProcess, RecordedThread, ImageMapping, ProgramInfo, ExitInfo, RecordingFormat } from './sources/model/recording.js';
export { primaryStream, streamTitle } from './sources/model/recording.js';
export { openRecording, detectInputKind, type OpenOptions, type InputKind } from './sources/import/open-recording.js';
export { importBundle, readBundleManifest } from './sources/import/bundle-import.js';
export { importPerfDataFile } from './sources/import/perf-data-import.js';
export { importRawTrace, type RawTraceSpec } from './sources/import/raw-import.js';
export { InputError } from './sources/import/safe-files.js';
export { configForCpu, openPacketDecoder, openInsnDecoder, openBlockDecoder, readStream } from './sources/model/decoders.js';
export { record, RecordError, type RecordOptions } from './sources/recorder/record.js';
export { readPerfData } from './sources/perf-data/perf-data.js';

// Analyses.
export { analyzeTrace, defaultDetectors, type AnalyzeResult, type AnalyzeOptions } from './analyses/analyze.js';
export { traceInput, traceInputs, type TraceInput } from './analyses/trace-input.js';
