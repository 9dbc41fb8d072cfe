/**
 * The fleet end to end, with real components only: Debian's redis-server on
 * a free local port (append-only file on), three `ptscope worker`
 * processes, jobs submitted through the fleet's submitter and the
 * `submit`/`jobs` commands.
 *
 * - A few dozen jobs (record+analyze, analyze, classify, report) while one
 *   worker is SIGKILLed in the middle of a recording: every job completes
 *   exactly once, the killed job on another worker, every result equals
 *   what the commands' code gives in this process, and the store holds one
 *   bundle per record job and no leftovers.
 * - A poisoned job (a bad bundle) fails after its attempts with the very
 *   line `ptscope analyze` prints, in the failed set, and the workers go on.
 * - Hostile jobs (absolute paths, `..`, symlinks out of the store, a field
 *   asking for no sandbox) are refused.
 * - A large trace as a flow: segment children merged by a parent (analyze
 *   --jobs's merge) equal the serial analyze of an exploit, field for field.
 * - Redis killed and restarted: queued jobs survive and run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeTrace, type AnalyzeResult } from '../src/analyses/analyze.js';
import { traceInputs, walkerFor } from '../src/analyses/trace-input.js';
import { coverageSize } from '../src/fleet/segment-decoder.js';
import { ExecutedBlocks } from '../src/reports/drcov.js';
import { JobBoard, type JobStatus } from '../src/fleet/job-status.js';
import { parseRedisUrl, connectionOptions } from '../src/fleet/redis-url.js';
import { Store } from '../src/fleet/store.js';
import { planDecode, Submitter, type JobRequest } from '../src/fleet/submit.js';
import { formatFindingsJsonl } from '../src/reports/findings-jsonl.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { REPO_ROOT } from './helpers/oracle.js';
import { untimedResult } from './helpers/untimed-result.js';
import { freePort, RedisServer } from '../tools/redis-server.js';
import { builtExploitCorpus } from './helpers/exploit-corpus.js';

const BIN = join(REPO_ROOT, 'bin', 'ptscope.js');
/** Short, so that a dead worker's job is taken up again within seconds. */
const STALL_SEC = 4;
const QUEUE = 'ptscope';

/** A `ptscope worker` process and what it printed. */
class WorkerProcess {
  readonly proc: ChildProcess;
  out = '';
  readonly exited: Promise<number | null>;

  constructor(url: string, store: string) {
    expect(existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'worker.js')), 'build first (npm run build)').toBe(true);
    this.proc = spawn(process.execPath, [BIN, 'worker', '--redis', url, '--store', store, '--concurrency', '1', '--stall-timeout', String(STALL_SEC)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** host:pid, as the worker names itself (and BullMQ records as processedBy). */
  get name(): string {
    return /worker (\S+): queue/.exec(this.out)?.[1] ?? '?';
  }

  async waitFor(re: RegExp, ms = 120_000): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return m;
      if (!this.alive) throw new Error(`worker exited:\n${this.out}`);
      if (Date.now() > end) throw new Error(`worker did not print ${re} in ${ms} ms:\n${this.out}`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGTERM');
    await this.exited;
  }
}

/** The first of `workers` to print a line matching `re`, and the match. */
async function firstToPrint(workers: WorkerProcess[], re: RegExp, ms = 240_000): Promise<{ w: WorkerProcess; m: RegExpExecArray }> {
  const end = Date.now() + ms;
  for (;;) {
    for (const w of workers) {
      const m = re.exec(w.out);
      if (m) return { w, m };
    }
    if (Date.now() > end) throw new Error(`no worker printed ${re} in ${ms} ms:\n${workers.map((w) => w.out).join('\n')}`);
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll until every job is completed or failed. */
async function settle(board: JobBoard, ids: string[], ms = 480_000): Promise<JobStatus[]> {
  const end = Date.now() + ms;
  for (;;) {
    const all = await board.status(ids);
    if (all.every((s) => s !== null && (s.state === 'completed' || s.state === 'failed'))) return all as JobStatus[];
    if (Date.now() > end) throw new Error(`jobs not finished in ${ms} ms: ${JSON.stringify(all.map((s) => s && [s.id, s.kind, s.state]))}`);
    await sleep(300);
  }
}

/** Run the CLI; resolves with its status and output. */
function cli(args: string[], cwd = REPO_ROOT): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

/** `analyze --json`'s objects without the timing fields (which differ between runs). */
function untimed(records: unknown[]): unknown[] {
  return records.map((r) => {
    const { seconds: _s, instructionsPerSecond: _i, ...rest } = r as Record<string, unknown>;
    return rest;
  });
}

/** `analyze --json`'s objects for a store recording, computed here; inputs named as the store names them. */
function analyzeHere(store: string, rel: string): unknown[] {
  const recording = openRecording(join(store, rel));
  try {
    const lines = traceInputs(recording).flatMap((ti) => formatFindingsJsonl(analyzeTrace(ti)));
    return untimed(lines.map((l) => JSON.parse(l.split(JSON.stringify(join(store, rel))).join(JSON.stringify(rel))) as unknown));
  } finally {
    recording.close();
  }
}

let work: string;
let storeDir: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-fleet-'));
  storeDir = join(work, 'store');
  mkdirSync(join(storeDir, 'bin'), { recursive: true });
  cpSync(join(REPO_ROOT, 'demo', 'rop_stack.exploit'), join(storeDir, 'rop_stack.exploit'), { recursive: true });
  cpSync(join(REPO_ROOT, 'demo', 'rop_stack.benign'), join(storeDir, 'rop_stack.benign'), { recursive: true });
  cpSync('/bin/true', join(storeDir, 'bin', 'true'));
  cpSync('/bin/ls', join(storeDir, 'bin', 'ls'));
  // Exit status 0 if it can open its argument, 3 if not: what the sandbox shows a job's program.
  writeFileSync(join(work, 'probe.c'), '#include <fcntl.h>\nint main(int c, char **v) { return c > 1 && open(v[1], O_RDONLY) >= 0 ? 0 : 3; }\n');
  const cc = spawnSync('gcc', ['-O1', '-o', join(storeDir, 'bin', 'probe'), join(work, 'probe.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc probe.c: ${cc.stderr}`);
  mkdirSync(join(storeDir, 'data'));
  writeFileSync(join(storeDir, 'data', 'input.txt'), 'input\n');
  // A poisoned job's input: a bundle whose manifest is not one.
  mkdirSync(join(storeDir, 'bad.ptscope'));
  writeFileSync(join(storeDir, 'bad.ptscope', 'manifest.json'), '{"format":"not-a-bundle"}');
  // Ways out of the store a hostile job might try.
  symlinkSync('/usr/bin', join(storeDir, 'sysbin'));
  symlinkSync(work, join(storeDir, 'up'));
  writeFileSync(join(work, 'secret'), '{}');
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a fleet of three workers on a real Redis', () => {
  let redis: RedisServer;
  let target: ReturnType<typeof parseRedisUrl>;
  const workers: WorkerProcess[] = [];
  let board: JobBoard;
  let submitter: Submitter;

  beforeAll(async () => {
    mkdirSync(join(work, 'redis-a'));
    redis = new RedisServer(join(work, 'redis-a'), await freePort());
    await redis.start();
    target = parseRedisUrl(redis.url);
    for (let i = 0; i < 3; i++) workers.push(new WorkerProcess(redis.url, storeDir));
    for (const w of workers) await w.waitFor(/worker \S+: queue/);
    board = new JobBoard(target, QUEUE);
    submitter = new Submitter(target, QUEUE, { attempts: 3, backoffMs: 300 });
  });

  afterAll(async () => {
    await submitter?.close();
    await board?.close();
    await Promise.all(workers.map((w) => w.stop()));
    await redis?.stop();
  });

  it('runs a few dozen jobs; a worker SIGKILLed mid-job loses none and duplicates none', async () => {
    const requests: JobRequest[] = [];
    // Two long recordings first: one of them is running when a worker dies.
    for (let i = 0; i < 2; i++) requests.push({ kind: 'record', data: { program: 'bin/ls', args: ['-la', '/'], output: `runs/ls-${i}.ptscope`, analyze: true } });
    for (let i = 0; i < 4; i++) requests.push({ kind: 'record', data: { program: 'bin/true', output: `runs/true-${i}.ptscope`, analyze: true } });
    for (let i = 0; i < 16; i++) requests.push({ kind: 'analyze', data: { input: i % 2 === 0 ? 'rop_stack.exploit' : 'rop_stack.benign' } });
    for (let i = 0; i < 2; i++) requests.push({ kind: 'classify', data: { input: 'rop_stack.exploit' } });
    for (let i = 0; i < 2; i++) requests.push({ kind: 'report', data: { inputs: ['rop_stack.exploit', 'rop_stack.benign'], output: `reports/r${i}.html` } });
    const ids: string[] = [];
    for (const r of requests) ids.push((await submitter.add(r)).id);
    const poisonSubmitter = new Submitter(target, QUEUE, { attempts: 2, backoffMs: 100 });
    const poisoned = (await poisonSubmitter.add({ kind: 'analyze', data: { input: 'bad.ptscope' } })).id;
    await poisonSubmitter.close();

    // Kill the worker that is recording `ls`, in the middle of it.
    const first = await firstToPrint(workers, /job (\d+) record bin\/ls -> \S+: started/);
    const started = { w: first.w, id: first.m[1]! };
    started.w.proc.kill('SIGKILL');
    await started.w.exited;
    const killed = started.w;
    const survivors = workers.filter((w) => w !== killed);

    const all = await settle(board, [...ids, poisoned]);
    const byId = new Map(all.map((s) => [s.id, s]));

    // Nothing lost: every job completed (the poisoned one failed, see below).
    expect(all.filter((s) => s.id !== poisoned).map((s) => [s.id, s.state, s.failedReason])).toEqual(ids.map((id) => [id, 'completed', null]));

    // The killed job ran again, to completion, on another worker.
    const retried = byId.get(started.id)!;
    expect(retried.attemptsStarted).toBeGreaterThanOrEqual(2);
    expect(retried.worker).not.toBe(killed.name);
    expect(survivors.map((w) => w.name)).toContain(retried.worker);

    // Nothing done twice: exactly one completion per job, over every worker's log.
    const logs = workers.map((w) => w.out).join('\n');
    for (const id of ids) expect(logs.match(new RegExp(`job ${id} \\S+ .*: completed`, 'g')) ?? [], `completions of job ${id}`).toHaveLength(1);
    expect(killed.out).not.toMatch(new RegExp(`job ${started.id} .*: completed`));

    // Every result is what the commands' code gives here.
    const expected = { 'rop_stack.exploit': analyzeHere(storeDir, 'rop_stack.exploit'), 'rop_stack.benign': analyzeHere(storeDir, 'rop_stack.benign') };
    expect((expected['rop_stack.exploit'] as { type: string }[]).filter((r) => r.type === 'finding').length).toBeGreaterThan(0);
    const bundles: string[] = [];
    requests.forEach((r, i) => {
      const res = byId.get(ids[i]!)!.result as Record<string, unknown>;
      expect(res.kind).toBe(r.kind);
      if (r.kind === 'analyze') {
        const input = (r.data as { input: 'rop_stack.exploit' | 'rop_stack.benign' }).input;
        expect(untimed(res.records as unknown[])).toEqual(expected[input]);
        expect(res.status).toBe(0);
      } else if (r.kind === 'record') {
        const out = (r.data as { output: string }).output;
        expect(res.bundle).toBe(out);
        bundles.push(out.replace(/^runs\//, ''));
        const manifest = JSON.parse(readFileSync(join(storeDir, out, 'manifest.json'), 'utf8')) as { config: { sandbox: boolean }; recorder: string };
        expect(manifest.recorder).toBe('qemu');
        expect(manifest.config.sandbox).toBe(true);
        const traced = (res.instructions as { traced: number }).traced;
        // ld.so, libc's start-up and ls over the sandbox's minimal root: a real run, not an empty trace.
        expect(traced).toBeGreaterThan(20_000);
        // The analysis in the same job decoded exactly what the recorder traced.
        const summary = ((res.analyze as { records: { type: string; flow: { instructions: number } }[] }).records).find((x) => x.type === 'summary')!;
        expect(summary.flow.instructions).toBe(traced);
        expect(res.status).toBe(0);
      } else if (r.kind === 'classify') {
        expect((res.streams as { windows: unknown[] }[])[0]!.windows.length).toBeGreaterThan(0);
        expect(res).toEqual(byId.get(ids[requests.findIndex((x) => x.kind === 'classify')]!)!.result);
      } else if (r.kind === 'report') {
        const out = (r.data as { output: string }).output;
        expect(res.output).toBe(out);
        expect(readFileSync(join(storeDir, out), 'utf8')).toMatch(/^<!doctype html>/i);
        expect((res.streams as unknown[]).length).toBe(2);
        expect(res.findings).toBe((expected['rop_stack.exploit'] as { type: string }[]).filter((x) => x.type === 'finding').length);
      }
    });
    // One bundle per record job, and nothing left of the killed attempt.
    expect(readdirSync(join(storeDir, 'runs')).sort()).toEqual(bundles.sort());
    expect(readdirSync(join(storeDir, 'reports')).sort()).toEqual(['r0.html', 'r1.html']);

    // The poisoned job: failed after both attempts, with the command line's one line.
    const p = byId.get(poisoned)!;
    expect(p.state).toBe('failed');
    expect(p.attemptsMade).toBe(2);
    const direct = await cli(['analyze', 'bad.ptscope'], storeDir);
    expect(direct.status).toBe(2);
    expect(direct.stderr).toBe(`ptscope: ${p.failedReason}\n`);
    expect((await board.list(['failed'], 100)).map((s) => s.id)).toContain(poisoned);
    for (const w of survivors) expect(w.alive).toBe(true);
  });

  it('refuses jobs that name files outside the store or ask for no sandbox', async () => {
    // Straight into the queue, as anyone with access to the Redis could.
    const queue = new Queue(QUEUE, { connection: connectionOptions(target) });
    const hostile: [string, Record<string, unknown>, RegExp][] = [
      ['record', { program: '/bin/true', output: 'runs/h1.ptscope' }, /^program: '\/bin\/true' is an absolute path/],
      ['record', { program: 'sysbin/true', output: 'runs/h2.ptscope' }, /^program: 'sysbin\/true' resolves outside the store directory$/],
      ['record', { program: 'bin/true', output: 'runs/h3.ptscope', sandbox: false }, /^record job: data: Unrecognized key: "sandbox"/],
      ['record', { program: 'bin/true', output: 'up/h4.ptscope' }, /^output: 'up' resolves outside the store directory$/],
      ['analyze', { input: '../store/rop_stack.exploit' }, /^input: '..\/store\/rop_stack.exploit' contains '..'/],
      ['analyze', { input: 'rop_stack.exploit', policy: 'up/secret' }, /^policy: 'up\/secret' resolves outside the store directory$/],
      ['report', { inputs: ['rop_stack.exploit'], output: '/tmp/x.html' }, /^output: '\/tmp\/x.html' is an absolute path/],
      ['launch', { input: 'rop_stack.exploit' }, /^unknown job kind 'launch'$/],
    ];
    const ids: string[] = [];
    try {
      for (const [kind, data] of hostile) ids.push(String((await queue.add(kind, data, { attempts: 1 })).id));
    } finally {
      await queue.close();
    }
    const all = await settle(board, ids);
    all.forEach((s, i) => {
      expect(s.state, `${hostile[i]![0]} ${JSON.stringify(hostile[i]![1])}`).toBe('failed');
      expect(s.failedReason).toMatch(hostile[i]![2]);
    });
    expect(existsSync(join(work, 'h4.ptscope'))).toBe(false);
    expect(readdirSync(join(storeDir, 'runs')).filter((n) => n.startsWith('h'))).toEqual([]);
  });

  it("shows a record job's program the store files its arguments name, and no host file", async () => {
    const shown = await submitter.add({ kind: 'record', data: { program: 'bin/probe', args: ['data/input.txt'], output: 'runs/probe-store.ptscope' } });
    // The same file by its host path: a job's arguments open nothing of the worker's.
    const hidden = await submitter.add({ kind: 'record', data: { program: 'bin/probe', args: [join(storeDir, 'data', 'input.txt')], output: 'runs/probe-host.ptscope' } });
    const [a, b] = await settle(board, [shown.id, hidden.id]);
    expect((a!.result as { exit: { status: number } }).exit.status).toBe(0);
    expect((b!.result as { exit: { status: number } }).exit.status).toBe(3);
    expect((a!.result as { status: number }).status).toBe(0);
    expect((b!.result as { status: number }).status).toBe(1);
  });

  it('analyses a trace as a flow: segment jobs cut at PSBs, merged by the parent with analyze --jobs\'s merge, equal to the serial analyze', async () => {
    // An exploit of the corpus recorded by the fleet with a PSB every 256 bytes: findings, and many cut points.
    const corpus = await builtExploitCorpus();
    cpSync(join(corpus, 'rop_stack', 'prog'), join(storeDir, 'bin', 'rop_stack'));
    cpSync(join(corpus, 'rop_stack', 'payload.bin'), join(storeDir, 'data', 'rop_stack.payload'));
    const rel = 'runs/rop_stack.ptscope';
    const rec = await submitter.add({ kind: 'record', data: { program: 'bin/rop_stack', stdin: 'data/rop_stack.payload', output: rel, psbPeriod: 256 } });
    expect((await settle(board, [rec.id]))[0]!.state).toBe('completed');
    const [flow] = planDecode(new Store(storeDir), rel, { groups: 4, segmentBytes: 1 });
    expect(flow!.children.length).toBe(4);
    const job = await submitter.addFlow(flow!.parent, flow!.children);
    expect(job.children.length).toBe(4);
    const [parent, ...children] = await settle(board, [job.id, ...job.children]);
    expect([parent!.state, ...children.map((c) => c.state)]).toEqual(['completed', 'completed', 'completed', 'completed', 'completed']);

    const recording = openRecording(join(storeDir, rel));
    const input = traceInputs(recording)[0]!;
    const serial = analyzeTrace(input);
    const blocks = new ExecutedBlocks();
    walkerFor(input, [blocks]).run();
    recording.close();
    expect(serial.findings.length).toBeGreaterThan(0);
    const merged = parent!.result as { kind: string; segments: number; analysis: AnalyzeResult; coverage: unknown };
    expect(merged.coverage).toEqual(coverageSize(blocks));
    expect(merged.kind).toBe('decode');
    expect(merged.segments).toBe(4);
    // Field for field (JSON, as BullMQ returns it), but the timing and the merge's own counters; the input named as the store names it.
    const comparable = (r: AnalyzeResult): unknown => JSON.parse(JSON.stringify(untimedResult(r)));
    expect(comparable(merged.analysis)).toEqual(comparable({ ...serial, input: rel }));
  });

  it('submit --wait prints each result; a failed job exits 2 with its line; jobs lists state and progress', async () => {
    const ok = await cli(['submit', '--redis', redis.url, '--store', storeDir, join(storeDir, 'rop_stack.exploit'), '--wait']);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    const id = /^job (\d+) analyze rop_stack.exploit$/m.exec(ok.stdout)?.[1];
    expect(id).toBeDefined();
    const findings = (analyzeHere(storeDir, 'rop_stack.exploit') as { type: string }[]).filter((r) => r.type === 'finding').length;
    expect(ok.stdout).toMatch(new RegExp(`^job ${id} analyze rop_stack.exploit: ${findings} findings in \\d+ instructions$`, 'm'));

    const bad = await cli(['submit', '--redis', redis.url, '--store', storeDir, '--attempts', '1', join(storeDir, 'bad.ptscope'), '--wait']);
    expect(bad.status).toBe(2);
    const direct = await cli(['analyze', 'bad.ptscope'], storeDir);
    expect(bad.stderr).toMatch(new RegExp(`^ptscope: job \\d+ analyze bad.ptscope: ${direct.stderr.replace(/^ptscope: /, '').trim().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n$`));

    const outside = await cli(['submit', '--redis', redis.url, '--store', storeDir, join(REPO_ROOT, 'demo', 'rop_stack.exploit')]);
    expect(outside.status).toBe(2);
    expect(outside.stderr).toMatch(/^ptscope: input .* is not inside the store .*copy it there first\n$/);

    const listed = await cli(['jobs', '--redis', redis.url, '--state', 'completed,failed', '--json']);
    expect(listed.status).toBe(0);
    const rows = listed.stdout.trim().split('\n').map((l) => JSON.parse(l) as JobStatus);
    expect(rows.find((r) => r.id === id)).toMatchObject({ kind: 'analyze', state: 'completed', progress: 100, target: 'rop_stack.exploit' });
    expect(rows.some((r) => r.state === 'failed' && r.target === 'bad.ptscope')).toBe(true);
    const table = await cli(['jobs', '--redis', redis.url, '--limit', '5']);
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/^active \d+, waiting \d+, waiting-children \d+, prioritized \d+, delayed \d+, failed \d+, completed \d+$/m);
    expect(table.stdout).toMatch(new RegExp(`^ +${id}  analyze +completed +100%`, 'm'));
  });
});

describe('a Redis restart with the append-only file on, behind a password', () => {
  it('keeps queued jobs: they run once a worker comes; the password is never printed', async () => {
    mkdirSync(join(work, 'redis-b'));
    const password = 'pw-' + Math.random().toString(36).slice(2);
    const redis = new RedisServer(join(work, 'redis-b'), await freePort(), password);
    await redis.start();
    const target = parseRedisUrl(redis.url);
    const submitter = new Submitter(target, QUEUE, { attempts: 2, backoffMs: 200 });
    const ids: string[] = [];
    try {
      for (const input of ['rop_stack.exploit', 'rop_stack.benign', 'rop_stack.exploit']) ids.push((await submitter.add({ kind: 'analyze', data: { input } })).id);
    } finally {
      await submitter.close();
    }
    // A crash, not a clean shutdown: only the append-only file keeps the jobs.
    await redis.stop('SIGKILL');
    await redis.start();
    const worker = new WorkerProcess(redis.url, storeDir);
    const board = new JobBoard(target, QUEUE);
    try {
      const all = await settle(board, ids);
      expect(all.map((s) => [s.id, s.state])).toEqual(ids.map((id) => [id, 'completed']));
      expect((all[0]!.result as { findings: number }).findings).toBeGreaterThan(0);
      expect((all[1]!.result as { findings: number }).findings).toBe(0);
      const listed = await cli(['jobs', '--redis', redis.url]);
      expect(listed.status).toBe(0);
      const wrong = await cli(['jobs', '--redis', redis.url.replace(encodeURIComponent(password), 'wrong-' + password)]);
      expect(wrong.status).toBe(2);
      expect(wrong.stderr).toMatch(/^ptscope: redis redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: WRONGPASS[^\n]*\n$/);
      await worker.stop();
      expect(worker.out).toMatch(/queue 'ptscope' on redis:\/\/:\*\*\*@127\.0\.0\.1:/);
      for (const text of [worker.out, listed.stdout, listed.stderr, wrong.stdout, wrong.stderr]) expect(text).not.toContain(password);
    } finally {
      await board.close();
      await worker.stop();
      await redis.stop();
    }
  });
});
