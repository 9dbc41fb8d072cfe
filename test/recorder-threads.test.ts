/**
 * The emulated recorder on programs that start threads: one PT stream per
 * thread (qemu's per-thread logs), a version-2 bundle with processes,
 * threads and streams, and for every stream libipt's decode (ptoracle insn,
 * the stream's images) gives exactly the instructions qemu executed for that
 * thread: same count, same FNV-1a 64 of the IPs. Then the bundle goes
 * through the one importer to `flow` and `analyze`.
 *
 * Forks are followed by the log shim, execs by the exec follower
 * (native/exec-follower.c): an exec'd program runs under a new emulator and
 * gets a stream of its own, named by its program, also exact.
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
import { record, type RecordResult } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { MAX_TASK_ID } from '../src/sources/recorder/thread-fifos.js';
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
  return record(withRecordDefaults({ argv, output: join(work, `${name}.ptscope`), timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'pipe', notice: () => {} }));
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

  it('a shell pipeline: the shell and every child it forks are processes, and each program they exec is traced', async () => {
    const res = await rec(['/bin/sh', '-c', 'seq 1 2000 | gzip -c | gzip -dc | tail -1'], 'pipeline');
    expect(res.stdout.trim()).toBe('2000');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.exit).toEqual({ status: 0, signal: null, stopped: null });
    const [shell, ...children] = v2.processes;
    expect(children).toHaveLength(4);
    for (const c of children) {
      expect(c.ppid).toBe(shell.pid);
      expect(c.untraced).toBeNull();
    }
    // Each child: the forked shell's stream, then its program's.
    const programs = v2.streams.filter((s) => s.program).map((s) => s.program!.path.split('/').pop());
    expect(programs.sort()).toEqual(['gzip', 'gzip', 'seq', 'tail']);
    for (const s of v2.streams.filter((x) => x.program)) expect(s.instructions!.traced).toBeGreaterThan(10_000);
    expectExactStreams(res.bundle, v2);
  }, 240_000);

  it('each process of the tree has its own exit status, from the exit_group its log ended in', async () => {
    const res = await rec(['/bin/sh', '-c', '/bin/true; /bin/false; (exit 7); ./nonexistent; exit 3'], 'exits');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.exit).toEqual({ status: 3, signal: null, stopped: null });
    const [shell, ...children] = v2.processes;
    expect(shell.exit).toEqual(v2.exit);
    // /bin/true, /bin/false, the subshell, and the child whose exec failed (the shell's 127).
    expect(children.map((c) => [c.program?.path ?? null, c.exit?.status])).toEqual([
      ['/usr/bin/true', 0],
      ['/usr/bin/false', 1],
      [null, 7],
      [null, 127],
    ]);
  }, 240_000);

  it('30 programs started one after another are all followed, whichever of a fork\'s two reports reaches the follower first', async () => {
    // Each fork is a race in the follower: the child's first stop may come before
    // its parent's fork event. A child let run before the event used to exec unfollowed.
    const res = await rec(['/bin/sh', '-c', 'i=0; while [ $i -lt 30 ]; do /bin/true; i=$((i+1)); done; echo $i'], 'many-execs');
    expect(res.stdout.trim()).toBe('30');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.processes.map((p) => p.untraced).filter((u) => u !== null)).toEqual([]);
    expect(v2.streams.filter((s) => s.program?.path === '/usr/bin/true')).toHaveLength(30);
  }, 240_000);

  it('more forks than the task ids with a log: every process within them is traced, each beyond is reported with the reason', async () => {
    // Each emulated fork takes two task ids (qemu starts a helper thread in the child).
    expect(MAX_TASK_ID).toBeGreaterThanOrEqual(256);
    const n = Math.floor(MAX_TASK_ID / 2) + 10;
    const res = await rec([compile('many-forks'), String(n)], 'many-forks');
    expect(res.stdout.trim()).toBe(`${n} children`);
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    const [parent, ...children] = v2.processes;
    expect(children).toHaveLength(n);
    const within = children.filter((c) => c.pid <= MAX_TASK_ID);
    const beyond = children.filter((c) => c.pid > MAX_TASK_ID);
    expect(within.length).toBeGreaterThan(n - 20);
    expect(beyond.length).toBeGreaterThan(0);
    for (const c of within) expect(c.untraced, String(c.pid)).toBeNull();
    for (const c of beyond) {
      expect(c.untraced, String(c.pid)).not.toBeNull();
      expect(v2.warnings).toContain(`[${c.pid}/${c.pid}]: created by fork, but no log of it arrived: not traced: task ids above ${MAX_TASK_ID} in the sandbox have no log`);
    }
    const streams = v2.streams.map((s) => s.pid);
    expect(streams).toEqual([parent.pid, ...within.map((c) => c.pid)]);
    // The parent and the last child with a log decode exactly.
    for (const i of [0, streams.length - 1]) {
      const s = v2.streams[i];
      const got = oracleStream(res.bundle, v2, i);
      expect(got.errors).toEqual([]);
      expect({ insn: got.insn, hash: got.hash }).toEqual({ insn: s.instructions!.traced, hash: s.instructions!.fnv1a64 });
    }
  }, 240_000);

  it('fork then exec: the exec\'d program runs under the emulator in a stream of its own', async () => {
    const res = await rec(['/bin/sh', '-c', '/bin/ls -l /proc/self/exe; echo done'], 'fork-exec');
    // qemu shows the guest its own program as /proc/self/exe: ls ran emulated.
    expect(res.stdout).toMatch(/\/proc\/self\/exe -> \/usr\/bin\/ls/);
    expect(res.stdout).toContain('done');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    const child = v2.processes.find((p) => p.program?.path === '/usr/bin/ls')!;
    expect(child.untraced).toBeNull();
    expect(child.program!.argv).toEqual(['/bin/ls', '-l', '/proc/self/exe']);
    const ls = v2.streams.filter((s) => s.pid === child.pid);
    expect(ls.map((s) => s.program?.path ?? null)).toEqual([null, '/usr/bin/ls']);
    expectExactStreams(res.bundle, v2);
    expect(flowText(res.bundle)).toContain(`[${child.pid}/${child.pid}] ls`);
  }, 240_000);

  it('every kind of exec is followed: a PATH search, a script, a static program, a memfd; the emulator gets none of the program\'s variables', async () => {
    const stat = compile('static-hello', ['-static']);
    const memfd = compile('memfd-exec');
    const script = [
      'printf \'#!/bin/sh\\necho script "$1"\\n\' > /tmp/s.sh; chmod +x /tmp/s.sh; /tmp/s.sh arg',
      // env's execvp fails on /usr/local/bin first, then runs /usr/bin/printenv.
      'FOO=a,b QEMU_STRACE=1 env printenv FOO QEMU_STRACE PTSCOPE_FOLLOWED_EXEC; echo "printenv $?"',
      '"$1" one two',
      '"$2"',
    ].join('; ');
    const res = await rec(['/bin/sh', '-c', script, 'sh', stat, memfd], 'exec-kinds');
    expect(res.stdout.split('\n').filter((l) => l !== '')).toEqual(['script arg', 'a,b', 'printenv 1', 'static 3', 'from-memfd']);
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.exit).toEqual({ status: 0, signal: null, stopped: null });
    for (const p of v2.processes) expect(p.untraced, String(p.pid)).toBeNull();
    const programs = v2.streams.filter((s) => s.program).map((s) => s.program!);
    expect(programs.map((p) => p.path)).toEqual(['/usr/bin/chmod', '/usr/bin/dash', '/usr/bin/env', '/usr/bin/printenv', stat, memfd, expect.stringMatching(/^\/memfd:payload \(deleted\) \[exec-\d+\]$/)]);
    expect(programs[1].argv).toEqual(['/bin/sh', '/tmp/s.sh', 'arg']);
    expect(programs[3].argv).toEqual(['printenv', 'FOO', 'QEMU_STRACE', 'PTSCOPE_FOLLOWED_EXEC']);
    expect(programs[6].argv).toEqual(['echo', 'from-memfd']);
    expectExactStreams(res.bundle, v2);
  }, 300_000);

  it('a thread that is not the main one executes a program: the program continues as the process, traced', async () => {
    const res = await rec([compile('thread-exec')], 'thread-exec');
    expect(res.stdout.trim()).toBe('from-thread');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.exit).toEqual({ status: 0, signal: null, stopped: null });
    expect(v2.processes).toHaveLength(1);
    const pid = v2.processes[0].pid;
    // The main thread, the thread that called execv, then echo with the process's id.
    expect(v2.streams.map((s) => [s.tid === pid, s.program?.path ?? null])).toEqual([[true, null], [false, null], [true, '/usr/bin/echo']]);
    expectExactStreams(res.bundle, v2);
  }, 240_000);

  it('a script that takes descriptors 3 to 9 for itself and runs programs: each is its own (the emulators\' logs sit above them)', async () => {
    const script = 'for fd in 3 4 5 6 7 8 9; do eval "exec $fd>&1"; done; echo via5 >&5; echo via9 >&9; /bin/echo done >&3';
    const res = await rec(['/bin/bash', '-c', script], 'low-fds');
    expect(res.stderr).not.toMatch(/Bad file descriptor/);
    expect(res.stdout).toBe('via5\nvia9\ndone\n');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    expect(v2.exit).toEqual({ status: 0, signal: null, stopped: null });
    // bash forks for the redirected last command: the shell, its child, then echo in the child.
    expect(v2.streams.map((s) => s.program?.path ?? null)).toEqual([null, null, '/usr/bin/echo']);
    expectExactStreams(res.bundle, v2);
  }, 240_000);

  it('a child that closes every descriptor before it executes a program (as Python\'s subprocess does) is traced to the exec and after', async () => {
    const res = await rec([compile('closefds-exec')], 'closefds-exec');
    expect(res.stdout).toBe('child 499500\nparent 0\n');
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    for (const p of v2.processes) expect(p.untraced).toBeNull();
    expect(v2.warnings!.filter((w) => /log ended/.test(w))).toEqual([]);
    const child = v2.processes[1];
    const streams = v2.streams.filter((s) => s.pid === child.pid);
    expect(streams.map((s) => s.program?.path ?? null)).toEqual([null, '/usr/bin/echo']);
    // The loop after the closes is in the child's first stream.
    expect(streams[0].instructions!.traced).toBeGreaterThan(4000);
    expectExactStreams(res.bundle, v2);
  }, 240_000);

  it('a program the emulator cannot be started on runs natively without the logs, reported untraced', async () => {
    // One variable just under the kernel's 128 KiB string limit: the program's
    // exec fits, the emulator's (which carries it as PTSCOPE_E=...) does not.
    const res = await rec(['/bin/sh', '-c', 'X=$(head -c 131065 /dev/zero | tr "\\0" x) /bin/ls /proc/self/fd | wc -l; echo done'], 'exec-native');
    const lines = res.stdout.trim().split('\n');
    expect(lines[1], res.stdout).toBe('done');
    // ls ran natively: its standard streams and the descriptor it lists with, no log.
    expect(Number(lines[0]), res.stdout).toBeLessThanOrEqual(5);
    const v2 = readBundleManifest(res.bundle) as ManifestV2;
    // The whole list, so that a failure shows every process's state.
    expect(v2.processes.map((p) => p.untraced).filter((u) => u !== null)).toEqual([
      expect.stringMatching(/^\/usr\/bin\/ls \(started by exec\) ran natively, untraced: the emulator could not be started on it \(errno 7\)$/),
    ]);
    expectExactStreams(res.bundle, v2);
  }, 240_000);
});
