/**
 * Dormant code: where to search. The static path from a guard's region side
 * to the region's target ({@link cfgPath}), and the search over guards and
 * snapshots for call results that flip one ({@link solveGuards}).
 */
import { EdgeKind, type ModuleCfg } from '../../flow/static/cfg.js';
import type { Guard } from './guards.js';
import type { CallSnapshot } from './snapshot.js';
import type { CodeSpace } from './code-space.js';
import { SymbolicExecutor, type PartialReach, type Solution } from './symbolic.js';
import { Unsolved } from './unsolved.js';
import type { Z3 } from './slice.js';
import { getZ3 } from './z3-context.js';

/**
 * Intra-function CFG path (link-time block starts) from `from` to `to`,
 * shortest first; calls are stepped over (call block → return site).
 */
export function cfgPath(cfg: ModuleCfg, from: number, to: number): number[] | null {
  const prev = new Map<number, number>([[from, -1]]);
  const queue = [from];
  while (queue.length > 0) {
    const b = queue.shift()!;
    if (b === to) break;
    for (let e = cfg.edgeFirst[b]; e < cfg.edgeFirst[b + 1]; e++) {
      const k = cfg.edgeKind[e];
      if (k !== EdgeKind.Fallthrough && k !== EdgeKind.Taken && k !== EdgeKind.NotTaken && k !== EdgeKind.ReturnSite) continue;
      const t = cfg.edgeBlock[e];
      if (t < 0 || prev.has(t)) continue;
      prev.set(t, b);
      queue.push(t);
    }
  }
  if (!prev.has(to)) return null;
  const path: number[] = [];
  for (let b = to; b !== -1; b = prev.get(b)!) path.push(cfg.blockStart[b]);
  return path.reverse();
}

/** A solution for one guard: to the target, or part of the way (partial). */
export interface GuardSolution {
  guard: string;
  solution: Solution;
  partial: PartialReach | null;
}

/** How hard to search, and what ran so far. */
export interface GuardSearchOptions {
  maxAttempts?: number;
  timeoutMs?: number;
  /**
   * True if the main executable's block at this link-time address ran in
   * some run so far. A partial solution that opens a block of the main
   * executable no run executed is preferred over one that goes where a run
   * went already (the body of a loop, again).
   */
  ran?: (link: number) => boolean;
}

/**
 * Solve for call results that flip one of `guards` and lead to `target`.
 * A solution that reaches the target wins; else the first partial one
 * (the guard flipped, conditions up to a block the snapshots cannot
 * decide) that leads to a block no run executed, else the first partial
 * one; else the reason of the most advanced attempt.
 */
export async function solveGuards(guards: Guard[], target: number, code: CodeSpace, snapshots: CallSnapshot[], options: GuardSearchOptions): Promise<{ found: GuardSolution | null; reason: string }> {
  return solveGuardsWith(await getZ3(), guards, target, code, snapshots, options);
}

async function solveGuardsWith(z3: Z3, guards: Guard[], target: number, code: CodeSpace, snapshots: CallSnapshot[], options: GuardSearchOptions): Promise<{ found: GuardSolution | null; reason: string }> {
  const cfg = code.mainCfg;
  let best: { reason: string; reached: boolean } | null = null;
  let partial: GuardSolution | null = null;
  let partialToNew: GuardSolution | null = null;
  const maxAttempts = options.maxAttempts ?? 12;
  for (const g of guards.slice(0, 4)) {
    // The target if a path leads there from this guard, else the region entry itself.
    const toTarget = cfgPath(cfg, g.entry, target);
    const path = toTarget ?? [cfg.blockStart[g.entry]];
    // The latest calls first; only calls from code the recording holds (the program's own modules).
    const candidates = [...snapshots].reverse().filter((s) => code.callerOf(s) >= 0).slice(0, maxAttempts);
    for (const s of candidates) {
      let ex: SymbolicExecutor;
      try {
        ex = new SymbolicExecutor(z3, code, { snapshot: s, snapshots, guardIp: g.branchIp, regionSide: g.regionSide, path, timeoutMs: options.timeoutMs });
      } catch (e) {
        if (!(e instanceof Unsolved)) throw e;
        best ??= { reason: e.message, reached: false };
        continue;
      }
      const res = await ex.run();
      if (res.solved) {
        const short = res.partial ?? (toTarget === null ? { block: cfg.blockStart[g.entry], module: '', reason: 'no path in the function\'s CFG leads from the guard to the target' } : null);
        const found = { guard: `0x${g.branchIp.toString(16)}`, solution: res.solution, partial: short };
        if (short === null) return { found, reason: '' };
        partial ??= found;
        if (options.ran !== undefined && short.module === '' && !options.ran(short.block)) partialToNew ??= found;
        continue;
      }
      if (res.reached && (best === null || !best.reached)) best = res;
    }
  }
  const reason =
    best?.reason ??
    (guards.length === 0
      ? 'no executed conditional branch leads into the region'
      : 'the guard was not reached from the return of any modelled library call: its condition does not come from one');
  return { found: partialToNew ?? partial, reason };
}
