/**
 * Per-CPU perf.data end to end: recordings laid out as perf's default
 * per-CPU mode lays them out (export-perf --per-cpu: the threads' runs
 * interleaved on a few CPUs, with ITRACE_START and SWITCH_CPU_WIDE
 * sideband, threads migrating between CPUs) are decoded task by task:
 * - flow heads each run with its thread and decodes it with its process's
 *   image: per thread, exactly the instructions the recorder counted;
 * - analyze keeps each thread's state apart (its own shadow stack): a
 *   benign 4-thread program gives no finding, and the exploit corpus's
 *   thread_rop gives its chain in the worker thread, and only there (with
 *   the default detectors, and with FlowGuard, which runs per thread).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { runFlowCommand } from '../src/cli/flow.js';
import { runCoverageCommand } from '../src/cli/coverage.js';
import { LineWriter } from '../src/cli/output.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import type { RunJson } from '../tools/corpus/build-exploits.js';
import { buildThreadFixture, exportPerCpu, recordForPerCpu, recordThreadRop } from './helpers/per-cpu-export.js';

let work: string;
let threads4: string;
let threadRop: string;
let rop: RunJson;

/** Per thread id, the instructions the recorder counted for it (all its streams). */
function recordedCounts(bundle: string): Map<number, number> {
  const rec = openRecording(bundle);
  try {
    const counts = new Map<number, number>();
    for (const s of rec.streams) counts.set(s.tid!, (counts.get(s.tid!) ?? 0) + s.expected!.instructions);
    return counts;
  } finally {
    rec.close();
  }
}

/** flow's instruction lines per `[pid/tid]` heading of the per-CPU streams. */
function flowCounts(file: string): Map<number, number> {
  const out = new LineWriter(null);
  const errors: string[] = [];
  expect(runFlowCommand([file], out, (l) => errors.push(l))).toBe(0);
  out.flush();
  expect(errors.filter((e) => !/^flow: unchecked: no image for \[vdso\]/.test(e))).toEqual([]);
  const counts = new Map<number, number>();
  let tid = -1;
  for (const l of out.text.split('\n')) {
    const head = /^\[(\d+)\/(\d+)\]/.exec(l);
    if (head !== null) tid = Number(head[2]);
    else if (/^[0-9a-f]{16}\s/.test(l)) {
      expect(tid, `an instruction before any thread heading: ${l}`).toBeGreaterThan(0);
      counts.set(tid, (counts.get(tid) ?? 0) + 1);
    }
  }
  return counts;
}

interface JsonLine {
  type: string;
  pid: number | null;
  tid: number | null;
  detector?: string;
  kind?: string;
  chain?: { address: string }[] | null;
}

function analyzeJson(file: string, extra: string[] = []): { status: number; lines: JsonLine[] } {
  const out = new LineWriter(null);
  const status = runAnalyzeCommand([file, '--json', '--fail-on-findings', ...extra], out) as number;
  out.flush();
  return { status, lines: out.text.trim().split('\n').map((l) => JSON.parse(l) as JsonLine) };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-per-cpu-analysis-'));
  threads4 = (await recordForPerCpu(work, [buildThreadFixture(work, 'threads4')])).bundle;
  ({ bundle: threadRop, run: rop } = await recordThreadRop(work));
}, 400_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('per-CPU perf.data: each task decoded and analysed as its own thread', () => {
  for (const cpus of [1, 2]) {
    it(`flow on ${cpus} CPU(s): every thread gets exactly its recorded instructions`, () => {
      const expected = recordedCounts(threads4);
      expect(expected.size).toBe(5);
      expect(flowCounts(exportPerCpu(threads4, cpus))).toEqual(expected);
    }, 120_000);

    it(`analyze on ${cpus} CPU(s): a benign 4-thread program gives no finding, every line names a thread`, () => {
      const { status, lines } = analyzeJson(exportPerCpu(threads4, cpus));
      const findings = lines.filter((l) => l.type === 'finding');
      expect(findings).toEqual([]);
      expect(status).toBe(0);
    }, 120_000);
  }

  it('flow and coverage refuse --jobs on per-CPU streams, in one line', async () => {
    const file = exportPerCpu(threads4, 2);
    await expect(Promise.resolve().then(() => runFlowCommand(['--jobs', '2', file], new LineWriter(null)))).rejects.toThrow(/^--jobs: .* has per-CPU streams, whose image changes at each context switch; decode it without --jobs\.$/);
    await expect(Promise.resolve().then(() => runCoverageCommand([file, '--jobs', '2', '--format', 'json'], new LineWriter(null)))).rejects.toThrow(/^--jobs: .* has per-CPU streams/);
  }, 120_000);

  it('analyze: thread_rop\'s chain is found in the worker thread, gadget for gadget, and nothing in the main thread', () => {
    const rec = openRecording(threadRop);
    const threads = rec.streams.map((s) => [s.pid!, s.tid!]);
    rec.close();
    expect(threads).toHaveLength(2);
    const [main, worker] = threads;
    const { status, lines } = analyzeJson(exportPerCpu(threadRop, 2));
    expect(status).toBe(1);
    const findings = lines.filter((l) => l.type === 'finding');
    expect(findings.length).toBeGreaterThan(0);
    for (const f of findings) expect([f.pid, f.tid]).toEqual(worker);
    const mismatch = findings.find((f) => f.detector === 'shadow-stack' && f.kind === 'return-mismatch')!;
    expect(mismatch.chain!.map((g) => g.address)).toEqual(rop.groundTruth.gadgets.map((g) => g.address));
    expect(findings.some((f) => f.detector === 'rop' && f.kind === 'rop-chain')).toBe(true);
    expect(main).not.toEqual(worker);
    // The worker migrates between the CPUs, and its state goes with it: the per-CPU file gives the per-thread
    // recording's findings (ordered by trace offset, which differs between the layouts).
    const perThread = analyzeJson(threadRop).lines.filter((l) => l.type === 'finding');
    const kinds = (list: JsonLine[]): string[] => list.map((f) => `${f.tid} ${f.detector}/${f.kind}`).sort();
    expect(kinds(findings)).toEqual(kinds(perThread));
    // FlowGuard runs per thread too: its slow path finds the chain in the worker's windows, and only there.
    const flowguard = analyzeJson(exportPerCpu(threadRop, 2), ['--detect', 'flowguard']).lines;
    const guarded = flowguard.filter((l) => l.type === 'finding');
    expect(guarded.length).toBeGreaterThan(0);
    for (const f of guarded) expect([f.pid, f.tid]).toEqual(worker);
    // One FlowGuard per thread, their statistics merged: counts add up, fractions and rates come from the sums.
    const summary = flowguard.find((l) => l.type === 'summary') as unknown as { detectors: { name: string; stats: Record<string, number> }[] };
    const stats = summary.detectors.find((d) => d.name === 'flowguard')!.stats;
    expect(stats.checks).toBeGreaterThan(0);
    expect(stats.fastFraction).toBeCloseTo(stats.fastSettled! / stats.checks!, 12);
    expect(stats.fastFraction).toBeLessThanOrEqual(1);
    if (stats.slowSeconds! > 0) expect(stats.slowBytesPerSecond).toBeCloseTo(stats.slowBytes! / stats.slowSeconds!, 6);
  }, 120_000);
});
