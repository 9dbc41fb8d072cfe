/**
 * Stack switches recognised by what they do (src/analyses/stack-switch.ts),
 * end to end: the benign programs of corpus/benign that use setjmp/longjmp,
 * sigsetjmp out of a signal handler, makecontext/swapcontext coroutines,
 * __builtin_setjmp/__builtin_longjmp and C++ exceptions are recorded and
 * must give no finding, with each kind of switch counted. Forged switches (a setcontext pivot, a jmp_buf overwrite)
 * are rows of the exploit corpus (test/analyses-analyze.test.ts), and
 * forged targets are refused in test/analyses-indirect-targets.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeTrace, defaultDetectors } from '../src/analyses/analyze.js';
import { openTraceInput } from '../src/analyses/trace-input.js';
import { recordWithStdin } from '../tools/eval-detectors.js';

const ROOT = join(__dirname, '..');
let dir = '';

function build(name: string, cc: string, source: string, flags: string[] = []): string {
  const exe = join(dir, name);
  execFileSync(cc, ['-O2', '-g0', ...flags, '-o', exe, source]);
  return exe;
}

async function analyse(exe: string, name: string) {
  const bundle = join(dir, `${name}.ptscope`);
  const stdout = await recordWithStdin([exe], bundle, null);
  const r = analyzeTrace(openTraceInput(bundle), { detectors: defaultDetectors() });
  const stats = (d: string) => r.detectors.find((x) => x.name === d)!.stats;
  return { stdout, r, stats };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptscope-switch-'));
});

describe('legitimate stack switches (recorded)', () => {
  it('setjmp/longjmp, siglongjmp out of a handler, makecontext/swapcontext coroutines and signals: no finding', async () => {
    const exe = build('contexts', 'gcc', join(ROOT, 'corpus/benign/contexts.c'));
    const { stdout, r, stats } = await analyse(exe, 'contexts');
    expect(stdout).toMatch(/^contexts: \d+ 20000$/m);
    expect(r.findings).toEqual([]);
    const ss = stats('shadow-stack');
    expect(ss.returnsChecked).toBeGreaterThan(20000);
    expect(ss['switch.context-resume']).toBeGreaterThanOrEqual(8 + 3 + 12); // longjmps, siglongjmps, coroutine resumes
    expect(ss['switch.fresh-context']).toBe(2);
    expect(ss['switch.planted-return']).toBe(2);
    expect(stats('cfi')['switch.signal-return']).toBeGreaterThanOrEqual(4);
  }, 180_000);

  it('one setjmp site saved at several depths (a re-entrant guard): each longjmp goes back to the innermost guard still running', async () => {
    // As perl's call_sv nests JMPENVs: a deeper guard returns, then a longjmp goes to an outer one saved at the same site.
    const exe = build('nested_setjmp', 'gcc', join(ROOT, 'corpus/benign/nested_setjmp.c'));
    const { stdout, r, stats } = await analyse(exe, 'nested_setjmp');
    expect(stdout).toMatch(/^nested_setjmp: 0 250$/m);
    expect(r.findings).toEqual([]);
    expect(stats('shadow-stack')['switch.context-resume']).toBe(250);
    expect(stats('shadow-stack').returnsMatched).toBe(stats('shadow-stack').returnsChecked);
  }, 180_000);

  it.each([
    ['gcc', '-O2'],
    ['clang', '-O0'],
  ])('nonlocal gotos without a library call (__builtin_setjmp/__builtin_longjmp, %s %s): back into the running protect frame', async (cc, opt) => {
    // Ruby raises this way: the jump loads the stack pointer from the buffer and jumps to a label of the protect frame's function.
    const exe = build(`builtin_longjmp_${cc}`, cc, join(ROOT, 'corpus/benign/builtin_longjmp.c'), [opt]);
    const { stdout, r, stats } = await analyse(exe, `builtin_longjmp_${cc}`);
    expect(stdout).toMatch(/^builtin_longjmp: 1970 70$/m);
    expect(r.findings).toEqual([]);
    expect(stats('shadow-stack')['switch.nonlocal-goto']).toBe(70);
    expect(stats('shadow-stack').returnsMatched).toBe(stats('shadow-stack').returnsChecked);
    expect(r.unchecked).toEqual([]);
  }, 180_000);

  it('C++ exceptions through cleanups and rethrows: every unwind lands on the pad the LSDA names', async () => {
    const exe = build('exceptions', 'g++', join(ROOT, 'corpus/benign/exceptions.cc'));
    const { stdout, r, stats } = await analyse(exe, 'exceptions');
    expect(stdout).toMatch(/^exceptions: sum \d+, \d+ cleanups, \d+ kinds of error$/m);
    expect(r.findings).toEqual([]);
    expect(stats('shadow-stack')['switch.landing-pad']).toBeGreaterThan(100);
    expect(stats('shadow-stack').returnsMatched).toBe(stats('shadow-stack').returnsChecked);
    expect(stats('cfi')['switch.landing-pad']).toBeGreaterThan(100);
  }, 180_000);
});
