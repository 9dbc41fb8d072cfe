/**
 * Crash root cause: a stack that ran out. A fault on an address it cannot
 * access (unmapped, or the guard page below the stack) next to the stack pointer is the stack's end, whatever the instruction
 * (a push, a call, a store into a new frame). Two causes are told apart:
 * calls that recurse (one call site open many times at the crash, the
 * calls between two of its openings being the cycle) and one allocation
 * that moved the stack pointer down by more than is usually left.
 */

/** How far from the stack pointer an unmapped access still counts as the stack's end. */
export const STACK_END_REACH = 64 * 1024;
/** Openings of one call site at the crash that make a recursion. */
export const MIN_RECURSION = 8;
/** A single move of the stack pointer this large is an allocation worth naming. */
export const LARGE_STACK_ALLOCATION = 64 * 1024;

/**
 * True if an access at `addr` that faulted is the stack's end: the address
 * cannot be accessed that way (unmapped, or a guard page) and lies next to
 * the stack pointer.
 */
export function isStackEnd(addr: number, rsp: number, accessible: boolean): boolean {
  return !accessible && Math.abs(addr - rsp) <= STACK_END_REACH;
}

export interface Recursion {
  /** Window index of the innermost opening of the recursive call site. */
  site: number;
  /** How many times that call site is open at the crash (a lower bound: the window is finite). */
  openings: number;
  /** Window indices of the calls of one turn of the cycle, outermost first, ending with `site`. */
  cycle: number[];
}

/**
 * The call site open most often among `openCalls` (window indices of the
 * calls not yet returned at the crash, outermost first), if it is open at
 * least {@link MIN_RECURSION} times.
 */
export function recursionAtCrash(openCalls: readonly number[], callSiteIp: (c: number) => number): Recursion | null {
  const counts = new Map<number, number>();
  let best = -1;
  let bestCount = 0;
  for (const c of openCalls) {
    const ip = callSiteIp(c);
    const k = (counts.get(ip) ?? 0) + 1;
    counts.set(ip, k);
    // Ties go to the innermost site: the one nearest the crash.
    if (k >= bestCount) {
      best = ip;
      bestCount = k;
    }
  }
  if (bestCount < MIN_RECURSION) return null;
  let last = -1;
  let previous = -1;
  for (let k = openCalls.length - 1; k >= 0 && previous < 0; k--) {
    if (callSiteIp(openCalls[k]) !== best) continue;
    if (last < 0) last = k;
    else previous = k;
  }
  return { site: openCalls[last], openings: bestCount, cycle: openCalls.slice(previous + 1, last + 1) };
}

/**
 * The innermost frame's stack allocation, if it took at least
 * {@link LARGE_STACK_ALLOCATION} bytes: from window index `from` (the first
 * instruction of that frame) to the crash, how far rsp went down, and the
 * instruction that moved it down the most in one step (a variable-length
 * array or alloca; with stack-clash protection, one of its page probes, on
 * the same source line). `rspBefore(t)` is rsp before window index t.
 */
export function frameAllocation(from: number, n: number, writesRsp: (t: number) => boolean, rspBefore: (t: number) => bigint | null): { t: number; bytes: number } | null {
  let best: { t: number; drop: number } | null = null;
  let dropped = 0;
  for (let t = from; t + 1 < n; t++) {
    if (!writesRsp(t)) continue;
    const a = rspBefore(t);
    const b = rspBefore(t + 1);
    if (a === null || b === null) continue;
    const drop = Number(a - b);
    dropped += drop;
    if (drop > 0 && (best === null || drop > best.drop)) best = { t, drop };
  }
  if (best === null) return null;
  const start = rspBefore(from);
  const end = rspBefore(n - 1);
  const bytes = start !== null && end !== null ? Number(start - end) : dropped;
  return bytes >= LARGE_STACK_ALLOCATION ? { t: best.t, bytes } : null;
}
