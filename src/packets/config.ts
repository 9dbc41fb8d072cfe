import { type Cpu, type Errata, noCpu, noErrata } from './cpu.js';

/**
 * Decoder configuration shared by every decoder layer (libipt's `pt_config`
 * without the trace buffer, which each decoder takes separately).
 *
 * The timing fields matter only when MTC/CYC timing is decoded; the flags
 * only to the layer they name; the address filter only to the flow layers
 * (SKL014 and ptxed's `--filter:addrN_*`).
 */
export interface DecoderConfig {
  /** The recording CPU; picks the errata (`--cpu`). */
  cpu: Cpu;
  /** Errata to work around; usually `errataFor(cpu)`. */
  errata: Errata;
  /**
   * IA32_RTIT_CTL.MTCFreq (bits 17:14): an MTC is sent every 2^mtcFreq CTC
   * ticks (SDM "Mini Time Counter (MTC) Packet"). `--mtc-freq`.
   */
  mtcFreq: number;
  /**
   * MSR_PLATFORM_INFO[15:8], the nominal core:bus ratio. Lets a CBR calibrate
   * CYC timing; 0 means calibrate from MTC/TSC only. `--nom-freq`.
   */
  nomFreq: number;
  /**
   * CPUID.(EAX=15H):EAX and EBX: TSC frequency / crystal clock frequency is
   * EBX/EAX, which converts CTC ticks into TSC ticks (SDM "Time Stamp Counter
   * and Core Crystal Clock Information Leaf"). `--cpuid-0x15.eax/ebx`.
   */
  cpuid15Eax: number;
  cpuid15Ebx: number;
  flags: DecoderFlags;
  addrFilter: AddrFilterConfig;
}

/** Layer-specific switches (libipt's `pt_conf_flags`, flattened). */
export interface DecoderFlags {
  /** Block decoder: end a block after a call instruction. */
  endOnCall: boolean;
  /** Block decoder: end a block after a jump instruction. */
  endOnJump: boolean;
  /** Instruction/block decoder: report tick events on timing updates. */
  enableTickEvents: boolean;
  /**
   * Keep the CYC calibration across an OVF instead of starting over
   * (`--keep-tcal-on-ovf`, `--insn:keep-tcal-on-ovf`, `--block:keep-tcal-on-ovf`).
   */
  keepTcalOnOvf: boolean;
  /** Report interrupt-flag changes as events (only with Event Tracing, IA32_RTIT_CTL[31]). */
  enableIflagsEvents: boolean;
}

/**
 * How an address range ADDRn is used (IA32_RTIT_CTL.ADDRn_CFG, SDM
 * "IA32_RTIT_CTL MSR").
 */
export enum AddrCfg {
  Disabled = 0,
  /** FilterEn: trace only inside the range(s). */
  Filter = 1,
  /** TraceStop: stop tracing when an instruction in the range is executed. */
  Stop = 2,
}

/** One ADDRn range: IA32_RTIT_ADDRn_A/B, both inclusive. */
export interface AddrRange {
  cfg: AddrCfg;
  a: bigint;
  b: bigint;
}

/** The four address ranges (libipt's `pt_conf_addr_filter`). */
export interface AddrFilterConfig {
  ranges: [AddrRange, AddrRange, AddrRange, AddrRange];
}

function noRange(): AddrRange {
  return { cfg: AddrCfg.Disabled, a: 0n, b: 0n };
}

/** libipt's `pt_config_init`: no CPU, no errata, everything zero or off. */
export function defaultConfig(): DecoderConfig {
  return {
    cpu: noCpu(),
    errata: noErrata(),
    mtcFreq: 0,
    nomFreq: 0,
    cpuid15Eax: 0,
    cpuid15Ebx: 0,
    flags: {
      endOnCall: false,
      endOnJump: false,
      enableTickEvents: false,
      keepTcalOnOvf: false,
      enableIflagsEvents: false,
    },
    addrFilter: { ranges: [noRange(), noRange(), noRange(), noRange()] },
  };
}

/**
 * The packed ADDRn_CFG fields as IA32_RTIT_CTL holds them (4 bits each from
 * bit 0), i.e. libipt's `addr_cfg`.
 */
export function addrCfgBits(filter: AddrFilterConfig): number {
  let bits = 0;
  for (let n = 0; n < 4; n++) bits |= (filter.ranges[n]!.cfg & 0xf) << (4 * n);
  return bits >>> 0;
}

/**
 * Whether tracing is enabled at `ip` under the address filter (libipt's
 * `pt_filter_addr_check`): 0 inside a TraceStop range; otherwise 1 inside a
 * FilterEn range, 0 outside all FilterEn ranges if there is any, else 1.
 */
export function addrFilterCheck(filter: AddrFilterConfig, ip: bigint): number {
  for (const r of filter.ranges) {
    if (r.cfg === AddrCfg.Stop && r.a <= ip && ip <= r.b) return 0;
  }
  let haveFilter = false;
  for (const r of filter.ranges) {
    if (r.cfg !== AddrCfg.Filter) continue;
    if (r.a <= ip && ip <= r.b) return 1;
    haveFilter = true;
  }
  return haveFilter ? 0 : 1;
}
