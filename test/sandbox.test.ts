/**
 * Confinement of recorded programs: a program recorded by `ptscope record`
 * can neither open a TCP connection (to a server this test listens on at
 * 127.0.0.1) nor write outside its scratch directory; and without a usable
 * bwrap, recording is refused unless --no-sandbox is given.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxArgv } from '../src/sources/recorder/sandbox.js';
import { findOnPath, record, type RecordOptions } from '../src/sources/recorder/record.js';
import { REPO_ROOT } from './helpers/oracle.js';

let work: string;
let escape: string;
let server: Server;
let port = 0;
let connections = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-sandbox-test-'));
  escape = join(work, 'escape');
  const res = spawnSync('gcc', ['-O1', '-o', escape, join(REPO_ROOT, 'test', 'fixtures', 'recorder', 'escape.c')], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc escape.c: ${res.stderr}`);
  server = createServer((sock) => {
    connections++;
    sock.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(work, { recursive: true, force: true });
});

function options(argv: string[], extra: Partial<RecordOptions> = {}): RecordOptions {
  return {
    argv,
    output: join(work, `b${Math.random().toString(36).slice(2)}.ptscope`),
    sandbox: true,
    timeoutSec: 60,
    maxInsns: 100_000_000,
    psbPeriod: 4096,
    retCompression: true,
    longTnt: false,
    ranges: [],
    timing: {},
    snapshotBytes: 0,
    stdio: 'pipe',
    notice: () => {},
    ...extra,
  };
}

describe('sandbox', () => {
  it('the escape probe works unconfined (so the confined result means something)', async () => {
    const target = join(work, 'free.txt');
    const res = spawnSync(escape, [String(port), target], { encoding: 'utf8', cwd: work });
    expect(res.stdout).toContain('connect ok');
    // The server sees the connection once the event loop runs again.
    for (let i = 0; i < 100 && connections === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(connections).toBe(1);
    expect(existsSync(target)).toBe(true);
    rmSync(target);
  });

  it('a recorded program cannot connect to 127.0.0.1 nor write outside its scratch directory', async () => {
    const before = connections;
    const hostTmp = join(work, 'outside.txt'); // under the host /tmp: hidden by the private /tmp
    const varTmp = `/var/tmp/ptscope-escape-${process.pid}.txt`; // read-only file system
    const res = await record(options([escape, String(port), hostTmp, varTmp]));
    expect(res.manifest.exit.status).toBe(0);
    expect(res.stdout).toMatch(/^connect failed: /m);
    expect(res.stdout).toMatch(/^write \/var\/tmp\/\S+ failed: Read-only file system$/m);
    expect(res.stdout).toContain('scratch ok');
    // Nothing reached the host.
    await new Promise((r) => setTimeout(r, 100));
    expect(connections).toBe(before);
    expect(existsSync(hostTmp)).toBe(false);
    expect(existsSync(varTmp)).toBe(false);
    // The run was recorded all the same.
    expect(res.manifest.instructions!.traced).toBeGreaterThan(10_000);
  });

  it('sandboxArgv confines as documented', () => {
    const argv = sandboxArgv({ workDir: '/tmp/w', readOnly: ['/tmp/in'] }, ['prog']);
    const text = argv.join(' ');
    for (const flag of ['--ro-bind / /', '--tmpfs /tmp', '--unshare-net', '--unshare-pid', '--die-with-parent', '--cap-drop ALL', '--ro-bind /tmp/in /tmp/in', '--bind /tmp/w /tmp/w', '--chdir /tmp/w']) {
      expect(text).toContain(flag);
    }
    expect(argv.at(-1)).toBe('prog');
    // The private /tmp comes before the binds that re-expose paths under it.
    expect(argv.indexOf('--tmpfs')).toBeLessThan(argv.indexOf('--bind'));
  });

  it('without bwrap, record refuses unless --no-sandbox', async () => {
    // A PATH that has qemu but no bwrap.
    const pathDir = join(work, 'path-without-bwrap');
    mkdirSync(pathDir);
    symlinkSync(findOnPath('qemu-x86_64')!, join(pathDir, 'qemu-x86_64'));
    symlinkSync(findOnPath('mkfifo')!, join(pathDir, 'mkfifo'));
    const saved = process.env.PATH;
    process.env.PATH = pathDir;
    try {
      const out = join(work, 'refused.ptscope');
      await expect(record(options(['/bin/true'], { output: out }))).rejects.toThrow(/bubblewrap.*--no-sandbox/);
      expect(existsSync(out)).toBe(false);
      const notices: string[] = [];
      const res = await record(options(['/bin/true'], { sandbox: false, notice: (l) => notices.push(l) }));
      expect(res.manifest.exit.status).toBe(0);
      expect(notices.some((l) => /no-sandbox.*unconfined/.test(l))).toBe(true);
    } finally {
      process.env.PATH = saved;
    }
  });
});
