/**
 * Confinement of recorded programs (SECURITY.md, "The sandbox"). A hostile
 * probe (test/fixtures/sandbox/probe.c, built here) tries each way out of
 * the sandbox; each attempt is first shown to work unconfined, so that its
 * failure inside means something. Without a usable bwrap, recording is
 * refused unless --no-sandbox is given.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfinedRun } from '../src/sources/recorder/confined-run.js';
import { findOnPath } from '../src/sources/recorder/record.js';
import { DEFAULT_LIMITS, leftoverCgroups } from '../src/sources/recorder/resource-limits.js';
import { SCRATCH_DIR, sandboxArgv } from '../src/sources/recorder/sandbox.js';
import { sandboxView } from '../src/sources/recorder/sandbox-view.js';
import { sandboxSeccompFilter } from '../src/sources/recorder/seccomp-filter.js';
import { buildProbe, line, recordProbe } from './helpers/probe.js';

let work: string;
let probe: string;
const servers: Server[] = [];
const connections = { tcp: 0, unix: 0, abstract: 0 };
let port = 0;
let socketDir: string;
let socketPath: string;
const abstractName = `ptscope-test-${process.pid}`;

function listen(s: Server, kind: keyof typeof connections, ...args: unknown[]): Promise<void> {
  servers.push(s);
  s.on('connection', (c) => {
    connections[kind]++;
    c.destroy();
  });
  return new Promise((resolve) => (s.listen as (...a: unknown[]) => void)(...args, () => resolve()));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-sandbox-test-'));
  probe = buildProbe(work);
  socketDir = join(work, 'run');
  mkdirSync(socketDir);
  socketPath = join(socketDir, 'host.sock');
  const tcp = createServer();
  await listen(tcp, 'tcp', 0, '127.0.0.1');
  port = (tcp.address() as { port: number }).port;
  await listen(createServer(), 'unix', socketPath);
  await listen(createServer(), 'abstract', `\0${abstractName}`);
});

afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  if (work) rmSync(work, { recursive: true, force: true });
});

async function settle(): Promise<void> {
  // The servers see connections once the event loop runs again.
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 20));
}

describe('sandbox: the probe escapes when unconfined', () => {
  it('reaches TCP, unix and abstract sockets, the host /tmp and the environment', async () => {
    const hostFile = join(work, 'unconfined.txt');
    process.env.PTSCOPE_CANARY_SECRET = 'canary-unconfined';
    const res = spawnSync(probe, ['tcp', String(port), 'unix', socketPath, 'abstract', abstractName, 'write', hostFile, 'read', '/etc/hostname', 'env'], { encoding: 'utf8', cwd: work });
    delete process.env.PTSCOPE_CANARY_SECRET;
    expect(line(res.stdout, 'tcp')).toBe('tcp ok');
    expect(line(res.stdout, 'unix')).toBe('unix ok');
    expect(line(res.stdout, 'abstract')).toBe('abstract ok');
    expect(line(res.stdout, 'write')).toBe(`write ${hostFile} ok`);
    expect(res.stdout).toContain('env PTSCOPE_CANARY_SECRET=canary-unconfined');
    await settle();
    expect(connections).toEqual({ tcp: 1, unix: 1, abstract: 1 });
    expect(existsSync(hostFile)).toBe(true);
  });
});

describe('sandbox: a recorded program', () => {
  it('reaches no socket of the host: TCP, unix by path (even in a directory it is shown), abstract', async () => {
    const before = { ...connections };
    // The socket's directory is named on the command line, so it is shown read-only: the socket must still be unusable.
    const res = await recordProbe(work, [probe, 'read', socketDir, 'tcp', String(port), 'unix', socketPath, 'abstract', abstractName, 'pair']);
    expect(res.manifest.exit.status).toBe(0);
    expect(line(res.stdout, 'read')).toBe(`read ${socketDir} ok`);
    expect(line(res.stdout, 'tcp')).toMatch(/^tcp failed: /);
    expect(line(res.stdout, 'unix')).toBe('unix failed: Address family not supported by protocol');
    expect(line(res.stdout, 'abstract')).toBe('abstract failed: Address family not supported by protocol');
    // A socket pair reaches nothing outside, and stays usable.
    expect(line(res.stdout, 'pair')).toBe('pair ok');
    await settle();
    expect(connections).toEqual(before);
    expect(res.manifest.instructions!.traced).toBeGreaterThan(10_000);
  });

  it('sees the system and a filtered /etc, nothing of /root, /home, /run, /var or the host /tmp; /proc/sys is read-only', async () => {
    const hostTmpFile = join(work, 'host-only.txt');
    writeFileSync(hostTmpFile, 'host\n');
    const reads = ['/usr/bin/ls', '/bin/sh', '/etc/passwd', '/etc/ld.so.cache', '/etc/shadow', '/etc/gshadow', '/etc/ssh', '/etc/machine-id', '/root', '/home', '/run', '/var', '/srv', '/mnt', '/media', '/opt', '/boot', '/sys', hostTmpFile];
    const args = reads.flatMap((p) => ['read', p]);
    args.push('openw', '/proc/sys/kernel/core_pattern', 'openw', '/proc/sys/vm/drop_caches', 'write', '/usr/ptscope-x', 'write', '/etc/ptscope-x', 'write', '/ptscope-x', 'write', '/dev/ptscope-x', 'write', `${SCRATCH_DIR}/ok.txt`, 'write', '/tmp/ok.txt');
    // exposeArguments: false, so that the paths the probe is given are not shown for being on its command line.
    const res = await recordProbe(work, [probe, ...args], { exposeArguments: false });
    expect(res.manifest.exit.status).toBe(0);
    const visible = (p: string): boolean => line(res.stdout, `read ${p} `).endsWith(' ok');
    for (const p of ['/usr/bin/ls', '/bin/sh', '/etc/passwd', '/etc/ld.so.cache']) expect(visible(p), p).toBe(true);
    for (const p of reads.slice(4)) expect(line(res.stdout, `read ${p} `), p).toBe(`read ${p} failed: No such file or directory`);
    expect(line(res.stdout, 'openw /proc/sys/kernel/core_pattern')).toMatch(/failed: (Read-only file system|Permission denied)$/);
    expect(line(res.stdout, 'openw /proc/sys/vm/drop_caches')).toMatch(/failed: (Read-only file system|Permission denied)$/);
    for (const p of ['/usr/ptscope-x', '/etc/ptscope-x', '/ptscope-x', '/dev/ptscope-x']) expect(line(res.stdout, `write ${p} `)).toBe(`write ${p} failed: Read-only file system`);
    expect(line(res.stdout, `write ${SCRATCH_DIR}/ok.txt`)).toBe(`write ${SCRATCH_DIR}/ok.txt ok`);
    expect(line(res.stdout, 'write /tmp/ok.txt')).toBe('write /tmp/ok.txt ok');
    // Nothing it wrote reached the host.
    expect(existsSync('/tmp/ok.txt') && readFileSync('/tmp/ok.txt', 'utf8') === 'escaped\n').toBe(false);
  });

  it('sees the files named on its command line, read-only', async () => {
    const input = join(work, 'input.txt');
    writeFileSync(input, 'analyst data\n');
    const res = await recordProbe(work, [probe, 'read', input, 'write', input]);
    expect(line(res.stdout, 'read')).toBe(`read ${input} ok`);
    expect(line(res.stdout, 'write')).toBe(`write ${input} failed: Read-only file system`);
    expect(readFileSync(input, 'utf8')).toBe('analyst data\n');
  });

  it('gets none of the host environment: a canary variable does not reach it', async () => {
    process.env.PTSCOPE_CANARY_SECRET = `canary-${process.pid}`;
    let res;
    try {
      res = await recordProbe(work, [probe, 'env', 'uid']);
    } finally {
      delete process.env.PTSCOPE_CANARY_SECRET;
    }
    expect(res.stdout).not.toContain('canary-');
    expect(res.stdout).not.toContain('QEMU_');
    const env = res.stdout.split('\n').filter((l) => l.startsWith('env ')).map((l) => l.slice(4).split('=')[0]);
    expect(env).toEqual(expect.arrayContaining(['PATH', 'HOME', 'TMPDIR']));
    for (const k of env) expect(['PATH', 'HOME', 'TMPDIR', 'PWD', 'TZ', 'LANG', 'LANGUAGE'].includes(k) || k.startsWith('LC_'), k).toBe(true);
    expect(res.stdout).toContain(`env HOME=${SCRATCH_DIR}`);
  });

  it('leaves no cgroup behind', () => {
    expect(leftoverCgroups()).toEqual([]);
  });
});

describe('sandbox: limits of a confined run', () => {
  it('bounds the number of processes (a fork bomb stops at the limit)', () => {
    const limits = { ...DEFAULT_LIMITS, processes: 8 };
    const run = new ConfinedRun({ command: [findOnPath('qemu-x86_64')!, probe, 'fork', '200'], sandbox: true, view: { program: probe }, limits, output: 'pipe', collect: {}, timeoutSec: 60 });
    try {
      expect(run.notes).toEqual([]);
      const res = run.runSync();
      const m = /^fork (\d+) (.*)$/m.exec(res.stdout);
      expect(m, res.stdout + res.stderr).not.toBeNull();
      // The limit counts the sandbox's own tasks (its pid 1, the emulator and its helper thread) too.
      expect(Number(m![1])).toBeLessThanOrEqual(limits.processes + 4);
      expect(m![2]).toBe('Resource temporarily unavailable');
    } finally {
      run.dispose();
    }
    expect(leftoverCgroups()).toEqual([]);
  });

  it('bounds the memory of each process', () => {
    const limits = { ...DEFAULT_LIMITS, memoryBytes: 384 << 20 };
    const run = new ConfinedRun({ command: [findOnPath('qemu-x86_64')!, probe, 'mem', '4000'], sandbox: true, view: { program: probe }, limits, output: 'pipe', collect: {}, timeoutSec: 60 });
    try {
      const res = run.runSync();
      const m = /^mem (\d+) MiB refused$/m.exec(res.stdout);
      expect(m, res.stdout + res.stderr).not.toBeNull();
      expect(Number(m![1])).toBeLessThan(384);
    } finally {
      run.dispose();
    }
  });
});

describe('sandbox: the bwrap command', () => {
  it('confines as documented', () => {
    const view = sandboxView({ program: '/tmp/p/prog', arguments: ['/tmp'] });
    const argv = sandboxArgv({ view, limits: DEFAULT_LIMITS, env: { PATH: '/usr/bin:/bin' }, seccompFd: 5 }, ['prog']);
    const text = argv.join(' ');
    for (const flag of ['--unshare-user --disable-userns', '--unshare-net', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--die-with-parent', '--new-session', '--cap-drop ALL', '--clearenv', '--seccomp 5', '--ro-bind /proc/sys /proc/sys', `--size ${DEFAULT_LIMITS.tmpBytes} --tmpfs /tmp`, `--size ${DEFAULT_LIMITS.shmBytes} --tmpfs /dev/shm`, '--remount-ro /dev', '--ro-bind /usr /usr', `--chdir ${SCRATCH_DIR}`]) {
      expect(text).toContain(flag);
    }
    // Never the host root, never the host /tmp (named on the command line or not).
    expect(text).not.toContain('--ro-bind / /');
    expect(text).not.toMatch(/--(ro-)?bind \/tmp \/tmp/);
    expect(text).not.toMatch(/--(ro-)?bind (\/root|\/home|\/run|\/var)\b/);
    // The private /tmp comes before the binds that re-expose paths under it; the root is made read-only last.
    expect(argv.indexOf('/tmp')).toBeLessThan(argv.lastIndexOf('--ro-bind'));
    expect(argv.slice(-4)).toEqual(['--remount-ro', '/', '--', 'prog']);
  });

  it('the seccomp filter is a valid classic BPF program that ends in ALLOW', () => {
    const f = sandboxSeccompFilter();
    expect(f.length % 8).toBe(0);
    expect(f.length / 8).toBeLessThanOrEqual(4096);
    expect(f.readUInt16LE(f.length - 8)).toBe(0x06);
    expect(f.readUInt32LE(f.length - 4)).toBe(0x7fff0000);
  });

  it('without bwrap, record refuses unless --no-sandbox', async () => {
    // A PATH with the emulator and the host tools the recorder uses, but no bwrap.
    const pathDir = join(work, 'path-without-bwrap');
    mkdirSync(pathDir);
    for (const tool of ['qemu-x86_64', 'mkfifo', 'prlimit']) symlinkSync(findOnPath(tool)!, join(pathDir, tool));
    chmodSync(pathDir, 0o755);
    const saved = process.env.PATH;
    process.env.PATH = pathDir;
    try {
      const out = join(work, 'refused.ptscope');
      await expect(recordProbe(work, [probe, 'uid'], { output: out })).rejects.toThrow(/bubblewrap.*--no-sandbox/);
      expect(existsSync(out)).toBe(false);
      const notices: string[] = [];
      const res = await recordProbe(work, [probe, 'uid'], { sandbox: false, notice: (l) => notices.push(l) });
      expect(res.manifest.exit.status).toBe(0);
      expect(notices.some((l) => /no-sandbox.*unconfined/.test(l))).toBe(true);
    } finally {
      process.env.PATH = saved;
    }
  });
});
