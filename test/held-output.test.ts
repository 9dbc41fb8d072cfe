/** The first run's output, held while the run may be recorded again (src/sources/recorder/held-output.ts). */
import { describe, expect, it } from 'vitest';
import { HeldOutput } from '../src/sources/recorder/held-output.js';

function sink(): { shown: string[]; emit: (fd: 1 | 2, b: Buffer) => void } {
  const shown: string[] = [];
  return { shown, emit: (fd, b) => shown.push(`${fd}:${b.toString()}`) };
}

describe('held output', () => {
  it('shows nothing until released, then everything in order, then passes through', () => {
    const s = sink();
    const h = new HeldOutput(100, s.emit);
    h.write(1, Buffer.from('a'));
    h.write(2, Buffer.from('b'));
    expect(s.shown).toEqual([]);
    h.release();
    expect(s.shown).toEqual(['1:a', '2:b']);
    h.write(1, Buffer.from('c'));
    expect(s.shown).toEqual(['1:a', '2:b', '1:c']);
  });

  it('dropped: nothing is shown', () => {
    const s = sink();
    const h = new HeldOutput(100, s.emit);
    h.write(1, Buffer.from('a'));
    h.drop();
    expect(s.shown).toEqual([]);
    expect(h.shownThenDropped).toBe(false);
  });

  it('past the limit it passes through, and a later drop says the output was shown', () => {
    const s = sink();
    const h = new HeldOutput(3, s.emit);
    h.write(1, Buffer.from('ab'));
    h.write(1, Buffer.from('cd'));
    expect(s.shown).toEqual(['1:ab', '1:cd']);
    h.write(2, Buffer.from('e'));
    expect(s.shown).toEqual(['1:ab', '1:cd', '2:e']);
    h.drop();
    expect(h.shownThenDropped).toBe(true);
  });
});
