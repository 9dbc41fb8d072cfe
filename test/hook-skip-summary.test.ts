/**
 * hook-skip's segment summary (src/analyses/summaries/hook-skip-summary.ts):
 * folded over any cut of a run of transfers and events, it gives what the
 * detector gives serially, findings, evidence and notes alike; and
 * `analyze --jobs` runs hook-skip and gives the serial result.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../bench/synthetic-trace.js';
import { analyzeTrace } from '../src/analyses/analyze.js';
import type { DetectorContext } from '../src/analyses/detector-base.js';
import { HookSkipDetector } from '../src/analyses/hook-skip.js';
import { analyzeParallel } from '../src/analyses/parallel/parallel-analyze.js';
import { inThreadDecoder } from '../src/analyses/parallel/piece-pool.js';
import { hookSkipSummaryRule } from '../src/analyses/summaries/hook-skip-summary.js';
import { jobsRefusal } from '../src/analyses/summaries/summary.js';
import { openTraceInput } from '../src/analyses/trace-input.js';
import { EventType, PtEvent } from '../src/events/event.js';
import { TransferKind as K } from '../src/flow/control-flow.js';
import { compiledProgram } from './helpers/compiled-context.js';
import { TempDirs } from './helpers/temp-dirs.js';
import { untimedResult } from './helpers/untimed-result.js';
import { builtExploitCorpus, EXPLOIT_CORPUS as CORPUS } from './helpers/exploit-corpus.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

/** A program with three functions to monitor (no PIE: fixed addresses). */
function program(): { ctx: (offset: () => number) => DetectorContext; funcs: { entry: number; size: number }[]; main: number } {
  const p = compiledProgram(
    temps.make('ptscope-hookskip-'),
    'p',
    [
      'int alpha(int x) { int y = x * 3; y += 7; y ^= 5; y -= x; return y * 11; }',
      'int beta(int x) { int y = x + 1; y *= 13; y ^= 9; return y - 2; }',
      'int gamma_(int x) { int y = x << 2; y |= 3; y += x * x; return y ^ 17; }',
      'int main(void) { return alpha(1) + beta(2) + gamma_(3); }',
    ].join('\n'),
  );
  // One name twice and one that does not exist: the notes made with the detector are not the body's.
  const monitor = ['alpha', 'beta', 'gamma_', 'p!alpha', 'no_such_function'];
  return {
    ctx: (offset) => p.context(offset, monitor),
    funcs: ['alpha', 'beta', 'gamma_'].map((n) => ({ entry: Number(p.symbol(n).value), size: Number(p.symbol(n).size) })),
    main: Number(p.symbol('main').value),
  };
}

type Op = { kind: K; from: number; to: number } | { resume: number };

/** Random transfers and resumes around the monitored functions: entries, hooks at the entry, skips into the body, returns, and the rest. */
function randomOps(funcs: { entry: number; size: number }[], main: number, n: number, seed: number): Op[] {
  const rng = new Rng(seed);
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    const f = rng.pick(funcs);
    const inBody = f.entry + 1 + rng.int(f.size - 1);
    const from = main + rng.int(16);
    switch (rng.int(8)) {
      case 0:
        ops.push({ kind: K.DirectCall, from, to: f.entry });
        break;
      case 1:
        ops.push({ kind: rng.pick([K.IndirectJump, K.IndirectCall, K.DirectJump]), from, to: inBody });
        break;
      case 2:
        // An inline hook's jump out of the entry, then its trampoline back into the body.
        ops.push({ kind: K.DirectJump, from: f.entry, to: 0x7000000 });
        ops.push({ kind: K.DirectJump, from: 0x7000010, to: inBody });
        break;
      case 3:
        ops.push({ kind: K.Return, from, to: inBody });
        break;
      case 4:
        ops.push({ kind: K.CondNotTaken, from: inBody, to: inBody + 1 });
        break;
      case 5:
        ops.push({ resume: rng.chance(0.5) ? f.entry : inBody });
        break;
      case 6:
        ops.push({ kind: K.IndirectCall, from, to: 0x7100000 + rng.int(64) });
        break;
      default:
        ops.push({ kind: K.IndirectJump, from: f.entry + 1, to: inBody });
    }
  }
  return ops;
}

function feed(d: HookSkipDetector, ops: Op[], first: number, setAt: (i: number) => void): void {
  const ev = new PtEvent();
  ops.forEach((op, k) => {
    setAt(first + k);
    if ('resume' in op) {
      ev.clear();
      ev.type = EventType.Enabled;
      ev.ip = op.resume;
      d.onEvent(ev);
    } else {
      d.onTransfer(op.kind, op.from, op.to, 2, 1, NaN);
    }
  });
}

describe('hook-skip segment summary', () => {
  const { ctx, funcs, main } = program();

  it('folded over cuts of 8 to 50 operations, gives the serial findings, evidence and notes; quiet stretches apply, others replay', () => {
    let applied = 0;
    let replayed = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const ops = randomOps(funcs, main, 600, seed);
      let at = 0;
      const serial = new HookSkipDetector(ctx(() => at));
      feed(serial, ops, 0, (i) => (at = i));
      expect(serial.findings().length).toBeGreaterThan(0);

      const every = 1 + ((seed * 7) % 50);
      const truth = new HookSkipDetector(ctx(() => at));
      for (let i = 0; i < ops.length; i += every) {
        const stretch = ops.slice(i, i + every);
        const fresh = new HookSkipDetector(ctx(() => at));
        const summarizer = hookSkipSummaryRule.summarize(fresh, () => at);
        feed(fresh, stretch, i, (k) => (at = k));
        const summary = summarizer.finish();
        if (summary !== null && hookSkipSummaryRule.apply(truth, summary, (o) => (at = o))) {
          applied++;
        } else {
          replayed++;
          feed(truth, stretch, i, (k) => (at = k));
        }
      }
      expect(truth.findings()).toEqual(serial.findings());
      expect(truth.unchecked()).toEqual(serial.unchecked());
    }
    // Both paths ran: bodies that only armed or cleared, and bodies with a judgement of their own.
    expect(applied).toBeGreaterThan(50);
    expect(replayed).toBeGreaterThan(50);
  });

  it('refuses a summary made for another list of monitored functions', () => {
    const fresh = new HookSkipDetector(ctx(() => 0));
    const summarizer = hookSkipSummaryRule.summarize(fresh, () => 0);
    fresh.onTransfer(K.DirectCall, main, funcs[0]!.entry, 5, 1, NaN);
    const summary = summarizer.finish();
    expect(summary).not.toBeNull();
    const other = new HookSkipDetector({ ...ctx(() => 0), monitor: ['beta'] });
    expect(hookSkipSummaryRule.apply(other, summary, () => {})).toBe(false);
  });
});

// The exploit corpus recorded under qemu (cached in build/, as test/parallel-decode.test.ts uses it).
describe('analyze --jobs with hook-skip', () => {
  beforeAll(async () => {
    await builtExploitCorpus();
  }, 600_000);

  it('runs in parallel and gives the serial result on ret2libc (exploit and benign), cut at every PSB', async () => {
    expect(jobsRefusal(['hook-skip', 'shadow-stack'])).toBeNull();
    const { recordCorpusCase } = await import('../tools/eval-detectors.js');
    const r = await recordCorpusCase(join(CORPUS, 'ret2libc'));
    // Functions of the program and of libc that it runs.
    const options = { detectors: ['hook-skip', 'shadow-stack'], monitor: ['main', 'system', 'puts', 'printf', 'write', 'read', 'strlen', 'memcpy', '__libc_start_main', 'exit'] };
    for (const bundle of [r.exploit, r.benign]) {
      const serial = analyzeTrace(openTraceInput(bundle), options);
      const hook = serial.detectors.find((d) => d.name === 'hook-skip')!;
      // Most names resolve (only those the modules lack are noted).
      expect(serial.unchecked.filter((n) => n.detector === 'hook-skip' && /not found/.test(n.reason)).length).toBeLessThan(options.monitor.length / 2);
      expect(hook.parameters.monitor).toBe(options.monitor.join(','));
      const input = openTraceInput(bundle);
      const par = await analyzeParallel(input, options, inThreadDecoder(input), { everyPsb: true });
      expect(par.pieces).toBeGreaterThan(1);
      expect(untimedResult(par)).toEqual(untimedResult(serial));
    }
  }, 600_000);
});
