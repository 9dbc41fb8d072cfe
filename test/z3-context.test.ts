/**
 * The solver's lifecycle (src/analyses/dormant/z3-context.ts): a query that
 * does not answer in time is lost, its context dropped, and the next
 * query runs on a new context: nothing of the lost one (Z3's high-level
 * API holds one lock for every check of every context) holds it up.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { checkWithin, getZ3, lostAfterMs, shutdownZ3, solverLosses, SolverLost } from '../src/analyses/dormant/z3-context.js';

afterAll(async () => {
  await shutdownZ3();
});

describe('Z3 checks', () => {
  it('answers sat and unsat through the bounded check', async () => {
    const z = await getZ3();
    const x = z.BitVec.const('x', 32);
    const sat = new z.Solver();
    sat.add(x.ugt(z.BitVec.val(7, 32)));
    expect(await checkWithin(sat, 10_000)).toBe('sat');
    const unsat = new z.Solver();
    unsat.add(x.ugt(z.BitVec.val(7, 32)), x.ult(z.BitVec.val(3, 32)));
    expect(await checkWithin(unsat, 10_000)).toBe('unsat');
  });

  it('a query that does not answer in time is lost; its context is dropped and a new one answers', async () => {
    const z = await getZ3();
    // Factoring the product of two 31-bit primes by bit-blasting: far more
    // than the few seconds this test waits. Z3's own timeout is set far out,
    // so that only the bound of checkWithin ends the wait.
    const a = z.BitVec.const('a', 64);
    const b = z.BitVec.const('b', 64);
    const n = 2147483647n * 2147483629n;
    const hard = new z.Solver();
    hard.set('timeout', 600_000);
    const one = z.BitVec.val(1, 64);
    const limit = z.BitVec.val(1n << 32n, 64);
    hard.add(a.mul(b).eq(z.BitVec.val(n, 64)), a.ugt(one), b.ugt(one), a.ult(limit), b.ult(limit));
    const started = Date.now();
    const lostBefore = solverLosses();
    await expect(checkWithin(hard, 100)).rejects.toBeInstanceOf(SolverLost);
    expect(solverLosses()).toBe(lostBefore + 1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(lostAfterMs(100) - 50);
    // The lost context's solvers are refused at once.
    await expect(checkWithin(hard, 100)).rejects.toBeInstanceOf(SolverLost);

    const fresh = await getZ3();
    expect(fresh).not.toBe(z);
    const y = fresh.BitVec.const('y', 32);
    const s = new fresh.Solver();
    s.add(y.eq(fresh.BitVec.val(42, 32)));
    expect(await checkWithin(s, 10_000)).toBe('sat');
    expect((s.model().eval(y) as unknown as { value(): bigint }).value()).toBe(42n);
  }, 60_000);
});
