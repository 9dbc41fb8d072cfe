import {
  PERF_RECORD_MISC_COMM_EXEC,
  PERF_RECORD_MISC_SWITCH_OUT,
  PERF_RECORD_MISC_USER,
  PERF_SAMPLE_CPU,
  PERF_SAMPLE_ID,
  PERF_SAMPLE_IDENTIFIER,
  PERF_SAMPLE_STREAM_ID,
  PERF_SAMPLE_TID,
  PERF_SAMPLE_TIME,
  PerfRecordType,
} from '../perf-event/record.js';
import { ByteBuilder } from './header.js';

/**
 * Encoders for the kernel's perf_event records as perf.data stores them
 * (linux/perf_event.h): the inverse of ../perf-event/record.ts's
 * `readPerfRecord`. Every record ends with the `sample_id` trailer whose
 * fields `sampleType` selects, in the kernel's order.
 */

/** The sample_id trailer values; fields `sampleType` does not select are not written. */
export interface SampleId {
  pid: number;
  tid: number;
  /** perf clock, ns. */
  time: bigint;
  cpu: number;
  /** The id of the event that produced the record (PERF_SAMPLE_ID / IDENTIFIER). */
  id: bigint;
}

function start(type: PerfRecordType, misc: number): ByteBuilder {
  return new ByteBuilder().u32(type).u16(misc).u16(0);
}

function finish(b: ByteBuilder, s: SampleId, sampleType: bigint): Uint8Array {
  if (sampleType & PERF_SAMPLE_TID) b.u32(s.pid).u32(s.tid);
  if (sampleType & PERF_SAMPLE_TIME) b.u64(s.time);
  if (sampleType & PERF_SAMPLE_ID) b.u64(s.id);
  if (sampleType & PERF_SAMPLE_STREAM_ID) b.u64(s.id);
  if (sampleType & PERF_SAMPLE_CPU) b.u32(s.cpu).u32(0);
  if (sampleType & PERF_SAMPLE_IDENTIFIER) b.u64(s.id);
  if (b.length > 0xffff) throw new RangeError(`perf record of ${b.length} bytes does not fit a u16 size`);
  b.patchU16(6, b.length);
  return b.finish();
}

/** A NUL-terminated string padded with NULs to 8 bytes, as the kernel writes names. */
function paddedString(b: ByteBuilder, s: string): void {
  const enc = new TextEncoder().encode(s);
  b.bytes(enc).u8(0).align(8);
}

export interface Mmap2Fields {
  pid: number;
  tid: number;
  addr: bigint;
  len: bigint;
  pgoff: bigint;
  filename: string;
  /** PROT_* bits; perf treats a mapping without PROT_EXEC (4) as data. */
  prot?: number;
  /** MAP_* bits (MAP_PRIVATE = 2). */
  flags?: number;
  maj?: number;
  min?: number;
  ino?: bigint;
  inoGeneration?: bigint;
  /** PERF_RECORD_MISC_* cpumode; user by default. */
  cpumode?: number;
}

export const PROT_READ = 1;
export const PROT_EXEC = 4;
export const MAP_PRIVATE = 2;

export function encodeMmap2(m: Mmap2Fields, s: SampleId, sampleType: bigint): Uint8Array {
  const b = start(PerfRecordType.Mmap2, m.cpumode ?? PERF_RECORD_MISC_USER);
  b.u32(m.pid).u32(m.tid).u64(m.addr).u64(m.len).u64(m.pgoff);
  b.u32(m.maj ?? 0).u32(m.min ?? 0).u64(m.ino ?? 0n).u64(m.inoGeneration ?? 0n);
  b.u32(m.prot ?? PROT_READ | PROT_EXEC).u32(m.flags ?? MAP_PRIVATE);
  paddedString(b, m.filename);
  return finish(b, s, sampleType);
}

export function encodeComm(pid: number, tid: number, comm: string, exec: boolean, s: SampleId, sampleType: bigint): Uint8Array {
  const b = start(PerfRecordType.Comm, exec ? PERF_RECORD_MISC_COMM_EXEC : 0);
  b.u32(pid).u32(tid);
  paddedString(b, comm);
  return finish(b, s, sampleType);
}

export function encodeItraceStart(pid: number, tid: number, s: SampleId, sampleType: bigint): Uint8Array {
  return finish(start(PerfRecordType.ItraceStart, 0).u32(pid).u32(tid), s, sampleType);
}

/** EXIT or FORK: pid, ppid, tid, ptid, time. */
export function encodeTask(
  type: PerfRecordType.Exit | PerfRecordType.Fork,
  pid: number,
  ppid: number,
  tid: number,
  ptid: number,
  s: SampleId,
  sampleType: bigint,
): Uint8Array {
  return finish(start(type, 0).u32(pid).u32(ppid).u32(tid).u32(ptid).u64(s.time), s, sampleType);
}

/**
 * SWITCH (the sample's task switched in or out) or, with `nextPrev`,
 * SWITCH_CPU_WIDE naming the task switched to (out) or from (in).
 */
export function encodeSwitch(
  out: boolean,
  nextPrev: { pid: number; tid: number } | null,
  s: SampleId,
  sampleType: bigint,
): Uint8Array {
  const misc = out ? PERF_RECORD_MISC_SWITCH_OUT : 0;
  if (nextPrev === null) return finish(start(PerfRecordType.Switch, misc), s, sampleType);
  return finish(start(PerfRecordType.SwitchCpuWide, misc).u32(nextPrev.pid).u32(nextPrev.tid), s, sampleType);
}
