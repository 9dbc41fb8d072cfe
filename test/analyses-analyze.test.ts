import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeTrace, benchAnalyze } from '../src/analyses/analyze.js';
import { rawInput } from './helpers/inputs.js';
import { LineWriter } from '../src/cli/output.js';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { REAL_TRACES } from './helpers/vectors.js';

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

  it('reports a malformed policy in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-an-'));
    const bad = join(dir, 'p.json');
    writeFileSync(bad, '{"format":"ptscope-policy","version":1,"interModule":{"rules":[1]}}');
    const out = new LineWriter(null);
    expect(() => runAnalyzeCommand([...args, '--detect', 'inter-module', '--policy', bad], out)).toThrow(/p\.json: interModule\.rules\[0\] must be/);
  });
});

// The exploit corpus (tools/corpus/build-exploits.ts) recorded under qemu: each exploit must
// be caught by its ground-truth detectors, silent ones must stay silent, and the benign run
// must give no finding.
const CORPUS = join(process.cwd(), 'build', 'corpus', 'exploits');
describe('exploit corpus (recorded)', () => {
  beforeAll(async () => {
    const { buildExploitCorpus } = await import('../tools/corpus/build-exploits.js');
    buildExploitCorpus({ outDir: CORPUS });
  }, 600_000);

  it.each(['rop_stack', 'jop', 'srop', 'cop_vtable'])('%s', async (name) => {
    const { evaluateCorpusCase } = await import('../tools/eval-detectors.js');
    const r = await evaluateCorpusCase(join(CORPUS, name), mkdtempSync(join(tmpdir(), 'ptscope-corpus-')));
    expect(r.exploitWorked).toBe(true);
    for (const d of r.expected) expect([...r.fired]).toContain(d);
    for (const d of r.silent) expect([...r.fired]).not.toContain(d);
    expect(r.benignFindings).toBe(0);
  }, 120000);
});
