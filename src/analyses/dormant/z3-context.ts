/**
 * Dormant code: the Z3 solver's lifecycle. One WASM instance per process,
 * created on first use; {@link shutdownZ3} stops its worker threads so that
 * the process can exit (the CLI and the tests call it when done).
 *
 * A query that never answers (Z3's WASM build runs each check on a worker
 * thread; one was seen to stay silent forever, its thread idle) must not
 * take the rest of the process with it. The high-level API serialises
 * every check of every instance on one module-wide lock, so a lost check
 * would hold that lock for good and every later query, even on a new
 * instance, would wait behind it. Checks therefore go to the low-level API
 * here, serialised per instance; a lost query drops its instance (its
 * threads stopped), the next {@link getZ3} makes a new one, and the caller
 * gets a {@link SolverLost} to start its query again on it.
 */
import type { Z3 } from './slice.js';

type Api = Awaited<ReturnType<(typeof import('z3-solver'))['init']>>;

interface Instance {
  z3: Z3;
  api: Api;
  /** Z3's WASM build runs one asynchronous call at a time: the end of the last one queued. */
  queue: Promise<void>;
}

let current: Promise<Instance> | null = null;

async function instance(): Promise<Instance> {
  current ??= (async () => {
    const { init } = await import('z3-solver');
    const api = await init();
    const z3 = api.Context('main') as unknown as Z3;
    // The high-level API releases ASTs from JS finalizers (Z3.dec_ref on the
    // main thread) while a check may be running on Z3's worker thread: Z3
    // only makes that safe when told to (Z3_enable_concurrent_dec_ref). Without
    // it the context's heap was corrupted now and then ("memory access out of
    // bounds" in ast_manager::compact_memory, a "null sort" at solver.add).
    api.Z3.enable_concurrent_dec_ref(contextPtr(z3));
    return { z3, api, queue: Promise.resolve() };
  })();
  return current;
}

function contextPtr(z3: Z3): Parameters<Api['Z3']['enable_concurrent_dec_ref']>[0] {
  return (z3 as unknown as { ptr: Parameters<Api['Z3']['enable_concurrent_dec_ref']>[0] }).ptr;
}

function stopThreads(api: Api): void {
  (api.em as { PThread?: { terminateAllThreads?: () => void } }).PThread?.terminateAllThreads?.();
}

/** The Z3 context (WASM, initialised once per process, and again after a lost query). */
export async function getZ3(): Promise<Z3> {
  return (await instance()).z3;
}

/** Stop Z3's worker threads so that the process can exit. */
export async function shutdownZ3(): Promise<void> {
  if (current === null) return;
  const dropped = current;
  current = null;
  stopThreads((await dropped).api);
}

/** A query that did not answer in time: its context is gone; start the query again on a new {@link getZ3}. */
export class SolverLost extends Error {}

const DROPPED = 'the solver context was dropped after a lost query';

let lostQueries = 0;

/** Queries lost in this process so far (each dropped its context). */
export function solverLosses(): number {
  return lostQueries;
}

/**
 * Per-query solver timeout. The demo guards solve in well under a second;
 * the margin is for a loaded machine (a test suite running in parallel).
 */
export const DEFAULT_SOLVER_TIMEOUT_MS = 20_000;

/**
 * Past the solver's own timeout (which Z3 checks cooperatively and keeps to
 * within a fraction of a second), how long a query may take before it
 * counts as lost.
 */
export function lostAfterMs(timeoutMs: number): number {
  return timeoutMs + Math.min(30_000, 5_000 + timeoutMs / 4);
}

/** What {@link checkWithin} needs of a high-level solver. */
interface CheckedSolver {
  readonly ctx: unknown;
  readonly ptr: unknown;
}

/**
 * `solver.check()`, bounded. The solver's own `timeout` parameter should
 * end the query at `timeoutMs` with "unknown"; past {@link lostAfterMs} it
 * is lost: its instance is dropped and a {@link SolverLost} thrown.
 */
export async function checkWithin(solver: CheckedSolver, timeoutMs: number): Promise<'sat' | 'unsat' | 'unknown'> {
  const pending = current;
  const inst = pending === null ? null : await pending;
  if (inst === null || current !== pending || solver.ctx !== inst.z3) throw new SolverLost(DROPPED);
  const { api } = inst;
  const ctx = contextPtr(inst.z3);
  const ran = inst.queue.then(() => {
    if (current !== pending) throw new SolverLost(DROPPED);
    let timer: NodeJS.Timeout | undefined;
    const lost = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        lostQueries++;
        if (current === pending) void shutdownZ3();
        reject(new SolverLost(`the Z3 solver did not answer within ${Math.round(lostAfterMs(timeoutMs) / 1000)} s`));
      }, lostAfterMs(timeoutMs));
      timer.unref();
    });
    const answer = api.Z3.solver_check(ctx, solver.ptr as Parameters<Api['Z3']['solver_check']>[1]);
    return Promise.race([answer, lost]).finally(() => clearTimeout(timer));
  });
  inst.queue = ran.then(
    () => undefined,
    () => undefined,
  );
  const r = await ran;
  const code = api.Z3.get_error_code(ctx);
  if (code !== 0) throw new Error(`Z3: ${api.Z3.get_error_msg(ctx, code)}`);
  // Z3_lbool: -1 false, 0 undefined, 1 true.
  return r === 1 ? 'sat' : r === -1 ? 'unsat' : 'unknown';
}
