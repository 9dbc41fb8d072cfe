/**
 * Memory flat in trace size: `ptscope flow`, `ptscope analyze` and
 * `ptscope coverage --edges`, and
 * `flow --jobs 2`, `coverage --jobs 2` and `classify`, run as
 * processes (the built CLI), over a trace 100 times the size of a real one
 * (the mruby trace, 0.7 MB, concatenated 100 times: 71 MB, with its image)
 * peak no higher than over the real trace itself plus a fixed margin well
 * under the trace's size. A decoder that read the whole trace into memory
 * would exceed it by tens of megabytes (a pool whose workers shared the
 * whole trace, by its size: compared over 200 copies and 100, whose pieces
 * are as large; classify keeping every window's features, by some 8 GB). The JS heap is capped too
 * (--max-old-space-size), so a heap that grew with the trace would end the
 * process. Each process reports its own peak resident set at exit
 * (test/helpers/report-peak-memory.mjs).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/oracle.js';
import { REAL_TRACES, writeRepeated } from './helpers/vectors.js';

const BIN = join(REPO_ROOT, 'bin', 'ptscope.js');
const PRELOAD = join(REPO_ROOT, 'test', 'helpers', 'report-peak-memory.mjs');
const MRUBY = join(REAL_TRACES, 'mruby');
const IMAGE = ['--cpu', '6/158', '--raw', `${join(MRUBY, 'seg_400000.bin')}:0x400000`];
const COPIES = 100;
/** How much more the 100x run may peak at than the 1x run: far below the 71 MB of trace. */
const MARGIN = 40 << 20;
/** The JS heap cap for every run, in MB. */
const HEAP_MB = 160;

let work: string;
let big: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-memory-'));
  big = join(work, 'mruby-x100.pt');
  writeRepeated(join(MRUBY, 'trace.pt'), COPIES, big);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  maxRss: number;
}

/** Run the CLI with the peak-memory preload and a capped heap. */
function runCli(args: string[], tag: string): Promise<Run> {
  const peakFile = join(work, `${tag}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${HEAP_MB}`, '--import', PRELOAD, BIN, ...args], {
      env: { ...process.env, PTSCOPE_PEAK_MEMORY_FILE: peakFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      let maxRss = Number.NaN;
      try {
        maxRss = (JSON.parse(readFileSync(peakFile, 'utf8')) as { maxRssBytes: number }).maxRssBytes;
      } catch {
        // No report: the process died before exit handlers ran (status shows it).
      }
      resolve({ status, stdout, stderr, maxRss });
    });
  });
}

function count(text: string, re: RegExp): number {
  const m = re.exec(text);
  if (!m) throw new Error(`no ${re} in output:\n${text}`);
  return Number(m[1]);
}

describe('memory flat in trace size (100x a real trace)', () => {
  it('flow --block-decoder --quiet --stat, analyze and coverage --edges peak within a fixed margin of the 1x runs', async () => {
    const flowArgs = (pt: string) => ['flow', '--block-decoder', '--quiet', '--stat', ...IMAGE, '--pt', pt];
    const analyzeArgs = (pt: string) => ['analyze', ...IMAGE, pt];
    const edgesArgs = (pt: string) => ['coverage', '--edges', '--format', 'json', ...IMAGE, pt];
    const one = join(MRUBY, 'trace.pt');
    const [flow1, analyze1, edges1] = await Promise.all([runCli(flowArgs(one), 'flow1'), runCli(analyzeArgs(one), 'analyze1'), runCli(edgesArgs(one), 'edges1')]);
    const [flow100, analyze100, edges100] = await Promise.all([runCli(flowArgs(big), 'flow100'), runCli(analyzeArgs(big), 'analyze100'), runCli(edgesArgs(big), 'edges100')]);

    for (const r of [flow1, analyze1, edges1, flow100, analyze100, edges100]) {
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(Number.isFinite(r.maxRss)).toBe(true);
    }
    // The runs decoded the whole trace: about 100 times the instructions
    // (each copy's start joins the previous copy's end, so not exactly).
    const insn1 = count(flow1.stdout, /^insn: (\d+)\.$/m);
    expect(insn1).toBe(6334131);
    expect(count(flow100.stdout, /^insn: (\d+)\.$/m)).toBeGreaterThan((COPIES - 1) * insn1);
    expect(count(analyze1.stdout, /: (\d+) instructions,/)).toBe(insn1);
    expect(count(analyze100.stdout, /: (\d+) instructions,/)).toBeGreaterThan((COPIES - 1) * insn1);

    // The edge decoder's fast path took the whole trace (reading it in memory peaked 76 MB higher).
    const edges = (r: Run): { edgesTaken: number; fastPath: number } => JSON.parse(r.stdout) as { edgesTaken: number; fastPath: number };
    expect(edges(edges1).fastPath).toBe(1);
    expect(edges(edges100).fastPath).toBe(1);
    expect(edges(edges100).edgesTaken).toBeGreaterThan((COPIES - 1) * edges(edges1).edgesTaken);

    expect(flow100.maxRss - flow1.maxRss).toBeLessThan(MARGIN);
    expect(analyze100.maxRss - analyze1.maxRss).toBeLessThan(MARGIN);
    expect(edges100.maxRss - edges1.maxRss).toBeLessThan(MARGIN);
  }, 600_000);

  it('flow --jobs 2 and coverage --jobs 2 peak as high over more copies as over fewer, and classify over 25 copies as over one', async () => {
    const flowArgs = (pt: string) => ['flow', '--jobs', '2', '--quiet', '--stat', ...IMAGE, '--pt', pt];
    const coverageArgs = (pt: string) => ['coverage', '--jobs', '2', ...IMAGE, pt];
    const classifyArgs = (pt: string) => ['classify', ...IMAGE, pt];
    const insn1 = 6334131;
    // The pieces of a parallel decode grow with the trace up to 8 MiB, whose bytes and decode state each
    // worker holds: over the real trace they are 0.7 MB. flow --quiet's pieces (a quarter of what is left)
    // reach 8 MiB from 45 copies on, coverage's (an eighth of the trace) from 90. So their flatness shows
    // between 50 and 100 copies, and between 100 and 200 (a pool that held the trace would peak 35 and 71 MB
    // higher).
    const fifty = join(work, 'mruby-x50.pt');
    const bigger = join(work, 'mruby-x200.pt');
    writeRepeated(join(MRUBY, 'trace.pt'), 50, fifty);
    writeRepeated(join(MRUBY, 'trace.pt'), 2 * COPIES, bigger);
    const [flow50, coverage100] = await Promise.all([runCli(flowArgs(fifty), 'pflow50'), runCli(coverageArgs(big), 'coverage100')]);
    const [flow100, coverage200] = await Promise.all([runCli(flowArgs(big), 'pflow100'), runCli(coverageArgs(bigger), 'coverage200')]);
    rmSync(fifty);
    rmSync(bigger);
    // classify kept every window's features (some kilobytes each, a window per kernel entry): over 25 copies,
    // 357,000 windows, some 2 GB.
    const quarter = join(work, 'mruby-x25.pt');
    writeRepeated(join(MRUBY, 'trace.pt'), 25, quarter);
    const [classify1, classify25] = await Promise.all([runCli(classifyArgs(join(MRUBY, 'trace.pt')), 'classify1'), runCli(classifyArgs(quarter), 'classify25')]);
    rmSync(quarter);
    for (const r of [flow50, flow100, coverage100, coverage200, classify1, classify25]) {
      expect(r.status, r.stderr).toBe(0);
      expect(Number.isFinite(r.maxRss)).toBe(true);
    }
    for (const [r, copies] of [[flow50, 50], [flow100, COPIES]] as const) expect(count(r.stdout, /^insn: (\d+)\.$/m)).toBeGreaterThan((copies - 1) * insn1);
    for (const [r, copies] of [[coverage100, COPIES], [coverage200, 2 * COPIES]] as const) expect(count(r.stdout, /: (\d+) instructions,/)).toBeGreaterThan((copies - 1) * insn1);
    expect(count(classify1.stdout, /: (\d+) windows,/)).toBe(14289);
    expect(count(classify25.stdout, /: (\d+) windows,/)).toBeGreaterThan(24 * 14289);

    expect(flow100.maxRss - flow50.maxRss).toBeLessThan(MARGIN);
    expect(coverage200.maxRss - coverage100.maxRss).toBeLessThan(MARGIN);
    expect(classify25.maxRss - classify1.maxRss).toBeLessThan(MARGIN);
  }, 900_000);

  it('FlowGuard, untrained (every check to the slow path), peaks as high over 100 copies as over 10', async () => {
    // Its slow path decodes each group of missed checks as soon as the fast path has passed it, so only the
    // group being filled is held (1.43 million checks over the 100 copies). Over the real trace the run is
    // too short (0.7 s) for its heap to reach the size it keeps; over 10 copies it does.
    const args = (pt: string) => ['analyze', '--detect', 'flowguard', '--json', ...IMAGE, pt];
    const ten = join(work, 'mruby-x10.pt');
    writeRepeated(join(MRUBY, 'trace.pt'), 10, ten);
    const r10 = await runCli(args(ten), 'flowguard10');
    const r100 = await runCli(args(big), 'flowguard100');
    rmSync(ten);
    const checks = (r: Run): number => (JSON.parse(r.stdout.trim().split('\n').pop()!) as { detectors: { stats: { checks: number; slowWindows: number } }[] }).detectors[0]!.stats.slowWindows;
    for (const r of [r10, r100]) {
      expect(r.status, r.stderr).toBe(0);
      expect(Number.isFinite(r.maxRss)).toBe(true);
    }
    expect(checks(r10)).toBeGreaterThan(10 * 14000);
    expect(checks(r100)).toBeGreaterThan(100 * 14000);
    expect(r100.maxRss - r10.maxRss).toBeLessThan(MARGIN);
  }, 900_000);
});
