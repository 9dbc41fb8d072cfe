/**
 * Dormant code: Z3 checks run in a child process (solver-child.ts), one at
 * a time, so that a lost check cannot take the analysis with it.
 *
 * Z3's WASM build runs each check on a worker thread of the instance. Such
 * a thread was seen, now and then, to stay silent forever or to crash; a
 * crash leaves the instance unusable (its main thread then throws from
 * every lock it waits on, as uncaught exceptions in the host process).
 * Dropping the instance's threads in-process left the same state. A child
 * process is the unit that can be stopped cleanly: a query it does not
 * answer within the solver's timeout plus a margin, or one it dies on, is
 * lost; the child is killed and the query runs once more on a new one.
 * Assertions travel as SMT-LIB2 text, printed and parsed by Z3 itself.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** One check: the assertions (SMT-LIB2), Z3's timeout, and the bit-vector constants whose values to return when sat. */
export interface SolverQuery {
  id: number;
  smt: string;
  timeoutMs: number;
  evaluate: readonly { name: string; bits: number }[];
}

/** The child's answer: the values (decimal) in `evaluate`'s order when sat; or Z3's error, one line. */
export type SolverAnswer = { id: number; answer: 'sat' | 'unsat' | 'unknown'; values: string[] } | { id: number; error: string };

export interface SolverResult {
  answer: 'sat' | 'unsat' | 'unknown';
  /** Values of the queried constants, in order (empty unless sat). */
  values: bigint[];
}

/**
 * Past the solver's own timeout (which Z3 checks cooperatively and keeps to
 * within a fraction of a second), how long a query may take before it
 * counts as lost.
 */
export function lostAfterMs(timeoutMs: number): number {
  return timeoutMs + Math.min(30_000, 5_000 + timeoutMs / 4);
}

/** How often one query is tried on a fresh process before it counts as "unknown". */
const ATTEMPTS = 2;

function childFile(): string {
  const here = new URL(import.meta.url);
  // Tests run the TypeScript sources; the child runs from the build.
  if (here.pathname.endsWith('.ts')) return new URL('../../../dist/src/analyses/dormant/solver-child.js', here).pathname;
  return new URL('./solver-child.js', here).pathname;
}

interface Pending {
  id: number;
  settle: (outcome: SolverAnswer | { lost: string }) => void;
}

class SolverChild {
  readonly process: ChildProcess;
  pending: Pending | null = null;
  private exited = false;

  constructor() {
    this.process = fork(childFile(), [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], execArgv: [], serialization: 'json' });
    this.process.on('message', (m: SolverAnswer) => {
      if (this.pending?.id === m.id) this.pending.settle(m);
    });
    this.process.on('exit', (code, signal) => {
      this.exited = true;
      this.pending?.settle({ lost: `the solver process ended (${signal ?? `exit code ${code}`})` });
    });
    this.process.on('error', (e) => this.pending?.settle({ lost: `the solver process failed: ${e.message}` }));
    this.idle();
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** An idle child does not keep the parent's event loop alive. */
  idle(): void {
    this.process.unref();
    this.process.channel?.unref();
  }

  busy(): void {
    this.process.ref();
    this.process.channel?.ref();
  }

  stop(): void {
    if (this.exited) return;
    this.process.kill('SIGKILL');
  }
}

let child: SolverChild | null = null;
let nextId = 1;
let queue: Promise<unknown> = Promise.resolve();
let lostQueries = 0;

/** Queries lost in this process so far (each ran again on a new solver process). */
export function solverLosses(): number {
  return lostQueries;
}

/** The solver process's pid, or null when none runs (for tests and diagnostics). */
export function solverProcessId(): number | null {
  return child?.alive ? (child.process.pid ?? null) : null;
}

/** Stop the solver process (the next query starts a new one). */
export function stopSolverProcess(): void {
  child?.stop();
  child = null;
}

function attempt(query: Omit<SolverQuery, 'id'>): Promise<SolverAnswer | { lost: string }> {
  if (child === null || !child.alive) child = new SolverChild();
  const c = child;
  const id = nextId++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => settle({ lost: `the Z3 solver did not answer within ${Math.round(lostAfterMs(query.timeoutMs) / 1000)} s` }), lostAfterMs(query.timeoutMs));
    function settle(outcome: SolverAnswer | { lost: string }): void {
      if (c.pending?.id !== id) return;
      c.pending = null;
      clearTimeout(timer);
      c.idle();
      resolve(outcome);
    }
    c.pending = { id, settle };
    c.busy();
    c.process.send({ id, ...query } satisfies SolverQuery, (e) => {
      if (e) settle({ lost: `the solver process did not take the query: ${e.message}` });
    });
  });
}

async function run(query: Omit<SolverQuery, 'id'>): Promise<SolverResult> {
  for (let n = 0; n < ATTEMPTS; n++) {
    const outcome = await attempt(query);
    if ('lost' in outcome) {
      lostQueries++;
      stopSolverProcess();
      continue;
    }
    if ('error' in outcome) throw new Error(`Z3: ${outcome.error}`);
    return { answer: outcome.answer, values: outcome.values.map((v) => BigInt(v)) };
  }
  // Lost on every attempt: as far as the caller can tell, Z3 gave up.
  return { answer: 'unknown', values: [] };
}

/** Check SMT-LIB2 assertions in the solver process; queries run one at a time, in order. */
export function checkInSolverProcess(query: Omit<SolverQuery, 'id'>): Promise<SolverResult> {
  const result = queue.then(() => run(query));
  queue = result.catch(() => undefined);
  return result;
}
