/**
 * The recorded program cannot forge or blind its own trace without the
 * recording saying so (SECURITY.md, "The emulator's log"). qemu-user runs
 * the guest in its own process, so the guest can write to the log's
 * descriptors and qemu prints its strings unescaped; each attack below is
 * made by a real guest (test/fixtures/sandbox/probe.c) and must end in
 * "recording tampered" (no bundle) or in a stop with a reason, never in a
 * silently wrong trace. The parser's rules are also checked on synthetic
 * logs, one forgery at a time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest } from '../src/sources/recorder/bundle.js';
import { entryVerdict, syscallVerdict } from '../src/sources/recorder/log-channel.js';
import { LOG_DESCRIPTORS, SHIMMED_LOG_DESCRIPTORS } from '../src/sources/recorder/path-reconstruction.js';
import { QemuLogParser, RecordingTampered, type QemuLogSink } from '../src/sources/recorder/qemu-log.js';
import { THREAD_LOG_FDS, threadLogFd } from '../src/sources/recorder/thread-fifos.js';
import { RecordError } from '../src/sources/recorder/record.js';
import { REPO_ROOT, runOracle } from './helpers/oracle.js';
import { buildProbe, line, recordProbe } from './helpers/probe.js';

let work: string;
let probe: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-tamper-test-'));
  probe = buildProbe(work);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Record and expect the recording to be refused as tampered, leaving nothing behind. */
async function expectTampered(args: string[], why: RegExp): Promise<void> {
  const output = join(work, `tampered-${Math.random().toString(36).slice(2)}.ptscope`);
  const err = await recordProbe(work, [probe, ...args], { output }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RecordError);
  expect((err as Error).message).toMatch(/^record: recording tampered: /);
  expect((err as Error).message).toMatch(why);
  expect((err as Error).message.split('\n')).toHaveLength(1);
  expect(existsSync(output)).toBe(false);
  expect(readdirSync(work).filter((n) => n.includes('.partial-'))).toEqual([]);
}

/** libipt's decode of a bundle agrees with the recorder (count and hash). */
function expectDecodes(bundle: string): void {
  const m = readManifest(bundle);
  const text = runOracle(m.decode!.ptoracle, bundle);
  expect(Number(/^insn (\d+)$/m.exec(text)![1])).toBe(m.instructions!.traced);
  expect(/^fnv1a64 ([0-9a-f]{16})$/m.exec(text)![1]).toBe(m.instructions!.fnv1a64);
}

describe('the log channel, as the guest sees it', () => {
  it('the guest holds exactly the log descriptors the recorder watches, and nothing else', async () => {
    const res = await recordProbe(work, [probe, 'fds']);
    const fds = res.stdout.split('\n').filter((l) => l.startsWith('fd ')).map((l) => l.split(' '));
    // The handed-in 3 is closed once qemu has its own log, moved up out of the program's way (native/qemu-log-shim.c).
    expect(fds.map((f) => Number(f[1]))).toEqual([0, 1, 2, ...SHIMMED_LOG_DESCRIPTORS]);
    for (const fd of SHIMMED_LOG_DESCRIPTORS) expect(fds.find((f) => Number(f[1]) === fd)![2]).toMatch(/\/ptscope-log-[^/]+\/qemu\.log$/);
  });

  it('the log FIFO is not in the sandbox by path, and cannot be read through /proc', async () => {
    const res = await recordProbe(work, [probe, 'reopenr', '/proc/self/fd/3', 'reopenr', '/proc/self/fd/700']);
    expect(res.manifest.exit.status).toBe(0);
    expect(line(res.stdout, 'reopenr /proc/self/fd/3')).toBe('reopenr /proc/self/fd/3 failed: No such file or directory');
    expect(line(res.stdout, 'reopenr /proc/self/fd/700')).toBe('reopenr /proc/self/fd/700 failed: Permission denied');
    expectDecodes(res.bundle);
  });
});

describe('descriptors the analyst\'s shell leaked into ptscope', () => {
  it('do not reach the program: it holds only what the recorder hands in', () => {
    // bash opens descriptor 250 without close-on-exec, and ptscope inherits it.
    const bin = join(REPO_ROOT, 'bin', 'ptscope.js');
    const out = join(work, 'leak.ptscope');
    const res = spawnSync('bash', ['-c', 'exec 250>/dev/null; exec "$@"', 'bash', process.execPath, bin, 'record', '-o', out, '--', probe, 'fds'], { encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(0);
    const fds = res.stdout.split('\n').filter((l) => l.startsWith('fd ')).map((l) => Number(l.split(' ')[1]));
    expect(fds).toEqual([0, 1, 2, ...SHIMMED_LOG_DESCRIPTORS]);
  });
});

describe('a program that uses low descriptors of its own, or aims at the log', () => {
  it('a script\'s `exec 3>&1` records: descriptor 3 is free, and nothing of the log is in its way', () => {
    const bin = join(REPO_ROOT, 'bin', 'ptscope.js');
    const out = join(work, 'fd3.ptscope');
    const res = spawnSync(process.execPath, [bin, 'record', '-o', out, '--', '/bin/bash', '-c', 'exec 3>&1; echo via3 >&3; exec 3>&-; echo done'], { encoding: 'utf8' });
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^via3\ndone\n/);
    expectDecodes(out);
  });

  it('a dup2 onto the log fails with EBADF, and the recording goes on', async () => {
    const res = await recordProbe(work, [probe, 'dup2onto', '3', 'dup2onto', '700', 'spin', '1000']);
    expect(res.manifest.exit.status).toBe(0);
    expect(res.manifest.exit.stopped).toBeNull();
    expect(line(res.stdout, 'dup2onto 3')).toBe('dup2onto 3 ok');
    expect(line(res.stdout, 'dup2onto 700')).toBe('dup2onto 700 failed: Bad file descriptor');
    expectDecodes(res.bundle);
  });
});

describe('a guest that forges its trace', () => {
  it('writing a fake Trace line to the log descriptor', async () => {
    await expectTampered(['logwrite', '700', '\\nTrace 0: 0x7f0000000000 [0000000000000000/0000004000001000/1040c0b3/00000200] \\n'], /emulator's kind|wrote to the emulator's log/);
  });

  it('writing to the handed-in descriptor: it is gone before the program runs', async () => {
    const res = await recordProbe(work, [probe, 'logwrite', '3', 'x']);
    expect(line(res.stdout, 'logwrite 3')).toBe('logwrite 3 failed: Bad file descriptor');
    expectDecodes(res.bundle);
  });

  it('reopening the log through /proc/self/fd', async () => {
    await expectTampered(['reopen', '/proc/self/fd/700'], /opened the emulator's log again/);
  });

  it('making the log non-blocking (to lose lines)', async () => {
    await expectTampered(['logfix', '700'], /changed the emulator's log flags/);
  });

  it('a path whose newlines carry a fake Trace line (qemu prints strings unescaped)', async () => {
    await expectTampered(['openpath', 'x\\nTrace 0: 0x7f0000000000 [0000000000000000/0000004000001000/1040c0b3/00000200] \\ny'], /emulator's kind inside the text of a syscall/);
  });

  it('a path that fakes the end of its own syscall', async () => {
    await expectTampered(['openpath', 'x") = 3\\nfoo'], /unexpected line/);
  });

  it('a syntactically perfect forgery through an indirect path: a translation that is not the file\'s code', async () => {
    // Fake result for the real write, a fake translation and execution, and a
    // fake syscall entry that the real result completes.
    const forged = ' = 142\\n----------------\\nIN: \\n0x4000001000:  c3                       retq     \\n\\nTrace 0: 0x7f0000001000 [0000000000000000/0000004000001000/1040c0b3/00000200] \\n2 write(9,0x0,1)';
    await expectTampered(['forgevia', String(SHIMMED_LOG_DESCRIPTORS[0]), forged], /does not match|inconsistent/);
  });
});

describe('a guest that starts threads (one log per thread, handed in as descriptors)', () => {
  it('no log is reachable by path; the guest holds the handed-in logs and the ones qemu opened from them, nothing else', async () => {
    const res = await recordProbe(work, [probe, 'thread', 'read', '/run/ptscope-log/1', 'fds']);
    expect(res.manifest.exit.status).toBe(0);
    expect(line(res.stdout, 'thread')).toBe('thread ok');
    expect(line(res.stdout, 'read /run/ptscope-log/1')).toMatch(/failed: No such file or directory/);
    const fds = res.stdout.split('\n').filter((l) => l.startsWith('fd ')).map((l) => l.split(' '));
    const numbers = fds.map((f) => Number(f[1]));
    expect(numbers.slice(0, 3)).toEqual([0, 1, 2]);
    const logs = new Set(THREAD_LOG_FDS);
    for (const fd of THREAD_LOG_FDS) expect(numbers).toContain(fd);
    // Besides the handed-in descriptors: one reopened log per thread of qemu (main and worker), all FIFOs of the log directory.
    const opened = fds.filter((f) => Number(f[1]) > 2 && !logs.has(Number(f[1])));
    expect(opened).toHaveLength(2);
    const fifoOf = (f: string[]): string => f[2].replace(/.*\//, '');
    for (const f of opened) expect(f[2]).toMatch(/\/threads\/\d+$/);
    expect(new Set(opened.map(fifoOf)).size).toBe(2);
  });

  it('writing to a handed-in log descriptor', async () => {
    await expectTampered(['thread', 'logwrite', String(threadLogFd(1)), 'x'], /wrote to the emulator's log/);
  });

  it('reopening a handed-in log through /proc/self/fd', async () => {
    await expectTampered(['thread', 'reopen', `/proc/self/fd/${threadLogFd(2)}`], /opened the emulator's log again/);
  });

  it('making a handed-in log non-blocking', async () => {
    await expectTampered(['thread', 'logfix', String(threadLogFd(3))], /changed the emulator's log flags/);
  });
});

describe('a guest that blinds the recorder', () => {
  it('closing every descriptor it did not open: the log is closed around, and the recording goes on', async () => {
    const res = await recordProbe(work, [probe, 'spin', '1000', 'closeall']);
    expect(res.manifest.exit.stopped).toBeNull();
    expect(line(res.stdout, 'closeall')).toBe('closeall 0');
    expect(res.manifest.warnings.join('\n')).not.toMatch(/closed the emulator's log/);
    expectDecodes(res.bundle);
  });

  it('exec: recorded again, the new program under the emulator in a stream of its own', async () => {
    const res = await recordProbe(work, [probe, 'exec', '/bin/true']);
    expect(res.manifest.exit.stopped).toBeNull();
    const m = res.manifest as unknown as { version: number; processes: { untraced: string | null }[]; streams: { pid: number; program?: { path: string } }[] };
    expect(m.version).toBe(2);
    expect(m.processes).toHaveLength(1);
    expect(m.processes[0].untraced).toBeNull();
    expect(m.streams.map((s) => s.program?.path ?? null)).toEqual([null, '/usr/bin/true']);
  });

  it('fork: recorded again with one log per process (the child writes only its own log)', async () => {
    const res = await recordProbe(work, [probe, 'spawn']);
    expect(res.manifest.exit.stopped).toBeNull();
    const m = res.manifest as unknown as { version: number; processes: { pid: number; ppid: number | null }[] };
    expect(m.version).toBe(2);
    expect(m.processes).toHaveLength(2);
    expect(m.processes[1].ppid).toBe(m.processes[0].pid);
  });

  it('a benign path with a newline is recorded whole: the same instructions as the same path without it', async () => {
    const a = await recordProbe(work, [probe, 'openpath', 'no\\nsuch', 'spin', '5000']);
    const b = await recordProbe(work, [probe, 'openpath', 'no\\ysuch', 'spin', '5000']);
    expect(a.manifest.exit.status).toBe(0);
    expect(line(a.stdout, 'spin')).toBe(line(b.stdout, 'spin'));
    expect(a.manifest.instructions!.executed).toBe(b.manifest.instructions!.executed);
    expectDecodes(a.bundle);
  });
});

/** A sink that records what the parser reports. */
function sink(): QemuLogSink & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    translated: (tb) => events.push(`tb ${tb.pc.toString(16)}`),
    executed: (cpu, ptr, pc) => events.push(`exec ${cpu} ${ptr.toString(16)} ${pc.toString(16)}`),
    notExecuted: (ptr, pc) => events.push(`stopped ${ptr.toString(16)} ${pc.toString(16)}`),
    syscallEntry: (name) => events.push(`entry ${name}`),
    syscall: (l) => events.push(`syscall ${l}`),
    signal: (name) => events.push(`signal ${name}`),
    layout: (name, v) => events.push(`layout ${name} ${v.toString(16)}`),
  };
}

const PREAMBLE = 'host mmap_min_addr=0x1000\nLocating guest address space @ 0x0\nstart_code  0x4000000000\nentry       0x4000001000\n';
const BLOCK = '----------------\nIN: main\n0x4000001000:  90                       nop      \n0x4000001001:  c3                       retq     \n\n';
const TRACE = 'Trace 0: 0x7f00000000c0 [0000000000000000/0000004000001000/1040c0b3/00000200] main\n';

function parse(text: string): string[] {
  const s = sink();
  const p = new QemuLogParser(s);
  p.feed(Buffer.from(text, 'latin1'));
  p.end();
  return s.events;
}

describe('the log parser on synthetic logs', () => {
  it('reads a well-formed log: a translation, its execution, syscalls with and without a page dump, a signal', () => {
    const events = parse(
      PREAMBLE + BLOCK + TRACE +
        '2 write(1,0x1000,5) = 5\n' +
        '2 mmap(NULL,4096,PROT_READ,MAP_PRIVATE,3,0)page layout changed following mmap\nstart            end              size             prot\n0000004000000000-0000004000001000 0000000000001000 r--\n = 0x0000004000100000\n' +
        '2 clock_gettime(CLOCK_REALTIME,0x0000004000001000) = 0 ({tv_sec = 1,tv_nsec = 2})\n' +
        '--- SIGALRM {si_signo=SIGALRM, si_code=SI_KERNEL, si_pid=0, si_uid=0} ---\n' +
        'Stopped execution of TB chain before 0x7f00000000c0 [0000004000001000] main\n',
    );
    expect(events).toEqual([
      'layout start_code 4000000000',
      'layout entry 4000001000',
      'tb 4000001000',
      'exec 0 7f00000000c0 4000001000',
      'entry write',
      'syscall write(1,0x1000,5) = 5',
      'entry mmap',
      'syscall mmap(NULL,4096,PROT_READ,MAP_PRIVATE,3,0) = 0x0000004000100000',
      'entry clock_gettime',
      'syscall clock_gettime(CLOCK_REALTIME,0x0000004000001000) = 0 ({tv_sec = 1,tv_nsec = 2})',
      'signal SIGALRM',
      'stopped 7f00000000c0 4000001000',
    ]);
  });

  it('a string with newlines is the syscall\'s text, not log lines', () => {
    const events = parse(PREAMBLE + BLOCK + TRACE + '2 openat(-100,"a\nb c\n",O_RDONLY) = -1 errno=2 (No such file or directory)\n' + TRACE);
    expect(events.filter((e) => e.startsWith('syscall'))).toEqual(['syscall openat(-100,"a\nb c\n",O_RDONLY) = -1 errno=2 (No such file or directory)']);
    expect(events.filter((e) => e.startsWith('exec'))).toHaveLength(2);
  });

  const forgeries: Array<[string, string, RegExp]> = [
    ['a Trace line inside a syscall\'s text', '2 write(4,0x1,9)\n' + TRACE + ' = 9\n', /emulator's kind inside the text of a syscall/],
    ['an unknown line', 'hello\n', /unexpected line/],
    ['a result with no syscall', ' = 0\n', /result with no syscall/],
    ['a layout line after the start', 'start_code  0x4000000000\n', /unexpected line/],
    ['a syscall of another process', '2 getpid() = 2\n3 getpid() = 3\n', /another process/],
    ['a page-table row outside an mmap', '0000004000000000-0000004000001000 0000000000001000 r-x\n', /page-table row/],
    ['a malformed signal line', '--- SIGSEGV forged ---\n', /unexpected line/],
  ];
  for (const [name, forged, why] of forgeries) {
    it(`refuses ${name}`, () => {
      expect(() => parse(PREAMBLE + BLOCK + TRACE + forged)).toThrow(RecordingTampered);
      expect(() => parse(PREAMBLE + BLOCK + TRACE + forged)).toThrow(why);
    });
  }

  it('acts on an exec entry before its line ends (a successful exec never ends it)', () => {
    const s = sink();
    const p = new QemuLogParser(s);
    p.feed(Buffer.from(PREAMBLE + BLOCK + TRACE + '2 execve("/bin/true",{"/bin/true",NULL})', 'latin1'));
    expect(s.events.at(-1)).toBe('entry execve');
  });

  it('acts on a clone entry only once its whole argument list has arrived, wherever the chunks are cut', () => {
    const entry = '2 clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID,child_stack=0x0000004001000000,parent_tidptr=0x0000004001001000,tls=0x0000004001002000,child_tidptr=0x0000004001001000)';
    const head = PREAMBLE + BLOCK + TRACE;
    for (let cut = 1; cut <= entry.length; cut++) {
      const texts: string[] = [];
      const p = new QemuLogParser({ ...sink(), syscallEntry: (_name, text) => texts.push(text) });
      p.feed(Buffer.from(head + entry.slice(0, cut), 'latin1'));
      p.feed(Buffer.from(entry.slice(cut), 'latin1'));
      // Every entry the sink saw carries the flags that decide what the clone is.
      expect(texts.length, `cut at ${cut}`).toBeGreaterThan(0);
      for (const t of texts) expect(t, `cut at ${cut}`).toContain('CLONE_THREAD');
    }
  });
});

describe('what a syscall does to the log channel', () => {
  const [handed, own] = LOG_DESCRIPTORS;
  it('refuses writes, duplicates, flag changes and reopening of either log descriptor', () => {
    for (const line of [
      `write(${own},0x1,5) = 5`, `writev(${handed},0x1,0x1) = 5`, `pwrite64(${own},1,4,0,0,0) = 4`, `sendfile(${own},5,0,1,0,0) = 1`,
      `splice(5,0,${own},0,1,0) = 1`, `tee(5,${handed},1,0,1,0) = 1`, `copy_file_range(5,(nil),${own},(nil),1,0) = 1`, `vmsplice(${own},1,1,0,1,0) = 1`,
      `dup(${own}) = 7`, `dup2(${handed},1) = 1`, `dup3(${own},9,0) = 9`, `fcntl(${own},F_DUPFD,20) = 20`,
      `fcntl(${own},F_SETFL,O_RDONLY|O_NONBLOCK) = 0`, `ioctl(${own},FIONBIO,1) = 0`, `fchmod(${own},0777) = 0`,
      `openat(-100,"/proc/self/fd/${handed}",O_WRONLY) = 5`, `openat(-100,"/dev/fd/${own}",O_WRONLY) = 5`, `openat(-100,"/proc/2/fd/${own}",O_WRONLY) = 5`,
    ]) {
      const v = syscallVerdict(line, LOG_DESCRIPTORS);
      expect(v !== null && 'tampered' in v, line).toBe(true);
    }
  });

  it('lets the program use its own descriptors, and fails reopen attempts that failed', () => {
    for (const line of ['write(1,0x1,5) = 5', 'dup2(5,1) = 1', 'fcntl(5,F_SETFL,O_RDONLY|O_NONBLOCK) = 0', 'close(5) = 0', `openat(-100,"/proc/self/fd/${own}",O_RDONLY) = -1 errno=13 (Permission denied)`, 'fcntl(4,F_SETFD,1) = 0']) {
      expect(syscallVerdict(line, LOG_DESCRIPTORS), line).toBeNull();
    }
  });

  it('with one log per thread (qemu\'s own descriptor unknown), a close of a bad descriptor is nothing', () => {
    expect(entryVerdict('close', 'close(-1)', NaN)).toBeNull();
    expect(entryVerdict('close_range', 'close_range(3,-1,0)', NaN)).toBeNull();
    expect(entryVerdict('dup2', 'dup2(1,-1)', NaN)).toBeNull();
  });

  it('stops at exec, clone, and a close of the emulator\'s own descriptor (at the entry: no result follows)', () => {
    expect(entryVerdict('execve', 'execve("/bin/true",{"/bin/true",NULL})', own)).toMatchObject({ stop: 'exec' });
    expect(entryVerdict('clone', 'clone(CLONE_VM|CLONE_THREAD,...)', own)).toMatchObject({ stop: 'clone' });
    expect(entryVerdict('vfork', 'vfork()', own)).toMatchObject({ stop: 'clone' });
    expect(entryVerdict('close', `close(${own})`, own)).toMatchObject({ stop: 'log-closed' });
    expect(entryVerdict('close_range', 'close_range(3,4294967295,0)', own)).toMatchObject({ stop: 'log-closed' });
    expect(entryVerdict('dup2', `dup2(7,${own})`, own)).toMatchObject({ stop: 'log-closed' });
    expect(entryVerdict('close_range', 'close_range(3,4294967295,4)', own)).toBeNull();
    expect(entryVerdict('close', `close(${handed})`, own)).toBeNull();
    expect(entryVerdict('close', 'close(9)', own)).toBeNull();
  });
});
