import { type DecoderConfig, defaultConfig } from '../../packets/config.js';
import { type Cpu, errataFor, noErrata } from '../../packets/cpu.js';
import { ByteBuilder } from './header.js';
import { PerfUserRecordType } from './user-records.js';

/**
 * PERF_RECORD_AUXTRACE_INFO for Intel PT: `{header; u32 type; u32 reserved;
 * u64 priv[]}` with `type` PERF_AUXTRACE_INTEL_PT and `priv` laid out as
 * perf's tools/perf/util/intel-pt.h enumerates it (INTEL_PT_PMU_TYPE ..
 * INTEL_PT_FILTER_STR_LEN), followed by the address-filter string (NUL
 * terminated, padded to 8 bytes) and, in newer perf, the event-trace
 * capability.
 *
 * The "bits" are masks of `perf_event_attr.config` of the intel_pt event
 * (the PMU's format: tsc = config:10, mtc = config:9, ...): the decoder
 * reads, e.g., whether TSC packets were on from `config & tscBit`.
 */
export const PERF_AUXTRACE_INTEL_PT = 1;

/** priv[] indexes (intel-pt.h). */
export enum IntelPtPriv {
  PmuType = 0,
  TimeShift,
  TimeMult,
  TimeZero,
  CapUserTimeZero,
  TscBit,
  NoRetCompBit,
  HaveSchedSwitch,
  SnapshotMode,
  PerCpuMmaps,
  MtcBit,
  MtcFreqBits,
  TscCtcN,
  TscCtcD,
  CycBit,
  MaxNonTurboRatio,
  FilterStrLen,
  /** Number of fixed entries. */
  Count,
}

/** The decoded AUXTRACE_INFO of an intel_pt recording. */
export interface IntelPtInfo {
  /** `perf_event_attr.type` of the intel_pt PMU on the recording machine. */
  pmuType: number;
  timeShift: number;
  timeMult: number;
  timeZero: bigint;
  capUserTimeZero: boolean;
  tscBit: bigint;
  noRetCompBit: bigint;
  /** 0 none, 1 sched_switch tracepoint, 2 context_switch attr, 3 cpu-wide context_switch. */
  haveSchedSwitch: number;
  snapshotMode: boolean;
  perCpuMmaps: boolean;
  mtcBit: bigint;
  mtcFreqBits: bigint;
  /** CPUID.15H: TSC/CTC = n/d (EBX/EAX). */
  tscCtcN: number;
  tscCtcD: number;
  cycBit: bigint;
  maxNonTurboRatio: number;
  /** Address filter as given to perf record (`--filter`), '' for none. */
  filter: string;
  /** Present only in files of newer perf. */
  capEventTrace?: boolean;
}

/**
 * The intel_pt PMU's config format on Linux
 * (/sys/bus/event_source/devices/intel_pt/format/*).
 */
export const INTEL_PT_CONFIG = {
  pt: 1n << 0n,
  cyc: 1n << 1n,
  pwrEvt: 1n << 4n,
  mtc: 1n << 9n,
  tsc: 1n << 10n,
  noretcomp: 1n << 11n,
  ptw: 1n << 12n,
  branch: 1n << 13n,
  mtcPeriodShift: 14n,
  mtcPeriodMask: 0xfn << 14n,
  cycThreshShift: 19n,
  psbPeriodShift: 24n,
} as const;

/** The values perf record stores on a machine with intel_pt (bits from the PMU format). */
export function defaultIntelPtInfo(pmuType: number): IntelPtInfo {
  return {
    pmuType,
    timeShift: 0,
    timeMult: 1,
    timeZero: 0n,
    capUserTimeZero: true,
    tscBit: INTEL_PT_CONFIG.tsc,
    noRetCompBit: INTEL_PT_CONFIG.noretcomp,
    haveSchedSwitch: 0,
    snapshotMode: false,
    perCpuMmaps: true,
    mtcBit: INTEL_PT_CONFIG.mtc,
    mtcFreqBits: INTEL_PT_CONFIG.mtcPeriodMask,
    tscCtcN: 0,
    tscCtcD: 0,
    cycBit: INTEL_PT_CONFIG.cyc,
    maxNonTurboRatio: 0,
    filter: '',
  };
}

/** Record header (8) + type (4) + reserved (4). */
const INFO_FIXED = 16;

/**
 * Parse an AUXTRACE_INFO record body (`bytes` is the whole record).
 * Returns null for an AUXTRACE type other than Intel PT; throws a string
 * describing the problem for a malformed intel_pt record.
 */
export function parseIntelPtInfo(bytes: Uint8Array): IntelPtInfo | null | string {
  if (bytes.length < INFO_FIXED) return 'AUXTRACE_INFO record too short';
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = v.getUint32(8, true);
  if (type !== PERF_AUXTRACE_INTEL_PT) return null;
  const nPriv = (bytes.length - INFO_FIXED) >> 3;
  // perf requires at least up to INTEL_PT_PER_CPU_MMAPS.
  if (nPriv < IntelPtPriv.PerCpuMmaps + 1) return `AUXTRACE_INFO for intel_pt has ${nPriv} values, needs ${IntelPtPriv.PerCpuMmaps + 1}`;
  const p = (i: number): bigint => (i < nPriv ? v.getBigUint64(INFO_FIXED + 8 * i, true) : 0n);
  const info: IntelPtInfo = {
    pmuType: Number(p(IntelPtPriv.PmuType) & 0xffffffffn),
    timeShift: Number(p(IntelPtPriv.TimeShift) & 0xffffn),
    timeMult: Number(p(IntelPtPriv.TimeMult) & 0xffffffffn),
    timeZero: p(IntelPtPriv.TimeZero),
    capUserTimeZero: p(IntelPtPriv.CapUserTimeZero) !== 0n,
    tscBit: p(IntelPtPriv.TscBit),
    noRetCompBit: p(IntelPtPriv.NoRetCompBit),
    haveSchedSwitch: Number(p(IntelPtPriv.HaveSchedSwitch) & 0xffn),
    snapshotMode: p(IntelPtPriv.SnapshotMode) !== 0n,
    perCpuMmaps: p(IntelPtPriv.PerCpuMmaps) !== 0n,
    mtcBit: p(IntelPtPriv.MtcBit),
    mtcFreqBits: p(IntelPtPriv.MtcFreqBits),
    tscCtcN: Number(p(IntelPtPriv.TscCtcN) & 0xffffffffn),
    tscCtcD: Number(p(IntelPtPriv.TscCtcD) & 0xffffffffn),
    cycBit: p(IntelPtPriv.CycBit),
    maxNonTurboRatio: Number(p(IntelPtPriv.MaxNonTurboRatio) & 0xffffffffn),
    filter: '',
  };
  let next = IntelPtPriv.FilterStrLen + 1;
  if (nPriv > IntelPtPriv.FilterStrLen) {
    const len = Number(p(IntelPtPriv.FilterStrLen) & 0xffffffffn);
    if (len) {
      const padded = Math.ceil((len + 1) / 8) * 8;
      const at = INFO_FIXED + 8 * next;
      if (at + padded > bytes.length) return `AUXTRACE_INFO filter string length ${len} runs past the record`;
      if (bytes[at + padded - 1] !== 0) return 'AUXTRACE_INFO filter string not NUL-terminated';
      info.filter = new TextDecoder().decode(bytes.subarray(at, at + len));
      next += padded / 8;
    }
  }
  if (next < nPriv) info.capEventTrace = p(next) !== 0n;
  return info;
}

/** Encode a whole AUXTRACE_INFO record. */
export function encodeIntelPtInfo(info: IntelPtInfo): Uint8Array {
  const b = new ByteBuilder();
  b.u32(PerfUserRecordType.AuxtraceInfo).u16(0).u16(0);
  b.u32(PERF_AUXTRACE_INTEL_PT).u32(0);
  const filter = new TextEncoder().encode(info.filter);
  const priv: bigint[] = [];
  priv[IntelPtPriv.PmuType] = BigInt(info.pmuType);
  priv[IntelPtPriv.TimeShift] = BigInt(info.timeShift);
  priv[IntelPtPriv.TimeMult] = BigInt(info.timeMult);
  priv[IntelPtPriv.TimeZero] = info.timeZero;
  priv[IntelPtPriv.CapUserTimeZero] = info.capUserTimeZero ? 1n : 0n;
  priv[IntelPtPriv.TscBit] = info.tscBit;
  priv[IntelPtPriv.NoRetCompBit] = info.noRetCompBit;
  priv[IntelPtPriv.HaveSchedSwitch] = BigInt(info.haveSchedSwitch);
  priv[IntelPtPriv.SnapshotMode] = info.snapshotMode ? 1n : 0n;
  priv[IntelPtPriv.PerCpuMmaps] = info.perCpuMmaps ? 1n : 0n;
  priv[IntelPtPriv.MtcBit] = info.mtcBit;
  priv[IntelPtPriv.MtcFreqBits] = info.mtcFreqBits;
  priv[IntelPtPriv.TscCtcN] = BigInt(info.tscCtcN);
  priv[IntelPtPriv.TscCtcD] = BigInt(info.tscCtcD);
  priv[IntelPtPriv.CycBit] = info.cycBit;
  priv[IntelPtPriv.MaxNonTurboRatio] = BigInt(info.maxNonTurboRatio);
  priv[IntelPtPriv.FilterStrLen] = BigInt(filter.length);
  for (const x of priv) b.u64(x);
  if (filter.length) b.bytes(filter).u8(0).align(8);
  if (info.capEventTrace !== undefined) b.u64(info.capEventTrace ? 1 : 0);
  b.patchU16(6, b.length);
  return b.finish();
}

/** The value of the bits `mask` selects in `config`, shifted down (perf's intel_pt_mtc_period). */
export function configField(config: bigint, mask: bigint): number {
  if (mask === 0n) return 0;
  let shift = 0n;
  while (((mask >> shift) & 1n) === 0n) shift++;
  return Number((config & mask) >> shift);
}

/** What the trace holds, from the intel_pt event's config and AUXTRACE_INFO. */
export interface IntelPtTraceSettings {
  tsc: boolean;
  mtc: boolean;
  cyc: boolean;
  /** Return compression on (noretcomp off). */
  retCompression: boolean;
  /** IA32_RTIT_CTL.MTCFreq. */
  mtcFreq: number;
}

export function traceSettings(info: IntelPtInfo, config: bigint): IntelPtTraceSettings {
  return {
    tsc: info.tscBit !== 0n && (config & info.tscBit) !== 0n,
    mtc: info.mtcBit !== 0n && (config & info.mtcBit) !== 0n,
    cyc: info.cycBit !== 0n && (config & info.cycBit) !== 0n,
    retCompression: info.noRetCompBit === 0n || (config & info.noRetCompBit) === 0n,
    mtcFreq: configField(config, info.mtcFreqBits),
  };
}

/** The CPU named by HEADER_CPUID ("GenuineIntel,6,158,9"), or null. */
export function cpuFromCpuId(cpuId: string | undefined): Cpu | null {
  if (!cpuId) return null;
  const m = /^GenuineIntel,(\d+),(\d+),(\d+)/.exec(cpuId);
  if (!m) return null;
  return { vendor: 'intel', family: Number(m[1]), model: Number(m[2]), stepping: Number(m[3]) };
}

/**
 * The decoder configuration for this recording: timing parameters from
 * AUXTRACE_INFO and the attr config, the CPU (and its errata) from
 * HEADER_CPUID.
 */
export function decoderConfigFor(info: IntelPtInfo, config: bigint, cpuId?: string): DecoderConfig {
  const cfg = defaultConfig();
  const s = traceSettings(info, config);
  cfg.mtcFreq = s.mtcFreq;
  cfg.nomFreq = info.maxNonTurboRatio;
  // CPUID.15H: EBX/EAX = TSC/CTC, perf stores n = EBX, d = EAX.
  cfg.cpuid15Eax = info.tscCtcD;
  cfg.cpuid15Ebx = info.tscCtcN;
  const cpu = cpuFromCpuId(cpuId);
  if (cpu) {
    cfg.cpu = cpu;
    const errata = errataFor(cpu);
    cfg.errata = typeof errata === 'number' ? noErrata() : errata;
  }
  return cfg;
}
