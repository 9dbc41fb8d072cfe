/**
 * export-perf of recordings with several threads and processes: the
 * perf.data holds every stream, laid out as perf's per-thread mode lays it
 * out (one AUX queue per thread with its tid and cpu -1, COMM/FORK/MMAP2/
 * ITRACE_START/EXIT per task, the ID index, no CPU sample field), and
 *
 * - round trip: our own perf.data importer gives back the same threads,
 *   and ptscope's decoder the same instruction count and FNV-1a 64 per
 *   thread as the bundle recorded;
 * - oracle: Debian's `perf script --itrace=i0ns` (linux-perf 6.1) decodes
 *   the file to the same per-thread counts and hashes, its branch samples
 *   (`--itrace=b`) to the same control transfers as ours, and `perf
 *   report` counts the same instructions per thread.
 *
 * The programs (test/fixtures/threads) are compiled and recorded here.
 * Needs gcc, qemu-x86_64, bubblewrap and perf (scripts/install-test-deps.sh).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExportPerfCommand } from '../src/cli/export-perf.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { readBundleManifest } from '../src/sources/import/bundle-import.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import type { ManifestV2 } from '../src/sources/bundle/manifest.js';
import { openInsnDecoder } from '../src/sources/model/decoders.js';
import type { TraceStream } from '../src/sources/model/recording.js';
import { exportPerfData } from '../src/sources/perf-data/bundle-to-perf.js';
import { defaultIntelPtInfo, INTEL_PT_CONFIG } from '../src/sources/perf-data/auxtrace-info.js';
import { writePerfData } from '../src/sources/perf-data/writer.js';
import { PERF_SAMPLE_CPU } from '../src/sources/perf-event/record.js';
import { AttrFlag, hasFlag } from '../src/sources/perf-data/header.js';
import { readPerfData } from '../src/sources/perf-data/perf-data.js';
import { firstPsbTsc, lastTsc } from '../src/sources/perf-data/trace-start.js';
import { IpSequenceHash } from '../src/sources/recorder/ip-sequence-hash.js';
import { REPO_ROOT } from './helpers/oracle.js';
import { recordProbe } from './helpers/probe.js';
import { forEachInstruction } from './helpers/insn-loop.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'threads');
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-export-threads-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function compile(name: string): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-o', out, join(FIXTURES, `${name}.c`), '-pthread'], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc ${name}: ${res.error?.message ?? res.stderr}`);
  return out;
}

interface Counted {
  insn: number;
  hash: string;
  /** Transfers of control (to somewhere else than the next instruction), in order: count and hash of each (from, to). */
  transfers: { count: number; hash: string };
}

/** ptscope's decode of one stream: instructions, their hash, its control transfers, and each instruction's size. */
function decodeStream(stream: TraceStream): Counted & { sizes: Map<number, number> } {
  const hash = new IpSequenceHash();
  const transfers = new IpSequenceHash();
  const sizes = new Map<number, number>();
  let prev = 0;
  let next: number | null = null;
  forEachInstruction(openInsnDecoder(stream), stream.label, (insn) => {
    if (next !== null && insn.ip !== next) {
      transfers.add(prev);
      transfers.add(insn.ip);
    }
    hash.add(insn.ip);
    sizes.set(insn.ip, insn.size);
    prev = insn.ip;
    next = insn.ip + insn.size;
  });
  return { insn: hash.count, hash: hash.hex(), transfers: { count: transfers.count / 2, hash: transfers.hex() }, sizes };
}

/**
 * `perf script` per thread: each instruction sample's IP hashed in order,
 * and from its branch samples (`--itrace=b`) the transfers of control: a
 * taken branch to the next instruction (a PLT stub's first jump, a jcc +0)
 * changes nothing, and trace starts and ends (0 => x, x => 0) are not
 * branches. `sizes` gives each instruction's length (from our decode).
 */
function perfPerThread(file: string, sizes: Map<string, Map<number, number>>): Map<string, Counted> {
  const run = (args: string[]): string[] => {
    const r = spawnSync('perf', ['script', '-i', file, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
    expect(r.status, `perf script ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  };
  const insns = new Map<string, IpSequenceHash>();
  for (const l of run(['--itrace=i0ns', '-F', 'pid,tid,ip'])) {
    const [task, ip] = l.trim().split(/\s+/);
    let h = insns.get(task!);
    if (!h) insns.set(task!, (h = new IpSequenceHash()));
    h.add(parseInt(ip!, 16));
  }
  const branches = new Map<string, IpSequenceHash>();
  for (const l of run(['--itrace=b', '-F', 'pid,tid,ip,addr'])) {
    const m = /^\s*(\S+)\s+([0-9a-f]+)\s+=>\s+([0-9a-f]+)\s*$/.exec(l);
    expect(m, l).not.toBeNull();
    const [, task, fromHex, toHex] = m!;
    const from = parseInt(fromHex!, 16);
    const to = parseInt(toHex!, 16);
    if (from === 0 || to === 0) continue;
    const size = sizes.get(task!)?.get(from);
    expect(size, `${task}: perf's branch at ${fromHex} is no instruction ptscope decoded`).toBeDefined();
    if (to === from + size!) continue;
    let h = branches.get(task!);
    if (!h) branches.set(task!, (h = new IpSequenceHash()));
    h.add(from);
    h.add(to);
  }
  const out = new Map<string, Counted>();
  for (const [task, h] of insns) {
    const b = branches.get(task) ?? new IpSequenceHash();
    out.set(task, { insn: h.count, hash: h.hex(), transfers: { count: b.count / 2, hash: b.hex() } });
  }
  return out;
}

/** The recorder's per-thread ground truth of a version-2 bundle. */
function expectedOf(m: ManifestV2): Map<string, { insn: number; hash: string }> {
  return new Map(m.streams.map((s) => [`${s.pid}/${s.tid}`, { insn: s.instructions!.traced, hash: s.instructions!.fnv1a64 }]));
}

function exportCli(args: string[]): { code: number; text: string } {
  const out = new LineWriter(null);
  const code = runExportPerfCommand(args, out);
  out.flush();
  return { code, text: out.text };
}

/**
 * Record `program`, export it, and check the file's layout, our round trip
 * and perf's decode against the recorder's counts. Returns the manifest.
 */
async function roundTrip(program: string, name: string, timing: { tsc?: boolean; mtc?: boolean }, compareTransfers = true): Promise<{ m: ManifestV2; file: string }> {
  const res = await recordProbe(work, [program], { timing });
  const m = readBundleManifest(res.bundle) as ManifestV2;
  expect(m.version).toBe(2);
  const file = join(work, `${name}.data`);
  const cli = exportCli([res.bundle, '-o', file]);
  expect(cli.code).toBe(0);
  expect(cli.text.trim()).toBe(`wrote ${file} (${m.streams.length} threads traced)`);
  const want = expectedOf(m);

  // The layout: per-thread queues, ids and sideband as perf --per-thread writes them.
  const model = readPerfData(file);
  try {
    expect(model.ptInfo.perCpuMmaps).toBe(false);
    expect(model.streams.map((s) => [s.idx, s.cpu, s.tid])).toEqual(m.streams.map((s, i) => [i, -1, s.tid]));
    for (const a of model.attrs) {
      expect(a.attr.sampleType & PERF_SAMPLE_CPU).toBe(0n);
      expect(hasFlag(a.attr, AttrFlag.SampleIdAll)).toBe(true);
      expect(hasFlag(a.attr, AttrFlag.Inherit)).toBe(false);
      expect(a.ids).toHaveLength(m.streams.length);
    }
    // ID index: every id of both events, on its thread's queue, cpu -1.
    const ids = model.attrs.flatMap((a) => a.ids.map((id, i) => ({ id, idx: i, cpu: -1, tid: m.streams[i]!.tid })));
    expect(model.idIndex).toEqual(ids);
    for (const p of m.processes) {
      const task = model.sideband.tasks.get(p.pid)!;
      expect(task.pid).toBe(p.pid);
      expect(task.exitTime).not.toBeNull();
      if (p.ppid !== null) {
        expect(task.ppid).toBe(p.ppid);
        expect(task.forkTime).not.toBeNull();
      } else expect(task.comms[0]).toMatchObject({ comm: name, exec: true });
    }
    for (const t of m.threads) expect(model.sideband.tasks.get(t.tid)?.pid).toBe(t.pid);
    if (timing.tsc) {
      // Timed: the start sideband before every trace's first TSC, the EXITs after every last one.
      expect(model.settings.tsc).toBe(true);
      const sources = model.streams.map((st) => st.source(model.file));
      const firsts = sources.map((src) => firstPsbTsc(src)!);
      const lasts = sources.map((src) => lastTsc(src)!);
      for (const task of model.sideband.tasks.values()) {
        for (const c of task.comms) expect(c.time).toBeLessThan(Math.min(...firsts.map(Number)));
        expect(Number(task.exitTime)).toBeGreaterThan(Math.max(...lasts.map(Number)));
      }
    }
  } finally {
    model.close();
  }

  // Round trip through the one importer: same threads, same instructions.
  const r = openRecording(file);
  const ours = new Map<string, Counted>();
  const sizes = new Map<string, Map<number, number>>();
  try {
    expect(r.format).toBe('perf-data');
    expect(r.streams.map((s) => [s.pid, s.tid])).toEqual(m.streams.map((s) => [s.pid, s.tid]));
    expect(r.threads.map((t) => [t.pid, t.tid]).sort()).toEqual(m.threads.map((t) => [t.pid, t.tid]).sort());
    for (const s of r.streams) {
      expect(s.notes).toEqual([]);
      const { sizes: sz, ...counted } = decodeStream(s);
      ours.set(`${s.pid}/${s.tid}`, counted);
      sizes.set(`${s.pid}/${s.tid}`, sz);
    }
  } finally {
    r.close();
  }
  for (const [task, w] of want) expect({ task, insn: ours.get(task)?.insn, hash: ours.get(task)?.hash }).toEqual({ task, ...w });

  // perf as the oracle: the same per-thread instructions, and the same control transfers in the same order.
  const perf = perfPerThread(file, sizes);
  expect([...perf.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [task, w] of want) {
    const p = perf.get(task)!;
    expect({ task, insn: p.insn, hash: p.hash }).toEqual({ task, ...w });
    expect(p.transfers.count).toBeGreaterThan(100);
    if (compareTransfers) expect({ task, transfers: p.transfers }).toEqual({ task, transfers: ours.get(task)!.transfers });
  }
  // perf report's per-thread sample counts (its `pid` key is the thread: `tid:comm`).
  const report = spawnSync('perf', ['report', '-i', file, '--itrace=i0ns', '--stdio', '--sort', 'pid', '-F', 'sample,pid'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  expect(report.status, report.stderr).toBe(0);
  const perTid = new Map<number, number>();
  for (const l of report.stdout.split('\n')) {
    const r = /^\s*(\d+)\s+(\d+):(\S+)\s*$/.exec(l);
    if (r) perTid.set(Number(r[2]), Number(r[1]));
  }
  expect(perTid).toEqual(new Map(m.streams.map((s) => [s.tid, s.instructions!.traced])));
  return { m, file };
}

describe('export-perf: every thread and process of a recording', () => {
  it('4 threads (no timing): five queues; our importer and perf script give each thread its recorded instructions', async () => {
    const { m } = await roundTrip(compile('threads4'), 'threads4', {});
    expect(m.streams).toHaveLength(5);
    expect(m.processes).toHaveLength(1);
  }, 240_000);

  it('a thread that takes a signal: perf follows the handler\'s return and the returns after it, as libipt does', async () => {
    // Instructions and their hash per thread; not the transfers: where a signal
    // is delivered and where its handler returns, tracing stops and starts
    // again, which perf prints as "tr end"/"tr strt" and this test's own
    // derivation counts as a transfer.
    const { m } = await roundTrip(compile('thread-signal'), 'thread-signal', {}, false);
    expect(m.streams).toHaveLength(2);
  }, 240_000);

  it('fork (TSC and MTC, timed decoding): parent and child as two processes, the child FORKed from the parent', async () => {
    const { m, file } = await roundTrip(compile('fork'), 'fork', { tsc: true, mtc: true });
    expect(m.processes).toHaveLength(2);
    // perf replays the task sideband in order: the child's FORK from the parent, then both EXITs, child first.
    const r = spawnSync('perf', ['script', '-i', file, '--show-task-events', '--itrace=', '-F', 'pid,tid'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const [parent, child] = m.processes;
    const events = r.stdout.split('\n').map((l) => /PERF_RECORD_(\w+)(.*)$/.exec(l)).filter((x) => x !== null).map((x) => `${x![1]}${x![2]}`.trim());
    expect(events).toEqual([
      `COMM exec: fork:${parent!.pid}/${parent!.pid}`,
      `FORK(${child!.pid}:${child!.pid}):(${parent!.pid}:${parent!.pid})`,
      `EXIT(${child!.pid}:${child!.pid}):(${parent!.pid}:${parent!.pid})`,
      `EXIT(${parent!.pid}:${parent!.pid}):(${parent!.pid}:${parent!.pid})`,
    ]);
  }, 240_000);
});

describe('export-perf: tasks without a trace', () => {
  it('a process that ran untraced still has its FORK and EXIT, and no AUX queue', () => {
    const file = join(work, 'untraced.data');
    const result = exportPerfData(file, {
      tasks: [
        { pid: 3, tid: 3, parent: null, comm: { name: 'sh', exec: true } },
        { pid: 5, tid: 5, parent: { pid: 3, tid: 3 }, comm: null },
      ],
      streams: [{ pid: 3, tid: 3, trace: new Uint8Array([0x02, 0x82, 0x02, 0x82]), images: [] }],
    });
    expect(result.queues).toBe(1);
    const model = readPerfData(file);
    try {
      expect(model.streams.map((st) => [st.idx, st.tid])).toEqual([[0, 3]]);
      const child = model.sideband.tasks.get(5)!;
      expect([child.pid, child.ppid]).toEqual([5, 3]);
      expect(child.forkTime! < child.exitTime!).toBe(true);
      // The child exits before its parent, as children do.
      expect(child.exitTime! < model.sideband.tasks.get(3)!.exitTime!).toBe(true);
    } finally {
      model.close();
    }
  });
});

describe('export-perf: errors', () => {
  const minimalManifest = (streams: unknown[]): unknown => ({
    format: 'ptscope-bundle',
    version: 2,
    recorder: 'qemu',
    program: { argv: ['/bin/true'], path: '/bin/true', cwd: '/' },
    exit: { status: 0, signal: null, stopped: null },
    processes: [{ pid: 3, ppid: null, program: null, exit: null }],
    threads: [{ tid: 3, pid: 3 }],
    streams,
    images: [],
  });

  it('a bundle whose streams are all empty: one line, exit 2, no file', () => {
    const dir = join(work, 'empty.ptscope');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 't.pt'), new Uint8Array(0));
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(minimalManifest([{ file: 't.pt', pid: 3, tid: 3, bytes: 0, images: [] }])));
    const target = join(work, 'empty.data');
    let err: unknown = null;
    try {
      exportCli([dir, '-o', target]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).message).toMatch(/^export-perf: [^\n]*no trace to export$/);
    expect((err as CliError).exitCode).toBe(2);
    expect(existsSync(target)).toBe(false);
  });

  it('a perf.data as input, and an output directory that does not exist: one-line errors', () => {
    const perfFile = join(work, 'in.data');
    exportPerfData(perfFile, { tasks: [], streams: [{ pid: 7, tid: 7, trace: new Uint8Array([0x02, 0x82]), images: [] }] });
    expect(() => exportCli([perfFile, '-o', join(work, 'out.data')])).toThrow(/already a perf\.data/);
    const dir = join(work, 'one.ptscope');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 't.pt'), new Uint8Array([0x02, 0x82, 0x02, 0x82]));
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(minimalManifest([{ file: 't.pt', pid: 3, tid: 3, bytes: 4, images: [] }])));
    expect(() => exportCli([dir, '-o', join(work, 'no', 'such', 'dir', 'x.data')])).toThrow(/^export-perf: ENOENT[^\n]*$/);
  });

  it('a hardware recording (per-CPU streams in the bundle\'s perf.data) is refused: its perf.data is the recording', () => {
    const dir = join(work, 'hw.ptscope');
    mkdirSync(dir, { recursive: true });
    const info = defaultIntelPtInfo(8);
    writePerfData(join(dir, 'perf.data'), {
      info,
      ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch,
      sideband: [{ kind: 'comm', time: 1n, cpu: 0, pid: 3, tid: 3, comm: 'true', exec: true }],
      aux: [{ idx: 0, cpu: 0, tid: -1, data: new Uint8Array([0x02, 0x82]) }],
    });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...(minimalManifest([]) as object), recorder: 'perf', perf: { file: 'perf.data' } }));
    expect(() => exportCli([dir, '-o', join(work, 'hw.data')])).toThrow(/^export-perf: [^\n]*cpu 0 is a per-CPU stream[^\n]*$/);
  });

  it('an input the exporter cannot lay out is refused, not written wrong', () => {
    const trace = new Uint8Array([0x02, 0x82]);
    const file = join(work, 'bad.data');
    expect(() => exportPerfData(file, { tasks: [], streams: [] })).toThrow(/no trace stream/);
    const task = { pid: 3, tid: 3, parent: null, comm: null };
    expect(() => exportPerfData(file, { tasks: [task, task], streams: [{ pid: 3, tid: 3, trace, images: [] }] })).toThrow(/listed twice/);
  });
});
