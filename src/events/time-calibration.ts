/**
 * Timing calibration (libipt's `pt_time_cal`, libipt/src/pt_time.c):
 * estimates the FastCounter:cycles ratio ("fcr") that turns CYC payloads
 * (core cycles, SDM "Cycle Count (CYC) Packet") into TSC ticks.
 *
 * The ratio is fixed point with {@link FCR_SHIFT} fractional bits. Sources,
 * best first:
 * - CYC cycles counted between two MTCs against the CTC delta converted to
 *   TSC ticks (needs `mtcFreq` and CPUID 0x15);
 * - CYC cycles between two TSCs in PSB+ (only while no MTC is seen);
 * - a CBR against the nominal ratio: fcr = nomFreq / cbr (needs `nomFreq`).
 *
 * Methods take the reusable `Packet` and return 0 or a negative
 * {@link ErrorCode}, like libipt's `pt_tcal_*`.
 */
import type { DecoderConfig } from '../packets/config.js';
import { ErrorCode } from '../packets/errors.js';
import type { Packet } from '../packets/packet.js';
import {
  FCR_SHIFT,
  TSC_BITS,
  ctcDelta,
  ctcToFastCounter,
  shl1U32,
  u64Add,
  u64FromHiLo,
  u64IsZero,
  u64MulDiv,
  u64ToBigInt,
  type U64,
} from './time-math.js';

/** 2^56: the first FastCounter value whose `<< FCR_SHIFT` would overflow uint64. */
const FCR_INPUT_LIMIT = 2 ** (64 - FCR_SHIFT);

/**
 * The SKL168 check gives up on a lost wrap CYC below this MTC frequency value
 * (the CYC counter wraps every 4096 cycles, which is not noticeable at low
 * MTC rates).
 */
const SKL168_MAX_MTC_FREQ = 10;
/** Cycles added when estimating the period with one wrap CYC lost, slightly below 4096. */
const SKL168_WRAP_CYCLES = 0xf00;

export class TimeCalibration {
  /** The current ratio (valid once {@link fcr} stops failing). */
  private ratio: U64 = 0;
  /** Smallest and largest ratio seen; min > max means "none yet". */
  private minFcr: U64 = Infinity;
  private maxFcr: U64 = 0;
  /** The last TSC (for calibrating at the next TSC in PSB+); 0: none. */
  private readonly lastTsc = new Uint32Array(2);
  /** Cycles since the last TSC, and since the last MTC (from CYC). */
  private cycTsc: U64 = 0;
  private cycMtc: U64 = 0;
  /** The last MTC's CTC value, shifted into place. */
  private ctc = 0;
  /** MTCs lost since the last successful calibration. */
  lostMtc = 0;
  private haveMtc = false;
  /** SKL168: the first MTC after a PSB may follow a dropped CYC. */
  private checkSkl168 = false;

  /** Start over (libipt's `pt_tcal_init`). */
  reset(): void {
    this.ratio = 0;
    this.minFcr = Infinity;
    this.maxFcr = 0;
    this.lastTsc[0] = 0;
    this.lastTsc[1] = 0;
    this.cycTsc = 0;
    this.cycMtc = 0;
    this.ctc = 0;
    this.lostMtc = 0;
    this.haveMtc = false;
    this.checkSkl168 = false;
  }

  /** Make this an exact copy of `other` (C struct assignment). */
  copyFrom(other: TimeCalibration): void {
    this.ratio = other.ratio;
    this.minFcr = other.minFcr;
    this.maxFcr = other.maxFcr;
    this.lastTsc.set(other.lastTsc);
    this.cycTsc = other.cycTsc;
    this.cycMtc = other.cycMtc;
    this.ctc = other.ctc;
    this.lostMtc = other.lostMtc;
    this.haveMtc = other.haveMtc;
    this.checkSkl168 = other.checkSkl168;
  }

  /** Whether a ratio is known. */
  get haveFcr(): boolean {
    return this.minFcr <= this.maxFcr;
  }

  /**
   * The estimated ratio (fixed point, {@link FCR_SHIFT} fraction bits), or
   * `-ErrorCode.NoTime` if nothing has been calibrated yet (libipt's
   * `pt_tcal_fcr`).
   */
  fcr(): U64 {
    if (!this.haveFcr) return -ErrorCode.NoTime;
    return this.ratio;
  }

  /**
   * Set the ratio (libipt's `pt_tcal_set_fcr`), e.g. to supply a first guess
   * before one CBR or two MTCs arrive. `fcr` is already shifted.
   */
  setFcr(fcr: U64): number {
    this.ratio = fcr;
    if (fcr < this.minFcr) this.minFcr = fcr;
    if (fcr > this.maxFcr) this.maxFcr = fcr;
    return 0;
  }

  /** A PSB: with SKL168, the next MTC may follow a dropped CYC. */
  onPsb(config: DecoderConfig): number {
    if (config.errata.skl168) this.checkSkl168 = true;
    return 0;
  }

  /**
   * A TSC outside PSB+: it may mark lost time, so it only restarts the
   * TSC-to-TSC cycle count.
   */
  onTsc(pkt: Packet): number {
    this.lastTsc[0] = pkt.hi;
    this.lastTsc[1] = pkt.lo;
    this.cycTsc = 0;
    return 0;
  }

  /**
   * A TSC in PSB+: calibrates from the cycles since the previous TSC unless
   * MTCs are available (which are preferred).
   */
  onHeaderTsc(pkt: Packet): number {
    const lastHi = this.lastTsc[0]!;
    const lastLo = this.lastTsc[1]!;
    const cyc = this.cycTsc;

    this.lastTsc[0] = pkt.hi;
    this.lastTsc[1] = pkt.lo;
    this.cycTsc = 0;

    if ((!lastHi && !lastLo) || u64IsZero(cyc)) return 0;
    if (this.haveMtc) return 0;

    // Once per PSB: BigInt keeps the 56-bit arithmetic simple and exact.
    const last = u64ToBigInt(lastHi, lastLo);
    let tsc = u64ToBigInt(pkt.hi, pkt.lo);
    if (tsc < last) {
      tsc += 1n << BigInt(TSC_BITS);
      if (tsc < last) return -ErrorCode.BadPacket;
    }
    const delta = tsc - last;
    // The shifted numerator must fit into 64 bits.
    if (delta >= 1n << BigInt(64 - FCR_SHIFT)) return -ErrorCode.Internal;

    return this.setFcr(u64MulDiv(delta, 1 << FCR_SHIFT, cyc));
  }

  /** A CBR outside PSB+ is a frequency change: start over, then use it. */
  onCbr(pkt: Packet, config: DecoderConfig): number {
    this.reset();
    return this.onHeaderCbr(pkt, config);
  }

  /** A CBR in PSB+: fcr = nomFreq / cbr, if the nominal ratio is known. */
  onHeaderCbr(pkt: Packet, config: DecoderConfig): number {
    const p1 = config.nomFreq;
    if (!p1) return 0;
    const cbr = pkt.ratio;
    if (!cbr) return -ErrorCode.BadPacket;
    return this.setFcr(Math.floor((p1 * 256) / cbr));
  }

  /** TMA does not affect calibration. */
  onTma(_pkt: Packet): number {
    return 0;
  }

  /**
   * An MTC: calibrate from the cycles counted since the previous MTC. With
   * SKL168, the first MTC after a PSB is skipped if an MTC or a wrap CYC
   * seems to have been dropped before the PSB.
   */
  onMtc(pkt: Packet, config: DecoderConfig): number {
    const lastCtc = this.ctc;
    const haveMtc = this.haveMtc;
    const cyc = this.cycMtc;
    const checkSkl168 = this.checkSkl168;

    // This only affects the first MTC after PSB.
    this.checkSkl168 = false;

    const ctc = (pkt.ctc << config.mtcFreq) >>> 0;

    // We need two MTCs.
    if (!haveMtc) {
      this.cycMtc = 0;
      this.ctc = ctc;
      this.haveMtc = true;
      return 0;
    }

    // Without cycles, try again at the next MTC over the combined period.
    if (u64IsZero(cyc)) return 0;

    this.haveMtc = true;
    this.cycMtc = 0;
    this.ctc = ctc;

    // Counted as lost unless we get to update the ratio below.
    this.lostMtc += 1;

    const delta = ctcDelta(ctc, lastCtc, config.mtcFreq);
    if (delta < 0) return delta;

    const fc = ctcToFastCounter(delta, config.cpuid15Eax, config.cpuid15Ebx);
    if (typeof fc === 'number' && fc < 0) return fc;

    if (fc >= FCR_INPUT_LIMIT) return -ErrorCode.Internal;

    const fcr = u64MulDiv(fc, 1 << FCR_SHIFT, cyc);

    if (checkSkl168) {
      // One or more MTCs were lost.
      if (shl1U32(config.mtcFreq) < delta) return 0;

      // A lost wrap CYC: we expected many more TSC ticks for these cycles.
      if (config.mtcFreq < SKL168_MAX_MTC_FREQ && this.haveFcr) {
        const expected = u64MulDiv(this.ratio, u64Add(cyc, SKL168_WRAP_CYCLES), 1 << FCR_SHIFT);
        if (expected < fc) return 0;
      }
    }

    const status = this.setFcr(fcr);
    if (status < 0) return status;

    this.lostMtc = 0;
    return 0;
  }

  /** A CYC: count its cycles for the next MTC and TSC calibration. */
  onCyc(pkt: Packet): number {
    const cyc = u64FromHiLo(pkt.hi, pkt.lo);
    this.cycMtc = u64Add(this.cycMtc, cyc);
    this.cycTsc = u64Add(this.cycTsc, cyc);
    return 0;
  }

  /**
   * An OVF with `keepTcalOnOvf`: keep the ratio but drop the partial
   * periods, which the overflow cut (libipt's `pt_tcal_update_ovf`).
   * Without that flag, decoders call {@link reset} instead.
   */
  onOvf(): number {
    this.lastTsc[0] = 0;
    this.lastTsc[1] = 0;
    this.cycTsc = 0;
    this.cycMtc = 0;
    this.ctc = 0;
    this.haveMtc = false;
    return 0;
  }
}
