/** The image each part of a stream decodes with (src/flow/image-timeline.ts). */
import { describe, expect, it } from 'vitest';
import { Image } from '../src/flow/image.js';
import { ImageTimeline, type TimelineLayers } from '../src/flow/image-timeline.js';
import { CodeFacts } from '../src/analyses/code-facts.js';

/** Layers that record what was asked: images named by the layers they hold. */
function recorder(): { layers: TimelineLayers<Image>; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    layers: {
      build: (n) => {
        calls.push(`build ${n}`);
        return new Image(`0-${n}`);
      },
      extend: (image, from, to) => {
        calls.push(`extend ${from}-${to}`);
        return image;
      },
    },
  };
}

describe('ImageTimeline', () => {
  it('the part of the last PSB at or before a sync offset', () => {
    const t = new ImageTimeline([0, 100, 250], [1, 2, 3], recorder().layers);
    expect([0, 99, 100, 101, 249, 250, 1e9].map((o) => t.indexAt(o))).toEqual([0, 0, 1, 1, 1, 2, 2]);
  });

  it('refuses offsets that do not start at 0 and increase, and a count mismatch', () => {
    const { layers } = recorder();
    expect(() => new ImageTimeline([10, 20, 30], [1, 2, 3], layers)).toThrow(/first at 0/);
    expect(() => new ImageTimeline([0, 20, 20], [1, 2, 3], layers)).toThrow(/increase/);
    expect(() => new ImageTimeline([0, 20], [1, 2, 3], layers)).toThrow(/one layer count per offset/);
  });

  it('a cursor extends its image going forward, builds anew going back, and cursors are independent', () => {
    const { layers, calls } = recorder();
    const t = new ImageTimeline([0, 100, 250, 400], [1, 3, 3, 6], layers);
    const a = t.cursor();
    const first = a.imageFor(0);
    expect(a.imageFor(1)).toBe(first);
    expect(a.imageFor(2)).toBe(first);
    expect(a.imageFor(3)).toBe(first);
    const again = a.imageFor(1);
    expect(again).not.toBe(first);
    const b = t.cursor();
    expect(b.imageFor(3)).not.toBe(again);
    expect(calls).toEqual(['build 1', 'extend 1-3', 'extend 3-6', 'build 3', 'build 6']);
  });
});

describe('CodeFacts over a timeline (code rewritten while it ran)', () => {
  it('answers from the image of the part of the trace the flow stands in, not from each address\'s last version', () => {
    // Part 0: `call rel32` at 0x1000 ends at 0x1005 (a call-preceded return site); part 1 maps nops over it.
    const CALL = Uint8Array.from([0xe8, 0, 0, 0, 0, 0xc3]);
    const NOPS = Uint8Array.from([0x90, 0x90, 0x90, 0x90, 0x90, 0xc3]);
    const layers: TimelineLayers<Image> = {
      build: (n) => {
        const im = new Image('part');
        im.addMemory('call', CALL, 0x1000);
        if (n > 0) im.addMemory('nops', NOPS, 0x1000);
        return im;
      },
      extend: (im, from, to) => {
        if (from === 0 && to > 0) im.addMemory('nops', NOPS, 0x1000);
        return im;
      },
    };
    const top = layers.build(1);
    top.timeline = new ImageTimeline([0, 500], [0, 1], layers);
    const facts = new CodeFacts(top);
    let at = 100;
    facts.position = () => at;
    expect(facts.isCallPreceded(0x1005)).toBe(1);
    expect(facts.disassembleAt(0x1000)).toMatch(/^call /);
    at = 600;
    expect(facts.isCallPreceded(0x1005)).toBe(0);
    expect(facts.disassembleAt(0x1000)).toBe('nop');
    at = 200;
    expect(facts.isCallPreceded(0x1005)).toBe(1);
    // Without a position (no flow), the stream's image: each address's last version.
    expect(new CodeFacts(top).isCallPreceded(0x1005)).toBe(0);
  });
});
