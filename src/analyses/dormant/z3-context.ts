/**
 * Dormant code: the Z3 solver's lifecycle. One WASM context per process,
 * created on first use; {@link shutdownZ3} stops its worker threads so that
 * the process can exit (the CLI and the tests call it when done).
 */
import type { Z3 } from './slice.js';

let z3Promise: Promise<{ z3: Z3; shutdown: () => void }> | null = null;

/** The Z3 context (WASM, initialised once per process). */
export async function getZ3(): Promise<Z3> {
  z3Promise ??= (async () => {
    const { init } = await import('z3-solver');
    const api = await init();
    const ctx = api.Context('main') as unknown as Z3;
    // The high-level API releases ASTs from JS finalizers (Z3.dec_ref on the
    // main thread) while a check() may be running on Z3's worker thread: Z3
    // only makes that safe when told to (Z3_enable_concurrent_dec_ref). Without
    // it the context's heap was corrupted now and then ("memory access out of
    // bounds" in ast_manager::compact_memory, a "null sort" at solver.add).
    api.Z3.enable_concurrent_dec_ref((ctx as unknown as { ptr: Parameters<typeof api.Z3.enable_concurrent_dec_ref>[0] }).ptr);
    return { z3: ctx, shutdown: () => (api.em as { PThread?: { terminateAllThreads?: () => void } }).PThread?.terminateAllThreads?.() };
  })();
  return (await z3Promise).z3;
}

/** Stop Z3's worker threads so that the process can exit. */
export async function shutdownZ3(): Promise<void> {
  if (z3Promise === null) return;
  (await z3Promise).shutdown();
  z3Promise = null;
}

/**
 * Per-query solver timeout. The demo guards solve in well under a second;
 * the margin is for a loaded machine (a test suite running in parallel).
 */
export const DEFAULT_SOLVER_TIMEOUT_MS = 20_000;

/** Past the solver's own timeout, how long a query may take before it counts as lost. */
const WATCHDOG_MARGIN_MS = 30_000;

/**
 * `solver.check()`, bounded: Z3's WASM build runs queries on worker threads,
 * and a thread that crashes (seen once: "memory access out of bounds"
 * inside Z3) never answers, which would hang the analysis. Past the solver's
 * timeout plus a margin the query is lost: the context is dropped (a fresh
 * one is made on next use) and the caller gets an Error.
 */
export async function checkWithin(solver: { check(): Promise<string> }, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const lost = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void shutdownZ3();
      reject(new Error(`the Z3 solver did not answer within ${Math.round((timeoutMs + WATCHDOG_MARGIN_MS) / 1000)} s (its worker thread failed)`));
    }, timeoutMs + WATCHDOG_MARGIN_MS);
    timer.unref();
  });
  try {
    return await Promise.race([solver.check(), lost]);
  } finally {
    clearTimeout(timer);
  }
}
