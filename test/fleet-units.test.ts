/**
 * The fleet's pieces that need no Redis: the store's path confinement, the
 * Redis URL rules, the job schemas (no field may turn the sandbox off), and
 * the segment decoder's plan and merge against a serial decode of a
 * recording cut at every PSB.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { traceInputs } from '../src/analyses/trace-input.js';
import type { Finding } from '../src/analyses/finding.js';
import { JOB_SCHEMAS, jobDataError } from '../src/fleet/job-types.js';
import { parseRedisUrl, redactRedisUrl } from '../src/fleet/redis-url.js';
import { INDEPENDENT_SEGMENTS, psbOffsets, unionRanges, type SegmentSummary } from '../src/fleet/segment-decoder.js';
import { Store } from '../src/fleet/store.js';
import { ExecutedBlocks } from '../src/reports/drcov.js';
import { walkTrace } from '../src/reports/report-model.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { record } from '../src/sources/recorder/record.js';
import { REPO_ROOT } from './helpers/oracle.js';

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

  beforeAll(async () => {
    // A short program recorded with a PSB every 256 bytes: many cut points.
    bundle = join(work, 'true.ptscope');
    await record({
      argv: ['/bin/true'], output: bundle, sandbox: true, hardware: false, timeoutSec: 120, maxInsns: 10_000_000, psbPeriod: 256,
      retCompression: true, longTnt: false, ranges: [], timing: {}, snapshotBytes: 0, stdio: 'ignore', notice: () => {},
    });
  });

  function serial(path: string) {
    const recording = openRecording(path);
    const input = traceInputs(recording)[0]!;
    const blocks = new ExecutedBlocks();
    const flow = walkTrace(input, [blocks]);
    const flat: number[] = [];
    blocks.forEach((s, e) => flat.push(s, e));
    const ranges = unionRanges(flat);
    let bytes = 0;
    for (let i = 0; i < ranges.length; i += 2) bytes += ranges[i + 1]! - ranges[i]!;
    return { recording, input, flow, coverage: { ranges: ranges.length / 2, bytes } };
  }

  it('plans segments that start at PSBs and tile the trace', () => {
    const { recording, input } = serial(bundle);
    const psbs = psbOffsets(input.stream);
    expect(psbs.length).toBeGreaterThan(8);
    for (const groups of [1, 2, 3, 7, psbs.length + 5]) {
      const plan = INDEPENDENT_SEGMENTS.plan(input.stream, groups);
      expect(plan.length).toBeLessThanOrEqual(groups);
      expect(plan[0]!.from).toBe(0);
      expect(plan[plan.length - 1]!.to).toBe(input.stream.size);
      for (let i = 1; i < plan.length; i++) {
        expect(plan[i]!.from).toBe(plan[i - 1]!.to);
        expect(psbs).toContain(plan[i]!.from);
      }
    }
    recording.close();
  });

  it('merges to the serial counts and coverage with a cut at every PSB (emulated recording)', () => {
    const { recording, input, flow, coverage } = serial(bundle);
    const psbs = psbOffsets(input.stream);
    for (const groups of [2, 5, psbs.length + 1]) {
      const plan = INDEPENDENT_SEGMENTS.plan(input.stream, groups);
      // Out of order, as workers finish: the merge must not care.
      const parts = plan.map((r) => INDEPENDENT_SEGMENTS.decodeSegment(input, r, undefined)).reverse();
      const merged = INDEPENDENT_SEGMENTS.mergeSegments(JSON.parse(JSON.stringify(parts)) as SegmentSummary[]);
      expect(merged.segments).toBe(plan.length);
      expect(merged.flow).toEqual(flow);
      expect(merged.coverage).toEqual(coverage);
    }
    expect(() => INDEPENDENT_SEGMENTS.mergeSegments(INDEPENDENT_SEGMENTS.plan(input.stream, 3).slice(1).map((r) => INDEPENDENT_SEGMENTS.decodeSegment(input, r, undefined)))).toThrow(/do not tile the trace/);
    recording.close();
  });

  it('runs only per-transfer detectors on segments', () => {
    const { recording, input } = serial(join(REPO_ROOT, 'demo', 'rop_stack.exploit'));
    expect(() => INDEPENDENT_SEGMENTS.decodeSegment(input, { index: 0, from: 0, to: input.stream.size }, ['shadow-stack'])).toThrow(/shadow-stack keeps state across the trace/);
    const whole = INDEPENDENT_SEGMENTS.decodeSegment(input, { index: 0, from: 0, to: input.stream.size }, undefined);
    expect(whole.detectors).toEqual(['cfi', 'inter-module']);
    expect(whole.findings.length).toBeGreaterThan(0);
    recording.close();
  });

  it('merges findings in trace order, rebased, each edge once per detector', () => {
    const finding = (detector: string, offset: number, from: string, to: string): Finding => ({
      detector, kind: 'cfi-return', severity: 'high', message: `${from} -> ${to}`, offset, cr3: null, pid: null, tid: null,
      transfer: { kind: 'ret', from, to, fromSymbol: null, toSymbol: null, source: null, target: [] }, callPath: [], chain: null, details: {},
    });
    const part = (index: number, from: number, to: number, findings: Finding[]): SegmentSummary => ({
      index, from, to, streamSize: 300, detectors: ['cfi'], flow: { instructions: 10, transfers: 2, errors: 0, gaps: 1 },
      coverage: [0x1000 + index * 8, 0x1010 + index * 8], findings, unchecked: [{ detector: 'cfi', reason: 'r', count: 1, firstOffset: from + 1 }],
    });
    const merged = INDEPENDENT_SEGMENTS.mergeSegments([
      part(1, 100, 300, [finding('cfi', 250, '0x1', '0x2'), finding('cfi', 120, '0x3', '0x4'), finding('inter-module', 130, '0x3', '0x4')]),
      part(0, 0, 100, [finding('cfi', 50, '0x3', '0x4')]),
    ]);
    expect(merged.findings.map((f) => [f.detector, f.offset])).toEqual([['cfi', 50], ['inter-module', 130], ['cfi', 250]]);
    expect(merged.flow).toEqual({ instructions: 20, transfers: 4, errors: 0, gaps: 2 });
    expect(merged.coverage).toEqual({ ranges: 1, bytes: 0x18 });
    expect(merged.unchecked).toEqual([{ detector: 'cfi', reason: 'r', count: 2, firstOffset: 1 }]);
  });
});
