/**
 * Dormant code: the solver process (started by solver-process.ts). It
 * answers one query at a time over the IPC channel: SMT-LIB2 assertions in,
 * sat/unsat/unknown and the values of the named constants out.
 *
 * Z3's WASM build runs every check on a worker thread of its own; such a
 * thread was seen to crash or stay silent now and then, and either leaves
 * the WASM instance's locks in a state no later call recovers from. Here a
 * lost instance takes only this process with it: the parent kills it and
 * starts another.
 */
import type { Context as Z3Context } from 'z3-solver';
import type { SolverAnswer, SolverQuery } from './solver-process.js';

type Context = Z3Context<'main'>;

let ready: Promise<Context> | null = null;

function context(): Promise<Context> {
  ready ??= (async () => {
    const { init } = await import('z3-solver');
    return (await init()).Context('main');
  })();
  return ready;
}

async function answer(q: SolverQuery): Promise<SolverAnswer> {
  const z = await context();
  const s = new z.Solver();
  s.set('timeout', q.timeoutMs);
  s.fromString(q.smt);
  const r = await s.check();
  if (r !== 'sat') return { id: q.id, answer: r, values: [] };
  const model = s.model();
  const values = q.evaluate.map(({ name, bits }) => (model.eval(z.BitVec.const(name, bits), true) as unknown as { value(): bigint }).value().toString());
  return { id: q.id, answer: 'sat', values };
}

process.on('message', (msg: SolverQuery) => {
  answer(msg).then(
    (a) => process.send!(a),
    (e: unknown) => process.send!({ id: msg.id, error: String(e instanceof Error ? e.message : e).split('\n')[0] } satisfies SolverAnswer),
  );
});
// The parent's end of the channel closing is the signal to go.
process.on('disconnect', () => process.exit(0));
