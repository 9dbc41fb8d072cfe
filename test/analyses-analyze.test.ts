import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/temp-dirs.js';
import { analyzeTrace, benchAnalyze } from '../src/analyses/analyze.js';
import { rawInput } from './helpers/inputs.js';
import { LineWriter } from '../src/cli/output.js';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { REAL_TRACES } from './helpers/vectors.js';
import { EXPLOIT_CASES } from '../tools/corpus/exploits.js';
import type { RunJson } from '../tools/corpus/build-exploits.js';
import type { CaseResult } from '../tools/eval-detectors.js';
import { builtExploitCorpus, EXPLOIT_CORPUS as CORPUS } from './helpers/exploit-corpus.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const EXPLOIT_CASE_NAMES = EXPLOIT_CASES.map((c) => c.name);

const unzip = { trace: join(REAL_TRACES, 'unzip', 'trace.pt'), raw: [join(REAL_TRACES, 'unzip', 'seg_400000.bin') + ':0x400000'], elf: [], cpu: '6/158' };

describe('analyze over real traces (benign)', () => {
  it('unzip: zero findings with every default detector, and says what it could not check', () => {
    const r = analyzeTrace(rawInput(unzip));
    expect(r.flow.instructions).toBe(149576);
    expect(r.findings).toEqual([]);
    expect(r.detectors.map((d) => d.name)).toEqual(['shadow-stack', 'rop', 'cfi', 'inter-module']);
    const ss = r.detectors.find((d) => d.name === 'shadow-stack')!.stats;
    expect(ss.returnsChecked).toBeGreaterThan(100);
    expect(ss.returnsMatched).toBe(ss.returnsChecked);
    // A raw image has no ELF: CFI cannot judge indirect targets and says so.
    expect(r.unchecked.some((u) => u.detector === 'cfi' && /no ELF/.test(u.reason))).toBe(true);
  });

  it('mruby: zero findings over 6.3 M instructions (with an overflow)', () => {
    const r = analyzeTrace(rawInput({ ...unzip, trace: join(REAL_TRACES, 'mruby', 'trace.pt'), raw: [join(REAL_TRACES, 'mruby', 'seg_400000.bin') + ':0x400000'] }));
    expect(r.flow.instructions).toBe(6334131);
    expect(r.findings).toEqual([]);
    expect(r.unchecked.some((u) => /overflow/.test(u.reason))).toBe(true);
  }, 60000);

  it('exposes a throughput measurement for the bench', () => {
    const b = benchAnalyze(rawInput(unzip));
    expect(b.instructions).toBe(149576);
    expect(b.instructionsPerSecond).toBeGreaterThan(0);
    expect(b.findings).toBe(0);
  });
});

describe('ptscope analyze', () => {
  const args = [unzip.trace, '--cpu', '6/158', '--raw', unzip.raw[0]];

  it('prints JSON lines ending with a summary, exit 0', () => {
    const out = new LineWriter(null);
    expect(runAnalyzeCommand([...args, '--json', '--fail-on-findings'], out)).toBe(0);
    out.flush();
    const lines = out.text.trim().split('\n').map((l) => JSON.parse(l));
    const last = lines[lines.length - 1];
    expect(last.type).toBe('summary');
    expect(last.findings).toBe(0);
    expect(last.flow.instructions).toBe(149576);
    expect(lines.filter((l) => l.type === 'unchecked').length).toBeGreaterThan(0);
  });

  it('rejects unknown detectors and a raw trace without images', () => {
    const out = new LineWriter(null);
    expect(() => runAnalyzeCommand([...args, '--detect', 'nope'], out)).toThrow(/unknown detector 'nope'/);
    expect(() => runAnalyzeCommand([unzip.trace], out)).toThrow(/needs its images/);
  });

  it('refuses unknown parameter keys and out-of-range values in one line', () => {
    const out = new LineWriter(null);
    expect(() => runAnalyzeCommand([...args, '--param', 'rop.minChain=-1'], out)).toThrow(/--param rop\.minChain=-1: must be an integer from 1 to 1000/);
    expect(() => runAnalyzeCommand([...args, '--param', 'rop.minChian=3'], out)).toThrow(/rop has no parameter 'minChian'/);
    expect(() => runAnalyzeCommand([...args, '--param', 'flowguard.threshold=2'], out)).toThrow(/must be a number from 0 to 1/);
  });

  it('FlowGuard alone (packets, no instruction walk) on its trained trace: exit 0, not "nothing decoded"', () => {
    const dir = temps.make('ptscope-an-');
    const policy = join(dir, 'fg.json');
    const out = new LineWriter(null);
    expect(runAnalyzeCommand([...args, '--flowguard-train', policy], out)).toBe(0);
    expect(runAnalyzeCommand([...args, '--detect', 'flowguard', '--policy', policy, '--fail-on-findings'], out)).toBe(0);
    out.flush();
    expect(out.text).toMatch(/flowguard: 0 findings/);
  });

  it('reports a malformed policy in one line', () => {
    const dir = temps.make('ptscope-an-');
    const bad = join(dir, 'p.json');
    writeFileSync(bad, '{"format":"ptscope-policy","version":1,"interModule":{"rules":[1]}}');
    const out = new LineWriter(null);
    expect(() => runAnalyzeCommand([...args, '--detect', 'inter-module', '--policy', bad], out)).toThrow(/p\.json: interModule\.rules\[0\]: must be/);
  });
});

// The exploit corpus (tools/corpus/build-exploits.ts) recorded under qemu: every case must be
// caught by its ground-truth detectors, silent ones must stay silent, and the benign run must
// give no finding. Detectors a case was built to evade are reported by tools/eval-detectors.ts,
// not required. Every stream (thread) of a recording is analysed with its own detectors.
describe('exploit corpus (recorded)', () => {
  beforeAll(async () => {
    await builtExploitCorpus();
  }, 600_000);

  // Each case is recorded and analysed once; the thread case's own test reads the same result.
  const results = new Map<string, Promise<CaseResult>>();
  async function evaluated(name: string): Promise<CaseResult> {
    const { evaluateCorpusCase } = await import('../tools/eval-detectors.js');
    let r = results.get(name);
    if (r === undefined) {
      r = evaluateCorpusCase(join(CORPUS, name), temps.make('ptscope-corpus-'));
      results.set(name, r);
    }
    return r;
  }

  it.each(EXPLOIT_CASE_NAMES)('%s', async (name) => {
    const r = await evaluated(name);
    expect(r.pending).toBeNull();
    expect(r.exploitWorked).toBe(true);
    for (const d of r.expected) expect([...r.fired]).toContain(d);
    for (const d of r.silent) expect([...r.fired]).not.toContain(d);
    expect(r.benignFindings).toBe(0);
    // FlowGuard trained on the benign run misses nothing.
    expect(r.flowguardFindings).toBeGreaterThan(0);
  }, 300_000);

  it('thread_rop: the chain is found in the worker thread with its gadgets, labelled with its pid/tid', async () => {
    const run = JSON.parse(readFileSync(join(CORPUS, 'thread_rop', 'run.json'), 'utf8')) as RunJson;
    const r = await evaluated('thread_rop');
    expect(r.threads).toBe(2);
    expect(r.benignFindings).toBe(0);
    // Every finding is the worker's: one process, a thread that is not the main one.
    const threads = new Set(r.findings.map((f) => `${f.pid}/${f.tid}`));
    expect(threads.size).toBe(1);
    const [f0] = r.findings;
    expect(f0.pid).not.toBeNull();
    expect(f0.tid).not.toBe(f0.pid);
    // The shadow stack names the whole chain, gadget for gadget, as the payload laid it out.
    const mismatch = r.findings.find((f) => f.detector === 'shadow-stack' && f.kind === 'return-mismatch')!;
    expect(mismatch.chain!.map((g) => g.address)).toEqual(run.groundTruth.gadgets.map((g) => g.address));
    expect(r.findings.some((f) => f.detector === 'rop' && f.kind === 'rop-chain')).toBe(true);
  }, 300_000);
});
