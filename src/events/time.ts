/**
 * Time estimation from Intel PT timing packets (libipt's `pt_time`,
 * libipt/src/pt_time.c), and ptdump's per-packet time column.
 *
 * What is here:
 * - {@link TimeTracker}: the estimated TSC, updated by TSC, TMA, MTC, CYC
 *   and CBR packets exactly as libipt computes it (SDM "Timing packets":
 *   TSC gives the time; TMA aligns the crystal-clock counter CTC and the
 *   FastCounter to it; each MTC advances it by CTC ticks * CPUID.15H EBX/EAX;
 *   CYC adds core cycles scaled by the calibrated FastCounter:cycles ratio).
 * - {@link Timing}: a tracker plus its {@link TimeCalibration}, applied to
 *   packets the way libipt's event decoder does (calibration first, config
 *   errors ignored, OVF keeps or restarts calibration). Flow decoders use it.
 * - {@link PtdumpTimeTracking}: what ptdump does per packet with `--time`,
 *   `--tcal`, `--time-delta`, `--no-tcal`, `--no-wall-clock`,
 *   `--keep-tcal-on-ovf` and `--no-cyc`. The dump command calls, for each
 *   decoded packet,
 *
 *       tracking.update(pkt, column);
 *       // print column.diagMessage[i] / column.diagCode[i], i < diagCount,
 *       //   each as its own line "[<offset>: <message>: <errorMessage(code)>]"
 *       //   (just "[<offset>: <message>]" when the code is 0), BEFORE the packet line;
 *       // if column.kind !== TimeColumnKind.None, append to the packet line
 *       //   timeColumnId(column) ("tsc"/"fcr") and formatTimeColumn(column),
 *       //   in the tracking column (where --lastip puts "ip ...").
 *
 *   and `tracking.reset()` where ptdump resyncs after a decode error. The
 *   column is a reusable struct; `update` builds no strings.
 *
 * Numbers: TSC-sized values are uint32 hi/lo pairs (see time-math.ts for why
 * and for the exactness argument); nothing here allocates per packet.
 */
import type { DecoderConfig } from '../packets/config.js';
import { ErrorCode } from '../packets/errors.js';
import type { Packet } from '../packets/packet.js';
import { PacketType } from '../packets/packet-type.js';
import { TimeCalibration } from './time-calibration.js';
import {
  FCR_SHIFT,
  MTC_CTC_BITS,
  MTC_CTC_MASK,
  TMA_CTC_BITS,
  TMA_CTC_MASK,
  addU64,
  ctcDelta,
  ctcToFastCounter,
  shl1U32,
  subU64,
  u64Add,
  u64FromHiLo,
  u64Hex,
  u64IsZero,
  u64MulDiv,
  u64Sub,
  u64ToBigInt,
  type U64,
} from './time-math.js';

/** The estimated time (libipt's `struct pt_time`). */
export class TimeTracker {
  /** The estimated TSC: [hi, lo]. */
  readonly tsc = new Uint32Array(2);
  /** The TSC at the last TSC/MTC (minus the TMA FastCounter): [hi, lo]. */
  private readonly base = new Uint32Array(2);
  /** TSC ticks since `base` (TMA FastCounter plus scaled CYC cycles). */
  private fc: U64 = 0;
  /** The last CTC value from MTC/TMA, shifted into place. */
  private ctc = 0;
  /** The CTC value when `fc` was last cleared (CYC spanning MTC periods). */
  private ctcCyc = 0;
  /** MTC packets whose update failed since the last TSC. */
  lostMtc = 0;
  /** CYC packets dropped for want of calibration since the last TSC/MTC. */
  lostCyc = 0;
  /** The last core:bus ratio. */
  private cbr = 0;
  haveTsc = false;
  haveCbr = false;
  private haveTma = false;
  private haveMtc = false;

  /** Forget everything (libipt's `pt_time_init`). */
  reset(): void {
    this.tsc[0] = this.tsc[1] = 0;
    this.base[0] = this.base[1] = 0;
    this.fc = 0;
    this.ctc = 0;
    this.ctcCyc = 0;
    this.lostMtc = 0;
    this.lostCyc = 0;
    this.cbr = 0;
    this.haveTsc = false;
    this.haveCbr = false;
    this.haveTma = false;
    this.haveMtc = false;
  }

  /** Make this an exact copy of `other` (C struct assignment). */
  copyFrom(other: TimeTracker): void {
    this.tsc.set(other.tsc);
    this.base.set(other.base);
    this.fc = other.fc;
    this.ctc = other.ctc;
    this.ctcCyc = other.ctcCyc;
    this.lostMtc = other.lostMtc;
    this.lostCyc = other.lostCyc;
    this.cbr = other.cbr;
    this.haveTsc = other.haveTsc;
    this.haveCbr = other.haveCbr;
    this.haveTma = other.haveTma;
    this.haveMtc = other.haveMtc;
  }

  get tscHi(): number {
    return this.tsc[0]!;
  }

  get tscLo(): number {
    return this.tsc[1]!;
  }

  /** The estimated TSC as a BigInt (allocates; not for hot loops). */
  tscBigInt(): bigint {
    return u64ToBigInt(this.tsc[0]!, this.tsc[1]!);
  }

  /**
   * Like libipt's `pt_time_query_tsc`: 0 if a TSC packet has been seen, else
   * `-ErrorCode.NoTime`. The estimate in {@link tsc} is meaningful either way
   * (relative time, as ptdump `--no-wall-clock` prints it).
   */
  queryTsc(): number {
    return this.haveTsc ? 0 : -ErrorCode.NoTime;
  }

  /** The core:bus ratio, or `-ErrorCode.NoCbr` before the first CBR. */
  queryCbr(): number {
    return this.haveCbr ? this.cbr : -ErrorCode.NoCbr;
  }

  /** A TSC packet: the full time; recovers from earlier losses. */
  onTsc(pkt: Packet): number {
    this.haveTsc = true;
    this.haveTma = false;
    this.haveMtc = false;
    this.tsc[0] = this.base[0] = pkt.hi;
    this.tsc[1] = this.base[1] = pkt.lo;
    this.ctc = 0;
    this.fc = 0;
    this.lostMtc = 0;
    this.lostCyc = 0;
    return 0;
  }

  /** A CBR packet: remember the core:bus ratio. */
  onCbr(pkt: Packet): number {
    if (!pkt.ratio) return -ErrorCode.BadPacket;
    this.haveCbr = true;
    this.cbr = pkt.ratio;
    return 0;
  }

  /**
   * A TMA packet (follows a TSC): the TSC was taken `fc` FastCounter ticks
   * after the CTC reached `ctc`, so the MTC base moves back by `fc`.
   */
  onTma(pkt: Packet, config: DecoderConfig): number {
    if (!this.haveTsc) return -ErrorCode.BadContext;
    // At most one TMA per TSC.
    if (this.haveTma) return -ErrorCode.BadContext;
    // MTCs between TSC and TMA are ignored, so none can have been applied.
    if (this.haveMtc) return -ErrorCode.Internal;

    const mtcHi = config.mtcFreq + MTC_CTC_BITS;
    // The CTC bits that MTC packets provide; higher TMA bits are dropped.
    const ctcMask = (shl1U32(mtcHi) - 1) >>> 0;

    this.haveTma = true;
    subU64(this.base, pkt.fc);
    this.fc = u64Add(this.fc, pkt.fc);

    // If TMA holds all the CTC bits MTC provides, it serves as an MTC.
    // Otherwise the next MTC estimates the missing high bits.
    if (mtcHi <= TMA_CTC_BITS) this.haveMtc = true;

    this.ctc = this.ctcCyc = (pkt.ctc & ctcMask) >>> 0;
    return 0;
  }

  /** An MTC packet: advance the base by the CTC ticks since the last MTC/TMA. */
  onMtc(pkt: Packet, config: DecoderConfig): number {
    const haveTsc = this.haveTsc;
    const haveTma = this.haveTma;
    const haveMtc = this.haveMtc;

    // MTCs between TSC and TMA would look like CTC overflows; later MTCs
    // recover the time (provided TMA has enough bits).
    if (haveTsc && !haveTma) return 0;

    let lastCtc = this.ctc;
    const mtcFreq = config.mtcFreq;
    const ctc = (pkt.ctc << mtcFreq) >>> 0;

    // Remember the CTC where the FastCounter restarts (or would have).
    if (!u64IsZero(this.fc) || this.lostCyc || !haveMtc) this.ctcCyc = ctc;

    // Prepare for the next packet in case we fail below.
    this.haveMtc = true;
    this.fc = 0;
    this.ctc = ctc;
    this.lostCyc = 0;

    if (!haveMtc) {
      // Without TMA we cannot tell where in this MTC period tracing
      // started: ignore the first MTC rather than guess.
      if (!haveTma) return 0;

      // TMA did not provide enough bits (else it would count as an MTC).
      if ((lastCtc & ~TMA_CTC_MASK) !== 0) return -ErrorCode.Internal;

      // Take the CTC bits above TMA's from this MTC, assuming no MTC was
      // dropped around the TMA; borrow if the low bits wrapped.
      const ctcLo = ctc & TMA_CTC_MASK;
      let ctcHi = (ctc & ~TMA_CTC_MASK) >>> 0;
      if (ctcLo < lastCtc) {
        ctcHi = (ctcHi - (1 << TMA_CTC_BITS)) >>> 0;
        ctcHi = (ctcHi & ((MTC_CTC_MASK << mtcFreq) >>> 0)) >>> 0;
      }
      lastCtc = (lastCtc | ctcHi) >>> 0;
    }

    const delta = ctcDelta(ctc, lastCtc, mtcFreq);
    if (delta < 0) {
      this.lostMtc += 1;
      return delta;
    }

    const ticks = ctcToFastCounter(delta, config.cpuid15Eax, config.cpuid15Ebx);
    if (typeof ticks === 'number' && ticks < 0) return ticks;

    addU64(this.base, ticks);
    this.tsc.set(this.base);
    return 0;
  }

  /**
   * A CYC packet with calibration ratio `fcr` (from
   * {@link TimeCalibration.fcr}; 0 when unknown, which counts the CYC as lost).
   */
  onCyc(pkt: Packet, fcr: U64, config: DecoderConfig): number {
    if (u64IsZero(fcr)) {
      this.lostCyc += 1;
      return 0;
    }

    let cyc: U64 = u64FromHiLo(pkt.hi, pkt.lo);
    let fc = this.fc;
    if (u64IsZero(fc)) {
      const adjusted = this.adjustCyc(cyc, fcr, config);
      if (typeof adjusted === 'number' && adjusted < 0) return adjusted;
      cyc = adjusted;
    }

    fc = u64Add(fc, u64MulDiv(cyc, fcr, 1 << FCR_SHIFT));

    this.fc = fc;
    this.tsc.set(this.base);
    addU64(this.tsc, fc);
    return 0;
  }

  /**
   * The first CYC after an MTC may span several MTC periods (CYC is only
   * sent once the cycle threshold is reached). Subtract the cycles that the
   * calibration attributes to the earlier periods; if that would go
   * negative, keep none (running slow beats running fast). Returns the
   * adjusted cycle count or a negative error.
   */
  private adjustCyc(cyc: U64, fcr: U64, config: DecoderConfig): U64 {
    const lastCtc = this.ctcCyc;
    const ctc = this.ctc;
    if (ctc === lastCtc) return cyc;

    const delta = ctcDelta(ctc, lastCtc, config.mtcFreq);
    if (delta < 0) return delta;

    const fc = ctcToFastCounter(delta, config.cpuid15Eax, config.cpuid15Ebx);
    if (typeof fc === 'number' && fc < 0) return fc;

    const oldCyc = u64MulDiv(fc, 1 << FCR_SHIFT, fcr);
    const total = cyc < oldCyc ? oldCyc : cyc;
    return u64Sub(total, oldCyc);
  }
}

/** Whether an error from a timing update is ignored by the flow decoders. */
function fatal(status: number): boolean {
  return status < 0 && status !== -ErrorCode.BadConfig;
}

/**
 * Time plus calibration, updated the way libipt's event decoder does it
 * (`pt_evt_apply_*`): calibration first, then the time; configuration
 * errors (missing CPUID 0x15, say) only make timing imprecise and are
 * ignored. Returns 0 or a negative error code.
 *
 * `inHeader` is true for packets between PSB and PSBEND (or OVF).
 */
export class Timing {
  readonly time = new TimeTracker();
  readonly tcal = new TimeCalibration();

  constructor(readonly config: DecoderConfig) {}

  reset(): void {
    this.time.reset();
    this.tcal.reset();
  }

  copyFrom(other: Timing): void {
    this.time.copyFrom(other.time);
    this.tcal.copyFrom(other.tcal);
  }

  onPsb(): number {
    return this.tcal.onPsb(this.config);
  }

  onTsc(pkt: Packet, inHeader: boolean): number {
    let status = inHeader ? this.tcal.onHeaderTsc(pkt) : this.tcal.onTsc(pkt);
    if (fatal(status)) return status;
    status = this.time.onTsc(pkt);
    return fatal(status) ? status : 0;
  }

  onCbr(pkt: Packet, inHeader: boolean): number {
    let status = inHeader ? this.tcal.onHeaderCbr(pkt, this.config) : this.tcal.onCbr(pkt, this.config);
    if (fatal(status)) return status;
    status = this.time.onCbr(pkt);
    return fatal(status) ? status : 0;
  }

  onTma(pkt: Packet): number {
    let status = this.tcal.onTma(pkt);
    if (fatal(status)) return status;
    status = this.time.onTma(pkt, this.config);
    return fatal(status) ? status : 0;
  }

  onMtc(pkt: Packet): number {
    let status = this.tcal.onMtc(pkt, this.config);
    if (fatal(status)) return status;
    status = this.time.onMtc(pkt, this.config);
    return fatal(status) ? status : 0;
  }

  onCyc(pkt: Packet): number {
    let status = this.tcal.onCyc(pkt);
    if (fatal(status)) return status;
    // Without calibration, fall back to 0: the tracker counts a lost CYC.
    let fcr = this.tcal.fcr();
    if (typeof fcr === 'number' && fcr < 0) {
      if (fcr !== -ErrorCode.NoTime) return fcr;
      fcr = 0;
    }
    status = this.time.onCyc(pkt, fcr, this.config);
    return fatal(status) ? status : 0;
  }

  /** A TSC, CBR, TMA, MTC or CYC packet, applied as its own method does; 0 for any other packet. */
  onTimingPacket(pkt: Packet, inHeader: boolean): number {
    switch (pkt.type) {
      case PacketType.Tsc:
        return this.onTsc(pkt, inHeader);
      case PacketType.Cbr:
        return this.onCbr(pkt, inHeader);
      case PacketType.Tma:
        return this.onTma(pkt);
      case PacketType.Mtc:
        return this.onMtc(pkt);
      case PacketType.Cyc:
        return this.onCyc(pkt);
      default:
        return 0;
    }
  }

  /**
   * An OVF: the time is kept (the next event shows how long the overflow
   * lasted); calibration restarts unless `config.flags.keepTcalOnOvf`.
   */
  onOvf(): number {
    if (this.config.flags.keepTcalOnOvf) return this.tcal.onOvf();
    this.tcal.reset();
    return 0;
  }
}

/** ptdump's time-related options. */
export interface PtdumpTimeOptions {
  /** `--time`: show the estimated TSC on timing packets. */
  showTime: boolean;
  /** `--tcal`: show the calibration ratio instead. */
  showTcal: boolean;
  /** `--time-delta`: show the change since the last shown value. */
  timeDelta: boolean;
  /** `--no-tcal`: no calibration (CYC then cannot be converted). */
  noTcal: boolean;
  /** `--no-wall-clock`: show relative time before the first TSC instead of an error. */
  noWallClock: boolean;
  /** `--keep-tcal-on-ovf`. */
  keepTcalOnOvf: boolean;
  /** `--no-cyc`: ignore CYC packets for timing (the dump also hides them). */
  noCyc: boolean;
  /**
   * Track time without showing it (sideband correlation). Tracking is on
   * when this or `showTime` or `showTcal` is set.
   */
  trackTime?: boolean;
}

export enum TimeColumnKind {
  /** Nothing in the tracking column. */
  None = 0,
  /** `tsc <value>`: the estimated TSC, absolute or as a delta. */
  Tsc = 1,
  /** `fcr <value>`: the calibration ratio, absolute or as a delta. */
  Fcr = 2,
}

/** Diagnostic prefixes ptdump prints (as `[<offset>: <prefix>: <error>]`). */
export const DIAG_CALIBRATING = 'error calibrating time';
export const DIAG_UPDATING = 'error updating time';
export const DIAG_CALIBRATION = 'calibration error';
export const DIAG_PRINTING = 'error printing time';
/** Printed with no error code: a CYC that could not be converted. */
export const DIAG_NO_CALIBRATION = 'error updating time: no calibration';

const MAX_DIAGS = 8;

/**
 * What ptdump shows for time at one packet: diagnostics to print before
 * the packet line, and the tracking column. Reused for every packet.
 */
export class TimeColumn {
  kind = TimeColumnKind.None;
  /** The value is not available: ptdump prints `<unavailable>`. */
  unavailable = false;
  /** The value is a change since the last shown value (`--time-delta`). */
  delta = false;
  /** Tsc delta only: time went backwards; `hi:lo` is the magnitude. */
  negative = false;
  /** Tsc: the TSC, or the magnitude of the delta. */
  hi = 0;
  lo = 0;
  /** Fcr: the ratio (a double, as ptdump computes it); signed when `delta`. */
  fcr = 0;
  diagCount = 0;
  readonly diagMessage: string[] = new Array<string>(MAX_DIAGS).fill('');
  /** Negative error code, or 0 for a message without one. */
  readonly diagCode = new Int32Array(MAX_DIAGS);

  clear(): void {
    this.kind = TimeColumnKind.None;
    this.unavailable = false;
    this.delta = false;
    this.negative = false;
    this.hi = this.lo = 0;
    this.fcr = 0;
    this.diagCount = 0;
  }

  addDiag(message: string, code: number): void {
    if (this.diagCount >= MAX_DIAGS) return;
    this.diagMessage[this.diagCount] = message;
    this.diagCode[this.diagCount] = code;
    this.diagCount++;
  }
}

/**
 * ptdump's time tracking (`ptdump_tracking` and `track_*` in
 * ptdump/src/ptdump.c), packet by packet. Unlike {@link Timing}, every error
 * is reported (as a diagnostic) and processing continues.
 */
export class PtdumpTimeTracking {
  readonly time = new TimeTracker();
  readonly tcal = new TimeCalibration();
  /** Between PSB and PSBEND. */
  private inHeader = false;
  /** The last shown TSC and ratio, for deltas. */
  private readonly lastTsc = new Uint32Array(2);
  private lastFcr = 0;
  private readonly trackTime: boolean;

  constructor(
    readonly config: DecoderConfig,
    readonly options: PtdumpTimeOptions,
  ) {
    this.trackTime = options.showTime || options.showTcal || !!options.trackTime;
  }

  /** After a resync (ptdump_tracking_reset). */
  reset(): void {
    this.time.reset();
    this.tcal.reset();
    this.lastTsc[0] = this.lastTsc[1] = 0;
    this.lastFcr = 0;
    this.inHeader = false;
  }

  /** Track `pkt` and fill `col` with what ptdump shows for it. */
  update(pkt: Packet, col: TimeColumn): void {
    col.clear();
    const config = this.config;
    let status: number;

    switch (pkt.type) {
      case PacketType.Psb:
        if (this.trackTime) {
          status = this.tcal.onPsb(config);
          if (status < 0) col.addDiag(DIAG_CALIBRATING, status);
        }
        this.inHeader = true;
        return;

      case PacketType.PsbEnd:
        this.inHeader = false;
        return;

      case PacketType.Ovf:
        if (this.trackTime) {
          if (this.options.keepTcalOnOvf) {
            status = this.tcal.onOvf();
            if (status < 0) col.addDiag(DIAG_CALIBRATING, status);
          } else {
            this.tcal.reset();
          }
        }
        return;

      case PacketType.Tsc:
        if (!this.trackTime) return;
        if (!this.options.noTcal) {
          status = this.inHeader ? this.tcal.onHeaderTsc(pkt) : this.tcal.onTsc(pkt);
          if (status < 0) col.addDiag(DIAG_CALIBRATING, status);
        }
        status = this.time.onTsc(pkt);
        if (status < 0) col.addDiag(DIAG_UPDATING, status);
        this.show(col, false, false);
        return;

      case PacketType.Cbr:
        if (!this.trackTime) return;
        if (!this.options.noTcal) {
          status = this.inHeader ? this.tcal.onHeaderCbr(pkt, config) : this.tcal.onCbr(pkt, config);
          if (status < 0) col.addDiag(DIAG_CALIBRATING, status);
        }
        status = this.time.onCbr(pkt);
        if (status < 0) col.addDiag(DIAG_UPDATING, status);
        // A CBR does not change the time.
        this.show(col, true, false);
        return;

      case PacketType.Tma:
        if (!this.trackTime) return;
        if (!this.options.noTcal) {
          status = this.tcal.onTma(pkt);
          if (status < 0) col.addDiag(DIAG_CALIBRATING, status);
        }
        status = this.time.onTma(pkt, config);
        if (status < 0) col.addDiag(DIAG_UPDATING, status);
        // A TMA does not change the calibration.
        this.show(col, false, true);
        return;

      case PacketType.Mtc:
        if (!this.trackTime) return;
        if (!this.options.noTcal) {
          status = this.tcal.onMtc(pkt, config);
          if (status < 0) col.addDiag(DIAG_CALIBRATING, status);
        }
        status = this.time.onMtc(pkt, config);
        if (status < 0) col.addDiag(DIAG_UPDATING, status);
        this.show(col, false, false);
        return;

      case PacketType.Cyc: {
        if (!this.trackTime || this.options.noCyc) return;
        let fcr: U64 = 0;
        if (!this.options.noTcal) {
          const ratio = this.tcal.fcr();
          if (typeof ratio === 'number' && ratio < 0) col.addDiag(DIAG_CALIBRATION, ratio);
          else fcr = ratio;
          status = this.tcal.onCyc(pkt);
          if (status < 0) col.addDiag(DIAG_CALIBRATING, status);
        }
        status = this.time.onCyc(pkt, fcr, config);
        if (status < 0) col.addDiag(DIAG_UPDATING, status);
        else if (u64IsZero(fcr)) col.addDiag(DIAG_NO_CALIBRATION, 0);
        // A CYC does not change the calibration.
        this.show(col, false, true);
        return;
      }

      default:
        return;
    }
  }

  /** ptdump's track_time: the ratio (`--tcal`), then the time (`--time`). */
  private show(col: TimeColumn, skipTime: boolean, skipTcal: boolean): void {
    if (this.options.showTcal && !skipTcal) this.showTcal(col);
    if (this.options.showTime && !skipTime) this.showTime(col);
  }

  private showTime(col: TimeColumn): void {
    col.kind = TimeColumnKind.Tsc;
    const status = this.time.queryTsc();
    if (status < 0 && !(status === -ErrorCode.NoTime && this.options.noWallClock)) {
      col.addDiag(DIAG_PRINTING, status);
      col.unavailable = true;
      return;
    }

    const hi = this.time.tsc[0]!;
    const lo = this.time.tsc[1]!;
    if (!this.options.timeDelta) {
      col.hi = hi;
      col.lo = lo;
      return;
    }

    col.delta = true;
    const oldHi = this.lastTsc[0]!;
    const oldLo = this.lastTsc[1]!;
    if (oldHi < hi || (oldHi === hi && oldLo <= lo)) {
      col.hi = (hi - oldHi - (lo < oldLo ? 1 : 0)) >>> 0;
      col.lo = (lo - oldLo) >>> 0;
    } else {
      col.negative = true;
      col.hi = (oldHi - hi - (oldLo < lo ? 1 : 0)) >>> 0;
      col.lo = (oldLo - lo) >>> 0;
    }
    this.lastTsc[0] = hi;
    this.lastTsc[1] = lo;
  }

  private showTcal(col: TimeColumn): void {
    col.kind = TimeColumnKind.Fcr;
    const fcr = this.tcal.fcr();
    if (typeof fcr === 'number' && fcr < 0) {
      col.unavailable = true;
      col.addDiag(DIAG_PRINTING, fcr);
      return;
    }
    // ptdump prints the ratio as a double: fcr / 256, and deltas of those.
    const value = Number(fcr) / (1 << FCR_SHIFT);
    if (this.options.timeDelta) {
      col.delta = true;
      col.fcr = value - this.lastFcr;
      this.lastFcr = value;
    } else {
      col.fcr = value;
    }
  }
}

/** The tracking-column label ptdump prints: `tsc`, `fcr`, or '' for none. */
export function timeColumnId(col: TimeColumn): string {
  switch (col.kind) {
    case TimeColumnKind.Tsc:
      return 'tsc';
    case TimeColumnKind.Fcr:
      return 'fcr';
    default:
      return '';
  }
}

/**
 * The tracking-column value as ptdump prints it: `<unavailable>`; a TSC as
 * `%016llx`, a TSC delta as `+%llx`/`-%llx`; a ratio as `%.3f`, a ratio
 * delta as `%+.3f`. '' when there is no column.
 */
export function formatTimeColumn(col: TimeColumn): string {
  if (col.kind === TimeColumnKind.None) return '';
  if (col.unavailable) return '<unavailable>';
  if (col.kind === TimeColumnKind.Tsc) {
    if (!col.delta) return u64Hex(col.hi, col.lo).padStart(16, '0');
    return (col.negative ? '-' : '+') + u64Hex(col.hi, col.lo);
  }
  return formatFixed3(col.fcr, col.delta);
}

/**
 * `printf("%.3f")` (or `"%+.3f"` when `signed`) of the double `x`: its exact
 * binary value rounded to three decimals, exact ties to even, as glibc does.
 */
export function formatFixed3(x: number, signed: boolean): string {
  const negative = x < 0 || Object.is(x, -0);
  const [m, e] = decompose(Math.abs(x));
  // |x| * 1000 = m * 1000 * 2^e.
  let q: bigint;
  if (e >= 0) q = (m * 1000n) << BigInt(e);
  else {
    const num = m * 1000n;
    const den = 1n << BigInt(-e);
    q = num / den;
    const r2 = (num % den) * 2n;
    if (r2 > den || (r2 === den && (q & 1n) === 1n)) q += 1n;
  }
  const text = `${q / 1000n}.${(q % 1000n).toString().padStart(3, '0')}`;
  if (negative) return `-${text}`;
  return signed ? `+${text}` : text;
}

/** A finite non-negative double as m * 2^e with an integer m. */
function decompose(x: number): [bigint, number] {
  if (x === 0) return [0n, 0];
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const exp = (hi >>> 20) & 0x7ff;
  const frac = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (exp === 0) return [frac, -1074];
  return [frac | (1n << 52n), exp - 1075];
}
