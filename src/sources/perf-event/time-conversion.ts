/**
 * Conversion between perf clock time (ns) and TSC ticks.
 *
 * perf publishes the conversion in `struct perf_event_mmap_page`
 * (time_zero, time_shift, time_mult; cap_user_time_zero) and copies it into
 * perf.data as PERF_RECORD_TIME_CONV. The kernel defines
 *
 *   time = time_zero + ((tsc * time_mult) >> time_shift)
 *
 * computed without overflow by splitting tsc at the shift. The inverse is
 * the one perf's `perf_time_to_tsc` and libipt's `pev_time_to_tsc` use.
 * All arithmetic is on unsigned 64-bit values with wrap-around, like C.
 */
export interface TimeConversion {
  timeZero: bigint;
  /** 0..65535 (u16 in the mmap page). */
  timeShift: number;
  /** 1..2^32-1 (u32); 0 is invalid. */
  timeMult: number;
  /**
   * cap_user_time_short (perf.data TIME_CONV, newer kernels): the TSC is
   * only `timeMask` wide and counts from `timeCycles`.
   */
  timeCycles?: bigint;
  timeMask?: bigint;
}

/** The identity conversion libipt's tools default to. */
export const IDENTITY_TIME_CONVERSION: TimeConversion = Object.freeze({
  timeZero: 0n,
  timeShift: 0,
  timeMult: 1,
});

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);

/** True when `conv` can be used: a non-zero multiplier. */
export function isValidTimeConversion(conv: TimeConversion): boolean {
  return conv.timeMult !== 0;
}

/**
 * perf time to TSC. Time 0 marks records perf synthesized (not a real
 * time) and maps to TSC 0, as in libipt. Throws RangeError for a zero
 * multiplier; check {@link isValidTimeConversion} to report it instead.
 */
export function perfTimeToTsc(time: bigint, conv: TimeConversion): bigint {
  if (time === 0n) return 0n;
  if (!conv.timeMult) throw new RangeError('time_mult is zero');
  const mult = BigInt(conv.timeMult);
  const shift = BigInt(conv.timeShift);
  const t = U64(time - conv.timeZero);
  const quot = t / mult;
  const rem = t % mult;
  return U64(U64(quot << shift) + U64(rem << shift) / mult);
}

/** TSC to perf time (the kernel's formula). Throws RangeError for a zero multiplier. */
export function tscToPerfTime(tsc: bigint, conv: TimeConversion): bigint {
  if (!conv.timeMult) throw new RangeError('time_mult is zero');
  let cyc = U64(tsc);
  if (conv.timeMask !== undefined && conv.timeCycles !== undefined) {
    cyc = U64(conv.timeCycles + ((cyc - conv.timeCycles) & conv.timeMask));
  }
  const mult = BigInt(conv.timeMult);
  const shift = BigInt(conv.timeShift);
  const quot = cyc >> shift;
  const rem = cyc & U64((1n << shift) - 1n);
  return U64(conv.timeZero + U64(quot * mult) + (U64(rem * mult) >> shift));
}
