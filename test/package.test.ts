/**
 * The package as users get it: `npm pack`, installed into an empty folder
 * with `npm install ./ptscope-*.tgz`, and every command run from there
 * (never from this checkout): demo, record, analyze, report, crash,
 * dormant --rerun, classify, completion.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..');
let work: string;
let bin: string;

function run(args: string[], options: { cwd?: string; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [bin, ...args], { cwd: options.cwd ?? work, encoding: 'utf8', input: options.input, timeout: 240_000 });
}

function sh(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).slice(-2000)}`);
  return r.stdout;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-pkg-'));
  const packDir = join(work, 'pack');
  sh('mkdir', ['-p', packDir], work);
  // --ignore-scripts: the tree is built already (npm test builds first).
  sh('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir], ROOT);
  const tgz = readdirSync(packDir).find((f) => f.endsWith('.tgz'))!;
  const app = join(work, 'app');
  sh('mkdir', ['-p', app], work);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(packDir, tgz)], app);
  bin = join(app, 'node_modules', 'ptscope', 'bin', 'ptscope.js');
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the installed package', () => {
  it('ships what it needs and nothing of the checkout', () => {
    const pkg = join(work, 'app', 'node_modules', 'ptscope');
    for (const p of ['dist/src/index.js', 'bin/ptscope.js', 'demo/demo.json', 'models/exploit-window-model.json', 'native/dormant-shim.c']) {
      expect(existsSync(join(pkg, p)), p).toBe(true);
    }
    expect(existsSync(join(pkg, 'test'))).toBe(false);
    expect(existsSync(join(pkg, 'corpus'))).toBe(false);
  });

  it('demo', () => {
    const r = run(['demo', '-q', '-o', 'demo.html']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/8 gadgets/);
    expect(existsSync(join(work, 'demo.html'))).toBe(true);
  });

  it('completion and help', () => {
    expect(run(['completion', 'bash']).stdout).toContain('complete -o filenames -F _ptscope ptscope');
    const h = run(['help', 'analyze']);
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/Usage: ptscope analyze/);
  });

  it('record, analyze, report, classify on a program built here', () => {
    writeFileSync(join(work, 'hello.c'), '#include <stdio.h>\nint main(int c, char **v) { printf("hi %d\\n", c); return 0; }\n');
    sh('gcc', ['-O1', '-o', 'hello', 'hello.c'], work);
    const rec = run(['record', '-o', 'hello.ptscope', '--', './hello', 'x']);
    expect(rec.status, rec.stderr).toBe(0);
    expect(rec.stdout).toMatch(/program\s+exit status 0/);
    const an = run(['analyze', 'hello.ptscope', '--json']);
    expect(an.status, an.stderr).toBe(0);
    const summary = JSON.parse(an.stdout.trim().split('\n').pop()!);
    expect(summary.type).toBe('summary');
    expect(summary.flow.instructions).toBeGreaterThan(10_000);
    expect(summary.findings).toBe(0);
    const rep = run(['report', 'hello.ptscope', '-q', '-o', 'hello.html']);
    expect(rep.status, rep.stderr).toBe(0);
    expect(readFileSync(join(work, 'hello.html'), 'utf8')).toMatch(/<html/);
    const cl = run(['classify', 'hello.ptscope', '--json']);
    expect(cl.status, cl.stderr).toBe(0);
    expect(JSON.parse(cl.stdout.trim().split('\n')[0]!).windows.length).toBeGreaterThan(0);
  });

  it('crash finds the root cause of a crash recorded here', () => {
    // A case of the crash corpus, built as tools/eval-crashes.ts builds it.
    sh('gcc', ['-g', '-O0', '-fno-builtin', '-fno-stack-protector', '-o', 'heap_fptr', join(ROOT, 'corpus', 'crashes', 'heap_fptr.c')], work);
    const rec = run(['record', '-o', 'heap_fptr.ptscope', '--', './heap_fptr']);
    expect(rec.status).toBe(1);
    expect(rec.stdout).toMatch(/killed by SIGSEGV/);
    const cr = run(['crash', 'heap_fptr.ptscope', '--json']);
    expect(cr.status, cr.stdout + cr.stderr).toBe(0);
    const report = JSON.parse(cr.stdout);
    expect(JSON.stringify(report.rootCauses)).toMatch(/heap_fptr\.c:17/);
  });

  it('dormant --rerun proves a payload behind an environment variable', () => {
    const src = join(ROOT, 'corpus', 'dormant');
    sh('gcc', ['-O1', '-I', src, '-o', 'envvar', join(src, 'envvar.c')], work);
    const rec = run(['record', '-o', 'envvar.ptscope', '--', './envvar']);
    expect(rec.status, rec.stderr).toBe(0);
    const d = run(['dormant', '--rerun', '--max-regions', '3', '--json', 'envvar.ptscope']);
    expect(d.status, d.stderr).toBe(0);
    const report = JSON.parse(d.stdout);
    expect(report.summary.proven).toBeGreaterThanOrEqual(1);
  });
});
