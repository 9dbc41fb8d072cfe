import type { DecoderConfig } from '../../packets/config.js';
import { ErrorCode } from '../../packets/errors.js';
import type { TraceSource } from '../../packets/trace-source.js';
import {
  PERF_SAMPLE_IDENTIFIER,
  PerfRecord,
  readPerfRecord,
} from '../perf-event/record.js';
import type { TimeConversion } from '../perf-event/time-conversion.js';
import {
  decoderConfigFor,
  type IntelPtInfo,
  type IntelPtTraceSettings,
  parseIntelPtInfo,
  traceSettings,
} from './auxtrace-info.js';
import { type AuxStream, AuxStreamCollector } from './aux-streams.js';
import { NO_PT_DATA, PerfDataError, RandomAccessFile } from './file-access.js';
import {
  type PerfAttrEntry,
  type PerfFeatures,
  type PerfFileHeader,
  readAttrs,
  readFeatures,
  readFileHeader,
} from './header.js';
import { isKernelRecord, isSampleRecord, PerfDataRecordReader } from './reader.js';
import { type ImageForTask, SidebandImageProvider, SidebandTimeline } from './sideband.js';
import { type IdIndexEntry, parseAuxtrace, parseIdIndex, parseTimeConv, PerfUserRecordType } from './user-records.js';

/**
 * perf.data import: one pass over the file builds the model the rest of
 * ptscope uses (speedscope-style: one importer per format, one model):
 * header and features, the Intel PT configuration, the per-cpu (or
 * per-thread) trace streams and the sideband timeline. Trace bytes stay in
 * the file; the model keeps it open until {@link PerfDataModel.close}.
 */
export interface PerfDataModel {
  path: string;
  header: PerfFileHeader;
  features: PerfFeatures;
  attrs: PerfAttrEntry[];
  /** The intel_pt event (attr type = AUXTRACE_INFO's PMU type). */
  ptAttr: PerfAttrEntry | null;
  ptInfo: IntelPtInfo;
  settings: IntelPtTraceSettings;
  /** Decoder configuration for every stream (same CPU and timing setup). */
  decoderConfig: DecoderConfig;
  /** TIME_CONV, else the conversion in AUXTRACE_INFO. */
  timeConv: TimeConversion;
  streams: AuxStream[];
  /** ID_INDEX entries (which queue, cpu and thread each event id belongs to), when the file has them. */
  idIndex: IdIndexEntry[];
  sideband: SidebandTimeline;
  /** Records the importer could not parse, one line each with the offset (the import goes on). */
  warnings: string[];
  file: RandomAccessFile;
  close(): void;
}

export interface ReadPerfDataOptions {
  /** Root under which mapped file names are looked up (the recording machine's files). */
  sysroot?: string;
}

/** Read `path`. Throws PerfDataError: 'format' for a malformed file, 'no-pt' without AUXTRACE data. */
export function readPerfData(path: string): PerfDataModel {
  const file = RandomAccessFile.open(path);
  try {
    return readFrom(file);
  } catch (e) {
    file.close();
    throw e;
  }
}

/** The same for bytes in memory (tests). */
export function readPerfDataBytes(name: string, bytes: Uint8Array): PerfDataModel {
  return readFrom(RandomAccessFile.fromBytes(name, bytes));
}

/** How to find the sample_id layout of a record: by its IDENTIFIER or the one common sample_type. */
function sampleTypeResolver(attrs: PerfAttrEntry[]): (view: DataView, pos: number, size: number, type: number) => bigint {
  const types = new Set(attrs.map((a) => a.attr.sampleType));
  if (types.size <= 1) {
    const only = attrs[0]?.attr.sampleType ?? 0n;
    return () => only;
  }
  const byId = new Map<bigint, bigint>();
  for (const a of attrs) for (const id of a.ids) byId.set(id, a.attr.sampleType);
  const fallback = attrs[0]!.attr.sampleType;
  return (view, pos, size, type) => {
    // With several events perf requires PERF_SAMPLE_IDENTIFIER: first in a
    // SAMPLE, last in other records' sample_id trailer.
    if (!(fallback & PERF_SAMPLE_IDENTIFIER) || size < 16) return fallback;
    const id = isSampleRecord(type) ? view.getBigUint64(pos + 8, true) : view.getBigUint64(pos + size - 8, true);
    return byId.get(id) ?? fallback;
  };
}

/** ID_INDEX entries kept: one per event and cpu or thread, far fewer in any real file. */
const MAX_ID_INDEX = 1 << 16;

function readFrom(file: RandomAccessFile): PerfDataModel {
  const header = readFileHeader(file);
  const attrs = readAttrs(file, header);
  const warnings: string[] = [];
  // The trace does not depend on the feature sections: a bad one is reported, not fatal.
  let features: PerfFeatures = { buildIds: [], auxtraceIndex: [], eventNames: [] };
  try {
    features = readFeatures(file, header);
  } catch (e) {
    if (!(e instanceof PerfDataError)) throw e;
    warnings.push(e.message);
  }
  for (const e of features.eventNames) {
    const a = attrs.find((x) => x.ids.some((id) => e.ids.includes(id)));
    if (a) a.name = e.name;
  }
  const sampleTypeOf = sampleTypeResolver(attrs);

  const reader = new PerfDataRecordReader(file, header.data);
  const rec = new PerfRecord();
  const sideband = new SidebandTimeline();
  const collector = new AuxStreamCollector();
  let ptInfo: IntelPtInfo | null = null;
  let timeConv: TimeConversion | null = null;
  let sawAuxtraceInfo = false;
  const idIndex: IdIndexEntry[] = [];

  for (let r = reader.read(); r !== null; r = reader.read()) {
    if (isKernelRecord(r.type)) {
      if (isSampleRecord(r.type)) continue;
      const st = sampleTypeOf(r.view, r.pos, r.size, r.type);
      const status = readPerfRecord(r.view, r.bytes, r.pos, r.pos + r.size, st, rec);
      if (status < 0) {
        const why = rec.problem || (status === -ErrorCode.BadPacket ? 'bad record' : 'record does not parse');
        warnings.push(`perf record type ${r.type} at offset 0x${r.fileOffset.toString(16)}: ${why}`);
        continue;
      }
      sideband.add(rec, r.fileOffset);
      continue;
    }
    switch (r.type) {
      case PerfUserRecordType.AuxtraceInfo: {
        sawAuxtraceInfo = true;
        const info = parseIntelPtInfo(r.bytes.subarray(r.pos, r.pos + r.size));
        if (typeof info === 'string') throw file.error(r.fileOffset, info);
        if (info !== null) ptInfo = info;
        break;
      }
      case PerfUserRecordType.Auxtrace: {
        const a = parseAuxtrace(r.view, r.pos);
        collector.add(a.idx, a.cpu, a.tid, {
          recordOffset: r.fileOffset,
          fileOffset: r.auxDataOffset,
          size: r.auxDataSize,
          auxOffset: a.auxOffset,
          reference: a.reference,
        });
        break;
      }
      case PerfUserRecordType.IdIndex: {
        const entries = parseIdIndex(r.view, r.pos, r.size);
        if (typeof entries === 'string') warnings.push(`${entries} at offset 0x${r.fileOffset.toString(16)}`);
        else if (idIndex.length + entries.length <= MAX_ID_INDEX) idIndex.push(...entries);
        else warnings.push(`ID_INDEX at offset 0x${r.fileOffset.toString(16)}: more than ${MAX_ID_INDEX} entries in all; the rest are not kept`);
        break;
      }
      case PerfUserRecordType.TimeConv:
        timeConv = parseTimeConv(r.view, r.pos, r.size);
        break;
    }
  }
  sideband.finish();

  if (collector.count === 0) throw new PerfDataError('no-pt', 0, NO_PT_DATA, file.name);
  if (ptInfo === null) {
    throw file.error(header.data.offset, sawAuxtraceInfo ? 'AUX area data is not Intel PT' : 'AUXTRACE records without AUXTRACE_INFO');
  }
  const info: IntelPtInfo = ptInfo;
  const ptAttr = attrs.find((a) => a.attr.type === info.pmuType) ?? null;
  const config = ptAttr?.attr.config ?? 0n;
  return {
    path: file.name,
    header,
    features,
    attrs,
    ptAttr,
    ptInfo: info,
    settings: traceSettings(info, config),
    decoderConfig: decoderConfigFor(info, config, features.cpuId),
    timeConv: timeConv ?? { timeShift: info.timeShift, timeMult: info.timeMult, timeZero: info.timeZero },
    streams: collector.streams(),
    idIndex,
    sideband,
    warnings,
    file,
    close: () => file.close(),
  };
}

/**
 * What a flow decoder needs for one stream: its bytes, the decoder
 * configuration, and the memory image of the task being traced.
 *
 * `imageFor(pid, time)` gives the image of a process at a perf time (for
 * per-cpu streams, ask {@link taskAt} which task ran first). Convert the
 * trace's TSC to perf time with `model.timeConv` (tscToPerfTime).
 */
export interface PerfFlowInput {
  stream: AuxStream;
  source: TraceSource;
  config: DecoderConfig;
  /** The task on this stream at perf time `time` (per-thread streams: always that thread). */
  taskAt(time: bigint): { pid: number; tid: number } | null;
  imageFor(pid: number, time: bigint): ImageForTask;
}

/** The seam for `ptscope flow perf.data`: one input per trace stream. */
export function flowInputs(model: PerfDataModel, options: ReadPerfDataOptions = {}): PerfFlowInput[] {
  const images = new SidebandImageProvider(model.sideband, options.sysroot);
  return model.streams.map((stream) => ({
    stream,
    source: stream.source(model.file),
    config: model.decoderConfig,
    taskAt: (time: bigint) => {
      if (stream.cpu < 0 && stream.tid >= 0) {
        const t = model.sideband.tasks.get(stream.tid);
        return { pid: t?.pid ?? stream.tid, tid: stream.tid };
      }
      return model.sideband.taskOn(stream.cpu, time);
    },
    imageFor: (pid: number, time: bigint) => images.imageFor(pid, time),
  }));
}
