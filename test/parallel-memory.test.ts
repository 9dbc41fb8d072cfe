/**
 * `flow --jobs 2` holds bounded memory, flat in the trace's size: run as
 * processes (the built CLI) over the real mruby trace (0.7 MB of trace,
 * 218 MB of ptxed text) and over it concatenated several times, with the
 * text piped to this process and counted, the parallel runs peak within a
 * fixed margin of each other and of the serial run over the trace itself.
 * A piece's text is written as it is decoded, and the text of the pieces
 * decoded ahead is held within a budget (src/cli/parallel/text-credit.ts);
 * holding each piece's text until its turn peaked at about 750 MB here.
 * Each process reports its own peak resident set at exit, its worker
 * threads included (test/helpers/report-peak-memory.mjs).
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
const COPIES = 4;
/**
 * How much more the parallel run over the copies may peak at than over the
 * trace itself: the peak varies by some tens of MB from run to run with
 * when the garbage collector frees written text (282 MB over x1 and 395 MB
 * over x4 were seen, and 337 MB over x8 in a hand run), far below the
 * hundreds of MB more text each copy adds.
 */
const FLAT_MARGIN = 192 << 20;
/**
 * How much more a parallel run may peak at than the serial one: the held
 * text's budget (48 MiB), two workers' heaps and images, and text buffers
 * written but not yet collected (275 MB more was seen; holding each
 * piece's text until its turn gave about 630 MB more over the trace itself).
 */
const PARALLEL_MARGIN = 384 << 20;

let work: string;
let big: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-par-memory-'));
  big = join(work, `mruby-x${COPIES}.pt`);
  writeRepeated(join(MRUBY, 'trace.pt'), COPIES, big);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  /** Bytes written to stdout, and its last lines. */
  bytes: number;
  tail: string;
  stderr: string;
  maxRss: number;
}

/** Run the CLI with the peak-memory preload; its output is counted, not kept. */
function runCli(args: string[], tag: string): Promise<Run> {
  const peakFile = join(work, `${tag}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', PRELOAD, BIN, ...args], {
      env: { ...process.env, PTSCOPE_PEAK_MEMORY_FILE: peakFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let bytes = 0;
    let tail = Buffer.alloc(0);
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      tail = Buffer.concat([tail, d]).subarray(-4096);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      let maxRss = Number.NaN;
      try {
        maxRss = (JSON.parse(readFileSync(peakFile, 'utf8')) as { maxRssBytes: number }).maxRssBytes;
      } catch {
        // No report: the process died before exit handlers ran (status shows it).
      }
      resolve({ status, bytes, tail: tail.toString('utf8'), stderr, maxRss });
    });
  });
}

function insns(r: Run): number {
  const m = /^insn: (\d+)\.$/m.exec(r.tail);
  if (!m) throw new Error(`no insn count at the end of the output:\n${r.tail}`);
  return Number(m[1]);
}

describe('flow --jobs 2: memory bounded and flat in trace size', () => {
  it(`peaks over mruby x${COPIES} within a fixed margin of mruby x1, and of the serial run`, async () => {
    const flow = (pt: string, jobs: string) => ['flow', ...IMAGE, '--stat', '--jobs', jobs, '--pt', pt];
    const one = join(MRUBY, 'trace.pt');
    const [serial1, parallel1] = await Promise.all([runCli(flow(one, '1'), 'serial1'), runCli(flow(one, '2'), 'parallel1')]);
    const parallelN = await runCli(flow(big, '2'), 'parallelN');

    for (const r of [serial1, parallel1, parallelN]) {
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(Number.isFinite(r.maxRss)).toBe(true);
    }
    // The whole text was written: the serial output, and about COPIES times it.
    expect(insns(serial1)).toBe(6334131);
    expect(parallel1.bytes).toBe(serial1.bytes);
    expect(insns(parallel1)).toBe(insns(serial1));
    expect(serial1.bytes).toBeGreaterThan(200e6);
    expect(insns(parallelN)).toBeGreaterThan((COPIES - 1) * insns(serial1));
    expect(parallelN.bytes).toBeGreaterThan((COPIES - 1) * serial1.bytes);

    const mb = (r: Run) => `${(r.maxRss / 1048576).toFixed(0)} MB`;
    console.log(`peak RSS: flow --jobs 1 x1 ${mb(serial1)}, --jobs 2 x1 ${mb(parallel1)}, --jobs 2 x${COPIES} ${mb(parallelN)}`);
    expect(parallelN.maxRss - parallel1.maxRss).toBeLessThan(FLAT_MARGIN);
    expect(parallelN.maxRss - serial1.maxRss).toBeLessThan(PARALLEL_MARGIN);
  }, 900_000);
});
