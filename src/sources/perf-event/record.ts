import { ErrorCode } from '../../packets/errors.js';

/**
 * perf_event records as the kernel writes them to the perf ring buffer
 * (linux/perf_event.h, `enum perf_event_type`): a `perf_event_header`
 * {u32 type, u16 misc, u16 size}, the type's body, then, when the event was
 * opened with `sample_id_all`, a `sample_id` trailer whose fields depend on
 * `perf_event_attr.sample_type`.
 *
 * The parser here serves both the `.sb` sideband files of libipt's tools and
 * perf.data import; it follows libipt's `pev_read` where libipt has an
 * opinion (what is an error, which records carry samples).
 */
export enum PerfRecordType {
  Mmap = 1,
  Lost = 2,
  Comm = 3,
  Exit = 4,
  Throttle = 5,
  Unthrottle = 6,
  Fork = 7,
  Read = 8,
  Sample = 9,
  Mmap2 = 10,
  Aux = 11,
  ItraceStart = 12,
  LostSamples = 13,
  Switch = 14,
  SwitchCpuWide = 15,
}

/** `perf_event_header.misc` bits (linux/perf_event.h). */
export const PERF_RECORD_MISC_CPUMODE_MASK = 0x7;
export const PERF_RECORD_MISC_KERNEL = 0x1;
export const PERF_RECORD_MISC_USER = 0x2;
/** On COMM: the comm changed because of an exec. */
export const PERF_RECORD_MISC_COMM_EXEC = 0x2000;
/** On SWITCH and SWITCH_CPU_WIDE: the task is switched out (same bit as COMM_EXEC). */
export const PERF_RECORD_MISC_SWITCH_OUT = 0x2000;
/** On MMAP2: the record carries a build id instead of maj/min/ino/ino_generation. */
export const PERF_RECORD_MISC_MMAP_BUILD_ID = 0x4000;

/** `perf_event_aux.flags`: some trace data was lost. */
export const PERF_AUX_FLAG_TRUNCATED = 0x1n;

/**
 * `perf_event_attr.sample_type` bits. Only the ones that can appear in the
 * `sample_id` trailer matter to non-SAMPLE records; other bits are ignored
 * there, as the kernel does.
 */
export const PERF_SAMPLE_TID = 0x2n;
export const PERF_SAMPLE_TIME = 0x4n;
export const PERF_SAMPLE_ID = 0x40n;
export const PERF_SAMPLE_CPU = 0x80n;
export const PERF_SAMPLE_STREAM_ID = 0x200n;
export const PERF_SAMPLE_IDENTIFIER = 0x10000n;

/** Size of `struct perf_event_header`. */
export const PERF_HEADER_SIZE = 8;

/**
 * Which `sample_id` fields the last parsed record carried
 * ({@link PerfRecord.samples}).
 */
export enum SampleField {
  Tid = 1 << 0,
  Time = 1 << 1,
  Id = 1 << 2,
  StreamId = 1 << 3,
  Cpu = 1 << 4,
  Identifier = 1 << 5,
}

/**
 * One parsed perf_event record. {@link readPerfRecord} overwrites a single
 * instance per call; only the fields of the record's type (and the samples
 * flagged in {@link samples}) are meaningful:
 * - Mmap: pid, tid, addr, len, pgoff, filename.
 * - Mmap2: the Mmap fields plus maj, min, ino, inoGeneration, prot, mmapFlags;
 *   with PERF_RECORD_MISC_MMAP_BUILD_ID, buildId instead of maj..inoGeneration
 *   (those then hold the raw bytes reinterpreted, as libipt prints them).
 * - Lost: id, lost. LostSamples: lost.
 * - Comm: pid, tid, comm (misc & PERF_RECORD_MISC_COMM_EXEC marks an exec).
 * - Exit, Fork: pid, ppid, tid, ptid, time.
 * - Throttle, Unthrottle: time, id, streamId.
 * - Aux: auxOffset, auxSize, auxFlags.
 * - ItraceStart: pid, tid.
 * - Switch: nothing (direction in misc).
 * - SwitchCpuWide: nextPrevPid, nextPrevTid.
 * - any other type: header only, no samples (as libipt).
 */
export class PerfRecord {
  /** File offset of the header. */
  offset = 0;
  type = 0;
  misc = 0;
  /** Total size including the header. */
  size = 0;

  pid = 0;
  tid = 0;
  ppid = 0;
  ptid = 0;
  addr = 0n;
  len = 0n;
  pgoff = 0n;
  maj = 0;
  min = 0;
  ino = 0n;
  inoGeneration = 0n;
  prot = 0;
  mmapFlags = 0;
  buildId = '';
  filename = '';
  comm = '';
  time = 0n;
  id = 0n;
  streamId = 0n;
  lost = 0n;
  auxOffset = 0n;
  auxSize = 0n;
  auxFlags = 0n;
  nextPrevPid = 0;
  nextPrevTid = 0;

  /** {@link SampleField} bits of the sample_id fields present. */
  samples = 0;
  samplePid = 0;
  sampleTid = 0;
  /** perf clock time (ns), as recorded. */
  sampleTime = 0n;
  sampleId = 0n;
  sampleStreamId = 0n;
  sampleCpu = 0;
  sampleIdentifier = 0n;

  /** Why the last read failed, when the error code alone is vague. */
  problem = '';
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Length of the NUL-terminated string at `pos` including the NUL, or -1 without one before `end`. */
function cstrlen(bytes: Uint8Array, pos: number, end: number): number {
  for (let p = pos; p < end; ++p) if (bytes[p] === 0) return p - pos + 1;
  return -1;
}

function cstring(bytes: Uint8Array, pos: number, lenWithNul: number): string {
  return utf8.decode(bytes.subarray(pos, pos + lenWithNul - 1));
}

/** Body sizes of the fixed-size records (without header and samples). */
const FIXED_BODY: Partial<Record<number, number>> = {
  [PerfRecordType.Lost]: 16,
  [PerfRecordType.Exit]: 24,
  [PerfRecordType.Fork]: 24,
  [PerfRecordType.Throttle]: 24,
  [PerfRecordType.Unthrottle]: 24,
  [PerfRecordType.Aux]: 24,
  [PerfRecordType.ItraceStart]: 8,
  [PerfRecordType.LostSamples]: 8,
  [PerfRecordType.Switch]: 0,
  [PerfRecordType.SwitchCpuWide]: 8,
};

/**
 * Read the record at `offset` of `bytes[..end]` into `rec`.
 *
 * Returns the record size (> 0), or a negated {@link ErrorCode}:
 * - Eos: no record here: `offset` is at `end`, or the header has a valid
 *   size and type 0. `rec.problem` is empty.
 * - Eos with `rec.problem` set: a truncated record (fewer than 8 bytes
 *   left, or the header's size runs past `end`). libipt treats this as a
 *   silent end of stream; callers may want to report it.
 * - NoSync: the header's size is smaller than the header (all-zero padding
 *   included, as in libipt), a sample_id field
 *   lies outside the record, or the body plus samples do not add up to the
 *   header's size (usually a wrong sample type).
 * - BadPacket: a string field without its terminating NUL.
 *
 * `sampleType` is `perf_event_attr.sample_type` of the event that wrote
 * the record (sample_id_all is assumed, as libipt requires).
 */
export function readPerfRecord(
  view: DataView,
  bytes: Uint8Array,
  offset: number,
  end: number,
  sampleType: bigint,
  rec: PerfRecord,
): number {
  rec.offset = offset;
  rec.problem = '';
  rec.samples = 0;
  if (offset >= end) return -ErrorCode.Eos;
  if (end - offset < PERF_HEADER_SIZE) {
    rec.problem = `truncated record header: ${end - offset} bytes left`;
    return -ErrorCode.Eos;
  }

  const type = view.getUint32(offset, true);
  const misc = view.getUint16(offset + 4, true);
  const size = view.getUint16(offset + 6, true);
  rec.type = type;
  rec.misc = misc;
  rec.size = size;

  if (size < PERF_HEADER_SIZE) {
    rec.problem = `record size ${size} smaller than its header`;
    return -ErrorCode.NoSync;
  }
  if (!type) return -ErrorCode.Eos;
  if (end - offset < size) {
    rec.problem = `truncated record: size ${size}, ${end - offset} bytes left`;
    return -ErrorCode.Eos;
  }

  const recEnd = offset + size;
  let pos = offset + PERF_HEADER_SIZE;

  switch (type) {
    case PerfRecordType.Mmap:
    case PerfRecordType.Mmap2: {
      const fixed = type === PerfRecordType.Mmap ? 32 : 64;
      if (recEnd < pos + fixed) return bodyTooShort(rec);
      rec.pid = view.getUint32(pos, true);
      rec.tid = view.getUint32(pos + 4, true);
      rec.addr = view.getBigUint64(pos + 8, true);
      rec.len = view.getBigUint64(pos + 16, true);
      rec.pgoff = view.getBigUint64(pos + 24, true);
      if (type === PerfRecordType.Mmap2) {
        rec.maj = view.getUint32(pos + 32, true);
        rec.min = view.getUint32(pos + 36, true);
        rec.ino = view.getBigUint64(pos + 40, true);
        rec.inoGeneration = view.getBigUint64(pos + 48, true);
        rec.prot = view.getUint32(pos + 56, true);
        rec.mmapFlags = view.getUint32(pos + 60, true);
        rec.buildId = '';
        if (misc & PERF_RECORD_MISC_MMAP_BUILD_ID) {
          // build_id_size (u8), 3 reserved bytes, then up to 20 id bytes.
          const n = Math.min(bytes[pos + 32]!, 20);
          let s = '';
          for (let i = 0; i < n; ++i) s += bytes[pos + 36 + i]!.toString(16).padStart(2, '0');
          rec.buildId = s;
        }
      }
      pos += fixed;
      const slen = cstrlen(bytes, pos, recEnd);
      if (slen < 0) return missingNul(rec, 'filename');
      rec.filename = cstring(bytes, pos, slen);
      pos += (slen + 7) & ~7;
      break;
    }

    case PerfRecordType.Comm: {
      if (recEnd < pos + 8) return bodyTooShort(rec);
      rec.pid = view.getUint32(pos, true);
      rec.tid = view.getUint32(pos + 4, true);
      pos += 8;
      const slen = cstrlen(bytes, pos, recEnd);
      if (slen < 0) return missingNul(rec, 'comm');
      rec.comm = cstring(bytes, pos, slen);
      pos += (slen + 7) & ~7;
      break;
    }

    default: {
      const body = FIXED_BODY[type];
      // Types libipt does not know carry no samples for us: the size is all.
      if (body === undefined) return size;
      if (recEnd < pos + body) return bodyTooShort(rec);
      readFixedBody(view, pos, type, rec);
      pos += body;
      break;
    }
  }

  const sampleSize = readSampleId(view, pos, recEnd, sampleType, rec);
  if (sampleSize < 0) return sampleSize;
  pos += sampleSize;

  if (pos !== recEnd) {
    rec.problem = `record body and samples take ${pos - offset} bytes, header says ${size}`;
    return -ErrorCode.NoSync;
  }
  return size;
}

function readFixedBody(view: DataView, pos: number, type: number, rec: PerfRecord): void {
  switch (type) {
    case PerfRecordType.Lost:
      rec.id = view.getBigUint64(pos, true);
      rec.lost = view.getBigUint64(pos + 8, true);
      return;
    case PerfRecordType.Exit:
    case PerfRecordType.Fork:
      rec.pid = view.getUint32(pos, true);
      rec.ppid = view.getUint32(pos + 4, true);
      rec.tid = view.getUint32(pos + 8, true);
      rec.ptid = view.getUint32(pos + 12, true);
      rec.time = view.getBigUint64(pos + 16, true);
      return;
    case PerfRecordType.Throttle:
    case PerfRecordType.Unthrottle:
      rec.time = view.getBigUint64(pos, true);
      rec.id = view.getBigUint64(pos + 8, true);
      rec.streamId = view.getBigUint64(pos + 16, true);
      return;
    case PerfRecordType.Aux:
      rec.auxOffset = view.getBigUint64(pos, true);
      rec.auxSize = view.getBigUint64(pos + 8, true);
      rec.auxFlags = view.getBigUint64(pos + 16, true);
      return;
    case PerfRecordType.ItraceStart:
      rec.pid = view.getUint32(pos, true);
      rec.tid = view.getUint32(pos + 4, true);
      return;
    case PerfRecordType.LostSamples:
      rec.lost = view.getBigUint64(pos, true);
      return;
    case PerfRecordType.SwitchCpuWide:
      rec.nextPrevPid = view.getUint32(pos, true);
      rec.nextPrevTid = view.getUint32(pos + 4, true);
      return;
    default:
      return;
  }
}

/**
 * Read the sample_id trailer at `pos`. Field order is fixed by the kernel
 * (perf_event_header__init_id / __perf_event_header__init_id): pid/tid,
 * time, id, stream_id, cpu (+u32 reserved), identifier.
 * Returns the trailer size or a negated ErrorCode.
 */
function readSampleId(
  view: DataView,
  start: number,
  end: number,
  sampleType: bigint,
  rec: PerfRecord,
): number {
  let pos = start;
  let present = 0;
  // Each field must lie inside the record; a wrong sample type shows up as
  // a size mismatch (NoSync) rather than a read past the record.
  if (sampleType & PERF_SAMPLE_TID) {
    if (end < pos + 8) return samplesOverrun(rec);
    rec.samplePid = view.getUint32(pos, true);
    rec.sampleTid = view.getUint32(pos + 4, true);
    present |= SampleField.Tid;
    pos += 8;
  }
  if (sampleType & PERF_SAMPLE_TIME) {
    if (end < pos + 8) return samplesOverrun(rec);
    rec.sampleTime = view.getBigUint64(pos, true);
    present |= SampleField.Time;
    pos += 8;
  }
  if (sampleType & PERF_SAMPLE_ID) {
    if (end < pos + 8) return samplesOverrun(rec);
    rec.sampleId = view.getBigUint64(pos, true);
    present |= SampleField.Id;
    pos += 8;
  }
  if (sampleType & PERF_SAMPLE_STREAM_ID) {
    if (end < pos + 8) return samplesOverrun(rec);
    rec.sampleStreamId = view.getBigUint64(pos, true);
    present |= SampleField.StreamId;
    pos += 8;
  }
  if (sampleType & PERF_SAMPLE_CPU) {
    if (end < pos + 8) return samplesOverrun(rec);
    rec.sampleCpu = view.getUint32(pos, true);
    present |= SampleField.Cpu;
    pos += 8;
  }
  if (sampleType & PERF_SAMPLE_IDENTIFIER) {
    if (end < pos + 8) return samplesOverrun(rec);
    rec.sampleIdentifier = view.getBigUint64(pos, true);
    present |= SampleField.Identifier;
    pos += 8;
  }
  rec.samples = present;
  return pos - start;
}

function samplesOverrun(rec: PerfRecord): number {
  rec.problem = `sample_id fields run past the record's size ${rec.size}`;
  return -ErrorCode.NoSync;
}

function bodyTooShort(rec: PerfRecord): number {
  rec.problem = `record size ${rec.size} too small for type ${rec.type}`;
  return -ErrorCode.NoSync;
}

function missingNul(rec: PerfRecord, field: string): number {
  rec.problem = `${field} is not NUL-terminated inside the record`;
  return -ErrorCode.BadPacket;
}
