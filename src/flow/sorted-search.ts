/**
 * Binary search over sorted data, written once: the address maps, symbol
 * tables, line tables and section lists all ask "which entry starts at or
 * below this address?".
 */

/**
 * The number of leading indices of [0, n) for which `before(i)` holds,
 * where `before` holds for a prefix and then never again (the partition
 * point; equal to n when it always holds).
 */
export function partitionPoint(n: number, before: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Index of the last of the ascending `keys` at or below `x`, or -1. The
 * same search as {@link partitionPoint}, without a closure: the detectors
 * ask once per control transfer.
 */
export function lastAtOrBelow(keys: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
