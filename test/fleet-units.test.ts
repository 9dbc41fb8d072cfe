/**
 * The fleet's pieces that need no Redis: the store's path confinement, the
 * Redis URL rules, the job schemas (no field may turn the sandbox off), and
 * the segment decoder's plan, and its merge (analyze --jobs's) against a
 * serial analyze of recordings cut at every PSB.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { traceInputs, walkerFor } from '../src/analyses/trace-input.js';
import { JOB_SCHEMAS, jobDataError } from '../src/fleet/job-types.js';
import { parseRedisUrl, redactRedisUrl } from '../src/fleet/redis-url.js';
import { coverageSize, decodeSegment, mergeSegments, planSegments, type SegmentSummary } from '../src/fleet/segment-decoder.js';
import { streamPsbOffsets as psbOffsets } from '../src/sources/model/decoders.js';
import { ExecutedBlocks } from '../src/reports/drcov.js';
import { overlapLimit } from '../src/flow/parallel/piece-walk.js';
import { analyzeTrace } from '../src/analyses/analyze.js';
import { Store } from '../src/fleet/store.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { REPO_ROOT } from './helpers/oracle.js';
import { untimedResult } from './helpers/untimed-result.js';
import { builtExploitCorpus } from './helpers/exploit-corpus.js';
import { REAL_TRACES as REAL, realTraces } from './helpers/vectors.js';

let work: string;
let root: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-fleet-units-'));
  root = join(work, 'store');
  mkdirSync(join(root, 'bundles'), { recursive: true });
  writeFileSync(join(root, 'bundles', 'a.txt'), 'a');
  writeFileSync(join(work, 'secret'), 'outside');
  symlinkSync(join(work, 'secret'), join(root, 'link-out'));
  symlinkSync(join(root, 'bundles'), join(root, 'link-in'));
  symlinkSync(work, join(root, 'dir-out'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('store confinement', () => {
  it('accepts files inside the root, as normalised relative paths', () => {
    const s = new Store(root);
    expect(s.input('bundles/a.txt', 'input')).toBe('bundles/a.txt');
    expect(s.input('./bundles//a.txt', 'input')).toBe('bundles/a.txt');
    expect(s.input('link-in/a.txt', 'input')).toBe('link-in/a.txt');
  });

  it.each([
    ['/etc/passwd', /absolute path; jobs name files relative to the store/],
    ['../secret', /contains '\.\.'/],
    ['bundles/../../secret', /contains '\.\.'/],
    ['link-out', /resolves outside the store directory/],
    ['dir-out/secret', /resolves outside the store directory/],
    ['missing', /'missing': no such file/],
    ['.', /names the store root itself/],
    ['a\0b', /NUL byte/],
    ['', /expected a path inside the store/],
  ])('refuses %j as an input', (path, message) => {
    expect(() => new Store(root).input(path, 'input')).toThrow(message);
  });

  it('creates outputs only inside the root, never through a symlink', () => {
    const s = new Store(root);
    expect(s.output('reports/2026/x.html', 'output')).toBe('reports/2026/x.html');
    expect(readdirSync(join(root, 'reports'))).toEqual(['2026']);
    expect(() => s.output('link-out', 'output')).toThrow(/is a symbolic link/);
    expect(() => s.output('dir-out/new.html', 'output')).toThrow(/resolves outside the store directory/);
    expect(() => s.output('../escape.html', 'output')).toThrow(/contains '\.\.'/);
    expect(() => s.output('/tmp/escape.html', 'output')).toThrow(/absolute path/);
  });

  it('writes a job file whole, replacing the target rather than writing through it', () => {
    const s = new Store(root);
    s.writeFile('reports/r.html', 'first', 'output');
    s.writeFile('reports/r.html', 'second', 'output');
    expect(readFileSync(join(root, 'reports', 'r.html'), 'utf8')).toBe('second');
    expect(readdirSync(join(root, 'reports')).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(() => s.writeFile('link-out', 'x', 'output')).toThrow(/symbolic link/);
    expect(readFileSync(join(work, 'secret'), 'utf8')).toBe('outside');
  });

  it('maps paths of this machine to store paths, and refuses the rest', () => {
    const s = new Store(root);
    expect(s.relativeOf(join(root, 'bundles', 'a.txt'), 'input')).toBe('bundles/a.txt');
    expect(s.relativeOf(join(root, 'new', 'deeper', 'b.ptscope'), '--output')).toBe('new/deeper/b.ptscope');
    expect(() => s.relativeOf(join(work, 'secret'), 'input')).toThrow(/is not inside the store/);
    expect(() => s.relativeOf(join(root, 'link-out'), 'input')).toThrow(/is not inside the store/);
  });
});

describe('Redis URL', () => {
  it('parses host, port, database, user and password', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380/2')).toMatchObject({ host: '127.0.0.1', port: 6380, db: 2, password: undefined, tls: false });
    expect(parseRedisUrl('rediss://bob:s%40cret@queue.lan')).toMatchObject({ host: 'queue.lan', port: 6379, username: 'bob', password: 's@cret', tls: true });
    expect(parseRedisUrl('redis://localhost')).toMatchObject({ host: 'localhost', port: 6379, db: 0 });
  });

  it('requires a password for a Redis on another host, without echoing secrets', () => {
    expect(() => parseRedisUrl('redis://queue.lan:6379')).toThrow(/must require a password/);
    expect(() => parseRedisUrl('redis://10.0.0.5')).toThrow(/must require a password/);
    expect(() => parseRedisUrl('http://:hunter2@queue.lan')).toThrow(/http:\/\/:\*\*\*@queue\.lan\/: expected a redis/);
    expect(() => parseRedisUrl('redis://:hunter2@queue.lan/x')).not.toThrow(/hunter2/);
    expect(redactRedisUrl('redis://user:hunter2@queue.lan:6379/1')).toBe('redis://user:***@queue.lan:6379/1');
    expect(redactRedisUrl('not a url hunter2')).not.toContain('hunter2');
  });
});

describe('job schemas', () => {
  it('refuse fields that no job may set', () => {
    for (const extra of [{ sandbox: false }, { noSandbox: true }, { hardware: true }, { force: true }]) {
      const r = JOB_SCHEMAS.record.safeParse({ program: 'bin/x', output: 'runs/x.ptscope', ...extra });
      expect(r.success).toBe(false);
      expect(jobDataError('record', r.error!)).toMatch(/^record job: data: Unrecognized key/);
    }
    expect(JOB_SCHEMAS.crash.safeParse({ input: 'a', sandbox: false }).success).toBe(false);
    expect(JOB_SCHEMAS.crash.safeParse({ input: 'a', pid: 8 }).success).toBe(true);
    expect(JOB_SCHEMAS.crash.safeParse({ input: 'a', pid: 0 }).success).toBe(false);
  });

  it('fill in the command line defaults and bound every number', () => {
    const r = JOB_SCHEMAS.record.parse({ program: 'bin/x', output: 'runs/x.ptscope' });
    expect(r).toMatchObject({ args: [], timeoutSec: 60, maxInsns: 1_000_000_000, psbPeriod: 4096, analyze: false });
    expect(JOB_SCHEMAS.record.safeParse({ program: 'bin/x', output: 'o', timeoutSec: 1e9 }).success).toBe(false);
    expect(JOB_SCHEMAS.record.safeParse({ program: 'bin/x', output: 'o', args: ['a\0b'] }).success).toBe(false);
    expect(JOB_SCHEMAS.analyze.safeParse({ input: 'a', detectors: ['no-such'] }).success).toBe(false);
    expect(JOB_SCHEMAS.segment.safeParse({ input: 'a', stream: 0, index: 0, from: -1, to: 5 }).success).toBe(false);
  });
});

describe('segment decoder', () => {
  let bundle: string;
  let exploit: string;

  beforeAll(async () => {
    // Recorded with a PSB every 256 bytes (many cut points): a short program, and an exploit of the corpus (findings).
    bundle = join(work, 'true.ptscope');
    exploit = join(work, 'rop_stack.ptscope');
    const options = { hardware: false, timeoutSec: 120, maxInsns: 10_000_000, psbPeriod: 256, stdio: 'ignore' as const, notice: () => {} };
    await record(withRecordDefaults({ argv: ['/bin/true'], output: bundle, ...options }));
    const corpus = await builtExploitCorpus();
    await record(withRecordDefaults({ argv: [join(corpus, 'rop_stack', 'prog')], stdin: join(corpus, 'rop_stack', 'payload.bin'), output: exploit, ...options }));
  }, 600_000);

  /** analyze's result without its timing and the parallel merge's own counters. */
  it('plans segments that start at PSBs, tile the trace and read on as analyze --jobs pieces do', () => {
    const recording = openRecording(bundle);
    const input = traceInputs(recording)[0]!;
    const psbs = psbOffsets(input.stream);
    expect(psbs.length).toBeGreaterThan(8);
    for (const groups of [1, 2, 3, 7, psbs.length + 5]) {
      const plan = planSegments(input.stream, groups);
      expect(plan.length).toBeLessThanOrEqual(groups);
      expect(plan[0]!.from).toBe(0);
      expect(plan[plan.length - 1]!.to).toBe(input.stream.size);
      for (let i = 0; i < plan.length; i++) {
        if (i > 0) expect(plan[i]!.from).toBe(plan[i - 1]!.to);
        if (i > 0) expect(psbs).toContain(plan[i]!.from);
        expect(plan[i]!.limit).toBe(overlapLimit(plan[i]!, plan[i + 1]?.to ?? input.stream.size, input.stream.size));
      }
    }
    recording.close();
  });

  it.each([
    ['/bin/true (PSB every 256 bytes)', () => bundle],
    ['the rop_stack exploit (PSB every 256 bytes, findings)', () => exploit],
  ])('%s: segments merged in any order are the serial analyze result and coverage, with a cut at every PSB', async (_name, path) => {
    const recording = openRecording(path());
    const input = traceInputs(recording)[0]!;
    const serial = analyzeTrace(input);
    const serialBlocks = new ExecutedBlocks();
    walkerFor(input, [serialBlocks]).run();
    const serialCoverage = coverageSize(serialBlocks);
    expect(serialCoverage.blocks).toBeGreaterThan(100);
    const psbs = psbOffsets(input.stream);
    for (const groups of [1, 2, 5, psbs.length + 1]) {
      const plan = planSegments(input.stream, groups);
      if (groups > psbs.length) expect(plan.length).toBe(psbs.filter((p) => p > 0).length + 1);
      // Out of order, as workers finish, and through JSON, as BullMQ returns them.
      const parts = plan.map((r) => decodeSegment(input, r, undefined)).reverse();
      const merged = await mergeSegments(input, JSON.parse(JSON.stringify(parts)) as SegmentSummary[], undefined);
      expect(merged.segments).toBe(plan.length);
      expect(untimedResult(merged.analysis)).toEqual(untimedResult(serial));
      expect(merged.coverage).toEqual(serialCoverage);
    }
    if (path() !== bundle) expect(serial.findings.length).toBeGreaterThan(0);
    // A segment decoded without its overlap could hand over on too little flow: refused.
    const tight = planSegments(input.stream, 5).map((r) => ({ ...r, limit: r.to }));
    await expect(mergeSegments(input, tight.map((r) => decodeSegment(input, r, undefined)), undefined)).rejects.toThrow(/^segment 0 was decoded to byte \d+, not through its overlap to \d+$/);
    // FlowGuard reads packets in its own pass: the merge runs it, beside the segments' summaries.
    const withFlowGuard = ['flowguard', 'shadow-stack'];
    const serialFg = analyzeTrace(input, { detectors: withFlowGuard });
    const parts = planSegments(input.stream, 2).map((r) => decodeSegment(input, r, withFlowGuard));
    expect(parts.map((p) => p.detectors)).toEqual([withFlowGuard, withFlowGuard]);
    const mergedFg = await mergeSegments(input, parts, withFlowGuard);
    expect(untimedResult(mergedFg.analysis)).toEqual(untimedResult(serialFg));
    expect(mergedFg.analysis.detectors.map((d) => d.name)).toEqual(withFlowGuard);
    const plan = planSegments(input.stream, 3);
    expect(plan.length).toBe(3);
    await expect(mergeSegments(input, plan.slice(1).map((r) => decodeSegment(input, r, undefined)), undefined)).rejects.toThrow(/do not tile the trace/);
    recording.close();
  }, 300_000);

  it('a mutated real trace cut at every PSB: the merge decodes again the segments that cannot hand over (decode errors), from their own bytes, and gives the serial result and coverage', async () => {
    // dyn_test (a dynamically linked program) with bytes overwritten at fixed places (and an extended opcode no
    // packet has): decode errors that leave 44 pairs of its 128 segments without a hand-over, decoded again.
    const t = realTraces().find((r) => r.name === 'dyn_test')!;
    const bytes = new Uint8Array(readFileSync(join(REAL, t.name, t.pt)));
    for (let at = 700; at < bytes.length; at += 2731) bytes[at] ^= 0x5a;
    for (let at = 1500; at + 1 < bytes.length; at += 4099) bytes.set([0x02, 0xd5], at);
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-fleet-mutated-'));
    try {
      const path = join(dir, 'mutated.pt');
      writeFileSync(path, bytes);
      const raw = t.images.map((i) => `${join(REAL, t.name, i.file)}:${i.address}`);
      const recording = openRecording(path, { raw, cpu: '6/158' });
      const input = traceInputs(recording)[0]!;
      const serial = analyzeTrace(input);
      expect(serial.flow.errors).toBeGreaterThan(0);
      const serialBlocks = new ExecutedBlocks();
      walkerFor(input, [serialBlocks]).run();
      const plan = planSegments(input.stream, psbOffsets(input.stream).length + 1);
      expect(plan.length).toBeGreaterThan(100);
      const merged = await mergeSegments(input, plan.map((r) => decodeSegment(input, r, undefined)), undefined);
      expect(merged.coverage).toEqual(coverageSize(serialBlocks));
      // Every field, the unchecked notes' first offsets included: each segment walks its bytes block by block for
      // the detectors, as analyze does, and instruction by instruction for the coverage, as coverage does.
      expect(untimedResult(merged.analysis)).toEqual(untimedResult(serial));
      expect(merged.analysis.unchecked.length).toBeGreaterThan(0);
      recording.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses detectors without a segment summary with analyze --jobs's line, and a piece that is not its segment's", async () => {
    const recording = openRecording(exploit);
    const input = traceInputs(recording)[0]!;
    const whole = { index: 0, from: 0, to: input.stream.size, limit: input.stream.size };
    expect(() => decodeSegment(input, whole, ['shadow-stack', 'no-such'])).toThrow(/^--jobs: these detectors cannot run in parallel exactly: no-such \(unknown detector\)/);
    expect(() => decodeSegment(input, { ...whole, limit: whole.to + 1 }, undefined)).toThrow(/not inside the trace/);
    const [a, b] = planSegments(input.stream, 2).map((r) => decodeSegment(input, r, ['shadow-stack']));
    await expect(mergeSegments(input, [a!, { ...b!, piece: a!.piece }], ['shadow-stack'])).rejects.toThrow(/is not the segment/);
    await expect(mergeSegments(input, [a!, b!], ['rop'])).rejects.toThrow(/ran shadow-stack, not rop/);
    recording.close();
  });
});
