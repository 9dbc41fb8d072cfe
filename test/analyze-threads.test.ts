/**
 * Per-thread analysis end to end: a threaded program (the exploit corpus's
 * thread_rop, whose overflow and ROP chain run in a worker thread) is
 * recorded by the emulated recorder (one PT stream per thread), then
 * `analyze` runs every detector per stream with fresh state and labels
 * every JSON line with the stream's pid/tid, and `report` shows the thread
 * of each run and of each finding.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { LineWriter } from '../src/cli/output.js';
import { runReportCommand } from '../src/cli/report.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { buildExploitCorpus, type RunJson } from '../tools/corpus/build-exploits.js';

let work: string;
let bundle: string;
let run: RunJson;
/** [pid, tid] of each stream of the recording, main thread first. */
let streams: [number, number][];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-analyze-threads-'));
  const corpus = buildExploitCorpus({});
  const c = corpus.cases.find((x) => x.name === 'thread_rop')!;
  run = c.run;
  bundle = join(work, 'thread_rop.ptscope');
  const r = await record(withRecordDefaults({
    argv: [join(c.dir, run.program), ...run.argv], output: bundle, timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'pipe',
    stdin: join(c.dir, run.exploit.runners?.qemu?.stdin ?? run.exploit.stdin), notice: () => {},
  }));
  expect(r.stdout).toContain('PWNED');
  const rec = openRecording(bundle);
  streams = rec.streams.map((s) => [s.pid!, s.tid!]);
  rec.close();
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function analyze(args: string[]): { status: number; lines: string[] } {
  const out = new LineWriter(null);
  const status = runAnalyzeCommand([bundle, ...args], out) as number;
  out.flush();
  return { status, lines: out.text.trim().split('\n') };
}

describe('analyze and report over a multi-thread recording', () => {
  it('records one stream per thread', () => {
    expect(streams).toHaveLength(2);
    const [main, worker] = streams;
    expect(main[0]).toBe(main[1]);
    expect(worker[0]).toBe(main[0]);
    expect(worker[1]).not.toBe(main[1]);
  });

  it('analyze --json: every line carries pid/tid; the chain is the worker\'s, gadget for gadget', () => {
    const { status, lines } = analyze(['--json', '--fail-on-findings']);
    expect(status).toBe(1);
    const objs = lines.map((l) => JSON.parse(l) as { type: string; pid: number | null; tid: number | null; detector?: string; kind?: string; chain?: { address: string }[] | null; findings?: number });
    for (const o of objs) {
      expect(typeof o.pid, JSON.stringify(o).slice(0, 120)).toBe('number');
      expect(typeof o.tid).toBe('number');
    }
    // One summary per thread, in stream order, with fresh detectors each: the main thread is clean.
    const summaries = objs.filter((o) => o.type === 'summary');
    expect(summaries.map((o) => [o.pid, o.tid])).toEqual(streams);
    const [main, worker] = streams;
    expect(summaries[0].findings).toBe(0);
    const findings = objs.filter((o) => o.type === 'finding');
    expect(findings.length).toBe(summaries[1].findings);
    for (const f of findings) expect([f.pid, f.tid]).toEqual(worker);
    const mismatch = findings.find((f) => f.detector === 'shadow-stack' && f.kind === 'return-mismatch')!;
    expect(mismatch.chain!.map((g) => g.address)).toEqual(run.groundTruth.gadgets.map((g) => g.address));
    expect(findings.some((f) => f.detector === 'rop' && f.kind === 'rop-chain')).toBe(true);
    expect(main).not.toEqual(worker);
  });

  it('analyze (text): each finding names its thread as perf script does', () => {
    const { lines } = analyze([]);
    const [, [pid, tid]] = streams;
    const heads = lines.filter((l) => /^\[\d+\] (HIGH|MEDIUM|LOW) /.test(l));
    expect(heads.length).toBeGreaterThan(0);
    for (const h of heads) expect(h).toContain(` in thread [${pid}/${tid}] @ trace offset `);
  });

  it('report: a section per thread, and each finding shows its thread', () => {
    const html = join(work, 'report.html');
    const out = new LineWriter(null);
    expect(runReportCommand([bundle, '-q', '-o', html], out)).toBe(0);
    out.flush();
    const [[mpid, mtid], [pid, tid]] = streams;
    expect(out.text).toMatch(new RegExp(`\\[${mpid}/${mtid}\\]: No findings`));
    expect(out.text).toMatch(new RegExp(`\\[${pid}/${tid}\\]: \\d+ findings`));
    const page = readFileSync(html, 'utf8');
    expect(page).toContain(`<span class="mute">thread ${mpid}/${mtid}, main thread</span></h2>`);
    expect(page).toContain(`<span class="mute">thread ${pid}/${tid}</span></h2>`);
    const rows = page.match(/<tr><th>thread<\/th><td class="mono">[^<]*</g) ?? [];
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(r).toBe(`<tr><th>thread</th><td class="mono">${pid}/${tid}<`);
  });
});
