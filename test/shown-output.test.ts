/** The program's output when it may be run twice (src/sources/recorder/shown-output.ts). */
import { describe, expect, it } from 'vitest';
import { ShownOutput } from '../src/sources/recorder/shown-output.js';

function sink(): { shown: string[]; emit: (fd: 1 | 2, b: Buffer) => void } {
  const shown: string[] = [];
  return { shown, emit: (fd, b) => b.length > 0 && shown.push(`${fd}:${b.toString()}`) };
}

describe('shown output', () => {
  it('the first run\'s output is shown at once (an interactive driver sees its prompt)', () => {
    const s = sink();
    const o = new ShownOutput(100, s.emit);
    o.write(1, Buffer.from('prompt> '));
    expect(s.shown).toEqual(['1:prompt> ']);
  });

  it('the second run shows only what goes past the first run\'s output, per stream, however it is chunked', () => {
    const s = sink();
    const o = new ShownOutput(100, s.emit);
    o.write(1, Buffer.from('hel'));
    o.write(1, Buffer.from('lo\n'));
    o.write(2, Buffer.from('warn\n'));
    o.rerun();
    o.write(1, Buffer.from('h'));
    o.write(1, Buffer.from('ello\nwor'));
    o.write(2, Buffer.from('warn\nmore\n'));
    o.write(1, Buffer.from('ld\n'));
    expect(s.shown).toEqual(['1:hel', '1:lo\n', '2:warn\n', '1:wor', '2:more\n', '1:ld\n']);
    expect(o.diverged).toBe(false);
  });

  it('a second run that prints something else is shown from where it differs, and says so', () => {
    const s = sink();
    const o = new ShownOutput(100, s.emit);
    o.write(1, Buffer.from('pid 12\n'));
    o.rerun();
    o.write(1, Buffer.from('pid 13\nok\n'));
    expect(s.shown).toEqual(['1:pid 12\n', '1:3\nok\n']);
    expect(o.diverged).toBe(true);
  });

  it('past its bound the first run\'s output is still shown, and the overflow is known', () => {
    const s = sink();
    const o = new ShownOutput(4, s.emit);
    o.write(1, Buffer.from('abc'));
    o.write(1, Buffer.from('def'));
    expect(s.shown).toEqual(['1:abc', '1:def']);
    expect(o.overflowed).toBe(true);
  });
});
