/** The image each part of a stream decodes with (src/flow/image-timeline.ts). */
import { describe, expect, it } from 'vitest';
import { Image } from '../src/flow/image.js';
import { ImageTimeline, type TimelineLayers } from '../src/flow/image-timeline.js';

/** Layers that record what was asked: images named by the layers they hold. */
function recorder(): { layers: TimelineLayers; calls: string[] } {
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
