/**
 * The solver's lifecycle (src/analyses/dormant/z3-context.ts and
 * solver-process.ts): terms are built in this process, checks run in a
 * child process; a check whose process dies or stays silent is lost, the
 * process is replaced and the check runs again there.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { checkWithin, getZ3, shutdownZ3, solverLosses } from '../src/analyses/dormant/z3-context.js';
import { lostAfterMs, solverProcessId } from '../src/analyses/dormant/solver-process.js';

afterAll(async () => {
  await shutdownZ3();
});

/** Factoring the product of two 31-bit primes by bit-blasting: far more than the few seconds a test waits. */
async function hardSolver() {
  const z = await getZ3();
  const a = z.BitVec.const('a', 64);
  const b = z.BitVec.const('b', 64);
  const one = z.BitVec.val(1, 64);
  const limit = z.BitVec.val(1n << 32n, 64);
  const s = new z.Solver();
  s.add(a.mul(b).eq(z.BitVec.val(2147483647n * 2147483629n, 64)), a.ugt(one), b.ugt(one), a.ult(limit), b.ult(limit));
  return s;
}

async function easySolver() {
  const z = await getZ3();
  const s = new z.Solver();
  s.add(z.BitVec.const('y', 32).eq(z.BitVec.val(42, 32)));
  return s;
}

describe('Z3 checks', () => {
  it('answers sat with the values asked for, and unsat', async () => {
    const z = await getZ3();
    // Names like the executor's symbols, which SMT-LIB2 must quote.
    const x = z.BitVec.const('getenv@401020#0.ret', 32);
    const sat = new z.Solver();
    sat.add(x.ugt(z.BitVec.val(7, 32)), x.ult(z.BitVec.val(9, 32)));
    const r = await checkWithin(sat, 10_000, [
      { name: 'getenv@401020#0.ret', bits: 32 },
      { name: 'free', bits: 16 },
    ]);
    expect(r.answer).toBe('sat');
    expect(r.values.get('getenv@401020#0.ret')).toBe(8n);
    // Model completion: a constant the assertions leave free is 0.
    expect(r.values.get('free')).toBe(0n);
    const unsat = new z.Solver();
    unsat.add(x.ugt(z.BitVec.val(7, 32)), x.ult(z.BitVec.val(3, 32)));
    const u = await checkWithin(unsat, 10_000, [{ name: 'getenv@401020#0.ret', bits: 32 }]);
    expect(u.answer).toBe('unsat');
    expect(u.values.size).toBe(0);
  });

  it("Z3's timeout answers unknown, and the solver process stays", async () => {
    expect((await checkWithin(await easySolver(), 10_000)).answer).toBe('sat');
    const pid = solverProcessId();
    const lostBefore = solverLosses();
    expect((await checkWithin(await hardSolver(), 300)).answer).toBe('unknown');
    expect(solverProcessId()).toBe(pid);
    expect(solverLosses()).toBe(lostBefore);
  }, 30_000);

  it('a solver process that dies mid-check is replaced, and the check runs again', async () => {
    expect((await checkWithin(await easySolver(), 10_000)).answer).toBe('sat');
    const pid = solverProcessId()!;
    const lostBefore = solverLosses();
    const hard = checkWithin(await hardSolver(), 2_000);
    setTimeout(() => process.kill(pid, 'SIGKILL'), 300);
    // The second run ends at Z3's own timeout.
    expect((await hard).answer).toBe('unknown');
    expect(solverLosses()).toBe(lostBefore + 1);
    expect(solverProcessId()).not.toBe(pid);
    const again = await checkWithin(await easySolver(), 10_000, [{ name: 'y', bits: 32 }]);
    expect(again.values.get('y')).toBe(42n);
  }, 30_000);

  it('a silent solver process is killed past the timeout and its margin; the check runs again and answers', async () => {
    expect((await checkWithin(await easySolver(), 10_000)).answer).toBe('sat');
    const pid = solverProcessId()!;
    const lostBefore = solverLosses();
    process.kill(pid, 'SIGSTOP');
    const started = Date.now();
    const r = await checkWithin(await easySolver(), 100, [{ name: 'y', bits: 32 }]);
    expect(r.answer).toBe('sat');
    expect(r.values.get('y')).toBe(42n);
    expect(solverLosses()).toBe(lostBefore + 1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(lostAfterMs(100) - 50);
    expect(solverProcessId()).not.toBe(pid);
  }, 30_000);

  it('shutdownZ3 stops the solver process', async () => {
    expect((await checkWithin(await easySolver(), 10_000)).answer).toBe('sat');
    const pid = solverProcessId()!;
    await shutdownZ3();
    expect(solverProcessId()).toBeNull();
    await new Promise((r) => setTimeout(r, 200));
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
