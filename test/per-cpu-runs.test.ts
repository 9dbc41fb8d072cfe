/**
 * The pieces of export-perf --per-cpu on hand-made traces: cutting a
 * thread's trace into runs (thread-runs.ts) and joining runs of several
 * threads into one CPU's trace (cpu-trace-builder.ts), whose IP packets must
 * decompress, against the CPU trace's own last IP, to the IPs of the
 * threads' traces (SDM Vol. 3C "IP Compression").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PacketDecoder } from '../src/packets/decoder.js';
import { fup, mtc, modeExec, psb, psbEnd, tip, tipPgd, tipPge, tnt8, tsc } from '../src/packets/encoder.js';
import { ErrorCode } from '../src/packets/errors.js';
import { LastIp } from '../src/packets/last-ip.js';
import { Packet } from '../src/packets/packet.js';
import { IpCompression, PacketType } from '../src/packets/packet-type.js';
import { encodeTrace } from '../src/packets/trace-writer.js';
import { CpuTraceBuilder } from '../src/sources/perf-data/cpu-trace-builder.js';
import { cutRuns } from '../src/sources/perf-data/thread-runs.js';
import { exportPerfDataPerCpu } from '../src/sources/perf-data/per-cpu-layout.js';
import type { ExportInput } from '../src/sources/perf-data/bundle-to-perf.js';
import { readPerfData } from '../src/sources/perf-data/perf-data.js';

const S = IpCompression.Sext48;
const U16 = IpCompression.Update16;
const hiOf = (ip: number): number => Math.floor(ip / 2 ** 32);
const header = (t: number) => [psb(), tsc(0, t), modeExec(true, false), psbEnd()];

/** Thread A at 0x401000.., two runs; thread B at 0x7f0000001000.., one run. */
const threadA = encodeTrace([
  ...header(100),
  tsc(0, 100),
  tipPge(S, 0, 0x401000),
  tnt8(0b10, 2),
  tip(U16, 0, 0x1020),
  tipPgd(IpCompression.Suppressed, 0, 0),
  tsc(0, 150),
  tipPge(U16, 0, 0x1030), // against the last IP of A's own trace
  tipPgd(IpCompression.Suppressed, 0, 0),
]);
const B = 0x7f0000001000;
const threadB = encodeTrace([...header(100), tsc(0, 100), tipPge(S, hiOf(B), B >>> 0), tip(U16, 0, 0x1040), fup(U16, 0, 0x1044), tipPgd(IpCompression.Suppressed, 0, 0)]);

/** The IP packets of a trace, decompressed: [type, ip or null when suppressed], and its TSCs. */
function ipsOf(trace: Uint8Array): { ips: [string, number | null][]; tscs: number[] } {
  const dec = new PacketDecoder(trace);
  expect(dec.syncForward()).toBe(0);
  const p = new Packet();
  const last = new LastIp();
  const ips: [string, number | null][] = [];
  const tscs: number[] = [];
  for (;;) {
    const n = dec.next(p);
    if (n === -ErrorCode.Eos) break;
    expect(n).toBeGreaterThan(0);
    if (p.type === PacketType.Psb) last.reset();
    if (p.type === PacketType.Tsc) tscs.push(p.hi * 2 ** 32 + p.lo);
    if (p.type === PacketType.Fup || p.type === PacketType.Tip || p.type === PacketType.TipPge || p.type === PacketType.TipPgd) {
      expect(last.update(p)).toBe(0);
      ips.push([PacketType[p.type]!, last.suppressed ? null : last.ip]);
    }
  }
  return { ips, tscs };
}

describe('cutRuns', () => {
  it('cuts at every TIP.PGD, each run with its enable, its TSCs and the last IP its packets start from', () => {
    const runs = cutRuns(threadA, 'A');
    expect(runs.map((r) => [r.disabled, r.startTsc, r.lastTsc, r.enableIp])).toEqual([
      [true, 100, 100, 0x401000],
      [true, 150, 150, 0x401030],
    ]);
    expect(runs[0]!.from).toBe(0);
    expect(runs[1]!.from).toBe(runs[0]!.to);
    expect(runs[1]!.lastIpAtFrom).toEqual({ hi: 0, lo: 0x401020, haveIp: true });
  });

  it('a trace whose first PSB+ carries a FUP starts a run at that PSB; one that ends with tracing on has an unfinished run', () => {
    const t = encodeTrace([psb(), tsc(0, 7), modeExec(true, false), fup(S, 0, 0x401000), psbEnd(), tnt8(1, 1)]);
    expect(cutRuns(t, 'x').map((r) => [r.enableAt, r.enableIp, r.disabled, r.to])).toEqual([[0, 0x401000, false, t.length]]);
  });

  it('refuses what a CPU trace could not carry over: MTC timing, an enable without a TSC', () => {
    expect(() => cutRuns(encodeTrace([...header(1), mtc(3), tipPge(S, 0, 0x401000)]), '[3/3]')).toThrow(/^\[3\/3\]: MTC\/CYC[^\n]*--timing tsc[^\n]*$/);
    expect(() => cutRuns(encodeTrace([psb(), modeExec(true, false), psbEnd(), tipPge(S, 0, 0x401000)]), 'x')).toThrow(/no TSC/);
  });
});

describe('CpuTraceBuilder', () => {
  it('interleaves runs of two threads: IP packets re-compressed against the CPU trace, TSCs moved and monotonic', () => {
    const a = cutRuns(threadA, 'A');
    const b = cutRuns(threadB, 'B');
    const cpu = new CpuTraceBuilder(4096);
    cpu.psbIfDue(1000);
    cpu.appendRun(threadA, a[0]!, 1001 - a[0]!.startTsc, 'A');
    cpu.psbIfDue(1010); // not due: one PSB+ per 4 KiB
    cpu.appendRun(threadB, b[0]!, 1020 - b[0]!.startTsc, 'B');
    cpu.appendRun(threadA, a[1]!, 1040 - a[1]!.startTsc, 'A');
    expect(() => cpu.appendRun(threadB, b[0]!, 0, 'B')).toThrow(/before the CPU's last/);
    const out = ipsOf(cpu.finish());
    expect(out.ips).toEqual([
      ['TipPge', 0x401000],
      ['Tip', 0x401020],
      ['TipPgd', null],
      ['TipPge', B],
      ['Tip', B + 0x40],
      ['Fup', B + 0x44],
      ['TipPgd', null],
      // A's update-16 (against A's last IP) would be wrong after B's run: re-compressed.
      ['TipPge', 0x401030],
      ['TipPgd', null],
    ]);
    expect(out.tscs).toEqual([1000, 1001, 1020, 1040]);
  });

  it('a PSB+ once psbPeriod bytes followed the last one', () => {
    const a = cutRuns(threadA, 'A');
    const cpu = new CpuTraceBuilder(16);
    cpu.psbIfDue(10);
    cpu.appendRun(threadA, a[0]!, 0, 'A');
    cpu.psbIfDue(200);
    const trace = cpu.finish();
    const dec = new PacketDecoder(trace);
    dec.syncForward();
    let psbs = 0;
    for (const p = new Packet(); dec.next(p) > 0; ) if (p.type === PacketType.Psb) psbs++;
    expect(psbs).toBe(2);
  });
});

describe('exportPerfDataPerCpu', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptscope-per-cpu-runs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** Two threads whose traces end with tracing on (the recording stopped them). */
  const unfinished = (): ExportInput => ({
    tasks: [],
    streams: [3, 4].map((tid) => ({ pid: 3, tid, images: [], trace: encodeTrace([...header(100), tsc(0, 100), tipPge(S, 0, 0x401000 + tid), tnt8(1, 1)]) })),
    timing: { tsc: true, mtc: false, cyc: false, mtcFreq: 0 },
    retCompression: false,
  });

  it('a run that ends with tracing on is the last on its CPU: as many CPUs as such runs are needed', () => {
    const file = join(dir, 'open.data');
    expect(() => exportPerfDataPerCpu(file, unfinished(), { cpus: 1 })).toThrow(/^2 threads' traces end with tracing on[^\n]*--per-cpu 2 or more$/);
    const result = exportPerfDataPerCpu(file, unfinished(), { cpus: 3 });
    expect(result.schedule.map((s) => s.length).sort()).toEqual([0, 1, 1]);
    const model = readPerfData(file);
    try {
      // Two CPUs with trace; the events opened on all three.
      expect(model.streams).toHaveLength(2);
      expect(model.idIndex.map((e) => e.cpu)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
      // Each CPU: the idle task out, ITRACE_START and its thread in; at the end back to idle.
      for (const list of model.sideband.switches.values()) expect(list.map((sw) => [sw.out, sw.tid, sw.nextPrev?.tid ?? null])).toEqual([[true, 0, list[1]!.tid], [false, list[1]!.tid, null], [false, list[1]!.tid, 0], [true, list[1]!.tid, 0], [false, 0, list[1]!.tid]]);
    } finally {
      model.close();
    }
  });

  it('refuses a recording with return compression (the default of an input that does not say)', () => {
    const input = unfinished();
    delete input.retCompression;
    expect(() => exportPerfDataPerCpu(join(dir, 'r.data'), input, { cpus: 2 })).toThrow(/--noretcomp/);
  });
});
