import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/temp-dirs.js';
import { analyzeTrace, defaultDetectors } from '../src/analyses/analyze.js';
import { CodeFacts } from '../src/analyses/code-facts.js';
import { PREPARED_UNSEEN_REASON, StackSwitches, SwitchKind } from '../src/analyses/stack-switch.js';
import { openTraceInput } from '../src/analyses/trace-input.js';
import { TransferKind } from '../src/flow/control-flow.js';
import { recordWithStdin } from '../tools/eval-detectors.js';
import { rawInput } from './helpers/inputs.js';
import { CreditedEdges, scanTipEdges, trainFlowGuardPolicy } from '../src/analyses/flowguard.js';
import { loadPolicy } from '../src/analyses/policy.js';
import { REAL_TRACES } from './helpers/vectors.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const unzip = { trace: join(REAL_TRACES, 'unzip', 'trace.pt'), raw: [join(REAL_TRACES, 'unzip', 'seg_400000.bin') + ':0x400000'], elf: [], cpu: '6/158' };

describe('flowguard', () => {
  it('reads TIP-pair edges and syscall-boundary checks from packets alone', () => {
    const input = rawInput(unzip);
    const edges = new CreditedEdges();
    let checks = 0;
    const scan = scanTipEdges(input.trace, (a, b) => edges.set(a, b, 1), () => checks++);
    expect(scan.packets).toBeGreaterThan(1000);
    expect(scan.tips).toBeGreaterThan(100);
    expect(edges.size).toBeGreaterThan(10);
    // The IP filter disables tracing at every call into libc: many checks.
    expect(checks).toBeGreaterThan(50);
  });

  it('untrained: windows go to the slow path; trained on the same run: every check settles on the fast path', () => {
    const input = rawInput(unzip);
    const cold = analyzeTrace(input, { detectors: ['flowguard'] });
    const cs = cold.detectors[0].stats;
    expect(cs.checks).toBeGreaterThan(50);
    expect(cs.slowWindows).toBeGreaterThan(0);
    expect(cs.slowInstructions).toBeGreaterThan(0);
    expect(cold.findings).toEqual([]);
    expect(cold.unchecked.some((u) => /no trained edges/.test(u.reason))).toBe(true);

    const policy = join(temps.make('ptscope-fg-'), 'fg.json');
    const n = trainFlowGuardPolicy(policy, [input.trace]);
    expect(n).toBeGreaterThan(10);
    expect(loadPolicy(policy).flowguard?.edges?.length).toBe(n);
    const warm = analyzeTrace(input, { detectors: ['flowguard'], policyFile: policy });
    const ws = warm.detectors[0].stats;
    expect(ws.checks).toBe(cs.checks);
    expect(ws.fastFraction).toBe(1);
    expect(ws.slowWindows).toBe(0);
    expect(ws.fastPacketsPerSecond).toBeGreaterThan(0);
    expect(warm.findings).toEqual([]);
  }, 60000);
});

/**
 * The slow path decodes a missed window from the PSB before it: it has not
 * seen what came earlier. A program that calls setjmp when it starts and
 * longjmps back at the end, many PSBs later, is benign: the full decode
 * sees the setjmp and judges the longjmp a context resume; the slow path
 * must count it as unchecked (prepared before its decode start), never
 * report it. A jump to any other place is still judged.
 */
const HISTORY_C = `
#include <setjmp.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
static jmp_buf env;
static int inc(int x) { return x + 1; }
static int dec(int x) { return x - 3; }
static int (*volatile ops[2])(int) = { inc, dec };
__attribute__((noinline)) static void finish(int n) { longjmp(env, n); }
int main(void) {
  int r = setjmp(env);
  if (r != 0) { printf("back %d\\n", r); return 0; }
  int v = 0;
  for (int i = 0; i < 20000; i++) {
    v = ops[i & 1](v) + (i & 3);
    if (i < 10000 && i % 1000 == 0) syscall(SYS_getpid);
  }
  finish(v | 1);
}
`;

describe('flowguard slow path and history before its decode start', () => {
  let dir = '';
  let exe = '';
  let bundle = '';
  beforeAll(async () => {
    dir = temps.make('ptscope-fg-history-');
    writeFileSync(join(dir, 'history.c'), HISTORY_C);
    exe = join(dir, 'history');
    execFileSync('gcc', ['-O2', '-g0', '-o', exe, join(dir, 'history.c')]);
    bundle = join(dir, 'history.ptscope');
    const stdout = await recordWithStdin([exe], bundle, null);
    expect(stdout).toMatch(/^back \d+$/m);
  }, 180_000);

  it('a longjmp to a setjmp made before the window\'s PSB is unchecked in the slow path, and judged by the full decode', () => {
    const full = analyzeTrace(openTraceInput(bundle), { detectors: defaultDetectors() });
    expect(full.findings).toEqual([]);
    expect(full.detectors.find((d) => d.name === 'shadow-stack')!.stats['switch.context-resume']).toBeGreaterThanOrEqual(1);

    // Untrained: every window with an indirect edge takes the slow path, the longjmp's window included.
    const fg = analyzeTrace(openTraceInput(bundle), { detectors: ['flowguard'] });
    const s = fg.detectors[0].stats;
    expect(s.slowWindows).toBeGreaterThan(0);
    expect(fg.findings).toEqual([]);
    const unseen = fg.unchecked.find((u) => u.reason === PREPARED_UNSEEN_REASON);
    expect(unseen?.count).toBeGreaterThanOrEqual(1);
    // The window is decoded whole, from the PSB before its start: the loop's 10,000 calls after the last check are decoded.
    expect(s.slowInstructions).toBeGreaterThan(10000 * 4);
  }, 180_000);

  it('with history unseen, only a setjmp return site, a landing pad or a sigreturn trampoline counts as a switch', () => {
    const input = openTraceInput(bundle);
    const facts = new CodeFacts(input.image);
    const m = input.modules.modules.find((x) => x.path === exe || x.name === 'history')!;
    expect(m).toBeDefined();
    // The return site of main's call to _setjmp, from the disassembly.
    const dis = execFileSync('objdump', ['-d', '--no-show-raw-insn', exe], { encoding: 'utf8' }).split('\n');
    const at = dis.findIndex((l) => /call\s+[0-9a-f]+ <_setjmp@plt>/.test(l));
    expect(at).toBeGreaterThan(0);
    const site = parseInt(dis[at + 1].trim().split(':')[0], 16) + m.bias;
    const mainEntry = m.elf!.symbols.find((x) => x.name === 'main')!.value + m.bias;

    const unseen = new StackSwitches(input.modules, facts, true);
    expect(unseen.classify(TransferKind.IndirectJump, site)).toBe(SwitchKind.PreparedUnseen);
    expect(unseen.classify(TransferKind.IndirectJump, site + 1)).toBe(SwitchKind.None);
    expect(unseen.classify(TransferKind.IndirectJump, mainEntry)).toBe(SwitchKind.None);
    expect(unseen.classify(TransferKind.Return, mainEntry)).toBe(SwitchKind.None);
    // From the start of the trace nothing is unseen: the same jump needs its setjmp in the trace.
    const seen = new StackSwitches(input.modules, facts, false);
    expect(seen.classify(TransferKind.IndirectJump, site)).toBe(SwitchKind.None);
  }, 60_000);
});
