import { describe, expect, it } from 'vitest';
import { GapKind, TransferKind as K } from '../src/flow/control-flow.js';
import { EventType, PtEvent } from '../src/events/event.js';
import { Image } from '../src/flow/image.js';
import { CodeFacts } from '../src/analyses/code-facts.js';
import type { DetectorContext } from '../src/analyses/detector-base.js';
import { EvidenceBuilder } from '../src/analyses/evidence.js';
import { ModuleMap } from '../src/analyses/modules.js';
import { ShadowStackDetector } from '../src/analyses/shadow-stack.js';

/** A context over an empty image: the shadow stack needs no code. */
export function emptyContext(): DetectorContext {
  const image = new Image();
  const modules = new ModuleMap();
  const facts = new CodeFacts(image);
  return {
    image,
    modules,
    facts,
    evidence: new EvidenceBuilder(facts, modules),
    thread: { pid: null, tid: null },
    offset: () => 0x1234,
    params: {},
    policyFile: null,
    monitor: [],
    openTrace: null,
    config: null,
  };
}

function event(type: EventType, ip: number, at = 0): PtEvent {
  const ev = new PtEvent();
  ev.type = type;
  ev.ip = ip;
  ev.at = at;
  return ev;
}

/** Drives a detector like the walker: call at `site` (5 bytes) to `fn`. */
class Driver {
  constructor(readonly d: ShadowStackDetector, readonly cr3 = NaN) {}
  call(site: number, fn: number): void {
    this.d.onTransfer(K.DirectCall, site, fn, 5, 3, this.cr3);
  }
  ret(from: number, to: number): void {
    this.d.onTransfer(K.Return, from, to, 1, 3, this.cr3);
  }
  syscallGap(site: number, resume = site + 2): void {
    this.d.onTransfer(K.FarCall, site, NaN, 2, 2, this.cr3);
    this.d.onGap(GapKind.Disabled);
    this.d.onEvent(event(EventType.Disabled, 0));
    this.d.onEvent(event(EventType.Enabled, resume));
  }
}

describe('shadow stack', () => {
  it('accepts matched calls and returns and flags a return to a different address', () => {
    const d = new ShadowStackDetector(emptyContext());
    const t = new Driver(d);
    t.call(0x1000, 0x2000);
    t.call(0x2010, 0x3000);
    t.ret(0x3005, 0x2015);
    expect(d.findings()).toHaveLength(0);
    t.ret(0x2020, 0x4444); // not 0x1005
    const f = d.findings();
    expect(f).toHaveLength(1);
    expect(f[0].kind).toBe('return-mismatch');
    expect(f[0].details.expected).toBe('0x1005');
    expect(f[0].details.actual).toBe('0x4444');
    expect(f[0].transfer?.kind).toBe('ret');
    expect(f[0].callPath.map((c) => c.site)).toEqual(['0x1000']);
    expect(f[0].offset).toBe(0x1234);
  });

  it('groups a chain of mismatching returns into one finding', () => {
    const d = new ShadowStackDetector(emptyContext());
    const t = new Driver(d);
    t.call(0x1000, 0x2000);
    t.call(0x2010, 0x3000);
    t.ret(0x3005, 0x5000);
    t.ret(0x5001, 0x5100);
    t.ret(0x5101, 0x5200);
    expect(d.findings()).toHaveLength(1);
    expect(d.findings()[0].details.returns).toBe(3);
    expect(d.findings()[0].chain?.map((g) => g.address)).toEqual(['0x5000', '0x5100', '0x5200']);
  });

  it('labels a finding with its stream\'s thread, and the labelled finding still grows with the chain', () => {
    const d = new ShadowStackDetector({ ...emptyContext(), thread: { pid: 40, tid: 42 } });
    const t = new Driver(d);
    t.call(0x1000, 0x2000);
    t.call(0x2010, 0x3000);
    t.ret(0x3005, 0x5000);
    t.ret(0x5001, 0x5100);
    const [f] = d.findings();
    expect([f.pid, f.tid]).toEqual([40, 42]);
    expect(f.details.returns).toBe(2);
    expect(f.chain?.map((g) => g.address)).toEqual(['0x5000', '0x5100']);
  });

  it('tolerates tail calls and deep recursion; a return to a deeper frame that no recorded switch explains is a mismatch', () => {
    const d = new ShadowStackDetector(emptyContext());
    const t = new Driver(d);
    t.call(0x1000, 0x2000); // main -> f
    for (let i = 0; i < 100000; i++) t.call(0x2100, 0x2000); // deep recursion, beyond any fixed depth
    expect(d.stackOf().depth).toBe(100001);
    for (let i = 0; i < 100000; i++) t.ret(0x2050, 0x2105);
    expect(d.stackOf().depth).toBe(1);
    // Tail call: f calls g, g jumps to h, h returns to f's caller.
    t.call(0x1100, 0x6000);
    d.onTransfer(K.DirectJump, 0x6010, 0x7000, 5, 2, NaN);
    t.ret(0x7005, 0x1105);
    expect(d.findings()).toHaveLength(0);
    // Skipping frames without a prepared switch (no setjmp, no unwinder in the trace): a finding.
    t.call(0x2200, 0x3000);
    t.ret(0x3010, 0x1005);
    expect(d.findings()).toHaveLength(1);
    expect(d.findings()[0].details.expected).toBe('0x2205');
  });

  it('keeps pairing across syscalls (a FarCall gap that resumes at the next instruction)', () => {
    const d = new ShadowStackDetector(emptyContext());
    const t = new Driver(d);
    t.call(0x1000, 0x2000);
    t.syscallGap(0x2004);
    t.ret(0x2010, 0x1005);
    expect(d.findings()).toHaveLength(0);
    expect(d.stats().returnsMatched).toBe(1);
  });

  it('resets on an overflow and notes what it could not check', () => {
    const d = new ShadowStackDetector(emptyContext());
    const t = new Driver(d);
    t.call(0x1000, 0x2000);
    d.onGap(GapKind.Overflow);
    t.ret(0x2010, 0x9999);
    expect(d.findings()).toHaveLength(0);
    const reasons = d.unchecked().map((n) => n.reason);
    expect(reasons.some((r) => r.includes('overflow'))).toBe(true);
    expect(reasons.some((r) => r.includes('empty shadow stack'))).toBe(true);
  });

  it('handles a signal handler and sigreturn (resume elsewhere, then back at the interrupted ip)', () => {
    const d = new ShadowStackDetector(emptyContext());
    const t = new Driver(d);
    t.call(0x1000, 0x2000);
    // A syscall during which a signal is delivered: tracing resumes in the handler.
    t.syscallGap(0x2004, 0x8000);
    t.call(0x8010, 0x8100); // the handler calls something
    t.ret(0x8105, 0x8015);
    t.ret(0x8020, 0x9000); // handler returns to the restorer: not paired, not a finding
    t.syscallGap(0x9007, 0x2006); // rt_sigreturn: back after the interrupted syscall
    t.ret(0x2010, 0x1005); // the interrupted function returns normally
    expect(d.findings()).toHaveLength(0);
    expect(d.stackOf().depth).toBe(0);
  });

  it('keeps separate stacks per address space', () => {
    const d = new ShadowStackDetector(emptyContext());
    const a = new Driver(d, 0x1000);
    const b = new Driver(d, 0x2000);
    a.call(0x1000, 0x2000);
    b.call(0x5000, 0x6000);
    a.ret(0x2005, 0x1005);
    b.ret(0x6005, 0x5005);
    expect(d.findings()).toHaveLength(0);
    b.call(0x5000, 0x6000);
    a.ret(0x2005, 0x5005); // b's return address in a's address space
    expect(d.findings()).toHaveLength(0); // a's stack is empty: unchecked, not a guess
    a.call(0x1000, 0x2000);
    a.ret(0x2005, 0x5005);
    expect(d.findings()).toHaveLength(1);
    expect(d.findings()[0].cr3).toBe('0x1000');
  });
});
