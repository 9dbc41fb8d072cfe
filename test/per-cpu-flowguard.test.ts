/**
 * FlowGuard on per-CPU perf.data (export-perf --per-cpu N) against the
 * per-thread bundle the file was made from: a thread's runs, on whatever
 * CPUs, are one execution, so its edge chain and its open check window go
 * on from one run to the next. Per thread, the checks, the checks settled
 * on the fast path and the findings equal the bundle's (whose streams are
 * the thread lives, each scanned whole), untrained and with a policy
 * trained on the other fixture; the merged fraction is derived from the
 * merged counts, not summed. On thread_rop, whose worker migrates on 2
 * CPUs, the checks and the slow path's findings are the bundle's, the
 * chain in the worker only. The slow path's cost per thread is bounded by
 * the recording's instructions (each stream walked once, not per window).
 * Needs gcc, qemu-x86_64 and bubblewrap (scripts/install-test-deps.sh).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analysisGroups, analyzeGroup, createDetectors, type AnalyzeOptions } from '../src/analyses/analyze.js';
import { trainFlowGuardPolicy, type FlowGuardDetector } from '../src/analyses/flowguard.js';
import { runFlowGuardPerTask } from '../src/analyses/flowguard-tasks.js';
import { traceInputs } from '../src/analyses/trace-input.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { buildThreadFixture, exportPerCpu, recordForPerCpu, recordThreadRop } from './helpers/per-cpu-export.js';

const FIXTURE_NAMES = ['fork-exec', 'threads4'];
let work: string;
const bundles = new Map<string, string>();
/** Per fixture: a policy trained on the other fixture's streams (some edges and targets shared, most not). */
const policies = new Map<string, string>();

function optionsFor(policyFile: string | null): AnalyzeOptions {
  return { detectors: ['flowguard'], policyFile };
}

/** Per thread ("pid/tid"): FlowGuard's counts and findings, over all its lives. */
interface PerThread {
  checks: number;
  fastSettled: number;
  slowWindows: number;
  findings: string[];
}

function add(into: Map<string, PerThread>, thread: string, d: FlowGuardDetector): void {
  const s = d.stats();
  const t = into.get(thread) ?? { checks: 0, fastSettled: 0, slowWindows: 0, findings: [] };
  t.checks += s.checks!;
  t.fastSettled += s.fastSettled!;
  t.slowWindows += s.slowWindows!;
  t.findings.push(...d.findings().map((f) => `${f.kind} ${f.transfer?.from}>${f.transfer?.to}`));
  t.findings.sort();
  into.set(thread, t);
}

/** FlowGuard per thread of a recording: each stream alone (a bundle), or per thread life over the CPUs' streams. */
function perThread(path: string, options: AnalyzeOptions): Map<string, PerThread> {
  const rec = openRecording(path);
  try {
    const out = new Map<string, PerThread>();
    for (const group of analysisGroups(traceInputs(rec))) {
      if (group[0]!.stream.tasks === undefined) {
        const d = createDetectors(group[0]!, options, () => 0)[0] as FlowGuardDetector;
        d.runStandalone();
        add(out, `${group[0]!.stream.pid}/${group[0]!.stream.tid}`, d);
        continue;
      }
      const thread = new Map<FlowGuardDetector, string>();
      const run = runFlowGuardPerTask(group, (input, task) => {
        const d = createDetectors(input, options, () => 0, task)[0] as FlowGuardDetector;
        thread.set(d, `${task.pid}/${task.tid}`);
        return d;
      });
      for (const d of run) {
        // Each thread's FlowGuard counts the fast-path scan of its own runs, not only the first thread on each CPU.
        expect(d.stats()['fastBytes']).toBeGreaterThan(0);
        add(out, thread.get(d)!, d);
      }
    }
    return out;
  } finally {
    rec.close();
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-per-cpu-flowguard-'));
  for (const name of FIXTURE_NAMES) {
    bundles.set(name, (await recordForPerCpu(work, [buildThreadFixture(work, name)])).bundle);
  }
  // The exploit corpus's thread_rop: its worker thread's chain is what FlowGuard's slow path finds.
  bundles.set('thread_rop', (await recordThreadRop(work)).bundle);
  for (const name of FIXTURE_NAMES) {
    const other = FIXTURE_NAMES.find((n) => n !== name)!;
    const rec = openRecording(bundles.get(other)!);
    try {
      const policy = join(work, `trained-on-${other}.json`);
      expect(trainFlowGuardPolicy(policy, traceInputs(rec).map((i) => i.trace))).toBeGreaterThan(0);
      policies.set(name, policy);
    } finally {
      rec.close();
    }
  }
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('per-CPU perf.data: FlowGuard per thread, its runs chained', () => {
  for (const name of FIXTURE_NAMES) {
    for (const trained of [false, true]) {
      for (const cpus of [1, 2]) {
        it(`${name} on ${cpus} CPU${cpus > 1 ? 's' : ''}, ${trained ? 'trained on the other fixture' : 'untrained'}: per thread, the bundle's checks, fast-path settlements and findings`, () => {
          const options = optionsFor(trained ? policies.get(name)! : null);
          const bundle = bundles.get(name)!;
          const expected = perThread(bundle, options);
          expect(expected.size).toBe(name === 'threads4' ? 5 : 2);
          for (const t of expected.values()) expect(t.checks).toBeGreaterThan(0);
          const file = exportPerCpu(bundle, cpus);
          expect(perThread(file, options)).toEqual(expected);
          // The merged summary: counts summed, the fraction derived from them (not a sum of fractions).
          const rec = openRecording(file);
          try {
            const [group] = analysisGroups(traceInputs(rec));
            const stats = analyzeGroup(group!, options).detectors.find((d) => d.name === 'flowguard')!.stats;
            const sum = (k: 'checks' | 'fastSettled'): number => [...expected.values()].reduce((a, t) => a + t[k], 0);
            expect(stats['checks']).toBe(sum('checks'));
            expect(stats['fastSettled']).toBe(sum('fastSettled'));
            if (trained) expect(stats['fastSettled']).toBeGreaterThan(0);
            expect(stats['fastFraction']).toBe(sum('fastSettled') / sum('checks'));
            expect(stats['fastBytesPerSecond']).toBe(stats['fastBytes']! / stats['fastSeconds']!);
          } finally {
            rec.close();
          }
        }, 120_000);
      }
    }
  }

  // The slow path's cost: the windows of a thread's successive runs share one decode, each CPU's stream walked
  // once from its PSB (and the last run once more), instead of each run's windows replaying the thread from the
  // stream's PSB again: that decoded 4.6 (fork-exec) and 59 (threads4) times the recording's instructions for
  // one thread here; this decodes at most 1.1 times.
  for (const name of FIXTURE_NAMES) {
    it(`${name} on 3 CPUs, untrained: each thread's slow path decodes at most 3 times the recording's instructions`, () => {
      const rec = openRecording(exportPerCpu(bundles.get(name)!, 3));
      try {
        const [group] = analysisGroups(traceInputs(rec));
        expect(group!.length).toBe(3);
        // The recording's instructions: every CPU's stream walked once.
        const total = analyzeGroup(group!, { detectors: ['shadow-stack'] }).flow.instructions;
        expect(total).toBeGreaterThan(0);
        const run = runFlowGuardPerTask(group!, (input, task) => createDetectors(input, optionsFor(null), () => 0, task)[0] as FlowGuardDetector);
        expect(run.length).toBeGreaterThanOrEqual(name === 'threads4' ? 5 : 2);
        for (const d of run) {
          const s = d.stats();
          // Untrained, (nearly) every window takes the slow path.
          expect(s['slowWindows']).toBeGreaterThan(0);
          expect(s['slowInstructions']).toBeGreaterThan(0);
          expect(s['slowInstructions']).toBeLessThanOrEqual(3 * total);
        }
      } finally {
        rec.close();
      }
    }, 120_000);
  }

  // A thread holds at most slowBatch missed checks before its slow path decodes them (memory bounded on a long
  // per-CPU trace); the next group starts a new decode from its own PSB, after the thread's runs since then. With
  // one window per decode, every group is decoded on its own, and the results are still the bundle's.
  it('with flowguard.slowBatch=1 (a new decode at every group of missed checks), on 2 CPUs: per thread, the bundle\'s checks, settlements and findings', () => {
    const options: AnalyzeOptions = { ...optionsFor(null), params: { flowguard: { slowBatch: '1' } } };
    for (const name of [...FIXTURE_NAMES, 'thread_rop']) {
      const bundle = bundles.get(name)!;
      const expected = perThread(bundle, optionsFor(null));
      expect(perThread(exportPerCpu(bundle, 2), options), name).toEqual(expected);
      if (name === 'thread_rop') expect([...expected.values()].some((t) => t.findings.some((f) => f.startsWith('rop-chain ')))).toBe(true);
    }
  }, 240_000);

  for (const cpus of [1, 2]) {
    it(`thread_rop on ${cpus} CPU${cpus > 1 ? 's' : ''}: per thread, the bundle's checks and settlements; the bundle's findings, the chain in the worker only`, () => {
      const options = optionsFor(null);
      const expected = perThread(bundles.get('thread_rop')!, options);
      expect(expected.size).toBe(2);
      const worker = [...expected].find(([, t]) => t.findings.length > 0)![0];
      expect([...expected.values()].filter((t) => t.findings.length > 0)).toHaveLength(1);
      const got = perThread(exportPerCpu(bundles.get('thread_rop')!, cpus), options);
      const counts = (m: Map<string, PerThread>): [string, number, number, number][] => [...m].map(([k, t]) => [k, t.checks, t.fastSettled, t.slowWindows]);
      expect(counts(got)).toEqual(counts(expected));
      // The slow path decodes a window with the thread's history since the PSB before it, on every CPU it ran on:
      // the return-mismatch whose call came in the worker's earlier run on the other CPU is found as in the bundle.
      const findings = (m: Map<string, PerThread>): [string, string[]][] => [...m].map(([k, t]) => [k, t.findings]);
      expect(findings(got)).toEqual(findings(expected));
      expect(got.get(worker)!.findings.some((f) => f.startsWith('return-mismatch '))).toBe(true);
      expect(got.get(worker)!.findings.some((f) => f.startsWith('rop-chain '))).toBe(true);
    }, 120_000);
  }
});
