/** Run-time code capture (src/sources/recorder/runtime-code.ts): joins, versions, order. */
import { describe, expect, it } from 'vitest';
import { RuntimeCode } from '../src/sources/recorder/runtime-code.js';

const b = (...x: number[]): Uint8Array => Uint8Array.from(x);
const view = (c: RuntimeCode) => c.images.map((im) => ({ at: im.address, bytes: [...im.bytes], first: im.firstExecuted }));

describe('RuntimeCode', () => {
  it('blocks close together share an image (the gap, never run, is zero and not captured); far ones do not', () => {
    const c = new RuntimeCode();
    c.add(0x1000, b(0xb8, 1, 0, 0, 0, 0xc3), 10);
    c.add(0x1008, b(0x90, 0xc3), 20);
    c.add(0x9000, b(0xc3), 30);
    expect(view(c)).toEqual([
      { at: 0x1000, bytes: [0xb8, 1, 0, 0, 0, 0xc3, 0, 0, 0x90, 0xc3], first: 10 },
      { at: 0x9000, bytes: [0xc3], first: 30 },
    ]);
    // The same bytes again (a re-translation) change nothing.
    c.add(0x1002, b(0, 0, 0, 0xc3), 40);
    expect(c.images).toHaveLength(2);
    // Code later run in the gap is not a rewrite of its zeros.
    c.add(0x1006, b(0x90, 0x90), 45);
    expect(view(c)[0].bytes.slice(6, 8)).toEqual([0x90, 0x90]);
    expect(c.images).toHaveLength(2);
    expect(c.rewritten).toBe(0);
  });

  it('code rewritten in place is a later version with its own first position; the first version is kept', () => {
    const c = new RuntimeCode();
    c.add(0x1000, b(0xb8, 41, 0, 0, 0, 0xc3), 10);
    c.add(0x1000, b(0xb8, 42, 0, 0, 0, 0xc3), 50);
    expect(c.rewritten).toBe(1);
    expect(view(c)).toEqual([
      { at: 0x1000, bytes: [0xb8, 41, 0, 0, 0, 0xc3], first: 10 },
      { at: 0x1000, bytes: [0xb8, 42, 0, 0, 0, 0xc3], first: 50 },
    ]);
    // Next to the new version, consistent code joins it, never the older image it would cover with zeros.
    c.add(0x1008, b(0xc3), 60);
    expect(view(c)[1]).toEqual({ at: 0x1000, bytes: [0xb8, 42, 0, 0, 0, 0xc3, 0, 0, 0xc3], first: 50 });
    // Unchanged bytes of the first version, where the second has none, are still that code.
    c.add(0x1000, b(0xb8, 42), 70);
    expect(c.images).toHaveLength(2);
  });

  it('a join whose gap would hide an earlier version\'s bytes is a new image instead', () => {
    const c = new RuntimeCode();
    c.add(0x1000, b(0x90, 0x90, 0x90, 0x90), 1);
    c.add(0x1000, b(0xcc), 2);
    c.add(0x1005, b(0xc3), 3);
    expect(view(c).map((x) => [x.at, x.bytes.length])).toEqual([[0x1000, 4], [0x1000, 1], [0x1005, 1]]);
  });

  it('each block\'s version is the last image holding its bytes; rewrites are found from any image on', () => {
    const c = new RuntimeCode();
    expect(c.add(0x1000, b(0xb8, 41, 0, 0, 0, 0xc3), 10)).toBe(0);
    expect(c.add(0x9000, b(0xc3), 20)).toBe(1);
    expect(c.firstRewriteFrom(0)).toBe(Infinity);
    // Rewritten: image 2, the first rewrite from any image up to it.
    expect(c.add(0x1000, b(0xb8, 42, 0, 0, 0, 0xc3), 30)).toBe(2);
    expect([0, 1, 2].map((k) => c.firstRewriteFrom(k))).toEqual([2, 2, 2]);
    expect(c.firstRewriteFrom(3)).toBe(Infinity);
    // Joined to the new version, and run again: both in image 2; the far block stays in image 1.
    expect(c.add(0x1008, b(0xc3), 40)).toBe(2);
    expect(c.add(0x1000, b(0xb8, 42), 50)).toBe(2);
    expect(c.add(0x9000, b(0xc3), 60)).toBe(1);
    // New code far from everything is a new image, not a rewrite.
    expect(c.add(0x20000, b(0x90, 0xc3), 70)).toBe(3);
    expect(c.firstRewriteFrom(3)).toBe(Infinity);
    // The first version's bytes again: a rewrite of the second.
    expect(c.add(0x1000, b(0xb8, 41, 0, 0, 0, 0xc3), 80)).toBe(4);
    expect([0, 3, 4, 5].map((k) => c.firstRewriteFrom(k))).toEqual([2, 4, 4, Infinity]);
  });

  it('a forked child gets a copy', () => {
    const c = new RuntimeCode();
    c.add(0x1000, b(0xc3), 1);
    const child = c.fork();
    child.add(0x1000, b(0xcc), 2);
    expect(c.images).toHaveLength(1);
    expect(child.images).toHaveLength(2);
    expect(child.firstRewriteFrom(0)).toBe(1);
    expect(c.firstRewriteFrom(0)).toBe(Infinity);
  });
});
