import type { TimeConversion } from '../perf-event/time-conversion.js';

/**
 * Records perf itself writes into perf.data (PERF_RECORD_USER_TYPE_START
 * and up, tools/lib/perf/include/perf/event.h). They carry no sample_id
 * trailer. The kernel's records (MMAP, COMM, ...) are parsed by
 * ../perf-event/record.ts.
 */
export enum PerfUserRecordType {
  HeaderAttr = 64,
  HeaderEventType = 65,
  HeaderTracingData = 66,
  HeaderBuildId = 67,
  FinishedRound = 68,
  IdIndex = 69,
  AuxtraceInfo = 70,
  Auxtrace = 71,
  AuxtraceError = 72,
  ThreadMap = 73,
  CpuMap = 74,
  StatConfig = 75,
  Stat = 76,
  StatRound = 77,
  EventUpdate = 78,
  TimeConv = 79,
  HeaderFeature = 80,
  Compressed = 81,
  FinishedInit = 82,
}

/**
 * PERF_RECORD_AUXTRACE: `{header; u64 size, offset, reference; u32 idx,
 * tid, cpu, reserved}`. `size` bytes of trace follow the record and are not
 * counted in `header.size`.
 */
export const AUXTRACE_RECORD_SIZE = 48;

export interface AuxtraceRecord {
  /** Bytes of trace data after the record. */
  size: number;
  /** Offset of the data in the AUX area (continuous per mmap). */
  auxOffset: bigint;
  /** A TSC value when the data was read (perf record), used to order snapshots. */
  reference: bigint;
  /** The mmap (queue) index: one per cpu with per-cpu mmaps, one per thread otherwise. */
  idx: number;
  /** -1 for per-cpu mmaps. */
  tid: number;
  /** -1 for per-thread mmaps. */
  cpu: number;
}

export function parseAuxtrace(v: DataView, pos: number): AuxtraceRecord {
  return {
    size: Number(v.getBigUint64(pos + 8, true)),
    auxOffset: v.getBigUint64(pos + 16, true),
    reference: v.getBigUint64(pos + 24, true),
    idx: v.getUint32(pos + 32, true),
    tid: v.getInt32(pos + 36, true),
    cpu: v.getInt32(pos + 40, true),
  };
}

export function encodeAuxtrace(r: AuxtraceRecord): Uint8Array {
  const b = new Uint8Array(AUXTRACE_RECORD_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, PerfUserRecordType.Auxtrace, true);
  v.setUint16(6, AUXTRACE_RECORD_SIZE, true);
  v.setBigUint64(8, BigInt(r.size), true);
  v.setBigUint64(16, r.auxOffset, true);
  v.setBigUint64(24, r.reference, true);
  v.setUint32(32, r.idx, true);
  v.setInt32(36, r.tid, true);
  v.setInt32(40, r.cpu, true);
  return b;
}

/**
 * PERF_RECORD_TIME_CONV: `{header; u64 time_shift, time_mult, time_zero}`
 * and, since Linux 5.10, `u64 time_cycles, time_mask; u8
 * cap_user_time_zero, cap_user_time_short, reserved[6]`.
 */
export const TIME_CONV_SIZE = 56;
export const TIME_CONV_SIZE_V1 = 32;

export interface TimeConvRecord extends TimeConversion {
  capUserTimeZero: boolean;
  capUserTimeShort: boolean;
}

export function parseTimeConv(v: DataView, pos: number, size: number): TimeConvRecord | null {
  if (size < TIME_CONV_SIZE_V1) return null;
  const r: TimeConvRecord = {
    timeShift: Number(v.getBigUint64(pos + 8, true) & 0xffffn),
    timeMult: Number(v.getBigUint64(pos + 16, true) & 0xffffffffn),
    timeZero: v.getBigUint64(pos + 24, true),
    capUserTimeZero: true,
    capUserTimeShort: false,
  };
  if (size >= TIME_CONV_SIZE) {
    r.capUserTimeZero = v.getUint8(pos + 48) !== 0;
    r.capUserTimeShort = v.getUint8(pos + 49) !== 0;
    if (r.capUserTimeShort) {
      r.timeCycles = v.getBigUint64(pos + 32, true);
      r.timeMask = v.getBigUint64(pos + 40, true);
    }
  }
  return r;
}

export function encodeTimeConv(r: TimeConvRecord): Uint8Array {
  const b = new Uint8Array(TIME_CONV_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, PerfUserRecordType.TimeConv, true);
  v.setUint16(6, TIME_CONV_SIZE, true);
  v.setBigUint64(8, BigInt(r.timeShift), true);
  v.setBigUint64(16, BigInt(r.timeMult), true);
  v.setBigUint64(24, r.timeZero, true);
  v.setBigUint64(32, r.timeCycles ?? 0n, true);
  v.setBigUint64(40, r.timeMask ?? 0n, true);
  v.setUint8(48, r.capUserTimeZero ? 1 : 0);
  v.setUint8(49, r.capUserTimeShort ? 1 : 0);
  return b;
}

/** PERF_RECORD_FINISHED_ROUND: a bare header. */
export function encodeFinishedRound(): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, PerfUserRecordType.FinishedRound, true);
  v.setUint16(6, 8, true);
  return b;
}

/** One PERF_RECORD_ID_INDEX entry: which mmap (idx), cpu and thread an event id was opened on. */
export interface IdIndexEntry {
  id: bigint;
  idx: number;
  /** -1 with per-thread mmaps. */
  cpu: number;
  /** -1 with per-cpu mmaps. */
  tid: number;
}

/** Entries in one ID_INDEX record: its size is a u16 (header 8 + nr 8 + 32 per entry). */
export const ID_INDEX_MAX_ENTRIES = Math.floor((0xffff - 16) / 32);

/**
 * PERF_RECORD_ID_INDEX: `{header; u64 nr; {u64 id, idx, cpu, tid}[nr]}`
 * (perf.data-file-format.txt), one record per {@link ID_INDEX_MAX_ENTRIES}
 * entries as perf's synthesize_id_index splits them. cpu and tid are
 * sign-extended: -1 is all ones.
 */
export function encodeIdIndex(entries: readonly IdIndexEntry[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < entries.length; at += ID_INDEX_MAX_ENTRIES) {
    const part = entries.slice(at, at + ID_INDEX_MAX_ENTRIES);
    const b = new Uint8Array(16 + 32 * part.length);
    const v = new DataView(b.buffer);
    v.setUint32(0, PerfUserRecordType.IdIndex, true);
    v.setUint16(6, b.length, true);
    v.setBigUint64(8, BigInt(part.length), true);
    part.forEach((e, i) => {
      const p = 16 + 32 * i;
      v.setBigUint64(p, e.id, true);
      v.setBigUint64(p + 8, BigInt(e.idx), true);
      v.setBigInt64(p + 16, BigInt(e.cpu), true);
      v.setBigInt64(p + 24, BigInt(e.tid), true);
    });
    out.push(b);
  }
  return out;
}

/** The entries of one ID_INDEX record (`pos` at its header), or a one-line problem. */
export function parseIdIndex(v: DataView, pos: number, size: number): IdIndexEntry[] | string {
  if (size < 16) return `ID_INDEX of ${size} bytes is shorter than its header`;
  const nr = v.getBigUint64(pos + 8, true);
  if (nr > BigInt(Math.floor((size - 16) / 32))) return `ID_INDEX claims ${nr} entries in ${size} bytes`;
  const out: IdIndexEntry[] = [];
  for (let i = 0; i < Number(nr); i++) {
    const p = pos + 16 + 32 * i;
    out.push({ id: v.getBigUint64(p, true), idx: Number(v.getBigUint64(p + 8, true) & 0xffffffffn), cpu: Number(v.getBigInt64(p + 16, true)), tid: Number(v.getBigInt64(p + 24, true)) });
  }
  return out;
}
