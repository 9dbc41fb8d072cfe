/**
 * The perf.data exporter against the real consumer: Debian's `perf script`
 * (linux-perf 6.1) must decode the Intel PT data we write, over programs
 * assembled here, and print the same instructions as ptscope's own
 * decoder does on the imported file.
 *
 * Needs `perf` (Debian package linux-perf), `nasm` and `ld`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { fup, modeExec, psb, psbEnd, tip, tipPgd, tipPge, tnt64, tnt8, tsc } from '../src/packets/encoder.js';
import type { Packet } from '../src/packets/packet.js';
import { encodeTrace } from '../src/packets/trace-writer.js';
import { defaultIntelPtInfo, INTEL_PT_CONFIG } from '../src/sources/perf-data/auxtrace-info.js';
import { exportInputFrom, exportPerfData, type ExportImage, type ExportInput } from '../src/sources/perf-data/bundle-to-perf.js';
import { importBundle } from '../src/sources/import/bundle-import.js';
import { flowInputs, type PerfDataModel, readPerfData } from '../src/sources/perf-data/perf-data.js';
import { type AuxBuffer, writePerfData } from '../src/sources/perf-data/writer.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { forEachInstruction } from './helpers/insn-loop.js';

const have = (cmd: string, arg = '--version'): boolean => spawnSync(cmd, [arg], { stdio: 'ignore' }).status === 0;
const toolsPresent = have('perf') && have('nasm', '-v') && have('ld');
const recorderPresent = toolsPresent && have('qemu-x86_64') && have('gcc');

const dir = mkdtempSync(join(tmpdir(), 'ptscope-perf-script-'));
afterAll(() => { if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true }); });

/** Assemble and link a static program; returns its path and instruction addresses in program order. */
function assemble(name: string, source: string, ldArgs: string[] = []): { path: string; insns: number[]; symbols: Map<string, number> } {
  const asm = join(dir, `${name}.asm`);
  const obj = join(dir, `${name}.o`);
  const path = join(dir, name);
  writeFileSync(asm, source);
  execFileSync('nasm', ['-f', 'elf64', asm, '-o', obj]);
  execFileSync('ld', [...ldArgs, '-o', path, obj]);
  const dump = execFileSync('objdump', ['-d', '--no-show-raw-insn', path], { encoding: 'utf8' });
  const insns = [...dump.matchAll(/^\s+([0-9a-f]+):\t/gm)].map((m) => parseInt(m[1]!, 16));
  const symbols = new Map<string, number>();
  for (const line of execFileSync('nm', [path], { encoding: 'utf8' }).split('\n')) {
    const m = /^([0-9a-f]+) \w (\S+)$/.exec(line);
    if (m) symbols.set(m[2]!, parseInt(m[1]!, 16));
  }
  return { path, insns, symbols };
}

/** The text segment mapping of a static nasm program: file offset 0x1000 at 0x401000. */
function textMapping(path: string, pid: number, time: bigint, cpu: number) {
  return { kind: 'mmap2' as const, time, cpu, pid, tid: pid, addr: 0x401000n, len: 0x1000n, pgoff: 0x1000n, filename: path };
}

/** IPs of `perf script --itrace=i0ns`; fails the test with perf's stderr if perf fails. */
function perfScriptIps(file: string, extra: string[] = []): { ips: number[]; lines: string[] } {
  const r = spawnSync('perf', ['script', '-i', file, '--itrace=i0ns', '-F', 'ip', ...extra], { encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(r.status, `perf script failed: ${r.stderr}`).toBe(0);
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  return { ips: lines.map((l) => parseInt(l.trim().split(/\s+/)[0]!, 16)), lines };
}

function perfScript(file: string, args: string[]): string[] {
  const r = spawnSync('perf', ['script', '-i', file, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(r.status, `perf script failed: ${r.stderr}`).toBe(0);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

/** ptscope's instruction decoder over an imported perf.data (stream 0), through the flow seam. */
function ptscopeIps(model: PerfDataModel): number[] {
  const input = flowInputs(model)[0]!;
  const bytes = new Uint8Array(input.source.size);
  input.source.read(bytes, 0, 0, bytes.length);
  const late = 1n << 62n;
  const task = input.taskAt(late);
  expect(task).not.toBeNull();
  const { image, missing } = input.imageFor(task!.pid, late);
  expect(missing).toEqual([]);
  const ips: number[] = [];
  forEachInstruction(new InsnDecoder(new PacketDecoder(bytes), input.config, image), 'ptscope', (insn) => ips.push(insn.ip));
  return ips;
}

/** FNV-1a 64 over each IP as 8 little-endian bytes: the recorder manifest's `instructions.fnv1a64`. */
function fnv1a64(ips: number[]): string {
  let h = 0xcbf29ce484222325n;
  const b = Buffer.alloc(8);
  for (const ip of ips) {
    b.writeBigUInt64LE(BigInt(ip));
    for (const x of b) h = BigInt.asUintN(64, (h ^ BigInt(x)) * 0x100000001b3n);
  }
  return h.toString(16).padStart(16, '0');
}

/** The export input of one program with one thread (pid 1000) named `small`. */
function oneThread(trace: Uint8Array, images: ExportImage[]): ExportInput {
  return { tasks: [{ pid: 1000, tid: 1000, parent: null, comm: { name: 'small', exec: true } }], streams: [{ pid: 1000, tid: 1000, trace, images }] };
}

/** Split 64-bit value for TSC packets. */
const tsc64 = (v: bigint): Packet => tsc(Number(v >> 32n), Number(v & 0xffffffffn));

const SMALL = `bits 64
global _start
section .text
_start:
  mov ecx, 3
.loop:
  dec ecx
  jnz .loop
  call f
  mov eax, 60
  xor edi, edi
  syscall
f:
  ret
`;

const LOOP = `bits 64
global _start
section .text
_start:
  mov ecx, 200
.loop:
  dec ecx
  jnz .loop
  lea rax, [rel g]
  call rax
  mov eax, 60
  xor edi, edi
  syscall
g:
  ret
`;

/**
 * The LOOP program and its trace: 199 taken jnz then one not taken, in
 * TNT-64 packets of up to 47 bits with a PSB+ after the first packet (the
 * next instruction is then the loop head), the indirect call's TIP and the
 * compressed return's TNT bit. Returns the executed IPs in order.
 */
function loopCase(name: string): { path: string; trace: Uint8Array; expected: number[] } {
  const loop = assemble(name, LOOP);
  const [lmov, ldec, ljnz, llea, lcall, lmov60, lxor, lsys, lret] = loop.insns;
  const expected = [lmov!];
  for (let i = 0; i < 200; i++) expected.push(ldec!, ljnz!);
  expected.push(llea!, lcall!, lret!, lmov60!, lxor!, lsys!);
  const pkts: Packet[] = [psb(), psbEnd(), modeExec(true, false), tipPge(3, 0, lmov!)];
  const bits = [...Array(199).fill(1), 0] as number[];
  for (let at = 0, n = 0; at < bits.length; n++) {
    const chunk = bits.slice(at, at + 47);
    at += chunk.length;
    pkts.push(tnt64(parseInt(chunk.join(''), 2), chunk.length));
    if (n === 0) pkts.push(psb(), modeExec(true, false), fup(3, 0, ldec!), psbEnd());
  }
  pkts.push(tip(3, 0, lret!), tnt8(1, 1), tipPgd(0, 0, 0));
  return { path: loop.path, trace: encodeTrace(pkts), expected };
}

describe('the tools these checks need', () => {
  it('has perf, nasm, ld, qemu-x86_64 and gcc (scripts/install-test-deps.sh installs them)', () => {
    expect(toolsPresent).toBe(true);
    expect(recorderPresent).toBe(true);
  });
});

describe('perf script (linux-perf 6.1) decodes our perf.data', () => {
  const small = toolsPresent ? assemble('small', SMALL) : null!;
  // objdump order: mov, dec, jnz, call, mov, xor, syscall, ret.
  const [mov, dec, jnz, call, mov60, xor, sys, ret] = small?.insns ?? [];
  const smallExpected = [mov, dec, jnz, dec, jnz, dec, jnz, call, ret, mov60, xor, sys];
  // Taken, taken, not taken (the loop), taken (the compressed return).
  const smallTrace = (withTsc: bigint | null): Uint8Array =>
    encodeTrace([
      psb(),
      ...(withTsc !== null ? [tsc64(withTsc)] : []),
      psbEnd(),
      modeExec(true, false),
      tipPge(3, 0, 0x401000),
      tnt8(0b1101, 4),
      tipPgd(0, 0, 0),
    ]);

  /** The small program traced on cpu 0 (per-cpu mmaps, no timestamps), as pid 4242. */
  const writeSmallPerCpu = (file: string): void => {
    const pid = 4242;
    writePerfData(file, {
      info: defaultIntelPtInfo(8),
      ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch,
      sideband: [
        { kind: 'comm', time: 1n, cpu: 0, pid, tid: pid, comm: 'small', exec: true },
        textMapping(small.path, pid, 2n, 0),
        { kind: 'itrace-start', time: 3n, cpu: 0, pid, tid: pid },
      ],
      aux: [{ idx: 0, cpu: 0, tid: -1, data: smallTrace(null) }],
    });
  };

  it('per-cpu recording without timestamps: exactly the executed instructions, with symbols', () => {
    expect(small.insns).toHaveLength(8);
    const file = join(dir, 'small-percpu.data');
    writeSmallPerCpu(file);
    const { ips } = perfScriptIps(file);
    expect(ips).toEqual(smallExpected);
    const model = readPerfData(file);
    try {
      expect(ptscopeIps(model)).toEqual(smallExpected);
    } finally {
      model.close();
    }
    const syms = perfScript(file, ['--itrace=i0ns', '-F', 'comm,tid,ip,sym']);
    expect(syms[0]).toMatch(/^\s*small\s+4242\s+401000 _start$/);
    expect(syms[8]).toMatch(new RegExp(`${ret!.toString(16)} f$`));
  });

  it('per-thread recording with TSC: timed decoding, times from the trace', () => {
    const file = join(dir, 'small-perthread.data');
    const pid = 777;
    const t0 = 100_000_000_000n; // 100 s of perf time with the identity conversion
    const info = defaultIntelPtInfo(8);
    info.perCpuMmaps = false;
    writePerfData(file, {
      info,
      ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch | INTEL_PT_CONFIG.tsc,
      sideband: [
        { kind: 'comm', time: t0 - 30n, cpu: -1, pid, tid: pid, comm: 'small', exec: true },
        textMapping(small.path, pid, t0 - 20n, -1),
      ],
      // No reference given: the writer takes the first PSB+'s TSC (perf needs one).
      aux: [{ idx: 0, cpu: -1, tid: pid, data: smallTrace(t0) }],
    });
    const lines = perfScript(file, ['--itrace=i0ns', '-F', 'tid,time,ip']);
    expect(lines.map((l) => parseInt(l.trim().split(/\s+/)[2]!, 16))).toEqual(smallExpected);
    for (const l of lines) expect(l).toMatch(/^\s*777\s+100\.000000:\s+[0-9a-f]+$/);
    const model = readPerfData(file);
    try {
      expect(model.settings.tsc).toBe(true);
      expect(model.streams[0]!.fragments[0]!.reference).toBe(t0);
      expect(ptscopeIps(model)).toEqual(smallExpected);
    } finally {
      model.close();
    }
  });

  it('branches (--itrace=b): the taken branches with their targets', () => {
    const file = join(dir, 'small-branches.data');
    writeSmallPerCpu(file);
    const lines = perfScript(file, ['--itrace=b', '-F', 'ip,addr']);
    const pairs = lines.map((l) => l.trim().split(/\s+=>\s+|\s+/).map((x) => parseInt(x, 16)));
    // Trace begin (0 => _start), jnz taken twice, call, ret, trace end at the syscall.
    expect(pairs).toEqual([
      [0, mov],
      [jnz, dec],
      [jnz, dec],
      [call, ret],
      [ret, mov60],
      [sys, 0],
    ]);
  });

  it('a longer trace: TNT-64, an indirect call, a PSB+ in the middle, split over two AUXTRACE buffers', () => {
    const { path: loopPath, trace, expected } = loopCase('loop');
    const pid = 99;
    const write = (file: string, cut: number): void => {
      const aux: AuxBuffer[] = [
        { idx: 0, cpu: 0, tid: -1, data: trace.subarray(0, cut) },
        { idx: 0, cpu: 0, tid: -1, data: trace.subarray(cut) },
      ];
      writePerfData(file, {
        info: defaultIntelPtInfo(8),
        ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch,
        sideband: [
          { kind: 'comm', time: 1n, cpu: 0, pid, tid: pid, comm: 'loop', exec: true },
          textMapping(loopPath, pid, 2n, 0),
          { kind: 'itrace-start', time: 3n, cpu: 0, pid, tid: pid },
        ],
        aux,
      });
    };
    // Split inside the first TNT-64 packet (bytes 27..34), at a multiple of 8
    // so that no padding is added: ptscope's stream joins the two halves.
    const midPacket = join(dir, 'loop-mid.data');
    write(midPacket, 32);
    const model = readPerfData(midPacket);
    try {
      expect(model.streams[0]!.fragments).toHaveLength(2);
      const ours = ptscopeIps(model);
      expect(ours).toHaveLength(407);
      expect(ours).toEqual(expected);
    } finally {
      model.close();
    }
    // Split at a packet boundary (after that TNT-64): the writer's padding is
    // PAD packets between packets, and perf decodes the two buffers as one.
    // (perf 6.1 does not join a packet split across buffers: it reports a
    // bad packet there and resynchronizes at the next PSB.)
    const atBoundary = join(dir, 'loop-boundary.data');
    write(atBoundary, 35);
    expect(perfScriptIps(atBoundary).ips).toEqual(expected);
    const m2 = readPerfData(atBoundary);
    try {
      expect(m2.streams[0]!.size).toBe(40 + ((trace.length - 35 + 7) & ~7));
      expect(ptscopeIps(m2)).toEqual(expected);
    } finally {
      m2.close();
    }
  });

  it('a longer trace in one buffer: perf agrees instruction by instruction', () => {
    const { path: loopPath, trace, expected } = loopCase('loop2');
    const pid = 98;
    const file = join(dir, 'loop-one.data');
    writePerfData(file, {
      info: defaultIntelPtInfo(8),
      ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch,
      sideband: [
        { kind: 'comm', time: 1n, cpu: 0, pid, tid: pid, comm: 'loop', exec: true },
        textMapping(loopPath, pid, 2n, 0),
        { kind: 'itrace-start', time: 3n, cpu: 0, pid, tid: pid },
      ],
      aux: [{ idx: 0, cpu: 0, tid: -1, data: trace }],
    });
    expect(perfScriptIps(file).ips).toEqual(expected);
    const model = readPerfData(file);
    try {
      expect(ptscopeIps(model)).toEqual(expected);
    } finally {
      model.close();
    }
  });

  it('exports a recorder bundle (manifest + trace.pt + image copies) that perf decodes', () => {
    const bundle = join(dir, 'bundle');
    mkdirSync(join(bundle, 'images'), { recursive: true });
    copyFileSync(small.path, join(bundle, 'images', '0-small'));
    const t0 = 0x20_0000_0000n;
    writeFileSync(join(bundle, 'trace.pt'), smallTrace(t0));
    writeFileSync(
      join(bundle, 'manifest.json'),
      JSON.stringify({
        format: 'ptscope-bundle',
        version: 1,
        recorder: 'qemu',
        program: { argv: ['./small'], path: '/somewhere/small', cwd: '/somewhere' },
        exit: { status: 0, signal: null, stopped: null },
        trace: { file: 'trace.pt', bytes: 0, fullBytes: 0, snapshotStart: 0 },
        images: [{ file: 'images/0-small', path: '/somewhere/small', offset: 0x1000, size: 0x18, address: '0x401000' }],
        config: { retCompression: true, timing: { tsc: true, mtc: false, cyc: false } },
        encoder: { cpu: 'none', mtcFreq: 0, cpuid15: { eax: 1, ebx: 2 }, nominalFreq: null, tscBase: 0 },
      }),
    );
    const input = exportInputFrom(importBundle(bundle));
    const file = join(dir, 'bundle.data');
    const result = exportPerfData(file, input);
    expect(result.timed).toBe(true);
    expect(result.warnings).toEqual([]);
    const lines = perfScript(file, ['--itrace=i0ns', '-F', 'comm,time,ip,sym']);
    expect(lines.map((l) => parseInt(l.trim().split(/\s+/)[2]!, 16))).toEqual(smallExpected);
    expect(lines[0]).toMatch(/^\s*small\s+137\.438953:\s+401000 _start$/);

    const model = readPerfData(file);
    try {
      expect(model.sideband.mappings.map((m) => [m.addr, m.len, m.pgoff, m.filename])).toEqual([
        [0x401000n, 0x18n, 0x1000n, join(bundle, 'images', '0-small')],
      ]);
      expect([model.decoderConfig.cpuid15Eax, model.decoderConfig.cpuid15Ebx]).toEqual([1, 2]);
      expect(ptscopeIps(model)).toEqual(smallExpected);
    } finally {
      model.close();
    }
  });

  it('writes HEADER_BUILD_ID for ELF images; perf checks the file against it', () => {
    const withId = assemble('small-bid', SMALL, ['--build-id']);
    const note = execFileSync('readelf', ['-n', withId.path], { encoding: 'utf8' });
    const id = /Build ID: ([0-9a-f]+)/.exec(note)![1]!;
    const image = { file: withId.path, offset: 0x1000, size: 0x18, address: 0x401000n };
    const file = join(dir, 'small-bid.data');
    exportPerfData(file, oneThread(smallTrace(null), [image]));
    const model = readPerfData(file);
    try {
      expect(model.features.buildIds).toEqual([{ pid: -1, cpumode: 2, buildId: id, filename: withId.path }]);
    } finally {
      model.close();
    }
    const listed = spawnSync('perf', ['buildid-list', '-i', file], { encoding: 'utf8' });
    expect(listed.stdout.trim()).toBe(`${id} ${withId.path}`);
    const ok = perfScript(file, ['--itrace=i0ns', '-F', 'ip,sym']);
    expect(ok[0]).toMatch(/401000 _start$/);
    // A build id that does not match the file: perf still decodes (it has
    // the bytes) but no longer trusts the file's symbols.
    const wrong = join(dir, 'small-wrong-bid.data');
    writePerfData(wrong, {
      info: defaultIntelPtInfo(8),
      ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch,
      sideband: [
        { kind: 'comm', time: 1n, cpu: 0, pid: 5, tid: 5, comm: 'small', exec: true },
        textMapping(withId.path, 5, 2n, 0),
        { kind: 'itrace-start', time: 3n, cpu: 0, pid: 5, tid: 5 },
      ],
      aux: [{ idx: 0, cpu: 0, tid: -1, data: smallTrace(null) }],
      buildIds: [{ pid: -1, cpumode: 2, buildId: '00'.repeat(20), filename: withId.path }],
    });
    const bad = perfScript(wrong, ['--itrace=i0ns', '-F', 'ip,sym']);
    expect(bad.map((l) => parseInt(l.trim(), 16))).toEqual(smallExpected);
    expect(bad[0]).toMatch(/401000 \[unknown\]$/);
  });

  it('a thread that execs: one queue, COMM exec and the new program\'s MMAP2 between its streams; timed, perf decodes each with its own program', () => {
    // A second program at the same address (exec replaces the image): a nop, then SMALL's code.
    const after = assemble('small-exec', SMALL.replace('_start:\n', '_start:\n  nop\n'));
    const [nop, ...rest] = after.insns;
    const afterExpected = [nop!, ...[0, 1, 2, 1, 2, 1, 2, 3, 7, 4, 5, 6].map((i) => rest[i]!)];
    const t0 = 100_000_000_000n;
    const image = (path: string, size: number): ExportImage => ({ file: path, offset: 0x1000, size, address: 0x401000n });
    const input = (tsc: boolean, execTsc = t0 + 1000n): ExportInput => ({
      ...oneThread(smallTrace(t0), [image(small.path, 0x18)]),
      streams: [
        { pid: 1000, tid: 1000, trace: smallTrace(t0), images: [image(small.path, 0x18)] },
        { pid: 1000, tid: 1000, trace: smallTrace(execTsc), images: [image(after.path, 0x19)], execComm: 'small-exec' },
      ],
      timing: { tsc, mtc: false, cyc: false, mtcFreq: 0 },
    });
    const file = join(dir, 'exec.data');
    const result = exportPerfData(file, input(true));
    expect(result).toMatchObject({ timed: true, queues: 1, warnings: [] });
    const lines = perfScript(file, ['--itrace=i0ns', '-F', 'comm,tid,ip']);
    expect(lines.map((l) => parseInt(l.trim().split(/\s+/)[2]!, 16))).toEqual([...smallExpected, ...afterExpected]);
    expect(lines.map((l) => l.trim().split(/\s+/)[0])).toEqual([...smallExpected.map(() => 'small'), ...afterExpected.map(() => 'small-exec')]);
    const model = readPerfData(file);
    try {
      expect(model.streams.map((s) => [s.idx, s.tid, s.fragments.length])).toEqual([[0, 1000, 2]]);
      expect(model.sideband.tasks.get(1000)!.comms.map((c) => [c.comm, c.exec])).toEqual([['small', true], ['small-exec', true]]);
    } finally {
      model.close();
    }
    // Without timestamps perf decodes the thread once, at its exit: the exporter says so.
    const untimed = exportPerfData(join(dir, 'exec-untimed.data'), input(false));
    expect(untimed.warnings).toEqual(['[1000/1000] ran several programs (exec): without timestamps perf decodes the whole thread with the images it has at its exit']);
    // A clock that restarts with the new program cannot place the exec between the two: the exporter says so.
    const restarted = exportPerfData(join(dir, 'exec-restart.data'), input(true, t0));
    expect(restarted.timed).toBe(true);
    expect(restarted.warnings).toEqual([
      `[1000/1000] ran several programs (exec), but the clock of its stream for small-exec restarts (first TSC 0x${t0.toString(16)}, not after the last before the exec, 0x${t0.toString(16)}): perf decodes the instructions before the exec with the new program's images`,
    ]);
  });

  it('falls back to timeless decoding when the trace has no TSC to start from', () => {
    const file = join(dir, 'fallback.data');
    const result = exportPerfData(file, {
      ...oneThread(smallTrace(null), [{ file: small.path, offset: 0x1000, size: 0x18, address: 0x401000n }]),
      timing: { tsc: true, mtc: false, cyc: false, mtcFreq: 0 },
    });
    expect(result.timed).toBe(false);
    expect(result.warnings.join()).toMatch(/no TSC/);
    expect(perfScriptIps(file).ips).toEqual(smallExpected);
  });
});

const PROGRAM_C = `#include <stdio.h>
static int sq(int x) { return x * x; }
static int cube(int x) { return x * x * x; }
int main(int argc, char **argv) {
  int (*f[2])(int) = { sq, cube };
  long sum = 0;
  for (int i = 0; i < 300; i++) sum += f[(i + argc) & 1](i % 17);
  printf("%ld\\n", sum);
  return 0;
}
`;

describe('recorder bundle -> perf.data -> perf script', () => {
  const src = join(dir, 'prog.c');
  const exe = join(dir, 'prog-static');
  if (recorderPresent) {
    writeFileSync(src, PROGRAM_C);
    execFileSync('gcc', ['-O1', '-static', '-o', exe, src]);
  }

  for (const variant of [
    { name: 'no timing', timing: {}, retCompression: true, longTnt: false },
    { name: 'TSC+MTC, no return compression, TNT-64', timing: { tsc: true, mtc: true }, retCompression: false, longTnt: true },
  ]) {
    it(`perf decodes exactly the recorded instructions (${variant.name})`, async () => {
      const bundle = join(dir, `rec-${variant.longTnt ? 'b' : 'a'}.ptscope`);
      const rec = await record(withRecordDefaults({
        argv: [exe],
        output: bundle,
        force: true,
        sandbox: false,
        maxInsns: 10_000_000,
        retCompression: variant.retCompression,
        longTnt: variant.longTnt,
        timing: variant.timing,
        hardware: false,
        stdio: 'ignore',
        notice: () => {},
      }));
      const want = rec.manifest.instructions!;
      expect(want.traced).toBeGreaterThan(1000);
      const file = join(dir, `rec-${variant.longTnt ? 'b' : 'a'}.data`);
      const result = exportPerfData(file, exportInputFrom(importBundle(bundle)));
      expect(result.timed).toBe(!!variant.timing.tsc);
      const { ips } = perfScriptIps(file);
      expect(ips.length).toBe(want.traced);
      expect(fnv1a64(ips)).toBe(want.fnv1a64);
      const model = readPerfData(file);
      try {
        expect(model.settings.retCompression).toBe(variant.retCompression);
        expect(model.settings.tsc).toBe(!!variant.timing.tsc);
        expect(model.settings.mtc).toBe(!!variant.timing.mtc);
        const ours = ptscopeIps(model);
        expect(ours.length).toBe(want.traced);
        expect(fnv1a64(ours)).toBe(want.fnv1a64);
      } finally {
        model.close();
      }
    });
  }
});

describe('ptscope flow and analyze take a perf.data directly', () => {
  it('decodes an exported bundle through the CLI with the same count as the recording', async () => {
    const { runFlowCommand } = await import('../src/cli/flow.js');
    const { runExportPerfCommand } = await import('../src/cli/export-perf.js');
    const { runAnalyzeCommand } = await import('../src/cli/analyze.js');
    const { LineWriter } = await import('../src/cli/output.js');
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-flowperf-'));
    const src = join(dir, 'p.c');
    writeFileSync(src, 'int f(int x){return x*3;}\nint main(){int s=0;for(int i=0;i<50;i++)s+=f(i);return s==3675?0:1;}\n');
    execFileSync('gcc', ['-O1', '-static', '-o', join(dir, 'p'), src]);
    const bundle = join(dir, 'p.ptscope');
    const { runRecordCommand } = await import('../src/cli/record.js');
    expect(await runRecordCommand(['--format', 'perf', '-o', bundle, '--', join(dir, 'p')], new LineWriter(null))).toBe(0);
    const manifest = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8')) as { instructions: { traced: number } };
    const w1 = new LineWriter(null);
    expect(runExportPerfCommand([bundle, '-o', join(dir, 'p.data')], w1)).toBe(0);
    const w2 = new LineWriter(null);
    expect(runFlowCommand(['--quiet', '--stat', join(dir, 'p.data')], w2)).toBe(0);
    w2.flush();
    expect(w2.text.trim()).toBe(`insn: ${manifest.instructions.traced}.`);
    // The mapped files are found through a sysroot too (here the machine's own root).
    const w2s = new LineWriter(null);
    expect(runFlowCommand(['--sysroot', '/', '--quiet', '--stat', join(dir, 'p.data')], w2s)).toBe(0);
    w2s.flush();
    expect(w2s.text.trim()).toBe(`insn: ${manifest.instructions.traced}.`);
    // record --format perf wrote the same trace as <bundle>/perf.data: perf decodes it all.
    const perfIps = spawnSync('perf', ['script', '-i', join(bundle, 'perf.data'), '--itrace=i0ns', '-F', 'ip'], { encoding: 'utf8' });
    expect(perfIps.stdout.split('\n').filter((l) => l.trim() !== '').length).toBe(manifest.instructions.traced);
    const w3 = new LineWriter(null);
    expect(await runAnalyzeCommand([join(dir, 'p.data')], w3)).toBe(0);
    w3.flush();
    expect(w3.text).toMatch(/0 findings/);
  }, 120_000);
});
