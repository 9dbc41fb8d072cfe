/**
 * `ptscope record` as a command: Ctrl-C (SIGINT) or SIGTERM stops a
 * recording, kills the target's whole tree and removes every temporary
 * directory and the partial bundle; --force replaces only a directory that
 * holds a ptscope bundle and refuses anything else in one line.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { readManifest } from '../src/sources/recorder/bundle.js';
import { REPO_ROOT } from './helpers/oracle.js';
import { buildProbe } from './helpers/probe.js';

let work: string;
let probe: string;
const BIN = resolve(REPO_ROOT, 'bin', 'ptscope.js');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-record-cli-test-'));
  probe = buildProbe(work);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Processes whose command line mentions `text`. */
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(text)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

async function until(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function interrupt(signal: 'SIGINT' | 'SIGTERM'): Promise<void> {
  const dir = join(work, signal);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  // A program path unique to this run, to find its processes.
  const target = join(dir, `spinner-${signal}`);
  writeFileSync(target, readFileSync(probe), { mode: 0o755 });
  const out = join(dir, 'out.ptscope');
  const cli = spawn(process.execPath, [BIN, 'record', '--emulate', '-o', out, '--', target, 'spin', '100000000000'], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  cli.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => cli.on('close', (code) => r(code)));
  // Recording: the partial bundle exists and the target runs under the emulator.
  await until('the recording to start', () => readdirSync(dir).some((n) => n.startsWith('.out.ptscope.partial-')) && processesWith(target).some((pid) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('qemu-x86_64')));
  cli.kill(signal);
  const code = await exited;
  expect(code, stderr).toBe(signal === 'SIGINT' ? 130 : 143);
  expect(stderr).toMatch(new RegExp(`record: interrupted \\(${signal}\\): nothing was kept`));
  // Nothing left: no bundle, no partial bundle, no temporary directory, no process, no cgroup.
  expect(readdirSync(dir).sort()).toEqual([`spinner-${signal}`, 'tmp']);
  expect(readdirSync(tmp)).toEqual([]);
  await until('the target tree to be gone', () => processesWith(target).length === 0, 10_000);
  const cgroups = ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/unified', '/sys/fs/cgroup'].flatMap((d) => {
    try {
      return readdirSync(d).filter((n) => n.startsWith(`ptscope-${cli.pid}-`));
    } catch {
      return [];
    }
  });
  expect(cgroups).toEqual([]);
}

describe('record: interrupted', () => {
  it('Ctrl-C (SIGINT) kills the target tree and leaves nothing behind', async () => {
    await interrupt('SIGINT');
  }, 120_000);

  it('SIGTERM does the same', async () => {
    await interrupt('SIGTERM');
  }, 120_000);
});

/** Run `ptscope record` in-process; its status and stderr lines. */
async function recordCli(args: string[]): Promise<{ status: number; errors: string[] }> {
  const writes: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  const origOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    const status = await main(['record', '--emulate', ...args]);
    return { status, errors: writes.join('').split('\n').filter((l) => l.startsWith('ptscope: record') || l.startsWith('ptscope: error')) };
  } finally {
    process.stderr.write = orig;
    process.stdout.write = origOut;
  }
}

describe('record --force', () => {
  it('refuses to replace a file, a directory that is not a bundle, a link, or another manifest; nothing is touched', async () => {
    const file = join(work, 'thesis.pdf');
    writeFileSync(file, 'my thesis');
    const folder = join(work, 'thesis');
    mkdirSync(folder);
    writeFileSync(join(folder, 'chapter1.tex'), 'chapter one');
    const link = join(work, 'link-to-thesis');
    symlinkSync(folder, link);
    const other = join(work, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'manifest.json'), JSON.stringify({ format: 'something-else' }));
    for (const [target, why] of [
      [file, /replaces only a ptscope bundle directory; .* is not a directory/],
      [folder, /replaces only a ptscope bundle; .* holds no manifest\.json with format "ptscope-bundle"/],
      [link, /replaces only a ptscope bundle directory; .* is not a directory/],
      [other, /holds no manifest\.json with format "ptscope-bundle"/],
    ] as const) {
      const r = await recordCli(['--force', '-o', target, '--', probe, 'uid']);
      expect(r.status, target).toBe(2);
      expect(r.errors, target).toHaveLength(1);
      expect(r.errors[0], target).toMatch(why);
    }
    expect(readFileSync(file, 'utf8')).toBe('my thesis');
    expect(readFileSync(join(folder, 'chapter1.tex'), 'utf8')).toBe('chapter one');
    expect(readdirSync(folder)).toEqual(['chapter1.tex']);
    expect(readFileSync(join(other, 'manifest.json'), 'utf8')).toContain('something-else');
    expect(readdirSync(work).filter((n) => n.includes('.partial-'))).toEqual([]);
  });

  it('replaces a bundle, and without --force refuses even that', async () => {
    const out = join(work, 'again.ptscope');
    expect((await recordCli(['-o', out, '--', probe, 'uid'])).status).toBe(0);
    const first = readManifest(out).instructions!.executed;
    const refused = await recordCli(['-o', out, '--', probe, 'uid']);
    expect(refused.status).toBe(2);
    expect(refused.errors[0]).toMatch(/already exists \(use --force to replace a bundle\)/);
    expect((await recordCli(['--force', '-o', out, '--', probe, 'spin', '1000'])).status).toBe(0);
    expect(readManifest(out).instructions!.executed).toBeGreaterThan(first);
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);
  });
});

describe('record: a program that starts a process is recorded twice, its output shown once', () => {
  it('the output before the fork is not repeated, and the summary follows it', async () => {
    const out = join(work, 'twice.ptscope');
    const res = spawnSync(process.execPath, [BIN, 'record', '--emulate', '-o', out, '--', '/bin/sh', '-c', 'echo before; /bin/true; echo after'], { encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout.split('\n').slice(0, 2)).toEqual(['before', 'after']);
    expect(res.stdout.match(/before/g)).toHaveLength(1);
    expect(res.stderr).toMatch(/recording it again, following each one/);
    expect(res.stderr).not.toMatch(/recording stopped: the program starts a thread or process/);
  });
});

describe('record: the program reads the caller\'s standard input, as with perf record', () => {
  it('a pipe: both runs (before and after the first fork) read the same bytes', () => {
    const out = join(work, 'stdin-pipe.ptscope');
    const res = spawnSync(process.execPath, [BIN, 'record', '--emulate', '-o', out, '--', '/bin/sh', '-c', 'read a; /bin/true; echo "$a"; cat'], { encoding: 'utf8', input: 'first\nsecond\n' });
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout.split('\n').slice(0, 2)).toEqual(['first', 'second']);
  });

  it('an open pipe nobody writes to: a program that does not read it is recorded, nothing waits for the pipe', async () => {
    const out = join(work, 'stdin-open.ptscope');
    const cli = spawn(process.execPath, [BIN, 'record', '--emulate', '-o', out, '--', '/bin/sh', '-c', 'echo one; /bin/true; echo two'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    cli.stdout.on('data', (d) => (stdout += d));
    const code = await new Promise<number | null>((r) => cli.on('close', (c) => r(c)));
    expect(code).toBe(0);
    expect(stdout.split('\n').slice(0, 2)).toEqual(['one', 'two']);
    cli.stdin.destroy();
  });

  it('a regular file: read from its start', () => {
    const input = join(work, 'stdin.txt');
    writeFileSync(input, 'from a file\n');
    const out = join(work, 'stdin-file.ptscope');
    const res = spawnSync('bash', ['-c', 'exec "$@" < "$0"', input, process.execPath, BIN, 'record', '--emulate', '-o', out, '--', '/bin/cat'], { encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout.split('\n')[0]).toBe('from a file');
  });
});
