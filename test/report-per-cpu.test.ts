/**
 * `report` on per-CPU perf.data (export-perf --per-cpu from recordings
 * made with --timing tsc --noretcomp): one model per thread life, each
 * equal to the model of that thread's stream in the per-thread bundle the
 * file was made from (findings with their pid/tid and evidence, detector
 * statistics, what could not be checked, coverage, the call timeline),
 * except what the layout changes: trace offsets and bytes, module names
 * (perf.data names them by file), the strip's slices, and what perf.data
 * does not hold (the program's command line and exit).
 * - thread_rop (the exploit corpus' ROP in a worker thread) on 1 and 2
 *   CPUs: the chain's findings in the worker only;
 * - fork + exec on 2 CPUs: the child before and after its exec are two
 *   lives of one tid, with their own images;
 * - without its images, nothing decoded is an input error;
 * - the HTML escapes a hostile symbol name of the traced binary;
 * - a thread's strip, whose length is known only at the walk's end, grows
 *   to the same slices as a strip made for that length.
 * Needs gcc, qemu-x86_64 and bubblewrap (scripts/install-test-deps.sh).
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineWriter } from '../src/cli/output.js';
import { runReportCommand } from '../src/cli/report.js';
import { escapeHtml } from '../src/reports/html-report.js';
import type { ReportModel } from '../src/reports/report-model.js';
import { TraceStrip } from '../src/reports/trace-strip.js';
import { GapKind } from '../src/flow/control-flow.js';
import { InsnKind, type InstructionInfo } from '../src/flow/instruction.js';
import type { Finding } from '../src/analyses/finding.js';
import { buildThreadFixture, exportPerCpu, recordForPerCpu, recordThreadRop } from './helpers/per-cpu-export.js';

const HOSTILE = '<img src=x onerror=alert(1)>';

let work: string;
let threadRop: string;
let forkExec: string;

function report(input: string, extra: string[] = []): { status: number; models: ReportModel[] } {
  const out = new LineWriter(null);
  const status = runReportCommand([input, '--json', '-q', ...extra], out);
  out.flush();
  return { status, models: out.text.trim().split('\n').map((l) => JSON.parse(l) as ReportModel) };
}

/** perf.data names a module by its file (`0-prog`), the bundle by its original name. */
const moduleName = (name: string): string => name.replace(/^\d+-/, '');

/** What a thread's model says that the trace's layout does not change. */
function content(m: ReportModel): unknown {
  // Module names, alone and in `module!symbol+0xoff`, wherever they appear (messages included).
  return JSON.parse(JSON.stringify(layoutFree(m)).replace(/(^|[\s"(])\d+-(?=[^\s"!+]+[!+"])/g, '$1'));
}

function layoutFree(m: ReportModel): unknown {
  const { bytes: _bytes, analyzeSeconds: _s, ...trace } = m.trace;
  return {
    pid: m.thread?.pid ?? null,
    tid: m.thread?.tid ?? null,
    trace,
    findings: { total: m.findings.total, items: m.findings.items.map(({ offset: _o, ...f }) => f) },
    severityCounts: m.severityCounts,
    detectors: m.detectors,
    unchecked: { total: m.unchecked.total, items: m.unchecked.items.map(({ firstOffset: _o, ...u }) => u) },
    coverage: m.coverage.map((c) => ({ ...c, module: moduleName(c.module) })),
    timeline: m.timeline,
    modules: m.modules.map((x) => ({ name: moduleName(x.name), start: x.start, end: x.end, symbols: x.symbols, hasCfg: x.hasCfg, runtime: x.runtime })),
  };
}

const sum = (list: number[]): number => list.reduce((a, b) => a + b, 0);

/** The per-CPU file's models equal the bundle's, thread for thread (lives of one tid in the order they ran). */
function expectPerThread(bundle: string, file: string): ReportModel[] {
  const perThread = report(bundle);
  const perCpu = report(file);
  expect(perCpu.status).toBe(perThread.status);
  expect(perCpu.models.length).toBeGreaterThan(1);
  for (const m of perCpu.models) expect([typeof m.thread?.pid, typeof m.thread?.tid]).toEqual(['number', 'number']);
  const byThread = (models: ReportModel[]): string[] => models.map((m) => `${m.thread!.pid}/${m.thread!.tid}`);
  expect(byThread(perCpu.models).sort()).toEqual(byThread(perThread.models).sort());
  const key = (m: ReportModel): string => `${m.thread!.pid}/${m.thread!.tid}`;
  for (const t of new Set(byThread(perThread.models))) {
    const mine = perCpu.models.filter((m) => key(m) === t);
    const theirs = perThread.models.filter((m) => key(m) === t);
    expect(mine.map(content), t).toEqual(theirs.map(content));
  }
  // A thread's strip spans its own runs: every instruction and finding of the thread is on it.
  for (const m of perCpu.models) {
    expect(sum(m.strip.instructions)).toBe(m.trace.instructions);
    expect(sum(m.strip.findings)).toBe(m.findings.total);
    expect(m.strip.bytes).toBeGreaterThanOrEqual(m.trace.bytes);
    expect(m.strip.instructions).toHaveLength(m.strip.bins);
  }
  return perCpu.models;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-report-per-cpu-'));
  forkExec = (await recordForPerCpu(work, [buildThreadFixture(work, 'fork-exec')])).bundle;
  threadRop = (await recordThreadRop(work)).bundle;
}, 400_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('report on per-CPU perf.data: one model per thread', () => {
  for (const cpus of [1, 2]) {
    it(`thread_rop on ${cpus} CPU${cpus > 1 ? 's' : ''}: each thread's model is its per-thread stream's, the chain in the worker only`, () => {
      const models = expectPerThread(threadRop, exportPerCpu(threadRop, cpus));
      expect(models).toHaveLength(2);
      const withFindings = models.filter((m) => m.findings.total > 0);
      expect(withFindings).toHaveLength(1);
      const worker = withFindings[0]!;
      expect(worker.thread!.tid).not.toBe(worker.thread!.pid);
      for (const f of worker.findings.items) expect([f.pid, f.tid]).toEqual([worker.thread!.pid, worker.thread!.tid]);
      expect(worker.findings.items.some((f) => f.detector === 'shadow-stack' && f.kind === 'return-mismatch' && f.graph !== null)).toBe(true);
    }, 120_000);
  }

  it.each([1, 2])('fork + exec on %i CPU(s): the child before and after its exec are two models, each with its own image', (cpus) => {
    const models = expectPerThread(forkExec, exportPerCpu(forkExec, cpus));
    expect(models).toHaveLength(3);
    const child = models.filter((m) => m.thread!.pid === m.thread!.tid && m.modules.some((x) => moduleName(x.name) === 'echo'));
    expect(child).toHaveLength(1);
    expect(models.filter((m) => m.thread!.tid === child[0]!.thread!.tid)).toHaveLength(2);
  }, 120_000);

  it('a per-CPU file whose images are gone: nothing decoded is an input error, in one line', () => {
    const copy = join(work, 'gone.ptscope');
    cpSync(threadRop, copy, { recursive: true });
    const file = exportPerCpu(copy, 2);
    rmSync(join(copy, 'images'), { recursive: true });
    expect(() => report(file)).toThrow(/^[^\n]*: no instruction could be decoded \(\d+ decode errors\): not an Intel PT trace of this code, or its images are missing\.$/);
  }, 120_000);

  it('the HTML escapes a hostile symbol name on the chain, as the per-thread report does', () => {
    // Rename the function of one of the chain's gadgets to markup, in the bundle's copy of the program.
    const chain = report(threadRop).models.flatMap((m) => m.findings.items).find((f) => f.chain !== null && f.chain.length > 1)!.chain!;
    const victim = chain.map((g) => g.symbol?.replace(/^.*!/, '').replace(/\+0x[0-9a-f]+$/, '') ?? '').find((n) => n.length >= HOSTILE.length)!;
    expect(victim).toBeDefined();
    const hostile = join(work, 'hostile.ptscope');
    cpSync(threadRop, hostile, { recursive: true });
    const needle = Buffer.from(`\0${victim}\0`, 'latin1');
    let patched = 0;
    for (const name of readdirSync(join(hostile, 'images'))) {
      const path = join(hostile, 'images', name);
      const bytes = readFileSync(path);
      const at = bytes.indexOf(needle);
      if (at < 0) continue;
      expect(bytes.indexOf(needle, at + 1)).toBe(-1);
      bytes.write(HOSTILE + '\0', at + 1, 'latin1');
      writeFileSync(path, bytes);
      patched++;
    }
    expect(patched).toBe(1);
    const file = exportPerCpu(hostile, 2);
    const models = report(file).models;
    expect(models.some((m) => m.findings.items.some((f) => (f.chain ?? []).some((g) => g.symbol?.includes(HOSTILE))))).toBe(true);
    for (const [input, html] of [
      [hostile, join(work, 'per-thread.html')],
      [file, join(work, 'per-cpu.html')],
    ] as const) {
      const out = new LineWriter(null);
      runReportCommand([input, '-q', '-o', html], out);
      const text = readFileSync(html, 'utf8');
      expect(text).not.toContain(HOSTILE);
      expect(text).toContain(escapeHtml(HOSTILE));
    }
    // Each thread has its section, headed by its pid/tid.
    const text = readFileSync(join(work, 'per-cpu.html'), 'utf8');
    for (const m of models) expect(text).toContain(`${m.thread!.pid}/${m.thread!.tid}`);
  }, 120_000);
});

describe('a growing trace strip', () => {
  it('gives the slices of a strip made for its final length', () => {
    const position = { offset: 0 };
    const feed = (strip: TraceStrip): void => {
      position.offset = 0;
      const plain = { kind: InsnKind.None } as InstructionInfo;
      const syscall = { kind: InsnKind.Syscall } as InstructionInfo;
      for (let at = 0; at < 1000; at += 7) {
        position.offset = at;
        strip.onInstruction(at % 91 === 0 ? syscall : plain);
        strip.onInstruction(plain);
        if (at % 3 === 0) strip.onTransfer();
        if (at % 50 === 0) strip.onGap(at % 100 === 0 ? GapKind.Disabled : GapKind.Overflow);
      }
      strip.onEnd();
    };
    const findings = [5, 333, 998].map((offset, i) => ({ offset, severity: i === 1 ? 'high' : 'low' }) as Finding);
    const growing = TraceStrip.growing(position, 10);
    feed(growing);
    growing.close(1000);
    growing.addFindings(findings);
    const grown = growing.data();
    // 10 slices of 1 byte, doubled until 1000 bytes fit: slices of 128 bytes, 8 of them to hold 1000 bytes.
    expect([grown.bins, grown.bytes]).toEqual([8, 1024]);
    const fixed = new TraceStrip(position, grown.bytes, grown.bins);
    feed(fixed);
    fixed.addFindings(findings);
    expect(grown).toEqual(fixed.data());
    expect(sum(grown.instructions)).toBe(2 * Math.ceil(1000 / 7));
  });

  it('keeps what was counted at the trace\'s very end (the offset after its last byte) in its last slice', () => {
    // 1024 bytes fill 8 slices of 128 exactly: the end offset, 1024, is past the last of them.
    const position = { offset: 0 };
    const strip = TraceStrip.growing(position, 10);
    const plain = { kind: InsnKind.None } as InstructionInfo;
    position.offset = 100;
    strip.onInstruction(plain);
    strip.onTransfer();
    position.offset = 1024;
    for (let i = 0; i < 5; i++) strip.onInstruction(plain);
    strip.onEnd();
    strip.close(1024);
    const data = strip.data();
    expect([data.bins, data.bytes]).toEqual([8, 1024]);
    expect(data.instructions).toEqual([1, 0, 0, 0, 0, 0, 0, 5]);
  });
});
