/**
 * Per-thread analysis of per-CPU perf.data (export-perf --per-cpu from
 * recordings made with --timing tsc --noretcomp), against the per-thread
 * bundle the file was made from (each stream of which is one thread life,
 * analysed alone):
 * - a fork child that execs without a context switch gets its new image
 *   there (no decode error), and analyze's per-thread numbers add up to
 *   the bundle's streams';
 * - coverage keeps one address space per process life (fork to exec),
 *   over both CPUs, with its own modules and its threads;
 * - every unchecked line and FlowGuard's findings and notes name a thread;
 * - classify's windows are per thread: each thread gets as many as its
 *   streams in the bundle, and each names its thread;
 * - a tid reused after its thread's EXIT starts an empty shadow stack (the
 *   bundle's tid is renamed so that the export writes the reuse);
 * - a forked child's first life inherits its parent's history: its longjmp
 *   to a setjmp made before the fork is no finding (as per thread).
 * Needs gcc, qemu-x86_64 and bubblewrap (scripts/install-test-deps.sh).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { runClassifyCommand } from '../src/cli/classify.js';
import { runCoverageCommand } from '../src/cli/coverage.js';
import { LineWriter } from '../src/cli/output.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { buildThreadFixture, exportPerCpu, recordForPerCpu, recordThreadRop } from './helpers/per-cpu-export.js';

let work: string;
let forkExec: string;
let tidReuse: string;
let forkLongjmp: string;

interface Line {
  type: string;
  pid: number | null;
  tid: number | null;
  detector?: string;
  kind?: string;
  flow?: { errors: number; instructions: number };
  detectors?: { name: string; stats: Record<string, number> }[];
}

function analyze(input: string, extra: string[] = []): Line[] {
  const out = new LineWriter(null);
  runAnalyzeCommand([input, '--json', ...extra], out);
  out.flush();
  return out.text.trim().split('\n').map((l) => JSON.parse(l) as Line);
}

function stat(lines: Line[], detector: string, key: string, combine: (a: number, b: number) => number): number {
  return lines.filter((l) => l.type === 'summary').map((l) => l.detectors!.find((d) => d.name === detector)!.stats[key] ?? 0).reduce(combine);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-per-cpu-threads-'));
  forkExec = (await recordForPerCpu(work, [buildThreadFixture(work, 'fork-exec')])).bundle;
  forkLongjmp = (await recordForPerCpu(work, [buildThreadFixture(work, 'fork-longjmp')])).bundle;
  const reuse = await recordForPerCpu(work, [buildThreadFixture(work, 'tid-reuse')]);
  // The emulator's threads get fresh tids: give the second worker the first's, as a kernel that reused it would.
  tidReuse = join(work, 'reused.ptscope');
  cpSync(reuse.bundle, tidReuse, { recursive: true });
  const manifestPath = join(tidReuse, 'manifest.json');
  const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { threads: { tid: number }[]; streams: { tid: number }[] };
  const tids = m.streams.map((s) => s.tid);
  expect(tids).toHaveLength(3);
  const [, first, second] = tids;
  m.threads = m.threads.filter((t) => t.tid !== second);
  for (const s of m.streams) if (s.tid === second) s.tid = first!;
  writeFileSync(manifestPath, JSON.stringify(m));
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('per-CPU perf.data: per-thread analyses', () => {
  // On 1 CPU the child is switched in inside its execve, before the exec; on 2 it execs within a run.
  it.each([1, 2])('fork + exec on %i CPU(s): the exec changes the image, with or without a switch; analyze adds up to the bundle\'s streams and names a thread on every unchecked line', (cpus) => {
    const file = exportPerCpu(forkExec, cpus);
    const perCpu = analyze(file);
    const bundle = analyze(forkExec);
    const summary = perCpu.find((l) => l.type === 'summary')!;
    expect(summary.flow!.errors).toBe(0);
    const sum = (a: number, b: number): number => a + b;
    expect(summary.flow!.instructions).toBe(bundle.filter((l) => l.type === 'summary').map((l) => l.flow!.instructions).reduce(sum));
    for (const key of ['returnsChecked', 'returnsMatched']) expect(stat(perCpu, 'shadow-stack', key, sum)).toBe(stat(bundle, 'shadow-stack', key, sum));
    const unchecked = perCpu.filter((l) => l.type === 'unchecked');
    expect(unchecked.length).toBeGreaterThan(0);
    for (const u of unchecked) expect([typeof u.pid, typeof u.tid]).toEqual(['number', 'number']);
  }, 120_000);

  it('fork + exec: coverage has one address space per process life, over both CPUs, with its own modules', () => {
    const rec = openRecording(forkExec);
    const streams = rec.streams.map((s) => ({ pid: s.pid!, tid: s.tid!, instructions: s.expected!.instructions, program: s.program ?? null }));
    rec.close();
    expect(streams).toHaveLength(3);
    const out = new LineWriter(null);
    expect(runCoverageCommand([exportPerCpu(forkExec, 2), '--json'], out)).toBe(0);
    out.flush();
    const doc = JSON.parse(out.text) as { spaces: { pid: number; tids: number[]; instructions: number; modules: { module: string; functionsRan: number }[] }[] };
    // The parent, the child before its exec (its parent's image), the child after it (echo's).
    const key = (pid: number, n: number): string => `${pid} ${n}`;
    expect(doc.spaces.map((s) => key(s.pid, s.instructions)).sort()).toEqual(streams.map((s) => key(s.pid, s.instructions)).sort());
    for (const s of doc.spaces) expect(s.tids).toEqual([s.pid]);
    const ran = (s: (typeof doc.spaces)[number]): string[] => s.modules.filter((m) => m.functionsRan > 0).map((m) => m.module.replace(/^\d+-/, ''));
    const echo = doc.spaces.find((s) => s.instructions === streams.find((t) => t.program !== null)!.instructions)!;
    expect(ran(echo)).toContain('echo');
    expect(ran(echo)).not.toContain('fork-exec');
    for (const s of doc.spaces.filter((x) => x !== echo)) expect(ran(s)).not.toContain('echo');
    // drcov holds one address space: refused, in one line.
    expect(() => runCoverageCommand([exportPerCpu(forkExec, 2), '--format', 'drcov', '-o', join(work, 'x.drcov')], new LineWriter(null))).toThrow(/^.*: 3 address spaces \(processes\): drcov holds one; use --format json or text\.$/);
  }, 120_000);

  it('fork + exec: FlowGuard runs per thread, each line naming its thread', () => {
    const lines = analyze(exportPerCpu(forkExec, 2), ['--detect', 'flowguard']);
    const rec = openRecording(forkExec);
    const threads = new Set(rec.streams.map((s) => `${s.pid}/${s.tid}`));
    rec.close();
    expect(threads.size).toBe(2);
    // Without trained edges each thread's FlowGuard says so: one note per thread, and no line without one.
    const notes = lines.filter((l) => l.type !== 'summary');
    expect(new Set(notes.map((l) => `${l.pid}/${l.tid}`))).toEqual(threads);
    const stats = lines.find((l) => l.type === 'summary')!.detectors![0]!.stats;
    expect(stats['checks']).toBeGreaterThan(0);
    expect(stats['slowWindows']).toBeLessThanOrEqual(stats['checks']!);
  }, 120_000);

  it('fork + exec: classify windows are per thread, as many per thread as the bundle\'s streams give it', async () => {
    const windowsPerThread = async (input: string): Promise<Map<string, number>> => {
      const out = new LineWriter(null);
      expect(await runClassifyCommand([input, '--json'], out)).toBe(0);
      out.flush();
      const counts = new Map<string, number>();
      for (const l of out.text.trim().split('\n')) {
        for (const w of (JSON.parse(l) as { windows: { pid: number | null; tid: number | null }[] }).windows) {
          expect([typeof w.pid, typeof w.tid]).toEqual(['number', 'number']);
          counts.set(`${w.pid}/${w.tid}`, (counts.get(`${w.pid}/${w.tid}`) ?? 0) + 1);
        }
      }
      return counts;
    };
    const expected = await windowsPerThread(forkExec);
    expect(expected.size).toBe(2);
    expect(await windowsPerThread(exportPerCpu(forkExec, 2))).toEqual(expected);
  }, 120_000);

  it('a forked child\'s longjmp to its parent\'s setjmp is prepared unseen, no finding', () => {
    const lines = analyze(exportPerCpu(forkLongjmp, 2));
    expect(lines.filter((l) => l.type === 'finding')).toEqual([]);
    const summary = lines.find((l) => l.type === 'summary')!;
    for (const name of ['cfi', 'inter-module', 'shadow-stack']) expect(summary.detectors!.find((d) => d.name === name)!.stats['switch.prepared-unseen'], name).toBe(1);
  }, 120_000);

  for (const cpus of [1, 2]) {
    it(`a tid reused after its thread's EXIT starts an empty shadow stack (${cpus} CPU${cpus > 1 ? 's' : ''})`, () => {
      const bundle = analyze(tidReuse);
      const perCpu = analyze(exportPerCpu(tidReuse, cpus));
      const max = (a: number, b: number): number => Math.max(a, b);
      const sum = (a: number, b: number): number => a + b;
      // The first worker leaves ~100 frames; the second, on top of them, would reach twice as deep.
      const deepest = stat(bundle, 'shadow-stack', 'maxDepth', max);
      expect(deepest).toBeGreaterThan(100);
      expect(stat(perCpu, 'shadow-stack', 'maxDepth', max)).toBe(deepest);
      expect(stat(perCpu, 'shadow-stack', 'returnsMatched', sum)).toBe(stat(bundle, 'shadow-stack', 'returnsMatched', sum));
      expect(perCpu.filter((l) => l.type === 'finding')).toEqual([]);
    }, 120_000);
  }
});
