/**
 * The exec follower's marker (exec-follow.ts): what the recorder accepts
 * from a thread's log FIFO between two emulators. The marker is hostile
 * input only in principle (a NUL cannot reach qemu's text log), but it is
 * parsed strictly all the same.
 */
import { describe, expect, it } from 'vitest';
import { parseExecMarker } from '../src/sources/recorder/exec-follow.js';

const hex = (s: string): string => (s === '' ? '-' : Buffer.from(s, 'utf8').toString('hex'));

describe('exec markers', () => {
  it('a followed program: path, copy, every argument (empty ones too)', () => {
    const line = `PTSCOPE-EXEC followed ${hex('/usr/bin/ls')} - 3 ${hex('ls')} ${hex('')} ${hex('-l')} +0`;
    expect(parseExecMarker(line)).toEqual({ kind: 'followed', path: '/usr/bin/ls', copy: '', argv: ['ls', '', '-l'], omitted: 0 });
  });

  it('arguments past the marker bound are counted, and a copy is named', () => {
    const line = `PTSCOPE-EXEC followed ${hex('/memfd:x (deleted)')} ${hex('exec-2')} 5 ${hex('a')} ${hex('b')} +3`;
    expect(parseExecMarker(line)).toEqual({ kind: 'followed', path: '/memfd:x (deleted)', copy: 'exec-2', argv: ['a', 'b'], omitted: 3 });
  });

  it('a program left native, with the reason', () => {
    expect(parseExecMarker(`PTSCOPE-EXEC untraced ${hex('/bin/x')} ${hex('not an x86-64 program')}`)).toEqual({ kind: 'untraced', path: '/bin/x', reason: 'not an x86-64 program' });
  });

  it('refuses anything malformed', () => {
    const bad = [
      '',
      'PTSCOPE-EXEC',
      `PTSCOPE-EXEC other ${hex('/x')}`,
      `PTSCOPE-EXEC followed ${hex('/x')} - 2 ${hex('a')} +0`, // count does not add up
      `PTSCOPE-EXEC followed ${hex('/x')} - 1 zz +0`, // not hex
      `PTSCOPE-EXEC followed ${hex('/x')} - 1 ${hex('a')}`, // no omitted count
      `PTSCOPE-EXEC followed ${hex('/x')} ${hex('../../etc/passwd')} 1 ${hex('a')} +0`, // a copy name outside the directory
      `PTSCOPE-EXEC followed ${hex('/x')} - 99999999 +99999999`,
      `PTSCOPE-EXEC untraced ${hex('/x')}`,
      `PTSCOPE-EXEC untraced ${hex('/x')} abc`,
    ];
    for (const line of bad) expect(parseExecMarker(line), line).toBeNull();
  });
});
