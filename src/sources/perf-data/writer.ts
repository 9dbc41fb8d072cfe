import { closeSync, openSync, writeSync } from 'node:fs';
import type { TraceSource } from '../../packets/trace-source.js';
import {
  PERF_SAMPLE_CPU,
  PERF_SAMPLE_IDENTIFIER,
  PERF_SAMPLE_TID,
  PERF_SAMPLE_TIME,
  PerfRecordType,
} from '../perf-event/record.js';
import { encodeIntelPtInfo, type IntelPtInfo } from './auxtrace-info.js';
import { firstPsbTsc } from './trace-start.js';
import {
  ATTR_SIZE,
  AttrFlag,
  type BuildIdEntry,
  encodeAttr,
  encodeFeature,
  encodeFileHeader,
  FILE_HEADER_SIZE,
  FILE_SECTION_SIZE,
  HeaderFeature,
  PERF_COUNT_SW_DUMMY,
  PERF_TYPE_SOFTWARE,
  type PerfAttrEntry,
  type PerfFeatures,
} from './header.js';
import {
  encodeComm,
  encodeItraceStart,
  encodeMmap2,
  encodeSwitch,
  encodeTask,
  type Mmap2Fields,
  type SampleId,
} from './kernel-records.js';
import {
  AUXTRACE_RECORD_SIZE,
  encodeAuxtrace,
  encodeFinishedRound,
  encodeIdIndex,
  encodeTimeConv,
  type TimeConvRecord,
} from './user-records.js';

/**
 * Writes a perf.data that perf (checked with Debian's perf 6.1) decodes as
 * an Intel PT recording, the way `perf record -e intel_pt//u` lays it out:
 *
 * - two events: the intel_pt event (type = the PMU type AUXTRACE_INFO
 *   names, so perf finds "the" PT event) and a dummy software event that
 *   owns the sideband (mmap/comm/task/context-switch). Both have
 *   sample_id_all and sample_type IP|TID|TIME|IDENTIFIER, plus CPU with
 *   per-cpu mmaps (arch/x86/util/intel-pt.c sets CPU only then): with two
 *   events perf needs IDENTIFIER to tell whose record it is. Each has one
 *   id per queue, as perf opens one event per cpu (per-cpu mmaps, with
 *   inherit) or per thread (`--per-thread`, which turns inherit off); perf
 *   derives the ids of the samples it synthesizes from the PT event's
 *   first id. A record's id is that of its queue: its cpu's, or with
 *   per-thread mmaps its thread's. With per-cpu mmaps, context switches
 *   come from a third event, a cpu-wide dummy with context_switch (what
 *   perf adds for a task target), after the PT event.
 * - data: TIME_CONV, ID_INDEX (each id's queue, cpu and tid; perf record
 *   writes it just before AUXTRACE_INFO), AUXTRACE_INFO, the sideband
 *   records in time order, then one AUXTRACE record per trace buffer
 *   followed by its bytes, then FINISHED_ROUND.
 * - features: hostname, osrelease, version, arch, nrcpus, cpudesc, cpuid,
 *   cmdline, event_desc (event names), auxtrace (the index of the AUXTRACE
 *   records, so perf queues the data without scanning) and build-ids when
 *   given.
 *
 * perf finds the code through the MMAP2 records' file names: they must be
 * paths perf can open (or, with build ids, files in its build-id cache).
 */

export type SidebandEvent =
  | ({ kind: 'mmap2'; time: bigint; cpu: number } & Mmap2Fields)
  | { kind: 'comm'; time: bigint; cpu: number; pid: number; tid: number; comm: string; exec: boolean }
  | { kind: 'itrace-start'; time: bigint; cpu: number; pid: number; tid: number }
  | { kind: 'fork' | 'exit'; time: bigint; cpu: number; pid: number; ppid: number; tid: number; ptid: number }
  | {
      kind: 'switch';
      time: bigint;
      cpu: number;
      /** The task the record belongs to (switching in or out). */
      pid: number;
      tid: number;
      out: boolean;
      /** For SWITCH_CPU_WIDE: the next (out) or previous (in) task. */
      nextPrev?: { pid: number; tid: number };
    };

/**
 * One AUXTRACE buffer: the trace of one queue (cpu or thread) over some time.
 * Buffers are padded with zeros to 8 bytes, as perf record does; zeros are
 * PAD packets between packets, so when a stream is split over several
 * buffers, split at multiples of 8 (or at packet boundaries).
 */
export interface AuxBuffer {
  /** Queue index: the cpu number with per-cpu mmaps, a thread's slot otherwise. */
  idx: number;
  /** -1 with per-thread mmaps. */
  cpu: number;
  /** -1 with per-cpu mmaps. */
  tid: number;
  data: Uint8Array | TraceSource;
  /** Offset in the AUX area; default: continues the previous buffer of the queue. */
  auxOffset?: bigint;
  /**
   * perf record's TSC when it copied the buffer. perf's decoder ignores
   * 7-byte TSC packets until it has a reference, and perf 6.1 crashes when
   * it must walk code before the first timestamp: with TSC on, the default
   * is the buffer's first PSB+ TSC.
   */
  reference?: bigint;
}

export interface PerfDataSpec {
  /** AUXTRACE_INFO; `info.pmuType` is also the PT event's attr type. */
  info: IntelPtInfo;
  /** The PT event's `perf_event_attr.config` (IA32_RTIT_CTL-like bits; see INTEL_PT_CONFIG). */
  ptConfig: bigint;
  /** Trace user space only (default true): the PT event's exclude_kernel. */
  excludeKernel?: boolean;
  /** Default: the conversion in `info`. */
  timeConv?: TimeConvRecord;
  sideband: SidebandEvent[];
  aux: AuxBuffer[];
  /** The queues perf opened the events for, with per-cpu mmaps every cpu's (default: those `aux` has data for). */
  queues?: number[];
  /** Header text features; defaults describe the writer. */
  features?: Partial<Pick<PerfFeatures, 'hostname' | 'osRelease' | 'version' | 'arch' | 'cpuDesc' | 'cpuId' | 'cmdline' | 'nrCpusAvail' | 'nrCpusOnline'>>;
  buildIds?: BuildIdEntry[];
}

/** What the writer put where; for tests and for the AUXTRACE index. */
export interface PerfDataLayout {
  dataOffset: number;
  dataSize: number;
  /** File offset of each AUXTRACE record header, in `spec.aux` order. */
  auxtraceOffsets: number[];
  /** Each event's ids; `switch` is empty unless per-cpu mmaps write context switches (a third, cpu-wide event). */
  attrIds: { pt: bigint[]; sideband: bigint[]; switch: bigint[] };
}

/** Sample fields of both events: a perf record -e intel_pt// setup with per-cpu mmaps. */
export const WRITER_SAMPLE_TYPE = 0x1n /* IP */ | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_IDENTIFIER;
/** The same with per-thread mmaps: no CPU field (the AUX queues are not per cpu). */
export const WRITER_SAMPLE_TYPE_PER_THREAD = WRITER_SAMPLE_TYPE & ~PERF_SAMPLE_CPU;

/** The cpu-wide switch event's sample fields (perf sets TID, TIME and CPU; IDENTIFIER as there are several events). */
export const SWITCH_SAMPLE_TYPE = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_IDENTIFIER;

/** Buffered sequential writer that knows its file offset. */
class FileOut {
  private buf = new Uint8Array(1 << 20);
  private used = 0;
  offset = 0;
  constructor(private readonly fd: number) {}
  write(bytes: Uint8Array): void {
    if (this.used + bytes.length > this.buf.length) this.flush();
    if (bytes.length > this.buf.length) {
      writeAll(this.fd, bytes, this.offset);
    } else {
      this.buf.set(bytes, this.used);
      this.used += bytes.length;
    }
    this.offset += bytes.length;
  }
  flush(): void {
    if (this.used === 0) return;
    writeAll(this.fd, this.buf.subarray(0, this.used), this.offset - this.used);
    this.used = 0;
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

function auxSize(a: AuxBuffer): number {
  return a.data instanceof Uint8Array ? a.data.length : a.data.size;
}

/** Write `spec` to `path` (created or truncated). */
export function writePerfData(path: string, spec: PerfDataSpec): PerfDataLayout {
  const fd = openSync(path, 'w', 0o600);
  try {
    return writeTo(fd, spec);
  } finally {
    closeSync(fd);
  }
}

function writeTo(fd: number, spec: PerfDataSpec): PerfDataLayout {
  const info = spec.info;
  const perCpu = info.perCpuMmaps;
  // One id per queue for each event, as perf opens one event per cpu/thread.
  const queues = [...new Set([...(spec.queues ?? []), ...spec.aux.map((a) => a.idx)])].sort((a, b) => a - b);
  if (queues.length === 0) queues.push(0);
  const ptIds = queues.map((_, i) => BigInt(1 + i));
  const sbIds = queues.map((_, i) => BigInt(1 + queues.length + i));
  // Per-cpu mmaps of a task target: perf adds a cpu-wide dummy event for the
  // context switches (arch/x86/util/intel-pt.c, AUXTRACE_INFO
  // have_sched_switch 3), whose SWITCH_CPU_WIDE records name every task a cpu
  // runs; with per-thread mmaps the tracking event records SWITCH itself.
  const hasSwitch = spec.sideband.some((e) => e.kind === 'switch');
  const switchEvent = perCpu && hasSwitch;
  const swIds = switchEvent ? queues.map((_, i) => BigInt(1 + 2 * queues.length + i)) : [];
  // Each queue's cpu (per-cpu) or thread (per-thread), from its buffers.
  const queueCpu = new Map<number, number>();
  const queueTid = new Map<number, number>();
  const queueOfTid = new Map<number, number>();
  for (const a of spec.aux) {
    if (!queueCpu.has(a.idx)) queueCpu.set(a.idx, a.cpu);
    if (!queueTid.has(a.idx)) queueTid.set(a.idx, a.tid);
    if (!queueOfTid.has(a.tid)) queueOfTid.set(a.tid, a.idx);
  }
  /** The id of the event `ids` opened for the queue of a record on `cpu` by thread `tid`. */
  const idFor = (ids: bigint[], cpu: number, tid: number): bigint => {
    const idx = perCpu ? cpu : queueOfTid.get(tid) ?? -1;
    const i = queues.indexOf(idx);
    return ids[i < 0 ? 0 : i]!;
  };

  const sampleType = perCpu ? WRITER_SAMPLE_TYPE : WRITER_SAMPLE_TYPE_PER_THREAD;
  const common = BigInt(AttrFlag.SampleIdAll | AttrFlag.ExcludeHv | AttrFlag.ExcludeGuest | (perCpu ? AttrFlag.Inherit : 0));
  const excludeKernel = spec.excludeKernel ?? true ? BigInt(AttrFlag.ExcludeKernel) : 0n;
  const attrs: PerfAttrEntry[] = [
    {
      name: `intel_pt/${excludeKernel ? '/u' : '/'}`,
      ids: ptIds,
      attr: {
        type: info.pmuType,
        size: ATTR_SIZE,
        config: spec.ptConfig,
        samplePeriod: 1n,
        sampleType,
        readFormat: 0n,
        flags: common | excludeKernel | BigInt(AttrFlag.Disabled | AttrFlag.EnableOnExec),
        config1: 0n,
        config2: 0n,
        auxWatermark: 0,
      },
    },
    {
      name: `dummy:${excludeKernel ? 'u' : ''}`,
      ids: sbIds,
      attr: {
        type: PERF_TYPE_SOFTWARE,
        size: ATTR_SIZE,
        config: BigInt(PERF_COUNT_SW_DUMMY),
        samplePeriod: 1n,
        sampleType,
        readFormat: 0n,
        flags:
          common |
          excludeKernel |
          BigInt(AttrFlag.Mmap | AttrFlag.Comm | AttrFlag.Task | AttrFlag.Mmap2 | AttrFlag.CommExec) |
          (hasSwitch && !switchEvent ? BigInt(AttrFlag.ContextSwitch) : 0n),
        config1: 0n,
        config2: 0n,
        auxWatermark: 0,
      },
    },
  ];
  if (switchEvent) {
    // After the PT event, as perf orders them (the tracking event last).
    attrs.splice(1, 0, {
      name: `dummy:${excludeKernel ? 'u' : ''}`,
      ids: swIds,
      attr: {
        type: PERF_TYPE_SOFTWARE,
        size: ATTR_SIZE,
        config: BigInt(PERF_COUNT_SW_DUMMY),
        samplePeriod: 1n,
        sampleType: SWITCH_SAMPLE_TYPE,
        readFormat: 0n,
        flags: common | excludeKernel | BigInt(AttrFlag.ContextSwitch),
        config1: 0n,
        config2: 0n,
        auxWatermark: 0,
      },
    });
  }

  // Layout: header, id arrays, attrs, data, feature index, features.
  const out = new FileOut(fd);
  out.write(new Uint8Array(FILE_HEADER_SIZE));
  const idSections: { offset: number; size: number }[] = [];
  for (const a of attrs) {
    const b = new Uint8Array(8 * a.ids.length);
    const v = new DataView(b.buffer);
    a.ids.forEach((id, i) => v.setBigUint64(8 * i, id, true));
    idSections.push({ offset: out.offset, size: b.length });
    out.write(b);
  }
  const attrsOffset = out.offset;
  attrs.forEach((a, i) => {
    out.write(encodeAttr(a.attr));
    const s = new Uint8Array(FILE_SECTION_SIZE);
    const v = new DataView(s.buffer);
    v.setBigUint64(0, BigInt(idSections[i]!.offset), true);
    v.setBigUint64(8, BigInt(idSections[i]!.size), true);
    out.write(s);
  });
  const attrSize = ATTR_SIZE + FILE_SECTION_SIZE;

  // Data section.
  const dataOffset = out.offset;
  out.write(
    encodeTimeConv(
      spec.timeConv ?? {
        timeShift: info.timeShift,
        timeMult: info.timeMult,
        timeZero: info.timeZero,
        capUserTimeZero: info.capUserTimeZero,
        capUserTimeShort: false,
      },
    ),
  );
  const idIndex = attrs.flatMap((a) =>
    a.ids.map((id, i) => {
      const idx = queues[i]!;
      return { id, idx, cpu: perCpu ? queueCpu.get(idx) ?? idx : -1, tid: perCpu ? -1 : queueTid.get(idx) ?? -1 };
    }),
  );
  for (const r of encodeIdIndex(idIndex)) out.write(r);
  out.write(encodeIntelPtInfo(info));
  const sideband = [...spec.sideband].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  for (const e of sideband) {
    const ids = e.kind === 'itrace-start' ? ptIds : e.kind === 'switch' && switchEvent ? swIds : sbIds;
    const s: SampleId = { pid: e.pid, tid: e.tid, time: e.time, cpu: e.cpu, id: idFor(ids, e.cpu, e.tid) };
    switch (e.kind) {
      case 'mmap2':
        out.write(encodeMmap2(e, s, sampleType));
        break;
      case 'comm':
        out.write(encodeComm(e.pid, e.tid, e.comm, e.exec, s, sampleType));
        break;
      case 'itrace-start':
        out.write(encodeItraceStart(e.pid, e.tid, s, sampleType));
        break;
      case 'fork':
      case 'exit':
        out.write(
          encodeTask(e.kind === 'fork' ? PerfRecordType.Fork : PerfRecordType.Exit, e.pid, e.ppid, e.tid, e.ptid, s, sampleType),
        );
        break;
      case 'switch':
        out.write(encodeSwitch(e.out, e.nextPrev ?? null, s, switchEvent ? SWITCH_SAMPLE_TYPE : sampleType));
        break;
    }
  }

  const timed = info.tscBit !== 0n && (spec.ptConfig & info.tscBit) !== 0n;
  const auxtraceOffsets: number[] = [];
  const nextAuxOffset = new Map<number, bigint>();
  const chunk = new Uint8Array(1 << 20);
  for (const a of spec.aux) {
    // perf record pads each buffer to 8 bytes with zeros (PAD packets) and
    // counts the padding in the record's size: records stay 8-byte aligned.
    const dataSize = auxSize(a);
    const padding = (8 - (dataSize & 7)) & 7;
    const size = dataSize + padding;
    const auxOffset = a.auxOffset ?? nextAuxOffset.get(a.idx) ?? 0n;
    nextAuxOffset.set(a.idx, auxOffset + BigInt(size));
    auxtraceOffsets.push(out.offset);
    const reference = a.reference ?? (timed ? (firstPsbTsc(a.data) ?? 0n) : 0n);
    out.write(encodeAuxtrace({ size, auxOffset, reference, idx: a.idx, tid: a.tid, cpu: a.cpu }));
    if (a.data instanceof Uint8Array) {
      out.write(a.data);
    } else {
      // Stream the trace through a fixed buffer: flat memory for any size.
      for (let pos = 0; pos < dataSize; ) {
        const n = a.data.read(chunk, 0, pos, Math.min(chunk.length, dataSize - pos));
        if (n <= 0) throw new Error(`trace source ended at 0x${pos.toString(16)} of 0x${dataSize.toString(16)}`);
        out.write(chunk.subarray(0, n));
        pos += n;
      }
    }
    if (padding) out.write(new Uint8Array(padding));
  }
  out.write(encodeFinishedRound());
  const dataSize = out.offset - dataOffset;

  // Features.
  const f = spec.features ?? {};
  const features: PerfFeatures = {
    hostname: f.hostname ?? 'ptscope',
    osRelease: f.osRelease ?? '0.0.0-ptscope',
    version: f.version ?? '6.1.0',
    arch: f.arch ?? 'x86_64',
    nrCpusAvail: f.nrCpusAvail ?? Math.max(1, ...spec.aux.map((a) => a.cpu + 1)),
    nrCpusOnline: f.nrCpusOnline ?? Math.max(1, ...spec.aux.map((a) => a.cpu + 1)),
    cpuDesc: f.cpuDesc ?? 'ptscope emulated Intel PT',
    cpuId: f.cpuId ?? 'GenuineIntel,6,158,9',
    cmdline: f.cmdline ?? ['ptscope', 'export'],
    buildIds: spec.buildIds ?? [],
    // perf checks that an entry's size equals the record's header.size.
    auxtraceIndex: spec.aux.map((_, i) => ({ fileOffset: auxtraceOffsets[i]!, size: AUXTRACE_RECORD_SIZE })),
    eventNames: [],
  };
  const featList: HeaderFeature[] = [
    ...(features.buildIds.length ? [HeaderFeature.BuildId] : []),
    HeaderFeature.Hostname,
    HeaderFeature.OsRelease,
    HeaderFeature.Version,
    HeaderFeature.Arch,
    HeaderFeature.NrCpus,
    HeaderFeature.CpuDesc,
    HeaderFeature.CpuId,
    HeaderFeature.Cmdline,
    HeaderFeature.EventDesc,
    HeaderFeature.Auxtrace,
  ];
  const bodies = featList.map((feat) => encodeFeature(feat, features, attrs));
  const index = new Uint8Array(FILE_SECTION_SIZE * featList.length);
  const iv = new DataView(index.buffer);
  let at = out.offset + index.length;
  bodies.forEach((body, i) => {
    iv.setBigUint64(16 * i, BigInt(at), true);
    iv.setBigUint64(16 * i + 8, BigInt(body.length), true);
    at += body.length;
  });
  out.write(index);
  for (const body of bodies) out.write(body);
  out.flush();

  const header = encodeFileHeader({
    attrSize,
    attrs: { offset: attrsOffset, size: attrSize * attrs.length },
    data: { offset: dataOffset, size: dataSize },
    eventTypes: { offset: 0, size: 0 },
    features: featList,
  });
  writeAll(fd, header, 0);
  return { dataOffset, dataSize, auxtraceOffsets, attrIds: { pt: ptIds, sideband: sbIds, switch: swIds } };
}
