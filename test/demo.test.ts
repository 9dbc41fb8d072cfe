/**
 * `ptscope demo`: the shipped samples are there and small, the demo finds
 * the ROP chain in the exploit and nothing in the benign run, writes its
 * report in the current directory, and needs no system program (it runs
 * with an empty PATH) and well under a minute.
 *
 * The subprocess case runs the built CLI (dist/, made by `npm test`'s build).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDemoIndex, runDemoCommand } from '../src/cli/demo.js';
import { runReportCommand } from '../src/cli/report.js';
import { readDormantFile } from '../src/cli/dormant-file.js';
import { renderHtmlReport } from '../src/reports/html-report.js';
import { buildBundleReport } from '../src/reports/report-model.js';
import { main } from '../src/cli/main.js';
import { CliError, LineWriter } from '../src/cli/output.js';

const DEMO = resolve('demo');
const BIN = resolve('bin/ptscope.js');

function duSync(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? duSync(p) : statSync(p).size;
  }
  return n;
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-demo-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('demo samples', () => {
  it('are listed in demo.json, are bundles, and stay small', () => {
    const index = readDemoIndex(DEMO);
    expect(index.samples.map((s) => s.kind)).toEqual(expect.arrayContaining(['exploit', 'benign']));
    for (const s of index.samples) {
      expect(existsSync(join(DEMO, s.bundle, 'manifest.json')), s.bundle).toBe(true);
      expect(existsSync(join(DEMO, s.bundle, 'trace.pt')), s.bundle).toBe(true);
    }
    expect(duSync(DEMO)).toBeLessThan(4 * 1024 * 1024);
  });
});

describe('ptscope demo', () => {
  it('prints the chain and the clean benign run and writes the report', () => {
    const out = new LineWriter(null);
    const html = join(work, 'demo.html');
    const t0 = Date.now();
    expect(runDemoCommand(['-o', html, '-q'], out)).toBe(0);
    out.flush();
    expect(Date.now() - t0).toBeLessThan(60_000);
    const text = out.text;
    expect(text).toMatch(/\[1\] rop_stack: the exploit/);
    expect(text).toMatch(/verdict {3}9 findings \(9 high\)/);
    expect(text).toMatch(/chain {5}8 gadgets/);
    for (const g of ['pop rax; ret', 'pop rdi; ret', 'pop rsi; ret', 'pop rdx; pop rbx; ret', 'syscall']) expect(text).toContain(g);
    expect(text).toMatch(/\[2\] rop_stack: a benign run[\s\S]*verdict {3}No findings/);
    expect(text).toContain(`report    ${html}`);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('Longest code-reuse chain');
    expect(page).toContain('rop_stack: a benign run');
  });

  it('--json gives a machine-readable summary', () => {
    const out = new LineWriter(null);
    expect(runDemoCommand(['-o', join(work, 'j.html'), '--json'], out)).toBe(0);
    out.flush();
    const doc = JSON.parse(out.text);
    const [x, b] = doc.samples;
    expect(x.kind).toBe('exploit');
    expect(x.findings).toBe(9);
    expect(x.detectors).toEqual(expect.arrayContaining(['rop', 'shadow-stack', 'cfi']));
    expect(x.chain.map((g: { address: string }) => g.address)).toEqual(['0x438527', '0x401e20', '0x40f2c2', '0x469ab7', '0x417a62', '0x438527', '0x401e20', '0x417a62']);
    expect(b.kind).toBe('benign');
    expect(b.findings).toBe(0);
  });

  it('a missing sample directory is an input error', async () => {
    expect(() => runDemoCommand(['--data', join(work, 'none')], new LineWriter(null))).toThrow(CliError);
    expect(await main(['demo', '--no-such-option'])).toBe(2);
  });

  it('runs from the built CLI with no PATH and writes ptscope-report.html in the current directory', () => {
    expect(existsSync(resolve('dist/src/cli/demo.js')), 'build first (npm run build)').toBe(true);
    const cwd = mkdtempSync(join(work, 'cwd-'));
    const r = spawnSync(process.execPath, [BIN, 'demo'], { cwd, env: { PATH: '' }, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`report    ${join(cwd, 'ptscope-report.html')}`);
    expect(existsSync(join(cwd, 'ptscope-report.html'))).toBe(true);
  });

  it('ptscope report: exit 1 with --fail-on-findings only when something was found; --json gives the model', () => {
    const html = join(work, 'r.html');
    const run = (args: string[]) => {
      const out = new LineWriter(null);
      const code = runReportCommand(args, out);
      out.flush();
      return { code, text: out.text };
    };
    expect(run([join(DEMO, 'rop_stack.exploit'), '-o', html, '--fail-on-findings', '-q']).code).toBe(1);
    const clean = run([join(DEMO, 'rop_stack.benign'), '-o', html, '--fail-on-findings', '-q']);
    expect(clean.code).toBe(0);
    expect(clean.text).toMatch(/No findings/);
    expect(readFileSync(html, 'utf8')).toContain('No findings.');
    const j = run([join(DEMO, 'rop_stack.exploit'), join(DEMO, 'rop_stack.benign'), '--json', '--max-calls', '10']);
    const models = j.text.trim().split('\n').map((l) => JSON.parse(l));
    expect(models.map((m) => m.findings.total)).toEqual([9, 0]);
    expect(models[0].format).toBe('ptscope-report');
    expect(models[0].timeline.calls.items).toHaveLength(10);
    expect(models[0].timeline.calls.total).toBeGreaterThan(10);
    expect(models[0].dormant).toBeNull();
  });

  it('attaches dormant-code results (ptscope dormant --json) to the report', () => {
    const file = join(work, 'dormant.json');
    writeFileSync(
      file,
      JSON.stringify({
        bundle: 'x.ptscope',
        regionsFound: 3,
        regions: [
          { id: 1, function: 'main', target: '0x401234', entries: ['0x401230'], guard: 'main+0x1c', status: 'proven', reason: null, trigger: [{ call: 'time', site: '0x401200', values: [{ symbol: 'ret', value: '0x72bc9b00' }] }], constraints: [], proof: { targetRan: true } },
          { id: 2, function: '<b>evil</b>', target: '0x401300', guard: null, status: 'unsolved', reason: 'no guard', trigger: [], constraints: [], proof: null },
        ],
      }),
    );
    const d = readDormantFile(file);
    expect(d.triggers.total).toBe(2);
    expect(d.triggers.items[0]).toMatchObject({ function: 'main', address: '0x401234', guard: 'main+0x1c', condition: 'time returns ret=0x72bc9b00', confirmed: true });
    expect(d.triggers.items[1].confirmed).toBeNull();
    const html = renderHtmlReport([buildBundleReport(join(DEMO, 'rop_stack.benign'), { dormant: d })]);
    expect(html).toContain('Dormant code (2 triggers)');
    expect(html).toContain('time returns ret=0x72bc9b00');
    expect(html).toContain('&lt;b&gt;evil&lt;/b&gt;');
    expect(() => readDormantFile(join(work, 'missing.json'))).toThrow(CliError);
  });

  it('help lists examples and exit codes', async () => {
    for (const cmd of ['report', 'timeline', 'coverage', 'demo']) {
      const r = spawnSync(process.execPath, [BIN, cmd, '--help'], { encoding: 'utf8' });
      expect(r.status, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(/examples:\n {2}ptscope /);
      expect(r.stdout, cmd).toMatch(/exit status: 0 ok/);
    }
    const top = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
    expect(top.stdout).toMatch(/ptscope demo/);
    for (const cmd of ['report', 'timeline', 'coverage', 'demo']) expect(top.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
  });
});
