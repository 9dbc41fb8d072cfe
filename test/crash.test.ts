/**
 * `ptscope crash`: the ELF core reader on built cores (every note kind,
 * truncation, wrong file types), and the whole pipeline on the crash corpus
 * (corpus/crashes: recorded under qemu, cores taken by re-running): the
 * root-cause set must contain the line marked ROOT CAUSE and stay small; a
 * core from another program must be refused. Builds, recordings and cores
 * are cached under build/crashes.
 */
import { copyFileSync, cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { importBundle } from '../src/sources/import/bundle-import.js';
import { InputError } from '../src/sources/import/safe-files.js';
import { mutateJson, type Json } from '../tools/fuzz-inputs.js';
import { Rng } from '../bench/synthetic-trace.js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/temp-dirs.js';
import { LineWriter } from '../src/cli/output.js';
import { runDumpCommand } from '../src/cli/dump-command.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import type { ManifestV2 } from '../src/sources/bundle/manifest.js';
import { analyzeCrash } from '../src/analyses/crash/crash.js';
import { CoreFile, CoreFileError } from '../src/sources/core-file.js';
import { crashCases, evaluateCase, prepareCase, type CaseResult, type CrashCase } from '../tools/eval-crashes.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

/** A minimal x86-64 core: one PT_NOTE (the given notes) and one PT_LOAD. */
function buildCore(notes: { type: number; desc: Buffer }[], load: { vaddr: number; data: Buffer; memsz: number }): Buffer {
  const noteBufs = notes.map((n) => {
    const name = Buffer.from('CORE\0\0\0\0');
    const head = Buffer.alloc(12);
    head.writeUInt32LE(5, 0);
    head.writeUInt32LE(n.desc.length, 4);
    head.writeUInt32LE(n.type, 8);
    const pad = Buffer.alloc((4 - (n.desc.length % 4)) % 4);
    return Buffer.concat([head, name, n.desc, pad]);
  });
  const noteData = Buffer.concat(noteBufs);
  const ehdr = Buffer.alloc(64);
  ehdr.writeUInt32BE(0x7f454c46, 0);
  ehdr[4] = 2;
  ehdr[5] = 1;
  ehdr[6] = 1;
  ehdr.writeUInt16LE(4, 16);
  ehdr.writeUInt16LE(62, 18);
  ehdr.writeBigUInt64LE(64n, 32);
  ehdr.writeUInt16LE(56, 54);
  ehdr.writeUInt16LE(2, 56);
  const notesOff = 64 + 2 * 56;
  const loadOff = notesOff + noteData.length;
  const ph = Buffer.alloc(112);
  ph.writeUInt32LE(4, 0);
  ph.writeBigUInt64LE(BigInt(notesOff), 8);
  ph.writeBigUInt64LE(BigInt(noteData.length), 32);
  ph.writeUInt32LE(1, 56);
  ph.writeUInt32LE(6, 60);
  ph.writeBigUInt64LE(BigInt(loadOff), 64);
  ph.writeBigUInt64LE(BigInt(load.vaddr), 72);
  ph.writeBigUInt64LE(BigInt(load.data.length), 88);
  ph.writeBigUInt64LE(BigInt(load.memsz), 96);
  return Buffer.concat([ehdr, ph, noteData, load.data]);
}

function prstatus(signal: number, regs: Record<string, bigint>): Buffer {
  const names = ['r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs'];
  const b = Buffer.alloc(336);
  b.writeUInt16LE(signal, 12);
  b.writeInt32LE(4242, 32);
  names.forEach((n, i) => b.writeBigUInt64LE(regs[n] ?? BigInt(i), 112 + i * 8));
  return b;
}

describe('ELF core reader', () => {
  const files = Buffer.alloc(16 + 24 + 10);
  files.writeBigUInt64LE(1n, 0);
  files.writeBigUInt64LE(4096n, 8);
  files.writeBigUInt64LE(0x400000n, 16);
  files.writeBigUInt64LE(0x401000n, 24);
  files.writeBigUInt64LE(2n, 32);
  files.write('/bin/true\0', 40);
  const siginfo = Buffer.alloc(128);
  siginfo.writeInt32LE(11, 0);
  siginfo.writeInt32LE(1, 8);
  siginfo.writeBigUInt64LE(0xdeadn, 16);
  const auxv = Buffer.alloc(48);
  auxv.writeBigUInt64LE(6n, 0);
  auxv.writeBigUInt64LE(4096n, 8);
  auxv.writeBigUInt64LE(9n, 16);
  auxv.writeBigUInt64LE(0x401020n, 24);
  const mem = Buffer.from([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
  const core = buildCore(
    [
      { type: 1, desc: prstatus(11, { rip: 0x401234n, rsp: 0x7ffe0000n }) },
      { type: 0x46494c45, desc: files },
      { type: 0x53494749, desc: siginfo },
      { type: 6, desc: auxv },
    ],
    { vaddr: 0x500000, data: mem, memsz: 0x1000 },
  );

  it('reads registers, NT_FILE, NT_SIGINFO, NT_AUXV and memory', () => {
    const c = CoreFile.parse(core);
    expect(c.signal).toBe(11);
    expect(c.pid).toBe(4242);
    expect(c.rip).toBe(0x401234);
    expect(c.reg('rsp')).toBe(0x7ffe0000n);
    expect(c.files).toEqual([{ start: 0x400000, end: 0x401000, offset: 2 * 4096, path: '/bin/true' }]);
    expect(c.siginfo).toEqual({ signo: 11, errno: 0, code: 1, addr: 0xdead });
    expect(c.auxv.get(9)).toBe(0x401020n);
    expect(c.read(0x500000, 8)).toBe(0x8877665544332211n);
    expect(c.read(0x500004, 2)).toBe(0x6655n);
    // Mapped but not dumped, and not mapped at all.
    expect(c.isMapped(0x500800)).toBe(true);
    expect(c.read(0x500800, 1)).toBeNull();
    expect(c.isMapped(0x600000)).toBe(false);
  });

  it('refuses truncated files and files that are not x86-64 cores', () => {
    expect(() => CoreFile.parse(core.subarray(0, core.length - 4))).toThrow(/truncated/);
    expect(() => CoreFile.parse(core.subarray(0, 100))).toThrow(CoreFileError);
    expect(() => CoreFile.parse(Buffer.from('hello world, not an elf file at all, not even close.........'))).toThrow(/not an ELF/);
    const exe = readFileSync('/bin/true');
    expect(() => CoreFile.parse(exe)).toThrow(/not a core file/);
    const noRegs = buildCore([{ type: 6, desc: auxv }], { vaddr: 0x500000, data: mem, memsz: 8 });
    expect(() => CoreFile.parse(noRegs)).toThrow(/NT_PRSTATUS/);
  });
});

describe('crash corpus: trace + core -> root cause', () => {
  const cases = crashCases();
  const results = new Map<string, CaseResult>();
  const evaluate = (c: CrashCase): CaseResult => {
    let r = results.get(c.name);
    if (r === undefined) results.set(c.name, (r = evaluateCase(c)));
    return r;
  };
  beforeAll(async () => {
    for (const c of cases) await prepareCase(c);
  }, 300_000);

  it('has the seven kinds of bug', () => {
    expect(cases.map((c) => c.name).sort()).toEqual(['heap_fptr', 'int_overflow', 'lib_memcpy', 'null_deref', 'off_by_one', 'stack_ret', 'uaf']);
  });

  for (const name of ['heap_fptr', 'int_overflow', 'lib_memcpy', 'null_deref', 'off_by_one', 'stack_ret', 'uaf']) {
    it(`${name}: the root-cause set holds the marked line and has at most 3 instructions`, () => {
      const c = cases.find((x) => x.name === name) as CrashCase;
      const r = evaluate(c);
      expect(r.report.core.matchesTrace).toBe(true);
      expect(r.report.crash.location.inMain || r.report.crash.location.module !== null || r.report.crash.faultAddress !== null).toBe(true);
      expect(r.lines).toContain(`${c.source}:${c.line}`);
      expect(r.setSize).toBeGreaterThan(0);
      expect(r.setSize).toBeLessThanOrEqual(3);
      expect(r.distance).toBeGreaterThan(0);
      // Every chain ends at the crash.
      for (const rc of r.report.rootCauses) expect(rc.chain[rc.chain.length - 1].kind).toBe('crash');
    });
  }

  it('the stack overflow is a store over a live return address; the heap overflow crosses objects', () => {
    const stack = evaluate(cases.find((x) => x.name === 'stack_ret')!).report;
    expect(stack.rootCauses[0].kind).toBe('out-of-bounds');
    expect(stack.rootCauses[0].what).toMatch(/return address/);
    const heap = evaluate(cases.find((x) => x.name === 'heap_fptr')!).report;
    expect(heap.rootCauses[0].what).toMatch(/heap overflow/);
    expect(heap.rootCauses[0].callSite?.location.line ?? heap.rootCauses[0].location.line).toMatch(/heap_fptr\.c:17$/);
    const ovf = evaluate(cases.find((x) => x.name === 'int_overflow')!).report;
    expect(ovf.rootCauses.some((c) => c.kind === 'overflow')).toBe(true);
  });

  /** null_deref recorded through `sh -c SCRIPT` (the program's path in place of PROGRAM): its bundle. */
  async function throughShell(script: string): Promise<string> {
    const c = cases.find((x) => x.name === 'null_deref')!;
    const work = temps.make('ptscope-crash-shell-');
    const program = join(work, 'null_deref');
    copyFileSync(c.binary, program);
    const output = join(work, 'shell.ptscope');
    await record(withRecordDefaults({ argv: ['/bin/sh', '-c', script.replace('PROGRAM', program)], output, allowRead: [program], timeoutSec: 60, maxInsns: 50_000_000, hardware: false, stdio: 'ignore', notice: () => {} }));
    return output;
  }

  it('a program a shell executes in place: the core is analysed against the exec\'d program\'s stream', async () => {
    const c = cases.find((x) => x.name === 'null_deref')!;
    const bundle = await throughShell('exec PROGRAM');
    const r = evaluateCase({ ...c, bundle });
    expect(r.report.program).toMatch(/\/null_deref$/);
    expect(r.report.core.matchesTrace).toBe(true);
    expect(r.lines).toContain(`${c.source}:${c.line}`);
  }, 120_000);

  it('a child that crashes while the shell goes on: the core is the child\'s, and so are the exit and the analysis', async () => {
    const c = cases.find((x) => x.name === 'null_deref')!;
    const bundle = await throughShell('PROGRAM; echo done');
    const m = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8')) as ManifestV2;
    expect(m.exit).toEqual({ status: 0, signal: null, stopped: null });
    const child = m.processes.find((p) => p.program?.path.endsWith('/null_deref'))!;
    expect(child.exit).toEqual({ status: null, signal: 'SIGSEGV', stopped: null });
    expect(m.core).toEqual({ file: 'core', pid: child.pid });
    expect(m.warnings).toContain(`process ${child.pid} was killed by SIGSEGV; the bundle's core is of that process`);
    const r = evaluateCase({ ...c, bundle });
    expect(r.report.signal).toBe('SIGSEGV');
    expect(r.report.core.matchesTrace).toBe(true);
    expect(r.lines).toContain(`${c.source}:${c.line}`);
  }, 120_000);

  it('two children crash: each stream ends at its own fault (by its own core), both exits are signals, both cores are kept', async () => {
    const a = cases.find((x) => x.name === 'null_deref')!;
    const b = cases.find((x) => x.name === 'uaf')!;
    const work = temps.make('ptscope-crash-two-');
    for (const c of [a, b]) copyFileSync(c.binary, join(work, c.name));
    const output = join(work, 'two.ptscope');
    const script = `${join(work, a.name)}; ${join(work, b.name)}; echo done`;
    await record(withRecordDefaults({ argv: ['/bin/sh', '-c', script], output, allowRead: [work], timeoutSec: 60, maxInsns: 50_000_000, hardware: false, stdio: 'ignore', notice: () => {} }));
    const m = JSON.parse(readFileSync(join(output, 'manifest.json'), 'utf8')) as ManifestV2;
    expect(m.exit).toEqual({ status: 0, signal: null, stopped: null });
    const child = (c: CrashCase) => m.processes.find((p) => p.program?.path.endsWith(`/${c.name}`))!;
    for (const c of [a, b]) expect(child(c).exit).toEqual({ status: null, signal: 'SIGSEGV', stopped: null });
    expect(m.core).toEqual({ file: 'core', pid: child(a).pid });
    expect(m.cores).toEqual([{ file: 'core', pid: child(a).pid }, { file: `core-${child(b).pid}`, pid: child(b).pid }]);
    expect(m.warnings).toContain(`process ${child(a).pid} was killed by SIGSEGV; the bundle's core is of that process`);
    expect(m.warnings).toContain(`process ${child(b).pid} was killed by SIGSEGV; its core is core-${child(b).pid} (crash --pid ${child(b).pid})`);
    // The packets that end each child's program (its last stream: after the exec) are those that end
    // its own recording: the last branch's target (uaf's call through a freed pointer) is its own.
    const tail = async (file: string): Promise<string[]> => {
      const out = new LineWriter(null);
      await runDumpCommand([file], out);
      out.flush();
      return out.text.trim().split('\n').slice(-4).map((l) => l.replace(/^[0-9a-f]+\s+/, ''));
    };
    for (const c of [a, b]) {
      const stream = m.streams.filter((s) => s.pid === child(c).pid).pop()!;
      expect(await tail(join(output, stream.file))).toEqual(await tail(join(c.bundle, 'trace.pt')));
    }
    // The bundle's core is the first child's, and its analysis is that program's; --pid picks the other.
    const r = evaluateCase({ ...a, bundle: output });
    expect(r.report.core.matchesTrace).toBe(true);
    expect(r.lines).toContain(`${a.source}:${a.line}`);
    const rb = analyzeCrash(output, { pid: child(b).pid });
    expect(rb.program).toMatch(/\/uaf$/);
    expect(rb.core.matchesTrace).toBe(true);
    expect(rb.rootCauses[0]?.kind).toBe('use-after-free');
    expect(() => analyzeCrash(output, { pid: 99999 })).toThrow(new RegExp(`no core of process 99999 \\(cores of processes ${child(a).pid}, ${child(b).pid}\\)$`));
    expect(() => analyzeCrash(output, { pid: child(b).pid, core: join(output, 'core') })).toThrow(/give --core or --pid, not both/);
    // The list is the bundle's input like any other: its files stay inside the bundle, its length is bounded.
    const tampered = (name: string, edit: (m: ManifestV2, dir: string) => void): string => {
      const dir = join(work, name);
      cpSync(output, dir, { recursive: true });
      const mm = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ManifestV2;
      edit(mm, dir);
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(mm));
      return dir;
    };
    expect(() => importBundle(tampered('up', (mm) => void (mm.cores![1]!.file = '../two.ptscope/core')))).toThrow(/cores\[1\]\.file: /);
    expect(() => importBundle(tampered('many', (mm) => void (mm.cores = Array.from({ length: 17 }, (_, i) => ({ file: 'core', pid: i + 1 })))))).toThrow(/cores: .*16/);
    const linked = tampered('link', (_, dir) => {
      rmSync(join(dir, `core-${child(b).pid}`));
      symlinkSync('/etc/passwd', join(dir, `core-${child(b).pid}`));
    });
    expect(() => importBundle(linked)).toThrow(/cores\[1\]\.file: .* resolves outside the bundle directory/);
    // The fuzzer's JSON mutations of the two fields: refused with an input error, or read with every core inside the bundle.
    const fuzzed = tampered('fuzzed', () => undefined);
    let read = 0;
    for (let i = 0; i < 400; i++) {
      const sub = parsedObject(mutateJson(new Rng(i + 1), { core: m.core ?? null, cores: m.cores ?? [] } as Json));
      if (sub === null) continue;
      writeFileSync(join(fuzzed, 'manifest.json'), JSON.stringify({ ...m, core: sub.core, cores: sub.cores }));
      try {
        const rec = importBundle(fuzzed);
        read++;
        for (const c of rec.cores) expect(c.path.startsWith(`${fuzzed}/`)).toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
      }
    }
    expect(read).toBeGreaterThan(10);
  }, 180_000);

  /** `text` as a JSON object, or null (a mutation may leave it unparseable, or not an object). */
  function parsedObject(text: string): { core?: unknown; cores?: unknown } | null {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return null;
    }
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as { core?: unknown; cores?: unknown }) : null;
  }

  it('names no root cause with a core from another program', () => {
    const a = cases.find((x) => x.name === 'stack_ret')!;
    const b = cases.find((x) => x.name === 'uaf')!;
    const r = analyzeCrash(a.bundle, { core: join(b.bundle, 'core') });
    expect(r.core.matchesTrace).toBe(false);
    expect(r.rootCauses).toEqual([]);
    expect(r.confidence).toBe('none');
    expect(r.notes.join('\n')).toMatch(/does not match/);
  });
});
