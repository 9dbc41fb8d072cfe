/**
 * The emulated recorder on programs that start threads: one PT stream per
 * thread (qemu's per-thread logs), a version-2 bundle with processes,
 * threads and streams, and for every stream libipt's decode (ptoracle insn,
 * the stream's images) gives exactly the instructions qemu executed for that
 * thread: same count, same FNV-1a 64 of the IPs. Then the bundle goes
 * through the one importer to `flow` and `analyze`.
 *
 * A program that forks stops at the fork with its reason (qemu 7.2 hands a
 * forked child its parent's per-thread log); the trace up to there is exact.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFlowCommand } from '../src/cli/flow.js';
import { LineWriter } from '../src/cli/output.js';
import { readBundleManifest } from '../src/sources/import/bundle-import.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { rawImageArgs } from '../src/sources/recorder/bundle.js';
import { record, type RecordOptions, type RecordResult } from '../src/sources/recorder/record.js';
import type { ManifestV2 } from '../src/sources/bundle/manifest.js';
import { REPO_ROOT, runOracle } from './helpers/oracle.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'threads');
let work: string;

function compile(name: string, flags: string[] = []): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-o', out, join(FIXTURES, `${name}.c`), '-pthread', ...flags], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc ${name}: ${res.stderr}`);
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-threads-test-'));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function rec(argv: string[], name: string): Promise<RecordResult> {
  const opts: RecordOptions = {
    argv,
    output: join(work, `${name}.ptscope`),
    sandbox: true,
    timeoutSec: 120,
    maxInsns: 50_000_000,
    psbPeriod: 4096,
    retCompression: true,
    longTnt: false,
    ranges: [],
    timing: {},
    snapshotBytes: 0,
    hardware: false,
    stdio: 'pipe',
    notice: () => {},
  };
  return record(opts);
}

/** libipt's decode of one stream of a version-2 bundle. */
function oracleStream(bundle: string, m: ManifestV2, index: number): { insn: number; hash: string; errors: string[] } {
  const s = m.streams[index];
  const images = s.images.map((i) => m.images[i]);
  const raw = rawImageArgs(images);
  const text = runOracle(['insn', '--cpu', 'none', ...raw, s.file, '--hash'], bundle);
  const insn = /^insn (\d+)$/m.exec(text);
  const hash = /^fnv1a64 ([0-9a-f]{16})$/m.exec(text);
  const errors = runOracle(['insn', '--cpu', 'none', ...raw, s.file, '--ips'], bundle).split('\n').filter((l) => l.startsWith('error'));
  return { insn: Number(insn![1]), hash: hash![1], errors };
}

function expectExactStreams(bundle: string, m: ManifestV2): void {
  for (let i = 0; i < m.streams.length; i++) {
    const s = m.streams[i];
    const got = oracleStream(bundle, m, i);
    expect(got.errors, `[${s.pid}/${s.tid}]`).toEqual([]);
    expect(s.instructions!.traced, `[${s.pid}/${s.tid}]`).toBe(s.instructions!.executed);
    expect({ insn: got.insn, hash: got.hash }, `[${s.pid}/${s.tid}]`).toEqual({ insn: s.instructions!.traced, hash: s.instructions!.fnv1a64 });
  }
}

function flowText(bundle: string): string {
  const out = new LineWriter(null);
  const errs: string[] = [];
  const code = runFlowCommand([bundle], out, (l) => errs.push(l));
  out.flush();
  expect(errs).toEqual([]);
  expect(code).toBe(0);
  return out.text;
}

describe('recording threads', () => {
  it('4 threads: one exact stream per thread, each thread under its own [pid/tid]', async () => {
    const res = await rec([compile('threads4')], 'threads4');
    expect(res.stdout.trim()).toMatch(/^\d+$/);
    const m = readBundleManifest(res.bundle);
    expect(m.version).toBe(2);
    const v2 = m as ManifestV2;
    expect(v2.exit).toEqual({ status: 0, signal: null, stopped: null });
    expect(v2.processes).toHaveLength(1);
    expect(v2.threads).toHaveLength(5);
    expect(new Set(v2.streams.map((s) => s.pid))).toEqual(new Set([v2.processes[0].pid]));
    expect(new Set(v2.streams.map((s) => s.tid)).size).toBe(5);
    // Each worker's loop runs 500 more iterations than the last: four distinct, non-trivial streams.
    const workers = v2.streams.slice(1).map((s) => s.instructions!.traced);
    expect(new Set(workers).size).toBe(4);
    for (const n of workers) expect(n).toBeGreaterThan(5000);
    expectExactStreams(res.bundle, v2);

    const r = openRecording(res.bundle);
    expect(r.streams.map((s) => [s.pid, s.tid])).toEqual(v2.streams.map((s) => [s.pid, s.tid]));
    r.close();
    const text = flowText(res.bundle);
    for (const s of v2.streams) expect(text).toContain(`[${s.pid}/${s.tid}]`);
  }, 240_000);

  it('a thread that takes a signal: its handler is in its own exact stream', async () => {
    const res = await rec([compile('thread-signal')], 'thread-signal');
    expect(res.stdout.trim()).toMatch(/^10 /);
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.version).toBe(2);
    expect(v2.streams).toHaveLength(2);
    expect(v2.stats?.signals).toEqual(['SIGUSR1']);
    expectExactStreams(res.bundle, v2);
  }, 240_000);

  it('fork: parent and child are two processes, each with its own exact stream', async () => {
    const res = await rec([compile('fork')], 'fork');
    expect(res.stdout.trim()).toBe('child 4 parent 499500');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.version).toBe(2);
    expect(v2.exit).toEqual({ status: 0, signal: null, stopped: null });
    expect(v2.processes).toHaveLength(2);
    const [parent, child] = v2.processes;
    expect(child.ppid).toBe(parent.pid);
    expect(v2.streams.map((s) => [s.pid, s.tid])).toEqual([[parent.pid, parent.pid], [child.pid, child.pid]]);
    // The child runs its loop 3000 times, the parent 1000: the child's stream is its own.
    expect(v2.streams[1].instructions!.traced).toBeGreaterThan(3000 * 3);
    expectExactStreams(res.bundle, v2);
    expect(flowText(res.bundle)).toContain(`[${child.pid}/${child.pid}]`);
  }, 240_000);

  it('a shell pipeline: the shell and every child it forks are processes; the children that exec are untraced from there', async () => {
    const res = await rec(['/bin/sh', '-c', 'seq 1 2000 | gzip -c | gzip -dc | tail -1'], 'pipeline');
    expect(res.stdout.trim()).toBe('2000');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.exit).toEqual({ status: 0, signal: null, stopped: null });
    const [shell, ...children] = v2.processes;
    expect(children).toHaveLength(4);
    for (const c of children) {
      expect(c.ppid).toBe(shell.pid);
      expect(c.untraced).toMatch(/ran natively, untraced/);
    }
    expectExactStreams(res.bundle, v2);
  }, 240_000);

  it('fork then exec: the exec\'d program is marked untraced, and holds no log', async () => {
    const res = await rec(['/bin/sh', '-c', '/bin/ls -l /proc/self/fd; echo done'], 'fork-exec');
    // ls ran natively after exec: it sees its standard streams and the directory it lists, no log.
    const fds = res.stdout.split('\n').filter((l) => / -> /.test(l)).map((l) => Number(/ (\d+) -> /.exec(l)![1]));
    expect(fds.filter((fd) => fd > 3)).toEqual([]);
    expect(res.stdout).toContain('done');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.processes.length).toBeGreaterThanOrEqual(2);
    expect(v2.processes.some((p) => /ran natively, untraced/.test(p.untraced ?? ""))).toBe(true);
    expectExactStreams(res.bundle, v2);
  }, 240_000);
});
