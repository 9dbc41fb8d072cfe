/** The image each part of a stream decodes with (src/flow/image-timeline.ts). */
import { describe, expect, it } from 'vitest';
import { Image } from '../src/flow/image.js';
import { ImageTimeline } from '../src/flow/image-timeline.js';

describe('ImageTimeline', () => {
  const images = [new Image('a'), new Image('b'), new Image('c')];

  it('the image of the last PSB at or before a sync offset', () => {
    const t = new ImageTimeline([0, 100, 250], images);
    expect([0, 99, 100, 101, 249, 250, 1e9].map((o) => t.indexAt(o))).toEqual([0, 0, 1, 1, 1, 2, 2]);
  });

  it('refuses offsets that do not start at 0 and increase, and a count mismatch', () => {
    expect(() => new ImageTimeline([10, 20, 30], images)).toThrow(/first at 0/);
    expect(() => new ImageTimeline([0, 20, 20], images)).toThrow(/increase/);
    expect(() => new ImageTimeline([0, 20], images)).toThrow(/one image per offset/);
  });
});
