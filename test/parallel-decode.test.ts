/**
 * Parallel decode (src/flow/parallel, src/analyses/parallel): a trace cut
 * at PSBs, decoded in pieces and stitched, gives the serial control-flow
 * stream record for record (kind, addresses, counts, CR3, trace offset),
 * the serial counts, and the serial analyze result field for field (all
 * findings, unchecked notes and detector statistics), with a cut at every
 * PSB and with the default plan on a real worker pool; and `analyze
 * --jobs 2` prints what `--jobs 1` prints.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeTrace, defaultDetectors } from '../src/analyses/analyze.js';
import { analyzeParallel, summarizedPieces } from '../src/analyses/parallel/parallel-analyze.js';
import { freshSummarizers } from '../src/analyses/parallel/summarize-piece.js';
import { inThreadDecoder, poolDecoder } from '../src/analyses/parallel/piece-pool.js';
import { insnDecoderFor, openTraceInput, type TraceInput } from '../src/analyses/trace-input.js';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { LineWriter } from '../src/cli/output.js';
import { ControlFlowWalker, type FlowStats } from '../src/flow/control-flow.js';
import { FlowLogPlayer, FlowLogRecorder, STRIDE, COUNTS } from '../src/flow/parallel/flow-log.js';
import { createDetectors } from '../src/analyses/analyze.js';
import { DETECTOR_NAMES } from '../src/analyses/detector.js';
import { untimedResult } from './helpers/untimed-result.js';
import { jobsRefusal, SUMMARY_RULES } from '../src/analyses/summaries/summary.js';
import { groupSegments, guidedSegments, psbOffsets } from '../src/flow/parallel/psb-split.js';
import { streamPsbOffsets } from '../src/sources/model/decoders.js';
import { EXPLOIT_CASES } from '../tools/corpus/exploits.js';
import { REAL_TRACES, realTraces } from './helpers/vectors.js';
import { builtExploitCorpus, EXPLOIT_CORPUS as CORPUS } from './helpers/exploit-corpus.js';

const real = realTraces().map((t) => ({
  name: t.name,
  trace: join(REAL_TRACES, t.name, t.pt),
  options: { raw: t.images.map((i) => `${join(REAL_TRACES, t.name, i.file)}:${i.address}`), cpu: '6/158' },
}));

/** The serial walk's records (without running counts) and counts. */
function serialRecords(input: TraceInput): { log: Float64Array; stats: FlowStats } {
  const dec = insnDecoderFor(input);
  const zero = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  const rec = new FlowLogRecorder(() => dec.offset, 0, () => zero);
  const stats = new ControlFlowWalker(dec, [rec]).run();
  return { log: rec.take(), stats };
}

/** Records without their running counts (the stitched log keeps each piece's own), one after the other. */
function withoutCounts(logs: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(logs.reduce((n, l) => n + (l.length / STRIDE) * COUNTS, 0));
  let o = 0;
  for (const log of logs) for (let i = 0; i < log.length; i += STRIDE) for (let f = 0; f < COUNTS; f++) out[o++] = log[i + f]!;
  return out;
}

/**
 * The first record where two record lists (from withoutCounts) differ, with
 * both records (an empty one past a list's end), or null: a compare in one
 * pass over millions of fields, which reports the record that differs.
 */
function firstDifference(got: Float64Array, want: Float64Array): { record: number; got: number[]; want: number[] } | null {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    const a = got[i];
    const b = want[i];
    if (a !== b && !(a !== a && b !== b)) {
      const r = Math.floor(i / COUNTS) * COUNTS;
      return { record: r / COUNTS, got: [...got.subarray(r, r + COUNTS)], want: [...want.subarray(r, r + COUNTS)] };
    }
  }
  return null;
}

/**
 * The serial stream cut every `every` records, each stretch summarised by
 * fresh detectors (summarize-piece.ts) and the summaries folded, in
 * order, into one set of detectors (a stretch whose summary is refused is
 * replayed, as analyze --jobs does): what the detectors report, and how
 * many summaries were applied and refused.
 */
function foldSummaries(input: TraceInput, names: string[], every: number): { result: unknown; applied: number; refused: number } {
  const { log } = serialRecords(input);
  let player: FlowLogPlayer | null = null;
  let at = 0;
  const truth = createDetectors(input, { detectors: names }, () => (player === null ? at : player.at));
  let applied = 0;
  let refused = 0;
  for (let i = 0; i < log.length; i += every * STRIDE) {
    const stretch = log.subarray(i, Math.min(log.length, i + every * STRIDE));
    let local: FlowLogPlayer | null = null;
    // Fresh detectors as a worker makes them for a piece's body (sharing the input's code facts).
    const summarizers = freshSummarizers(input, { detectors: names, params: {}, policyFile: null, monitor: [] }, () => local!.at);
    local = new FlowLogPlayer(summarizers.map((s) => s.consumer));
    local.play(stretch);
    summarizers.forEach((s, k) => {
      const summary = s.finish();
      const d = truth[k]!;
      if (summary !== null && SUMMARY_RULES[d.name]!.apply(d, summary, (o) => (at = o))) {
        applied++;
        return;
      }
      refused++;
      player = new FlowLogPlayer([d]);
      player.play(stretch);
      player = null;
    });
  }
  new FlowLogPlayer(truth).end();
  const findings = truth.flatMap((d) => d.findings()).sort((a, b) => a.offset - b.offset);
  const result = { findings, unchecked: truth.flatMap((d) => d.unchecked()), detectors: truth.map((d) => ({ name: d.name, parameters: d.parameters, stats: d.stats?.() ?? {} })) };
  return { result, applied, refused };
}

/** Analyze serially, in pieces cut at every PSB (in this thread), and with summaries folded over stretches of `every` records: the same result. */
async function expectSameAsSerial(open: () => TraceInput, every = 5): Promise<{ applied: number; refused: number }> {
  const serial = analyzeTrace(open(), { detectors: defaultDetectors() });
  const input = open();
  const par = await analyzeParallel(input, { detectors: defaultDetectors() }, inThreadDecoder(input), { everyPsb: true });
  expect(untimedResult(par)).toEqual(untimedResult(serial));
  const folded = foldSummaries(open(), defaultDetectors(), every);
  // (analyze's own note on decode errors is not a detector's.)
  expect(folded.result).toEqual({ findings: serial.findings, unchecked: serial.unchecked.filter((n) => n.detector !== 'analyze'), detectors: serial.detectors });
  await expectFlowGuardSameAsSerial(open);
  return { applied: folded.applied, refused: folded.refused };
}

/**
 * FlowGuard, which reads packets in its own pass, runs whole beside the
 * pieces (standalone-detectors.ts): with a detector that is summarised, and
 * alone (no walk at all, as serially), the serial result.
 */
async function expectFlowGuardSameAsSerial(open: () => TraceInput): Promise<void> {
  for (const detectors of [['shadow-stack', 'flowguard', 'rop'], ['flowguard']]) {
    const serial = analyzeTrace(open(), { detectors });
    const input = open();
    const par = await analyzeParallel(input, { detectors }, inThreadDecoder(input), { everyPsb: true });
    expect(untimedResult(par)).toEqual(untimedResult(serial));
    expect(par.detectors.map((d) => d.name)).toEqual(detectors);
    expect(par.walked).toBe(detectors.length > 1);
    // Its checks ran: the stats are FlowGuard's own, not an empty stand-in.
    expect(par.detectors.find((d) => d.name === 'flowguard')!.stats.checks).toBeGreaterThan(0);
  }
}

/** Output lines without the timing of the summary line. */
function untimed(out: LineWriter): string[] {
  out.flush();
  return out.text
    .split('\n')
    .map((l) =>
      l
        .replace(/ in [0-9.]+ s \([0-9]+ instructions\/s\)/, '')
        .replace(/"seconds":[0-9.e-]+,"instructionsPerSecond":[0-9.e-]+/, '')
        // FlowGuard's stats time its two paths.
        .replace(/(\w+(Seconds|PerSecond))(=|":)[0-9.e-]+/g, '$1'),
    );
}

describe('PSB groups', () => {
  it('tile the trace, cut only at PSBs, each up to the budget unless one segment is larger', () => {
    const psbs = [0, 100, 150, 400, 1000];
    const g = groupSegments(psbs, 1200, 200);
    expect(g.map((r) => [r.from, r.to])).toEqual([[0, 400], [400, 1000], [1000, 1200]]);
    expect(groupSegments(psbs, 1200, 1).map((r) => r.from)).toEqual([0, 100, 150, 400, 1000]);
    expect(() => groupSegments(psbs, 1200, 0)).toThrow(/budget/);
  });

  it('shrink toward the end when guided: each group about 1/(2 x workers) of what is left, within the bounds', () => {
    // A PSB every 1000 bytes of 64000; 2 workers, groups of 2000 to 10000 bytes.
    const psbs = Array.from({ length: 64 }, (_, i) => i * 1000);
    const g = guidedSegments(psbs, 64000, 2, 2000, 10000);
    expect(g.map((r) => r.to - r.from)).toEqual([10000, 10000, 10000, 9000, 7000, 5000, 4000, 3000, 2000, 2000, 2000]);
    expect(g[0]!.from).toBe(0);
    g.forEach((r, i) => expect(r.index).toBe(i));
  });

  it('are found through a window as in the whole trace', () => {
    for (const t of real) {
      const input = openTraceInput(t.trace, t.options);
      expect(streamPsbOffsets(input.stream)).toEqual(psbOffsets(input.trace));
    }
  });
});

describe('real-CPU traces cut at every PSB', () => {
  it.each(real.map((r) => r.name))('%s: the stitched stream is the serial one, record for record', async (name) => {
    const t = real.find((r) => r.name === name)!;
    const input = openTraceInput(t.trace, t.options);
    expect(psbOffsets(input.trace).length).toBeGreaterThan(10);
    const serial = serialRecords(input);
    // Every record kept (no detectors in the workers): the stitched spans, then the end's flush.
    const { pieces, stitch } = await summarizedPieces(input, inThreadDecoder(input), null, { everyPsb: true });
    expect(stitch.stats).toEqual(serial.stats);
    const logs = pieces.map((p, k) => p.piece.log.subarray(stitch.spans[k]!.start, stitch.spans[k]!.end));
    if (stitch.flush !== null) logs.push(stitch.flush);
    const stitched = withoutCounts(logs);
    const expected = withoutCounts([serial.log]);
    expect(firstDifference(stitched, expected)).toBeNull();
    expect(stitched.length).toBe(expected.length);
    // (The compare sees a change of one field.)
    const changed = expected.slice();
    changed[COUNTS + 2]! += 1;
    expect(firstDifference(changed, expected)?.record).toBe(1);
  }, 300_000);

  it.each(real.map((r) => r.name))('%s: analyze in pieces equals analyze, and so do summaries folded over short stretches', async (name) => {
    const t = real.find((r) => r.name === name)!;
    const folded = await expectSameAsSerial(() => openTraceInput(t.trace, t.options), name === 'mruby' ? 997 : 7);
    // The summaries themselves were used, not replaced by replays.
    expect(folded.applied).toBeGreaterThan(folded.refused);
  }, 300_000);
});

describe('demo bundles', () => {
  it.each(['rop_stack.exploit', 'rop_stack.benign'])('%s: analyze in pieces and folded summaries equal analyze', async (name) => {
    const folded = await expectSameAsSerial(() => openTraceInput(join(process.cwd(), 'demo', name)), 3);
    expect(folded.applied + folded.refused).toBeGreaterThan(10);
  }, 300_000);
});

describe('detectors without a segment summary', () => {
  it('are refused for --jobs with one line, never approximated; a standalone one (FlowGuard) needs none', async () => {
    expect(jobsRefusal(defaultDetectors())).toBeNull();
    expect(jobsRefusal(DETECTOR_NAMES)).toBeNull();
    expect(jobsRefusal(['shadow-stack', 'no-such-rule'])).toMatch(/^--jobs: these detectors cannot run in parallel exactly: no-such-rule \(unknown detector\); .*\(parallel: shadow-stack, .*flowguard/);
    const t = real.find((r) => r.name === 'unzip')!;
    const input = openTraceInput(t.trace, t.options);
    await expect(analyzeParallel(input, { detectors: ['no-such-rule'] }, inThreadDecoder(input))).rejects.toThrow(/^--jobs: these detectors cannot run in parallel exactly: no-such-rule/);
  });
});

describe('on a worker pool', () => {
  it('mruby on 2 workers: the serial result (FlowGuard too, run on a worker beside the pieces)', async () => {
    const t = real.find((r) => r.name === 'mruby')!;
    for (const options of [{}, { detectors: ['flowguard', ...defaultDetectors()] }]) {
      const serial = analyzeTrace(openTraceInput(t.trace, t.options), options);
      const input = openTraceInput(t.trace, t.options);
      const decoder = poolDecoder(input, { path: t.trace, options: t.options }, 2);
      try {
        const par = await analyzeParallel(input, options, decoder, { budget: 64 << 10 });
        expect(par.pieces).toBeGreaterThan(2);
        expect(untimedResult(par)).toEqual(untimedResult(serial));
      } finally {
        await decoder.close();
      }
    }
  }, 300_000);

  it('analyze --jobs 2 prints what --jobs 1 prints (text and JSON findings)', async () => {
    const t = real.find((r) => r.name === 'unzip')!;
    const args = [t.trace, '--cpu', '6/158', ...t.options.raw.flatMap((r) => ['--raw', r])];
    for (const extra of [[], ['--json', '--detect', 'shadow-stack,rop'], ['--detect', 'flowguard,cfi'], ['--json', '--detect', 'flowguard']]) {
      const one = new LineWriter(null);
      const two = new LineWriter(null);
      const a = runAnalyzeCommand([...args, ...extra, '--jobs', '1'], one);
      const b = await runAnalyzeCommand([...args, ...extra, '--jobs', '2'], two);
      expect(b).toBe(a);
      expect(untimed(two)).toEqual(untimed(one));
      expect(untimed(one).length).toBeGreaterThan(2);
    }
    expect(() => runAnalyzeCommand([...args, '--jobs', '0'], new LineWriter(null))).toThrow(/--jobs: expected a whole number from 1 to 256/);
  }, 300_000);
});

// The exploit corpus recorded under qemu (the recordings test/analyses-analyze.test.ts analyses, from
// the same cache: tools/eval-detectors.ts recordCorpusCase): findings in pieces equal serial ones.
describe('exploit corpus cut at every PSB', () => {
  beforeAll(async () => {
    await builtExploitCorpus();
  }, 600_000);

  it.each(EXPLOIT_CASES.map((c) => c.name))('%s', async (name) => {
    const { recordCorpusCase } = await import('../tools/eval-detectors.js');
    const r = await recordCorpusCase(join(CORPUS, name));
    if (r.pending !== null) {
      expect(name).toBe('thread_rop');
      return;
    }
    for (const bundle of [r.exploit, r.benign]) {
      await expectSameAsSerial(() => openTraceInput(bundle));
    }
  }, 300_000);
});

// A nonlocal goto (__builtin_longjmp) pops to a frame that may lie in an earlier piece: such a jump goes to the serial state.
describe('nonlocal gotos cut at every PSB', () => {
  it('builtin_longjmp (gcc -O2): the serial result, with every summary fold', async () => {
    const { record } = await import('../src/sources/recorder/record.js');
    const { withRecordDefaults } = await import('../src/sources/recorder/record-options.js');
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-nonlocal-'));
    const exe = join(dir, 'builtin_longjmp');
    execFileSync('gcc', ['-O2', '-o', exe, join(process.cwd(), 'corpus/benign/builtin_longjmp.c')]);
    const bundle = join(dir, 'builtin_longjmp.ptscope');
    // PSBs every 256 bytes: many pieces.
    const rec = await record(withRecordDefaults({ argv: [exe], output: bundle, force: true, hardware: false, stdio: 'pipe', psbPeriod: 256, notice: () => {} }));
    expect(rec.stdout).toMatch(/^builtin_longjmp: 1970 70$/m);
    const serial = analyzeTrace(openTraceInput(bundle), { detectors: defaultDetectors() });
    expect(serial.findings).toEqual([]);
    expect(serial.detectors.find((d) => d.name === 'shadow-stack')!.stats['switch.nonlocal-goto']).toBe(70);
    for (const every of [1, 2, 3, 7]) {
      const folded = foldSummaries(openTraceInput(bundle), defaultDetectors(), every);
      expect(folded.result).toEqual({ findings: serial.findings, unchecked: serial.unchecked.filter((n) => n.detector !== 'analyze'), detectors: serial.detectors });
    }
    await expectSameAsSerial(() => openTraceInput(bundle));
  }, 300_000);
});
