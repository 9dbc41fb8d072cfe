/**
 * UncheckedLog: noteFor (a reason built once per key) keeps the notes that
 * note() with the built reason keeps, count for count and in order, also
 * when the reason list fills and past the keys it remembers.
 */
import { describe, expect, it } from 'vitest';
import { UncheckedLog } from '../src/analyses/finding.js';
import { Rng } from '../bench/synthetic-trace.js';

const near = (a: number): string => `near ${a}`;
const far = (a: number): string => `far ${a}`;

describe('UncheckedLog.noteFor', () => {
  it('gives the notes note() gives, on random keys, two reasons, a full reason list and more keys than it remembers', () => {
    for (const [maxReasons, keys] of [[64, 10], [8, 30], [64, 9000]] as const) {
      const rng = new Rng(maxReasons * 7 + keys);
      const viaNote = new UncheckedLog('d', maxReasons);
      const viaKey = new UncheckedLog('d', maxReasons);
      let built = 0;
      const counting = (a: number): string => {
        built++;
        return near(a);
      };
      for (let i = 0; i < 20_000; i++) {
        const key = rng.int(keys);
        const reason = rng.int(3) === 0 ? far : near;
        const offset = i * 3;
        viaNote.note(reason(key), offset);
        viaKey.noteFor(reason === near ? counting : far, key, offset);
        // A plain note of the same reason goes to the same note.
        if (rng.int(50) === 0) {
          viaNote.note(near(key), offset, 2);
          viaKey.note(near(key), offset, 2);
        }
      }
      expect(viaKey.notes()).toEqual(viaNote.notes());
      expect(viaKey.notes().length).toBe(Math.min(maxReasons + 1, 2 * keys));
      // Built once per key while it remembers keys (4096 per reason), then per call.
      if (keys <= 4096) expect(built).toBeLessThanOrEqual(keys);
      else expect(built).toBeGreaterThan(4096);
    }
  });
});
