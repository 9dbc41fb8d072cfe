/**
 * The stack that ran out (src/analyses/crash/stack-exhaustion.ts): which
 * faulting access is the stack's end, which call site recurses (and the
 * cycle of a mutual recursion), and which frame allocated too much.
 */
import { describe, expect, it } from 'vitest';
import { frameAllocation, isStackEnd, LARGE_STACK_ALLOCATION, MIN_RECURSION, recursionAtCrash, STACK_END_REACH } from '../src/analyses/crash/stack-exhaustion.js';

describe('the stack end', () => {
  it('is an access it cannot make next to the stack pointer, not any bad address', () => {
    const rsp = 0x7ffd0000;
    expect(isStackEnd(rsp - 8, rsp, false)).toBe(true);
    expect(isStackEnd(rsp + 0x104, rsp, false)).toBe(true);
    expect(isStackEnd(rsp - 8, rsp, true)).toBe(false);
    expect(isStackEnd(rsp - STACK_END_REACH - 1, rsp, false)).toBe(false);
    expect(isStackEnd(0, rsp, false)).toBe(false);
  });
});

describe('recursion at the crash', () => {
  // Window indices of the open calls stand in for themselves; the call site of index c is sites[c].
  const siteOf = (sites: number[]) => (c: number) => sites[c];

  it('names the call site open most often, with a cycle of one call', () => {
    const sites = [0x100, 0x200, ...Array(20).fill(0x300)];
    const open = sites.map((_, i) => i);
    const r = recursionAtCrash(open, siteOf(sites))!;
    expect(r.openings).toBe(20);
    expect(r.site).toBe(open.length - 1);
    expect(r.cycle).toEqual([open.length - 1]);
  });

  it('a mutual recursion: the innermost of its sites, and the calls of one turn', () => {
    const sites = [0x100];
    for (let i = 0; i < 30; i++) sites.push(0x400, 0x500);
    sites.push(0x600);
    const open = sites.map((_, i) => i);
    const r = recursionAtCrash(open, siteOf(sites))!;
    expect(r.openings).toBe(30);
    expect(sites[r.site]).toBe(0x500);
    expect(r.cycle.map((c) => sites[c])).toEqual([0x400, 0x500]);
  });

  it(`is no recursion below ${MIN_RECURSION} openings`, () => {
    const sites = [0x100, ...Array(MIN_RECURSION - 1).fill(0x300)];
    expect(recursionAtCrash(sites.map((_, i) => i), siteOf(sites))).toBeNull();
    expect(recursionAtCrash([], siteOf([]))).toBeNull();
  });
});

describe('the frame that allocated too much', () => {
  const writes = (set: number[]) => (t: number) => set.includes(t);

  it('one large allocation: the instruction, and the whole frame size', () => {
    // rsp before each instruction: a push, then sub rsp of 1 MiB at index 2.
    const rsp = [0x10000000n, 0x0ffffff8n, 0x0ffffff8n, 0x0fefffe8n, 0x0fefffe8n].map((v) => v);
    const r = frameAllocation(0, rsp.length, writes([0, 2]), (t) => rsp[t])!;
    expect(r.t).toBe(2);
    expect(r.bytes).toBe(0x10000000 - 0x0fefffe8);
  });

  it('page probes (stack-clash protection): the frame size adds up; the place is one probe', () => {
    const rsp: bigint[] = [0x20000000n];
    const pages = 40;
    for (let i = 0; i < pages; i++) rsp.push(rsp[rsp.length - 1] - 4096n);
    const r = frameAllocation(0, rsp.length, () => true, (t) => rsp[t] ?? null)!;
    expect(r.bytes).toBe(pages * 4096);
    expect(r.bytes).toBeGreaterThanOrEqual(LARGE_STACK_ALLOCATION);
  });

  it('a small frame, or unknown stack pointers, is no allocation to name', () => {
    const rsp = [0x1000n, 0xff8n, 0xf00n, 0xf00n];
    expect(frameAllocation(0, rsp.length, () => true, (t) => rsp[t])).toBeNull();
    expect(frameAllocation(0, 4, () => true, () => null)).toBeNull();
  });
});
