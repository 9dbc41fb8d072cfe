/**
 * export-perf --per-cpu N: a recording's per-thread traces laid out as
 * perf's default per-CPU mode lays them out (one AUX queue per CPU on which
 * the threads' runs between syscalls follow one another, ITRACE_START and
 * SWITCH_CPU_WIDE sideband from a cpu-wide switch event, per-cpu ids), and
 *
 * - oracle: Debian's `perf script --itrace=i0ns -F tid,cpu,ip` (linux-perf
 *   6.1) gives each thread exactly the instructions the recorder traced for
 *   it (count and FNV-1a 64 of each stream, a task that execs having two),
 *   while each CPU queue interleaves several threads, in the order the
 *   switch records (read by our importer's sideband timeline) say, and the
 *   same branch samples per thread (`--itrace=b`) as the per-thread layout;
 * - recordings that cannot be laid out per CPU (return compression, no
 *   TSC, MTC/CYC) are refused with one line naming the record option.
 *
 * The programs (test/fixtures/threads) are compiled and recorded here with
 * --timing tsc --noretcomp. Needs gcc, qemu-x86_64, bubblewrap and perf
 * (scripts/install-test-deps.sh).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExportPerfCommand } from '../src/cli/export-perf.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { readBundleManifest } from '../src/sources/import/bundle-import.js';
import type { ManifestV2 } from '../src/sources/bundle/manifest.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { Packet } from '../src/packets/packet.js';
import { PacketType } from '../src/packets/packet-type.js';
import { AttrFlag, hasFlag } from '../src/sources/perf-data/header.js';
import { readPerfData } from '../src/sources/perf-data/perf-data.js';
import { PERF_SAMPLE_CPU } from '../src/sources/perf-event/record.js';
import { IpSequenceHash } from '../src/sources/recorder/ip-sequence-hash.js';
import { REPO_ROOT } from './helpers/oracle.js';
import { recordProbe } from './helpers/probe.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'threads');
let work: string;
const bundles = new Map<string, { bundle: string; m: ManifestV2 }>();

function compile(name: string): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-o', out, join(FIXTURES, `${name}.c`), '-pthread'], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc ${name}: ${res.error?.message ?? res.stderr}`);
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-export-per-cpu-'));
  for (const name of ['threads4', 'fork-exec', 'thread-exec']) {
    const res = await recordProbe(work, [compile(name)], { timing: { tsc: true }, retCompression: false });
    const m = readBundleManifest(res.bundle) as ManifestV2;
    expect(m.version).toBe(2);
    bundles.set(name, { bundle: res.bundle, m });
  }
}, 240_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function exportCli(args: string[]): { code: number; text: string } {
  const out = new LineWriter(null);
  const code = runExportPerfCommand(args, out);
  out.flush();
  return { code, text: out.text };
}

/** perf script's instructions: per thread the IPs in order, per CPU the threads in the order they ran (consecutive samples of one thread once). */
function perfScript(file: string): { ips: Map<number, number[]>; cpus: Map<number, number[]> } {
  const r = spawnSync('perf', ['script', '-i', file, '--itrace=i0ns', '-F', 'tid,cpu,ip'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(r.status, `perf script: ${r.stderr}`).toBe(0);
  expect(r.stderr).not.toMatch(/error|warning/i);
  const ips = new Map<number, number[]>();
  const cpus = new Map<number, number[]>();
  for (const l of r.stdout.split('\n')) {
    if (l.trim() === '') continue;
    const m = /^\s*(\d+)\s+\[(\d+)\]\s+([0-9a-f]+)\s*$/.exec(l);
    expect(m, l).not.toBeNull();
    const tid = Number(m![1]);
    const cpu = Number(m![2]);
    let list = ips.get(tid);
    if (!list) ips.set(tid, (list = []));
    list.push(parseInt(m![3]!, 16));
    let seq = cpus.get(cpu);
    if (!seq) cpus.set(cpu, (seq = []));
    if (seq[seq.length - 1] !== tid) seq.push(tid);
  }
  return { ips, cpus };
}

/** perf script's branch samples (`--itrace=b`: from, to, and trace starts/ends as 0) per thread, in order. */
function perfBranches(file: string): Map<number, string[]> {
  const r = spawnSync('perf', ['script', '-i', file, '--itrace=b', '-F', 'tid,ip,addr'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(r.status, `perf script: ${r.stderr}`).toBe(0);
  const out = new Map<number, string[]>();
  for (const l of r.stdout.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9a-f]+)\s+=>\s+([0-9a-f]+)\s*$/.exec(l);
    if (!m) continue;
    let list = out.get(Number(m[1]));
    if (!list) out.set(Number(m[1]), (list = []));
    list.push(`${m[2]}>${m[3]}`);
  }
  return out;
}

/**
 * Export `name` on `n` CPUs and check the layout, the sideband and perf's
 * decode against the recorder's ground truth; with `branches`, also that
 * perf's branch samples per thread are those of the per-thread export.
 */
function checkPerCpu(name: string, n: number, branches = false): void {
  const { bundle, m } = bundles.get(name)!;
  const file = join(work, `${name}-${n}.data`);
  const cli = exportCli(['--per-cpu', String(n), bundle, '-o', file]);
  expect(cli.code).toBe(0);
  const queues = /^wrote \S+ \((\d+) CPUs?, (\d+) with trace\)$/.exec(cli.text.trim());
  expect(queues, cli.text).not.toBeNull();
  expect(Number(queues![1])).toBe(n);

  // The layout: per-cpu queues and ids, three events as perf record sets them up for a task.
  const model = readPerfData(file);
  const switchOrder = new Map<number, number[]>();
  try {
    expect(model.ptInfo.perCpuMmaps).toBe(true);
    expect(model.ptInfo.haveSchedSwitch).toBe(3);
    expect(model.settings).toMatchObject({ tsc: true, mtc: false, cyc: false, retCompression: false });
    const cpusWithTrace = model.streams.map((s) => s.cpu);
    expect(cpusWithTrace).toHaveLength(Number(queues![2]));
    for (const s of model.streams) expect([s.idx, s.tid]).toEqual([s.cpu, -1]);
    expect(model.attrs.map((a) => a.name)).toEqual(['intel_pt//u', 'dummy:u', 'dummy:u']);
    const [pt, switches, tracking] = model.attrs;
    expect(hasFlag(switches!.attr, AttrFlag.ContextSwitch)).toBe(true);
    expect(hasFlag(tracking!.attr, AttrFlag.ContextSwitch)).toBe(false);
    expect(hasFlag(tracking!.attr, AttrFlag.Mmap2)).toBe(true);
    // Every event opened on every CPU, traced or not.
    for (const a of model.attrs) {
      expect(a.attr.sampleType & PERF_SAMPLE_CPU).toBe(PERF_SAMPLE_CPU);
      expect(a.ids).toHaveLength(n);
    }
    expect(hasFlag(pt!.attr, AttrFlag.Inherit)).toBe(true);
    expect(model.idIndex).toEqual(model.attrs.flatMap((a) => a.ids.map((id, cpu) => ({ id, idx: cpu, cpu, tid: -1 }))));
    // Each CPU's trace: a PSB+ first, its TSCs never going back, within the sideband's time span of that CPU.
    for (const st of model.streams) {
      const src = st.source(model.file);
      const bytes = new Uint8Array(src.size);
      expect(src.read(bytes, 0, 0, bytes.length)).toBe(bytes.length);
      const dec = new PacketDecoder(bytes);
      dec.syncSet(0);
      const p = new Packet();
      let last = -1;
      let first = true;
      for (let n = dec.next(p); n > 0; n = dec.next(p)) {
        if (first) expect(p.type).toBe(PacketType.Psb);
        first = false;
        if (p.type !== PacketType.Tsc) continue;
        const t = p.hi * 2 ** 32 + p.lo;
        expect(t).toBeGreaterThanOrEqual(last);
        last = t;
      }
      const times = model.sideband.switches.get(st.cpu)!.map((sw) => Number(sw.time));
      expect(times[0]).toBeLessThan(last);
      expect(times[times.length - 1]).toBeGreaterThan(last);
    }
    // Every task created, exited; the program's COMM first.
    for (const p of m.processes) {
      const task = model.sideband.tasks.get(p.pid)!;
      expect(task.exitTime).not.toBeNull();
      if (p.ppid !== null) expect([task.ppid, task.forkTime !== null]).toEqual([p.ppid, true]);
      else expect(task.comms[0]).toMatchObject({ comm: name, exec: true });
    }
    // Per CPU: the threads switched in, in order (the idle task left out).
    for (const [cpu, list] of model.sideband.switches) {
      const order: number[] = [];
      for (const s of list) if (!s.out && s.tid !== 0 && order[order.length - 1] !== s.tid) order.push(s.tid);
      switchOrder.set(cpu, order);
      // One ITRACE_START (the entry without next/prev) per CPU: its first task, after the idle task's switch out.
      const starts = list.flatMap((s, i) => (s.nextPrev === null ? [i] : []));
      expect(starts).toEqual([1]);
      expect(list[0]).toMatchObject({ out: true, tid: 0, nextPrev: { tid: list[1]!.tid } });
      // Each switch out names the task switched in next, at the next switch record.
      const cpuWide = list.filter((s) => s.nextPrev !== null);
      cpuWide.forEach((s, i) => {
        if (!s.out) return;
        expect(cpuWide[i + 1]).toMatchObject({ out: false, tid: s.nextPrev!.tid, nextPrev: { pid: s.pid, tid: s.tid } });
      });
    }
  } finally {
    model.close();
  }

  // perf as the oracle: each thread exactly its recorded instructions, stream by stream.
  const perf = perfScript(file);
  const threads = new Set(m.streams.map((s) => s.tid));
  expect([...perf.ips.keys()].sort()).toEqual([...threads].sort());
  for (const tid of threads) {
    const got = perf.ips.get(tid)!;
    const streams = m.streams.filter((s) => s.tid === tid);
    expect(got.length).toBe(streams.reduce((a, s) => a + s.instructions!.traced, 0));
    let at = 0;
    for (const s of streams) {
      const h = new IpSequenceHash();
      for (const ip of got.slice(at, at + s.instructions!.traced)) h.add(ip);
      at += s.instructions!.traced;
      expect({ stream: s.file, insn: h.count, hash: h.hex() }).toEqual({ stream: s.file, insn: s.instructions!.traced, hash: s.instructions!.fnv1a64 });
    }
  }
  // Each CPU runs several threads, interleaved, in the order its switch records say.
  expect(perf.cpus).toEqual(switchOrder);
  let comesBack = false;
  for (const order of perf.cpus.values()) {
    expect(new Set(order).size).toBeGreaterThan(1);
    if (order.length > new Set(order).size) comesBack = true;
  }
  expect(comesBack).toBe(true);

  if (branches) {
    const perThread = join(work, `${name}-threads.data`);
    expect(exportCli([bundle, '-o', perThread]).code).toBe(0);
    const want = perfBranches(perThread);
    expect([...want.values()].every((l) => l.length > 100)).toBe(true);
    expect(perfBranches(file)).toEqual(want);
  }
}

describe('export-perf --per-cpu: threads and processes on N virtual CPUs', () => {
  it('4 threads on 1 CPU: perf script gives each thread its recorded instructions, the threads interleaved', () => checkPerCpu('threads4', 1), 120_000);
  it('4 threads on 2 CPUs: the same branches per thread as the per-thread layout', () => checkPerCpu('threads4', 2, true), 120_000);
  it('fork + exec on 1 CPU: the child\'s two programs, each with its own images', () => checkPerCpu('fork-exec', 1), 120_000);
  it('fork + exec on 2 CPUs: the same branches per thread as the per-thread layout', () => checkPerCpu('fork-exec', 2, true), 120_000);
  it('a thread that execs: the new program runs once the process\'s other threads are done', () => checkPerCpu('thread-exec', 1), 120_000);

  it('the same seed writes the same file; another seed another schedule', () => {
    const { bundle } = bundles.get('threads4')!;
    const files = ['a', 'b', 'c'].map((x) => join(work, `seed-${x}.data`));
    exportCli(['--per-cpu', '2', '--seed', '7', bundle, '-o', files[0]!]);
    exportCli(['--per-cpu', '2', '--seed', '7', bundle, '-o', files[1]!]);
    exportCli(['--per-cpu', '2', '--seed', '8', bundle, '-o', files[2]!]);
    const [a, b, c] = files.map((f) => readFileSync(f));
    expect(a!.equals(b!)).toBe(true);
    expect(a!.equals(c!)).toBe(false);
  }, 60_000);
});

describe('export-perf --per-cpu: recordings it refuses, in one line', () => {
  /** A copy of the 4-thread bundle whose manifest says it was recorded with other settings. */
  function recordedWith(name: string, config: Record<string, unknown>): string {
    const { bundle } = bundles.get('threads4')!;
    const dir = join(work, `${name}.ptscope`);
    cpSync(bundle, dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    manifest.config = { ...manifest.config, ...config };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    return dir;
  }
  function refusal(args: string[]): CliError {
    try {
      exportCli(args);
    } catch (e) {
      expect(e).toBeInstanceOf(CliError);
      return e as CliError;
    }
    throw new Error(`export-perf ${args.join(' ')} did not fail`);
  }

  it.each([
    ['return compression', { retCompression: true }, /without return compression[^\n]*--noretcomp/],
    ['no TSC', { timing: { tsc: false, mtc: false, cyc: false } }, /needs TSC packets[^\n]*--timing tsc/],
    ['MTC', { timing: { tsc: true, mtc: true, cyc: false } }, /MTC\/CYC[^\n]*--timing tsc/],
  ])('%s', (name, config, message) => {
    const e = refusal(['--per-cpu', '2', recordedWith(name.replace(/\W/g, '-'), config), '-o', join(work, 'refused.data')]);
    expect(e.message).toMatch(/^export-perf: --per-cpu: [^\n]+$/);
    expect(e.message).toMatch(message);
    expect(e.exitCode).toBe(2);
  }, 60_000);

  it('a CPU count out of range', () => {
    const { bundle } = bundles.get('threads4')!;
    for (const n of ['0', '257']) expect(refusal(['--per-cpu', n, bundle, '-o', join(work, 'refused.data')]).message).toMatch(/^export-perf: [^\n]*expected 1 to 256[^\n]*$/);
  });
});
