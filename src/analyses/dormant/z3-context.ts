/**
 * Dormant code: the Z3 solver's lifecycle. Terms are built in this process
 * on one WASM instance (created on first use; only synchronous calls, so
 * none of its worker threads runs); checks go to the solver process
 * (solver-process.ts), where a check that crashes or stays silent costs a
 * process, not the analysis. {@link shutdownZ3} stops both so that the
 * process can exit (the CLI and the tests call it when done).
 */
import type { Z3 } from './slice.js';
import { checkInSolverProcess, stopSolverProcess } from './solver-process.js';

export { solverLosses } from './solver-process.js';

type Api = Awaited<ReturnType<(typeof import('z3-solver'))['init']>>;

let current: Promise<{ z3: Z3; api: Api }> | null = null;

/** The Z3 context terms are built in (WASM, initialised once per process). */
export async function getZ3(): Promise<Z3> {
  current ??= (async () => {
    const { init } = await import('z3-solver');
    const api = await init();
    return { z3: api.Context('main') as unknown as Z3, api };
  })();
  return (await current).z3;
}

/** Stop Z3's worker threads and the solver process so that the process can exit. */
export async function shutdownZ3(): Promise<void> {
  stopSolverProcess();
  if (current === null) return;
  const dropped = current;
  current = null;
  (await dropped).api.em.PThread?.terminateAllThreads?.();
}

/**
 * Per-query solver timeout. The demo guards solve in well under a second;
 * the margin is for a loaded machine (a test suite running in parallel).
 */
export const DEFAULT_SOLVER_TIMEOUT_MS = 20_000;

/** A bit-vector constant whose value a sat answer should carry. */
export interface Queried {
  name: string;
  bits: number;
}

export interface CheckResult {
  answer: 'sat' | 'unsat' | 'unknown';
  /** The value of each queried constant (when sat), by name. */
  values: Map<string, bigint>;
}

/**
 * Check a solver's assertions with Z3's timeout `timeoutMs` ("unknown" past
 * it), and return the values of `evaluate` in the model when sat (model
 * completion: a constant the assertions leave free is 0).
 */
export async function checkWithin(solver: { toString(): string }, timeoutMs: number, evaluate: readonly Queried[] = []): Promise<CheckResult> {
  const r = await checkInSolverProcess({ smt: solver.toString(), timeoutMs, evaluate });
  const values = new Map<string, bigint>();
  r.values.forEach((v, i) => values.set(evaluate[i].name, v));
  return { answer: r.answer, values };
}
