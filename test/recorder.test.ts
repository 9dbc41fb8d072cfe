/**
 * The emulated PT recorder end to end: record real programs under
 * qemu-user (sandboxed), then check that libipt (ptoracle insn, --cpu none,
 * the bundle's raw images) decodes the trace to exactly the emulator's
 * instruction sequence (count and FNV-1a 64 of the IPs), that ptscope dump
 * reads it without errors, and that ptscope flow gives the same sequence.
 *
 * Measurements (recording slowdown against a native run, trace bytes per
 * million instructions) are printed for the report.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDumpCommand } from '../src/cli/dump-command.js';
import { runFlowCommand } from '../src/cli/flow.js';
import { main } from '../src/cli/main.js';
import { LineWriter } from '../src/cli/output.js';
import { IpSequenceHash } from '../src/sources/recorder/ip-sequence-hash.js';
import { record, RecordError, type RecordOptions, type RecordResult } from '../src/sources/recorder/record.js';
import { DEFAULT_PSB_PERIOD, withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { readManifest } from '../src/sources/recorder/bundle.js';
import { REPO_ROOT, runOracle } from './helpers/oracle.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'recorder');
let work: string;
const bin: Record<string, string> = {};

function compile(name: string, source: string, flags: string[] = []): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-o', out, join(FIXTURES, source), ...flags], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc ${source}: ${res.stderr}`);
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-recorder-test-'));
  bin.static = compile('workload-static', 'workload.c', ['-static']);
  bin.dynamic = compile('workload-dynamic', 'workload.c');
  bin.crash = compile('crash', 'crash.c');
  bin.signals = compile('signals', 'signals.c');
  bin.spin = compile('spin', 'spin.c');
  let text = '';
  for (let i = 0; i < 300; i++) text += `line ${i}: the quick brown fox jumps over the lazy dog\n`;
  writeFileSync(join(work, 'input.txt'), text);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

let bundleSeq = 0;
async function rec(argv: string[], extra: Partial<RecordOptions> = {}): Promise<RecordResult> {
  return record(withRecordDefaults({
    argv,
    output: join(work, `b${bundleSeq++}.ptscope`),
    timeoutSec: 120,
    maxInsns: 200_000_000,
    psbPeriod: DEFAULT_PSB_PERIOD,
    stdio: 'pipe',
    notice: () => {},
    ...extra,
  }));
}

/** libipt's decode of a bundle: instruction count and IP hash. */
function oracleDecode(bundle: string): { insn: number; hash: string } {
  const m = readManifest(bundle);
  const text = runOracle(m.decode!.ptoracle, bundle);
  const insn = /^insn (\d+)$/m.exec(text);
  const hash = /^fnv1a64 ([0-9a-f]{16})$/m.exec(text);
  return { insn: Number(insn![1]), hash: hash![1] };
}

/** libipt's decode errors (ptxed-style error lines), if any. */
function oracleErrors(bundle: string): string[] {
  const m = readManifest(bundle);
  const args = m.decode!.ptoracle.map((a) => (a === '--hash' ? '--ips' : a));
  return runOracle(args, bundle)
    .split('\n')
    .filter((l) => l.startsWith('error'));
}

/** The ptxed-style argv of a bundle with absolute paths. */
function flowArgs(bundle: string): string[] {
  const m = readManifest(bundle);
  return m.decode!.ptxed.map((a, i, all) => {
    const prev = all[i - 1];
    if (prev === '--raw' || prev === '--pt') return join(bundle, a);
    return a;
  });
}

/** ptscope flow's decode: count and hash of the IP lines. */
function flowDecode(bundle: string): { insn: number; hash: string; errors: string[] } {
  const out = new LineWriter(null, 1 << 30);
  runFlowCommand(['--no-inst', ...flowArgs(bundle)], out);
  out.flush();
  const h = new IpSequenceHash();
  const errors: string[] = [];
  for (const line of out.text.split('\n')) {
    if (/^[0-9a-f]{16}$/.test(line)) h.add(Number(BigInt.asIntN(64, BigInt('0x' + line))));
    else if (line.includes('error')) errors.push(line);
  }
  return { insn: h.count, hash: h.hex(), errors };
}

function dumpErrors(bundle: string): { status: number; errors: string[] } {
  const out = new LineWriter(null, 1 << 30);
  const status = runDumpCommand([join(bundle, 'trace.pt')], out) as number;
  out.flush();
  return { status, errors: out.text.split('\n').filter((l) => /error/.test(l)) };
}

function nativeSeconds(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Record, then require libipt's exact agreement; returns the result for more checks. */
async function recordAndValidate(
  label: string,
  argv: string[],
  extra: Partial<RecordOptions> = {},
  { flow = true, measure = true }: { flow?: boolean; measure?: boolean } = {},
): Promise<RecordResult> {
  const res = await rec(argv, extra);
  const m = res.manifest;
  expect(m.instructions!.traced).toBeGreaterThan(0);
  const lib = oracleDecode(res.bundle);
  expect(lib).toEqual({ insn: m.instructions!.traced, hash: m.instructions!.fnv1a64 });
  const dump = dumpErrors(res.bundle);
  expect(dump.errors).toEqual([]);
  expect(dump.status).toBe(0);
  if (flow) {
    const f = flowDecode(res.bundle);
    expect(f.errors).toEqual([]);
    expect({ insn: f.insn, hash: f.hash }).toEqual(lib);
  }
  if (measure) {
    const native = nativeSeconds(argv);
    const perM = (m.trace!.bytes / m.instructions!.executed) * 1e6;
    console.log(
      `[recorder] ${label}: ${m.instructions!.executed} insns, ${m.trace!.bytes} trace bytes ` +
        `(${Math.round(perM)} B/Minsn), record ${res.seconds.toFixed(2)} s, native ${(native * 1000).toFixed(1)} ms, ` +
        `slowdown ${Math.round(res.seconds / native)}x`,
    );
  }
  return res;
}

describe('recorder: libipt decodes exactly what the emulator executed', () => {
  it('static C program', async () => {
    const res = await recordAndValidate('static C', [bin.static, 'a']);
    expect(res.stdout).toMatch(/^acc=\d+ first=0 len=255$/m);
    expect(res.manifest.exit).toEqual({ status: 0, signal: null, stopped: null });
    expect(res.manifest.images.map((i) => i.path)).toEqual([bin.static]);
    expect(res.manifest.instructions!.executed).toBe(res.manifest.instructions!.traced);
  });

  it('dynamic C program (ld.so and libc images)', async () => {
    const res = await recordAndValidate('dynamic C', [bin.dynamic]);
    const names = res.manifest.images.map((i) => i.path.split('/').pop());
    expect(names).toContain('libc.so.6');
    expect(names.some((n) => n!.startsWith('ld-linux'))).toBe(true);
    for (const im of res.manifest.images) expect(existsSync(join(res.bundle, im.file))).toBe(true);
  });

  it('dynamic C program unconfined: the loader and libraries are read through the host\'s links, none is run-time code', async () => {
    const res = await recordAndValidate('dynamic C --no-sandbox', [bin.dynamic], { sandbox: false }, { measure: false });
    const names = res.manifest.images.map((i) => i.path.split('/').pop());
    expect(names).toContain('libc.so.6');
    expect(names.some((n) => n!.startsWith('ld-linux'))).toBe(true);
    expect(res.manifest.images.filter((i) => i.runtime != null)).toEqual([]);
    expect(res.manifest.warnings.filter((w) => !/--no-sandbox/.test(w))).toEqual([]);
  });

  it('/bin/ls -la /', async () => {
    const res = await recordAndValidate('ls -la /', ['/bin/ls', '-la', '/']);
    expect(res.stdout).toMatch(/\betc\b/);
  });

  it('gzip -c of a small file', async () => {
    const res = await recordAndValidate('gzip -c', ['gzip', '-c', join(work, 'input.txt')]);
    expect(res.manifest.exit.status).toBe(0);
  });

  it('sha256sum of a file', async () => {
    const res = await recordAndValidate('sha256sum', ['sha256sum', join(work, 'input.txt')]);
    const native = spawnSync('sha256sum', [join(work, 'input.txt')], { encoding: 'utf8' }).stdout;
    expect(res.stdout).toBe(native);
  });

  it('python3 -S -c with a small script', async () => {
    // -S (no site import) keeps it near 20 M instructions: about 30 s here.
    const res = await recordAndValidate('python3 -S -c', ['/usr/bin/python3', '-S', '-c', 'print(sum(x * x for x in range(100)))'], {}, { flow: false });
    expect(res.stdout.trim()).toBe('328350');
  }, 300_000);
});

describe('recorder: crashes, signals, limits', () => {
  it('a crashing program: trace up to the faulting store, signal in the manifest', async () => {
    const res = await recordAndValidate('crash', [bin.crash]);
    const m = res.manifest;
    expect(m.exit).toEqual({ status: null, signal: 'SIGSEGV', stopped: null });
    // The trace ends with FUP(faulting IP), TIP.PGD: the store is never reported as executed.
    const out = new LineWriter(null, 1 << 30);
    runDumpCommand([join(res.bundle, 'trace.pt')], out);
    out.flush();
    const lines = out.text.trim().split('\n');
    expect(lines.at(-1)).toMatch(/tip\.pgd\s+0: \?+/);
    expect(lines.at(-2)).toMatch(/fup/);
    const objdump = spawnSync('objdump', ['-d', bin.crash], { encoding: 'utf8' }).stdout;
    // The store through the null pointer in main: `mov %reg,(%rax)` after loading `target`.
    const mainBody = objdump.slice(objdump.indexOf('<main>:'));
    const store = /^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*mov\s+%\w+,\(%r\w+\)/m.exec(mainBody);
    expect(store).not.toBeNull();
    const base = BigInt(m.images.find((i) => i.path === bin.crash)!.address) - BigInt(m.images.find((i) => i.path === bin.crash)!.offset);
    const faultIp = base + BigInt('0x' + store![1]);
    expect(lines.at(-2)).toContain(faultIp.toString(16).padStart(8, '0').slice(-8));
  });

  it('signals: handler after raise(), timer signals in a loop, a handled SIGSEGV', async () => {
    const res = await recordAndValidate('signals', [bin.signals]);
    expect(res.stdout).toMatch(/usr1=1 alarms=[3-9]\d* faulted=1 n>0=1/);
    const signals = res.manifest.stats.signals as string[];
    expect(signals).toContain('SIGUSR1');
    expect(signals).toContain('SIGALRM');
    expect(signals).toContain('SIGSEGV');
    expect(res.manifest.warnings).toEqual([]);
    expect(oracleErrors(res.bundle)).toEqual([]);
  });

  it('--max-insns stops the program and keeps a decodable trace', async () => {
    const res = await recordAndValidate('budget', [bin.spin], { maxInsns: 200_000 }, { measure: false });
    const m = res.manifest;
    expect(m.exit.stopped).toBe('budget');
    expect(m.instructions!.executed).toBeGreaterThanOrEqual(200_000);
    expect(m.instructions!.executed).toBeLessThan(200_000 + 4096);
    expect(m.warnings).toContain('recording stopped: the program ran --max-insns 200000 instructions; the trace up to there is kept; try a larger --max-insns');
  });

  it('--timeout kills the program and keeps a decodable trace', async () => {
    const res = await recordAndValidate('timeout', [bin.spin], { timeoutSec: 2 }, { measure: false });
    expect(res.manifest.exit.stopped).toBe('timeout');
    expect(res.manifest.exit.signal).toBeNull();
    expect(res.manifest.warnings.filter((w) => w.startsWith('recording stopped:'))).toEqual([
      'recording stopped: the program ran past --timeout 2 s (under emulation it runs far slower than natively); the trace up to there is kept; try a larger --timeout (0: none)',
    ]);
  });
});

describe('recorder: encoder configurations decode exactly', () => {
  const variants: Array<[string, Partial<RecordOptions>]> = [
    ['no return compression', { retCompression: false }],
    ['timing tsc,mtc,cyc', { timing: { tsc: true, mtc: true, cyc: true } }],
    ['TNT-64 and PSB every 256 bytes', { longTnt: true, psbPeriod: 256 }],
  ];
  for (const [name, extra] of variants) {
    it(name, async () => {
      await recordAndValidate(`dynamic C, ${name}`, [bin.dynamic], extra);
    });
  }

  it('return compression makes the trace smaller than --noretcomp', async () => {
    const on = await rec([bin.static]);
    const off = await rec([bin.static], { retCompression: false });
    expect(on.manifest.instructions!.fnv1a64).toBe(off.manifest.instructions!.fnv1a64);
    expect(on.manifest.trace!.bytes).toBeLessThan(off.manifest.trace!.bytes);
  });

  it('IP filter: only the main binary is traced', async () => {
    const probe = await rec([bin.dynamic]);
    const main = probe.manifest.images.find((i) => i.path === bin.dynamic)!;
    const from = Number(BigInt(main.address));
    const res = await recordAndValidate('filter', [bin.dynamic], { ranges: [{ from, to: from + main.size - 1 }] }, { measure: false });
    const m = res.manifest;
    expect(m.instructions!.traced).toBeGreaterThan(1000);
    expect(m.instructions!.traced).toBeLessThan(m.instructions!.executed / 2);
  });

  it('snapshot: only the last KiB at PSB granularity, decodable alone', async () => {
    const res = await recordAndValidate('snapshot', ['/bin/ls', '-la', '/'], { snapshotBytes: 8192 }, { measure: false });
    const t = res.manifest.trace!;
    expect(t.bytes).toBeLessThanOrEqual(8192);
    expect(t.bytes).toBeGreaterThan(0);
    expect(t.snapshotStart).toBe(t.fullBytes - t.bytes);
    expect(res.manifest.instructions!.traced).toBeLessThan(res.manifest.instructions!.executed);
  });
});

describe('record: bad input', () => {
  it('a missing program: one clear error, no bundle', async () => {
    const out = join(work, 'missing.ptscope');
    await expect(rec(['/nonexistent/prog'], { output: out })).rejects.toThrow(RecordError);
    await expect(rec(['/nonexistent/prog'], { output: out })).rejects.toThrow(/program not found/);
    expect(existsSync(out)).toBe(false);
  });

  it('not an ELF: refused', async () => {
    await expect(rec([join(work, 'input.txt')])).rejects.toThrow(/not an ELF/);
  });

  it('a #! script records its interpreter on it, with the line\'s argument, as execve runs it', async () => {
    const script = join(work, 'args.sh');
    writeFileSync(script, '#!/bin/sh -e\necho "args: $*"\n', { mode: 0o755 });
    const notes: string[] = [];
    const res = await rec([script, 'a', 'b c'], { notice: (l) => notes.push(l) });
    expect(res.stdout).toBe('args: a b c\n');
    expect(res.manifest.program.argv).toEqual(['/bin/sh', '-e', script, 'a', 'b c']);
    expect(notes[0]).toBe(`${script} is a script: recording its interpreter (/bin/sh -e ${script})`);
    const relative = join(work, 'rel.sh');
    writeFileSync(relative, '#!sh\n', { mode: 0o755 });
    await expect(rec([relative])).rejects.toThrow(/its #! line names no absolute interpreter/);
    const nested = join(work, 'nested.sh');
    writeFileSync(nested, `#!${script}\n`, { mode: 0o755 });
    await expect(rec([nested])).rejects.toThrow(/is a script too/);
  });

  it('qemu not installed: refused with the package name', async () => {
    const path = process.env.PATH;
    process.env.PATH = work;
    try {
      await expect(rec([bin.static])).rejects.toThrow(/qemu-user/);
    } finally {
      process.env.PATH = path;
    }
  });

  it('CLI: one line on stderr, exit status 2, no partial bundle left', async () => {
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stderr.write;
    let status: number;
    try {
      status = await main(['record', '-o', join(work, 'cli.ptscope'), '--', '/nonexistent/prog']);
    } finally {
      process.stderr.write = orig;
    }
    expect(status).toBe(2);
    expect(writes.join('').trim().split('\n')).toHaveLength(1);
    expect(readdirSync(work).filter((n) => n.includes('cli.ptscope'))).toEqual([]);
  });

  it('CLI: a recording prints the bundle summary', async () => {
    const out = join(work, 'cli-ok.ptscope');
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = (() => true) as typeof process.stderr.write;
    let status: number;
    try {
      status = await main(['record', '-o', out, '--', bin.static]);
    } finally {
      process.stderr.write = orig;
    }
    expect(status).toBe(0);
    expect(readManifest(out).recorder).toBe('qemu');
  });
});
