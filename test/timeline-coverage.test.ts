/**
 * The call timeline (Chrome trace JSON) and coverage (executed blocks,
 * drcov, per-function summary): unit behaviour on hand-made transfer
 * streams, then the demo's rop_stack recordings, checked against an
 * independent walk of the same trace and against what the program does
 * (the benign run reaches puts("bye"), the exploit never does).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTraceInput, type TraceInput } from '../src/analyses/trace-input.js';
import { runCoverageCommand } from '../src/cli/coverage.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { runTimelineCommand } from '../src/cli/timeline.js';
import { GapKind, TransferKind } from '../src/flow/control-flow.js';
import { InstructionInfo } from '../src/flow/instruction.js';
import { CallTimeline } from '../src/reports/chrome-trace.js';
import { coverageModules, ExecutedBlocks, functionCoverage, readDrcov, writeDrcov } from '../src/reports/drcov.js';
import { walkTrace } from '../src/reports/report-model.js';

const DEMO = resolve('demo');

interface TraceEvent {
  ph: string;
  pid: number;
  tid: number;
  ts?: number;
  name?: string;
  args?: Record<string, string>;
}

function timelineJson(t: CallTimeline, name: (ip: number) => string = (ip) => `f${ip.toString(16)}`): { traceEvents: TraceEvent[]; otherData: Record<string, unknown> } {
  return JSON.parse([...t.chromeTraceChunks(name, { processName: 'test' })].join(''));
}

/** Check B/E nesting per track and return the B events. */
function checkNesting(events: TraceEvent[]): TraceEvent[] {
  const stacks = new Map<number, TraceEvent[]>();
  const lastTs = new Map<number, number>();
  const begins: TraceEvent[] = [];
  for (const ev of events) {
    if (ev.ph === 'M') continue;
    expect(ev.ts).toBeGreaterThanOrEqual(lastTs.get(ev.tid) ?? 0);
    lastTs.set(ev.tid, ev.ts!);
    const s = stacks.get(ev.tid) ?? [];
    stacks.set(ev.tid, s);
    if (ev.ph === 'B') {
      s.push(ev);
      begins.push(ev);
    } else {
      expect(ev.ph).toBe('E');
      const b = s.pop();
      expect(b).toBeDefined();
      expect(ev.name).toBe(b!.name);
    }
  }
  for (const s of stacks.values()) expect(s.length).toBe(0);
  return begins;
}

describe('CallTimeline', () => {
  const call = (t: CallTimeline, from: number, to: number, n = 1) => t.onTransfer(TransferKind.DirectCall, from, to, 5, n, NaN);
  const ret = (t: CallTimeline, from: number, to: number, n = 1) => t.onTransfer(TransferKind.Return, from, to, 1, n, NaN);

  it('nests calls and returns, unwinds to the matching frame, closes the rest at the end', () => {
    const t = new CallTimeline();
    call(t, 0x100, 0x1000, 3); // A, returns to 0x105
    call(t, 0x1010, 0x2000, 2); // B, returns to 0x1015
    call(t, 0x2010, 0x3000, 2); // C, returns to 0x2015
    ret(t, 0x3005, 0x1015, 4); // longjmp-like: closes C and B
    call(t, 0x1020, 0x4000, 1); // D
    t.onEnd();
    const { traceEvents } = timelineJson(t);
    const seq = traceEvents.filter((e) => e.ph !== 'M').map((e) => `${e.ph}${e.name}@${e.ts}`);
    expect(seq).toEqual(['Bf1000@3', 'Bf2000@5', 'Bf3000@7', 'Ef3000@11', 'Ef2000@11', 'Bf4000@12', 'Ef4000@12', 'Ef1000@12']);
    expect(t.calls).toBe(4);
    expect(t.unmatchedReturns).toBe(0);
    expect(t.maxDepth).toBe(3);
  });

  it('a return to no open frame (a ROP gadget) closes only the innermost frame', () => {
    const t = new CallTimeline();
    call(t, 0x100, 0x1000);
    call(t, 0x1010, 0x2000);
    ret(t, 0x2005, 0xdead); // hijacked return
    ret(t, 0xdead, 0xbeef);
    ret(t, 0xbeef, 0xf00d); // nothing open any more
    t.onEnd();
    const begins = checkNesting(timelineJson(t).traceEvents);
    expect(begins.length).toBe(2);
    expect(t.unmatchedReturns).toBe(3);
  });

  it('keeps frames across tracing-off gaps, drops them on overflow', () => {
    const t = new CallTimeline();
    call(t, 0x100, 0x1000);
    t.onGap(GapKind.Disabled);
    expect(timelineJson(t).traceEvents.filter((e) => e.ph === 'E').length).toBe(0);
    t.onGap(GapKind.Overflow);
    ret(t, 0x1005, 0x105);
    t.onEnd();
    expect(t.unmatchedReturns).toBe(1);
    checkNesting(timelineJson(t).traceEvents);
  });

  it('one track per address space', () => {
    const t = new CallTimeline();
    t.onTransfer(TransferKind.DirectCall, 0x100, 0x1000, 5, 1, 0x1000);
    t.onTransfer(TransferKind.DirectCall, 0x100, 0x2000, 5, 1, 0x2000);
    t.onTransfer(TransferKind.Return, 0x1001, 0x105, 1, 1, 0x1000);
    t.onEnd();
    const ev = timelineJson(t).traceEvents;
    const names = ev.filter((e) => e.name === 'thread_name').map((e) => e.args!.name);
    expect(names).toEqual(['address space cr3=0x1000', 'address space cr3=0x2000']);
    checkNesting(ev);
    expect(new Set(ev.filter((e) => e.ph === 'B').map((e) => e.tid))).toEqual(new Set([1, 2]));
  });

  it('caps begin events but keeps the output nested', () => {
    const t = new CallTimeline(4);
    for (let i = 0; i < 10; i++) call(t, 0x100 + i * 0x10, 0x1000 + i);
    t.onEnd();
    const { traceEvents, otherData } = timelineJson(t);
    const begins = checkNesting(traceEvents);
    expect(begins.length).toBe(4);
    expect(otherData.droppedCalls).toBe(6);
    expect(t.calls).toBe(10);
  });
});

describe('ExecutedBlocks', () => {
  it('records dynamic blocks from a target to the next branch, with counts', () => {
    const b = new ExecutedBlocks();
    const insn = new InstructionInfo();
    const run = (ips: number[], size = 2) => {
      for (const ip of ips) {
        insn.ip = ip;
        insn.size = size;
        b.onInstruction(insn);
      }
    };
    for (let k = 0; k < 3; k++) {
      run([0x10, 0x12, 0x14]); // loop body, ends with a jcc at 0x14
      b.onTransfer(TransferKind.CondTaken, 0x14, 0x10, 2);
    }
    run([0x10, 0x12, 0x14]);
    b.onTransfer(TransferKind.CondNotTaken, 0x14, 0x16, 2);
    run([0x16, 0x18]);
    b.onTransfer(TransferKind.Async, 0x1a, 0x40, 0); // interrupted before 0x1a ran
    run([0x40]);
    b.onEnd();
    const got: [number, number, number][] = [];
    b.forEach((s, e, c) => got.push([s, e, c]));
    expect(got).toEqual([
      [0x10, 0x16, 4],
      [0x16, 0x1a, 1],
      [0x40, 0x42, 1],
    ]);
    expect(b.instructions).toBe(15);
  });
});

describe('on the demo recordings', () => {
  let work: string;
  let benign: TraceInput;
  let exploit: TraceInput;
  const walked = new Map<TraceInput, { blocks: ExecutedBlocks; timeline: CallTimeline; ips: Set<number>; instructions: number }>();

  function walk(input: TraceInput) {
    let w = walked.get(input);
    if (w === undefined) {
      const blocks = new ExecutedBlocks();
      const timeline = new CallTimeline();
      const ips = new Set<number>();
      const stats = walkTrace(input, [blocks, timeline, { onInstruction: (i) => void ips.add(i.ip) }]);
      w = { blocks, timeline, ips, instructions: stats.instructions };
      walked.set(input, w);
    }
    return w;
  }

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ptscope-tc-'));
    benign = openTraceInput(join(DEMO, 'rop_stack.benign'));
    exploit = openTraceInput(join(DEMO, 'rop_stack.exploit'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('counts the instructions the recorder traced', () => {
    const manifest = JSON.parse(readFileSync(join(DEMO, 'rop_stack.benign', 'manifest.json'), 'utf8'));
    expect(walk(benign).instructions).toBe(manifest.instructions.traced);
    expect(walk(benign).blocks.instructions).toBe(manifest.instructions.traced);
  });

  it('timeline: main calls vulnerable; the benign run goes on to puts, the exploit does not', () => {
    const name = (ip: number) => benign.modules.functionName(ip) ?? '?';
    const b = checkNesting(timelineJson(walk(benign).timeline, name).traceEvents).map((e) => e.name);
    const x = checkNesting(timelineJson(walk(exploit).timeline, (ip) => exploit.modules.functionName(ip) ?? '?').traceEvents).map((e) => e.name);
    expect(b[0]).toBe('__libc_start_main');
    for (const names of [b, x]) expect(names).toContain('vulnerable');
    expect(b.indexOf('puts') > b.indexOf('vulnerable') || b.indexOf('_IO_puts') > b.indexOf('vulnerable')).toBe(true);
    const afterVulnerable = x.slice(x.indexOf('vulnerable') + 1);
    expect(afterVulnerable.includes('puts') || afterVulnerable.includes('_IO_puts')).toBe(false);
  });

  it('executed blocks start at instructions the trace ran and cover every one of them', () => {
    const { blocks, ips } = walk(benign);
    const covered = new Set<number>();
    blocks.forEach((s, e) => {
      expect(ips.has(s)).toBe(true);
      for (const ip of ips) if (ip >= s && ip < e) covered.add(ip);
    });
    expect(covered.size).toBe(ips.size);
  });

  it('drcov: header, module table at the ELF base, blocks as offsets that round-trip', () => {
    const { blocks, ips } = walk(benign);
    const table = coverageModules(benign.modules, () => '/opt/prog');
    const d = writeDrcov(blocks, table);
    const text = Buffer.from(d.bytes.subarray(0, 300)).toString('latin1');
    expect(text.startsWith('DRCOV VERSION: 2\nDRCOV FLAVOR: drcov-64\nModule Table: version 2, count 1\nColumns: id, base, end, entry, path\n')).toBe(true);
    const log = readDrcov(d.bytes);
    expect(log.modules).toHaveLength(1);
    // A non-PIE program: the module starts at its lowest PT_LOAD, 0x400000.
    expect(log.modules[0].base).toBe(0x400000n);
    expect(log.modules[0].path).toBe('/opt/prog');
    expect(log.blocks.length).toBe(blocks.size);
    expect(d.outside).toBe(0);
    for (const bb of log.blocks) {
      expect(bb.module).toBe(0);
      expect(bb.size).toBeGreaterThan(0);
      expect(ips.has(0x400000 + bb.start)).toBe(true);
    }
    for (const v of [3, 4] as const) {
      const l = readDrcov(writeDrcov(blocks, table, v).bytes);
      expect(l.tableVersion).toBe(v);
      expect(l.modules[0].base).toBe(0x400000n);
      expect(l.blocks).toEqual(log.blocks);
    }
  });

  it('per-function coverage: puts ran in the benign run only; main and vulnerable in both', () => {
    const cb = functionCoverage(walk(benign).blocks, benign.modules)[0];
    const cx = functionCoverage(walk(exploit).blocks, exploit.modules)[0];
    const ran = (c: typeof cb, n: string) => c.list.find((f) => f.name === n)!.blocksRan > 0;
    for (const c of [cb, cx]) {
      expect(c.unavailable).toBeNull();
      expect(ran(c, 'main')).toBe(true);
      expect(ran(c, 'vulnerable')).toBe(true);
      expect(c.functionsRan).toBeGreaterThan(50);
      expect(c.functionsRan).toBeLessThan(c.functions);
      // Executed functions are listed first.
      expect(c.list.slice(0, c.functionsRan).every((f) => f.blocksRan > 0)).toBe(true);
    }
    const puts = (c: typeof cb) => c.list.filter((f) => f.name === 'puts' || f.name === '_IO_puts');
    expect(puts(cb).some((f) => f.blocksRan > 0)).toBe(true);
    expect(puts(cx).every((f) => f.blocksRan === 0)).toBe(true);
    // main's entry block ran exactly once.
    expect(cb.list.find((f) => f.name === 'main')!.entries).toBe(1);
  });

  it('ptscope timeline and coverage write their files', () => {
    const out = new LineWriter(null);
    const json = join(work, 'trace.json');
    expect(runTimelineCommand([join(DEMO, 'rop_stack.exploit'), '-o', json, '--json', '-q'], out)).toBe(0);
    out.flush();
    const summary = JSON.parse(out.text.trim());
    expect(summary.calls).toBeGreaterThan(100);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(checkNesting(doc.traceEvents).length).toBe(summary.calls);

    const out2 = new LineWriter(null);
    const drcov = join(work, 'x.drcov');
    expect(runCoverageCommand([join(DEMO, 'rop_stack.exploit'), '--format', 'drcov', '-o', drcov, '-q'], out2)).toBe(0);
    out2.flush();
    expect(out2.text).toMatch(/drcov, 1 module, \d+ basic blocks/);
    // The module path is where the program was recorded from, so Lighthouse matches "prog".
    expect(readDrcov(new Uint8Array(readFileSync(drcov))).modules[0].path).toMatch(/\/prog$/);

    const out3 = new LineWriter(null);
    expect(runCoverageCommand([join(DEMO, 'rop_stack.benign'), '--limit', '5'], out3)).toBe(0);
    out3.flush();
    expect(out3.text).toMatch(/module prog: \d+\/\d+ functions ran/);
    expect(out3.text).toMatch(/more functions \(use --limit 0 for all\)/);

    const out4 = new LineWriter(null);
    expect(runCoverageCommand([join(DEMO, 'rop_stack.benign'), '--json'], out4)).toBe(0);
    out4.flush();
    const cov = JSON.parse(out4.text);
    expect(cov.format).toBe('ptscope-coverage');
    expect(cov.modules[0].module).toBe('prog');
  });

  it('usage errors exit with status 2', () => {
    const out = new LineWriter(null);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(CliError);
        return (e as CliError).exitCode;
      }
      return 0;
    };
    expect(code(() => runCoverageCommand([join(DEMO, 'rop_stack.benign'), '--format', 'drcov'], out))).toBe(2);
    expect(code(() => runCoverageCommand([join(DEMO, 'nope')], out))).toBe(2);
    expect(code(() => runTimelineCommand([], out))).toBe(2);
    expect(code(() => runTimelineCommand([DEMO], out))).toBe(2);
  });
});
