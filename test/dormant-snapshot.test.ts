/**
 * The shim's snapshot file (src/analyses/dormant/snapshot.ts) lies in the
 * program's working directory: a record cut off at the end is dropped with
 * the records before it kept, and a record whose counts or bounds are out
 * of range is refused with one line, never a RangeError from a typed array.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSnapshots } from '../src/analyses/dormant/snapshot.js';

const dir = mkdtempSync(join(tmpdir(), 'ptscope-snapshot-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One record in the shim's layout: a 192-byte header, one module, the given regions. */
function record(name: string, regions: { lo: bigint; hi: bigint; bytes?: Buffer }[], nregions = regions.length, occurrence = 0n): Buffer {
  const h = Buffer.alloc(192);
  h.writeUInt32LE(0x324e5350, 0);
  h.writeUInt32LE(name.length, 4);
  h.write(name, 8, 'latin1');
  h.writeBigUInt64LE(0x1234n, 40);
  h.writeUInt32LE(0, 48);
  h.writeUInt32LE(1, 52);
  h.writeBigUInt64LE(occurrence, 56);
  h.writeBigUInt64LE(0x7ffc0000n, 72 + 6 * 8);
  h.writeBigUInt64LE(42n, 176);
  h.writeUInt32LE(nregions, 184);
  const path = Buffer.from('/work/program', 'latin1');
  const m = Buffer.alloc(32);
  m.writeBigUInt64LE(0x400000n, 0);
  m.writeBigUInt64LE(0x401000n, 8);
  m.writeBigUInt64LE(0n, 16);
  m.writeUInt32LE(path.length, 24);
  m.writeUInt32LE(1, 28);
  const parts: Buffer[] = [h, m, path];
  for (const r of regions) {
    const range = Buffer.alloc(16);
    range.writeBigUInt64LE(r.lo, 0);
    range.writeBigUInt64LE(r.hi, 8);
    parts.push(range, r.bytes ?? Buffer.alloc(Number(r.hi - r.lo), 0x61));
  }
  return Buffer.concat(parts);
}

function file(name: string, bytes: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

describe('snapshot file', () => {
  const first = record('getenv', [{ lo: 0x10000n, hi: 0x10010n }]);
  const second = record('time', [{ lo: 0x20000n, hi: 0x21000n }]);

  it('reads whole records: call, result and memory', () => {
    const s = readSnapshots(file('two.snap', Buffer.concat([first, second])));
    expect(s.map((x) => [x.name, x.result])).toEqual([
      ['getenv', 42n],
      ['time', 42n],
    ]);
    expect(s[0].memory.cString(0x10000)).toBeNull();
    expect(s[1].memory.byte(0x20fff)).toBe(0x61);
    expect(s[1].memory.byte(0x21000)).toBe(-1);
  });

  it('which call at its site a record is: the shim\'s count, and none past what a rule can name', () => {
    const counted = [3n, 999_999_999n, 1_000_000_000n, (1n << 64n) - 1n].map((n) => record('fgets', [{ lo: 0x10000n, hi: 0x10010n }], 1, n));
    const s = readSnapshots(file('occurrences.snap', Buffer.concat([first, ...counted])));
    expect(s.map((x) => x.occurrence)).toEqual([0, 3, 999_999_999, 0, 0]);
  });

  it('a record cut off anywhere ends the file; the records before it are kept', () => {
    for (const cut of [10, 192, 200, 192 + 32 + 5, second.length - 16 - 0x1000 + 3, second.length - 1]) {
      const s = readSnapshots(file(`cut-${cut}.snap`, Buffer.concat([first, second.subarray(0, cut)])));
      expect(s.map((x) => x.name), `cut at ${cut}`).toEqual(['getenv']);
    }
  });

  it('out-of-range counts and bounds are refused with one line', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['regions', record('getenv', [], 1 << 20), /bad region count/],
      ['inverted', record('getenv', [{ lo: 0x2000n, hi: 0x1000n, bytes: Buffer.alloc(0) }]), /bad memory region/],
      ['huge', record('getenv', [{ lo: 0n, hi: 1n << 40n, bytes: Buffer.alloc(0) }]), /bad memory region/],
    ];
    for (const [name, bytes, message] of cases) {
      let error: unknown = null;
      try {
        readSnapshots(file(`${name}.snap`, bytes));
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(Error);
      expect(error, name).not.toBeInstanceOf(RangeError);
      expect((error as Error).message, name).toMatch(message);
      expect((error as Error).message).not.toContain('\n');
    }
  });
});
