/**
 * The learned exploit-window detector: feature extraction on synthetic
 * transfer streams, the shipped model (loads, scores), `classify` on a
 * recorded benign and exploit run of the corpus, bad model files, and the
 * no-window case.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openTraceInput, traceInput, type TraceInput } from '../src/analyses/trace-input.js';
import { BufferSource } from '../src/packets/trace-source.js';
import { classifyBundle, classifyGroup, classifyInput, defaultModelPath } from '../src/analyses/learned/classify.js';
import { extractWindows, SEQ_CHANNELS, SUMMARY_FEATURES, SUMMARY_NAMES, targetEntropy, WINDOW, WindowExtractor } from '../src/analyses/learned/features.js';
import { loadNetwork, ModelFileError, predict, readModelFile, stackWindows } from '../src/analyses/learned/model.js';
import { trainModel, type DatasetWindow } from '../src/analyses/learned/train.js';
import { metrics, programFolds, rocAuc } from '../tools/learned/evaluate.js';
import { runClassifyCommand } from '../src/cli/classify.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { GapKind, TransferKind } from '../src/flow/control-flow.js';
import { builtExploitCorpus, EXPLOIT_CORPUS as CORPUS } from './helpers/exploit-corpus.js';
import { REAL_TRACES } from './helpers/vectors.js';

const S = (name: string): number => SUMMARY_NAMES.indexOf(name);
const at = (w: { seq: Float32Array }, pos: number, ch: number): number => w.seq[pos * SEQ_CHANNELS + ch];
const CH_LENGTH = 11;
const CH_NOVEL = 12;
const CH_SHORT = 13;
const CH_PRESENT = 14;

describe('window features (synthetic transfer streams)', () => {
  it('emits one window per system call with kinds, gadget lengths and return novelty', () => {
    const x = new WindowExtractor();
    // A call from 0x1000 (5 bytes) and its matching return: not novel.
    x.onTransfer(TransferKind.DirectCall, 0x1000, 0x2000, 5, 10);
    x.onTransfer(TransferKind.Return, 0x2010, 0x1005, 1, 7);
    // Three returns to addresses no call preceded, 1-2 instructions each: a ROP chain.
    x.onTransfer(TransferKind.Return, 0x3000, 0x4000, 1, 2);
    x.onTransfer(TransferKind.Return, 0x4001, 0x5000, 1, 1);
    x.onTransfer(TransferKind.Return, 0x5002, 0x6000, 1, 2);
    expect(x.windows).toHaveLength(0);
    x.onTransfer(TransferKind.FarCall, 0x6002, NaN, 2, 2);
    x.onGap(GapKind.Disabled); // the kernel entry after the syscall: no second window
    expect(x.windows).toHaveLength(1);
    const w = x.windows[0];
    expect(w.trigger).toBe('syscall');
    expect(w.length).toBe(6);
    expect(w.transferIndex).toBe(5);
    expect(w.seq).toHaveLength(WINDOW * SEQ_CHANNELS);
    expect(w.summary).toHaveLength(SUMMARY_FEATURES);
    // Positions are right-aligned: the syscall is the last position, padding in front is zero.
    const last = WINDOW - 1;
    expect(at(w, last, TransferKind.FarCall)).toBe(1);
    expect(at(w, last - 5, TransferKind.DirectCall)).toBe(1);
    expect(at(w, last - 4, TransferKind.Return)).toBe(1);
    expect(at(w, last - 4, CH_NOVEL)).toBe(0);
    for (const p of [last - 3, last - 2, last - 1]) {
      expect(at(w, p, TransferKind.Return)).toBe(1);
      expect(at(w, p, CH_NOVEL)).toBe(1);
      expect(at(w, p, CH_SHORT)).toBe(1);
    }
    expect(at(w, last - 5, CH_LENGTH)).toBeCloseTo(Math.log2(11) / 6, 5);
    for (let p = 0; p < WINDOW - 6; p++) expect(at(w, p, CH_PRESENT)).toBe(0);
    expect(at(w, last - 6 + 1, CH_PRESENT)).toBe(1);
    expect(w.summary[S('fill')]).toBeCloseTo(6 / WINDOW);
    expect(w.summary[S('ret-fraction')]).toBeCloseTo(4 / 6);
    expect(w.summary[S('novel-of-returns')]).toBeCloseTo(3 / 4);
    expect(w.summary[S('len<=2-fraction')]).toBeCloseTo(4 / 6);
    expect(w.summary[S('short-indirect-run')]).toBeCloseTo(3 / WINDOW);
    // Four returns to four different targets: 2 bits.
    expect(w.summary[S('indirect-target-entropy')]).toBeCloseTo(2 / Math.log2(WINDOW));
    expect(w.summary[S('function-trigger')]).toBe(0);
    expect(Array.from(w.targets.slice(1, 5))).toEqual([0x1005, 0x4000, 0x5000, 0x6000]);
  });

  it('triggers on sensitive function entries and on a tracing-disabled gap without a syscall', () => {
    const x = new WindowExtractor({ sensitive: new Map([[0x7000, 'system']]) });
    x.onTransfer(TransferKind.Return, 0x100, 0x7000, 1, 3); // ret2libc style: ret into system
    expect(x.windows).toHaveLength(1);
    expect(x.windows[0].trigger).toBe('function');
    expect(x.windows[0].functionName).toBe('system');
    expect(x.windows[0].summary[S('function-trigger')]).toBe(1);
    x.onTransfer(TransferKind.CondNotTaken, 0x7010, 0x7012, 2, 4);
    x.onGap(GapKind.Disabled);
    expect(x.windows).toHaveLength(2);
    expect(x.windows[1].trigger).toBe('gap');
    expect(x.windows[1].length).toBe(2);
    // Overflow gaps are not kernel entries.
    x.onGap(GapKind.Overflow);
    expect(x.windows).toHaveLength(2);
  });

  it('keeps only the last WINDOW transfers and counts rule hits inside the window', () => {
    let findings = 0;
    const x = new WindowExtractor({ ruleCount: () => findings });
    for (let i = 0; i < WINDOW + 10; i++) {
      if (i === 3 || i === WINDOW + 5) findings++; // a finding reported at transfer 3 (falls out) and WINDOW+5 (stays)
      x.onTransfer(TransferKind.DirectJump, 0x1000 + i, 0x2000 + i, 2, 4);
    }
    x.onTransfer(TransferKind.FarCall, 0x9000, NaN, 2, 1);
    const w = x.windows[0];
    expect(w.length).toBe(WINDOW);
    expect(w.ruleHits).toBe(1);
    expect(w.targets[WINDOW - 2]).toBe(0x2000 + WINDOW + 9);
  });

  it('gives no window when the stream has no sensitive call', () => {
    const x = new WindowExtractor({ sensitive: new Map([[0x7000, 'system']]) });
    for (let i = 0; i < 100; i++) x.onTransfer(i % 2 ? TransferKind.DirectCall : TransferKind.Return, 0x1000 + i, 0x2000 + i, 5, 3);
    x.onTransfer(TransferKind.CondNotTaken, 0x6ffe, 0x7000, 2, 1); // falling through to the address is not a call
    expect(x.windows).toHaveLength(0);
  });

  it('computes Shannon entropy of targets', () => {
    expect(targetEntropy(new Float64Array([5, 5, 5, 5]), 4)).toEqual({ entropy: 0, distinct: 1 });
    expect(targetEntropy(new Float64Array([1, 2, 3, 4, 9]), 4)).toEqual({ entropy: 2, distinct: 4 });
    expect(targetEntropy(new Float64Array(0), 0)).toEqual({ entropy: 0, distinct: 0 });
  });
});

describe('model file', () => {
  it('the shipped model loads, is small and scores windows in [0, 1]', async () => {
    const path = defaultModelPath();
    const file = readModelFile(path);
    const { statSync } = await import('node:fs');
    expect(statSync(path).size).toBeLessThan(500_000);
    const net = await loadNetwork(file, path);
    const x = new WindowExtractor();
    // A benign-looking window (calls and matching returns) and a ROP-looking one.
    for (let i = 0; i < 16; i++) {
      x.onTransfer(TransferKind.DirectCall, 0x1000 + i * 16, 0x8000, 5, 12);
      x.onTransfer(TransferKind.Return, 0x8040, 0x1005 + i * 16, 1, 20);
    }
    x.onTransfer(TransferKind.FarCall, 0x8100, NaN, 2, 6);
    for (let i = 0; i < 20; i++) x.onTransfer(TransferKind.Return, 0x4000 + i * 64, 0x4000 + (i + 1) * 64, 1, 2);
    x.onTransfer(TransferKind.FarCall, 0x9000, NaN, 2, 1);
    const scores = await predict(net, stackWindows(x.windows));
    expect(scores).toHaveLength(2);
    for (const s of scores) expect(s >= 0 && s <= 1).toBe(true);
    const again = await predict(net, stackWindows(x.windows));
    expect(Array.from(again)).toEqual(Array.from(scores));
    net.dispose();
  });

  it('rejects missing, malformed and incompatible model files with one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-model-'));
    expect(() => readModelFile(join(dir, 'none.json'))).toThrow(ModelFileError);
    expect(() => readModelFile(join(dir, 'none.json'))).toThrow(/cannot read it \(ENOENT\)/);
    writeFileSync(join(dir, 'junk.json'), 'not json');
    expect(() => readModelFile(join(dir, 'junk.json'))).toThrow(/not JSON/);
    writeFileSync(join(dir, 'other.json'), '{"format":"something-else"}');
    expect(() => readModelFile(join(dir, 'other.json'))).toThrow(/not a ptscope-window-model file/);
    const good = readModelFile(defaultModelPath());
    writeFileSync(join(dir, 'old.json'), JSON.stringify({ ...good, featureVersion: good.featureVersion + 1 }));
    expect(() => readModelFile(join(dir, 'old.json'))).toThrow(/trained on features v\d+ .* retrain it/);
    writeFileSync(join(dir, 'null.json'), 'null');
    expect(() => readModelFile(join(dir, 'null.json'))).toThrow(/not a ptscope-window-model file/);
    writeFileSync(join(dir, 'v2.json'), JSON.stringify({ ...good, version: 2 }));
    expect(() => readModelFile(join(dir, 'v2.json'))).toThrow(/version: model version 2, this ptscope reads version 1/);
    writeFileSync(join(dir, 'thr.json'), JSON.stringify({ ...good, threshold: 'high' }));
    expect(() => readModelFile(join(dir, 'thr.json'))).toThrow(/threshold: must be a number from 0 to 1/);
    writeFileSync(join(dir, 'w.json'), JSON.stringify({ ...good, weights: [{ shape: [2], values: [1, 'x'] }] }));
    expect(() => readModelFile(join(dir, 'w.json'))).toThrow(/weights\[0\]\.values\[1\]: must be a number/);
    const cut = { ...good, weights: good.weights.map((w, i) => (i === 0 ? { shape: [1, 2], values: [0, 0] } : w)) };
    writeFileSync(join(dir, 'shape.json'), JSON.stringify(cut));
    await expect(loadNetwork(readModelFile(join(dir, 'shape.json')), 'shape.json')).rejects.toThrow(/weight 0 has shape \[1,2\]/);
    for (const bad of ['none.json', 'junk.json']) {
      try {
        await runClassifyCommand([dir, '--model', join(dir, bad)], new LineWriter(null));
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(CliError);
        expect((e as Error).message).not.toContain('\n');
      }
    }
  });
});

describe('evaluation (tools/learned/evaluate.ts)', () => {
  it('rocAuc is the rank-sum statistic, with ties counted as one half', () => {
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.75, 12);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])).toBe(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).toBe(0);
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])).toBe(0.5);
    // One positive tied with one of two negatives: (1 + 0.5) / 2.
    expect(rocAuc([0.3, 0.7, 0.7], [0, 0, 1])).toBeCloseTo(0.75, 12);
    expect(Number.isNaN(rocAuc([0.1, 0.2], [0, 0]))).toBe(true);
    expect(Number.isNaN(rocAuc([0.1, 0.2], [1, 1]))).toBe(true);
  });

  it('metrics count TP, FP, FN, TN at the threshold', () => {
    const m = metrics([0.9, 0.6, 0.4, 0.2, 0.7], [1, 0, 1, 0, 1], 0.5);
    expect([m.tp, m.fp, m.fn, m.tn]).toEqual([2, 1, 1, 1]);
    expect(m.precision).toBeCloseTo(2 / 3, 12);
    expect(m.recall).toBeCloseTo(2 / 3, 12);
    expect(m.fpr).toBe(0.5);
  });

  it('folds hold out one exploit target each and spread benign-only programs round-robin, each group in one fold', () => {
    const w = (group: string, kind: 'benign' | 'exploit'): DatasetWindow => ({ run: `${group}-1`, group, kind, label: 0, trigger: 'syscall', rule: 0, seq: [], summary: [] });
    const windows = [w('ls', 'benign'), w('rop_stack', 'exploit'), w('rop_stack', 'benign'), w('jop', 'exploit'), w('gzip', 'benign'), w('sort', 'benign'), w('jop', 'benign'), w('xz', 'benign')];
    const folds = programFolds(windows);
    expect(folds).toEqual([
      ['jop', 'gzip', 'sort'],
      ['rop_stack', 'ls', 'xz'],
    ]);
    const all = folds.flat();
    expect(new Set(all).size).toBe(all.length);
    expect(new Set(all)).toEqual(new Set(windows.map((x) => x.group)));
    // The same windows in another order give the same folds.
    expect(programFolds([...windows].reverse())).toEqual(folds);
  });

  it('training is deterministic: the same windows and seed give the same weights', async () => {
    let s = 7;
    const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const rows: DatasetWindow[] = Array.from({ length: 96 }, (_, i) => {
      const label = (i % 6 === 0 ? 1 : 0) as 0 | 1;
      return {
        run: `r${i % 4}`, group: `g${i % 4}`, kind: label ? 'exploit' : 'benign', label, trigger: 'syscall', rule: 0,
        seq: Array.from({ length: WINDOW * SEQ_CHANNELS }, () => (label ? next() : next() * 0.3)),
        summary: Array.from({ length: SUMMARY_FEATURES }, () => next()),
      };
    });
    const a = await trainModel(rows, { epochs: 3, seed: 5 });
    const b = await trainModel(rows, { epochs: 3, seed: 5 });
    expect(b.weights).toEqual(a.weights);
    const c = await trainModel(rows, { epochs: 3, seed: 6 });
    expect(c.weights).not.toEqual(a.weights);
  }, 60_000);
});

// Recorded runs of the corpus program rop_stack: its benign input and its exploit.
describe('classify recorded bundles', () => {
  let work: string;
  let benign: string;
  let exploit: string;
  beforeAll(async () => {
    await builtExploitCorpus();
    const { recordWithStdin } = await import('../tools/eval-detectors.js');
    work = mkdtempSync(join(tmpdir(), 'ptscope-learned-'));
    const prog = join(CORPUS, 'rop_stack', 'prog');
    benign = join(work, 'benign');
    exploit = join(work, 'exploit');
    expect(await recordWithStdin([prog], benign, join(CORPUS, 'rop_stack', 'benign.bin'))).toContain('bye');
    expect(await recordWithStdin([prog], exploit, join(CORPUS, 'rop_stack', 'payload.bin'))).toContain('PWNED');
  }, 600_000);

  it('scores the exploit run above the benign run, and flags the chain', async () => {
    const b = await classifyBundle(benign);
    const x = await classifyBundle(exploit);
    expect(b.windows.length).toBeGreaterThan(0);
    expect(x.windows.length).toBeGreaterThan(0);
    expect(x.maxScore!).toBeGreaterThan(b.maxScore!);
    expect(x.flagged).toBeGreaterThan(0);
    // The top window of the exploit is one of its last system calls (write or exit via the chain).
    expect(x.top[0].index).toBeGreaterThanOrEqual(x.windows.length - 2);
    expect(x.top[0].trigger).toBe('syscall');
    expect(b.flagged).toBe(0);
    const out = new LineWriter(null);
    expect(await runClassifyCommand([exploit, '--fail-on-flag'], out)).toBe(1);
    out.flush();
    expect(out.text).toMatch(/FLAG/);
    expect(out.text).toMatch(/top windows:/);
    const json = new LineWriter(null);
    expect(await runClassifyCommand([benign, '--json'], json)).toBe(0);
    json.flush();
    const parsed = JSON.parse(json.text);
    expect(parsed.windows).toHaveLength(b.windows.length);
    expect(parsed.maxScore).toBeCloseTo(b.maxScore!, 6);
  }, 120_000);

  it('scores in batches as the windows are made: each window as scored alone from the kept features; the top windows and counts without keeping every score', async () => {
    // The mruby trace: 14,289 windows (kernel entries), several scoring batches.
    const mruby = join(REAL_TRACES, 'mruby');
    const input = openTraceInput(join(mruby, 'trace.pt'), { raw: [`${join(mruby, 'seg_400000.bin')}:0x400000`], cpu: '6/158' });
    const all = await classifyInput(input, { top: 12 });
    expect(all.count).toBe(14289);
    expect(all.windows).toHaveLength(14289);
    // The same windows kept whole and scored at once, as before batches.
    const { windows } = extractWindows(input);
    const net = await loadNetwork(readModelFile(defaultModelPath()), defaultModelPath());
    const sample = [0, 1, 2047, 2048, 2049, 9000, 14288];
    const alone = await predict(net, stackWindows(sample.map((i) => windows[i]!)));
    net.dispose();
    sample.forEach((i, k) => expect(all.windows[i]!.score).toBe(alone[k]));
    expect(all.windows.map((w) => w.offset)).toEqual(windows.map((w) => w.offset));
    // Top only: the same top windows (ties by position), counts and maximum, and no list.
    const top = await classifyInput(input, { top: 12, every: false });
    expect(top.windows).toEqual([]);
    expect(top.count).toBe(all.count);
    expect(top.top).toEqual(all.top);
    expect(top.flagged).toBe(all.flagged);
    expect(top.maxScore).toBe(all.maxScore);
    // The benign bundle too (a few windows, one batch).
    const b = await classifyBundle(benign);
    const bt = await classifyGroup([openTraceInput(benign)], { every: false, top: 3 });
    expect(bt.top).toEqual(b.top.slice(0, 3));
    expect(bt.count).toBe(b.windows.length);
  }, 300_000);

  it('says "no windows" (and no score) for a trace without a sensitive call', async () => {
    const base = openTraceInput(benign);
    const input: TraceInput = traceInput(base.recording, { ...base.stream, size: 0, open: () => new BufferSource(new Uint8Array(0)) });
    const r = await classifyInput(input);
    expect(r.windows).toEqual([]);
    expect(r.maxScore).toBeNull();
    expect(r.flagged).toBe(0);
  });
});
