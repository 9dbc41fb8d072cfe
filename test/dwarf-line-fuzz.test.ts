/**
 * A small structure-aware fuzz of the DWARF line-table reader: the debug
 * sections of real gcc output (DWARF 4 and 5) are mutated where a hostile
 * file would strike (unit lengths, header_length, opcode_base, line_range,
 * maximum operations, the DWARF 5 entry formats and counts, over-long
 * LEB128s, extended-opcode lengths, truncation, .debug_info's stmt_list and
 * strings) and by random byte flips and splices. Every mutant must build a
 * table without an exception escaping, in bounded work (rows within three
 * times the section's bytes), and every lookup must give null or a well-formed
 * line. A hang would hit the test timeout.
 *
 * A deterministic generator makes every run the same; a few hundred
 * mutants run here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfFile } from '../src/flow/elf.js';
import { debugSections, type DebugSections } from '../src/flow/dwarf/debug-sections.js';
import { LineTable } from '../src/flow/dwarf/line-table.js';

const SOURCE = `#include <stdio.h>
static int tri(int n) { int s = 0; for (int i = 0; i < n; i++) s += i; return s; }
int pick(int x) { switch (x & 3) { case 0: return tri(x); case 1: return x * 7; default: return -x; } }
int main(int argc, char **argv) { (void)argv; printf("%d\\n", pick(argc) + tri(argc * 3)); return 0; }
`;

const MUTANTS_PER_INPUT = 200;

let dir = '';
const inputs: { name: string; sections: DebugSections; addresses: number[]; rows: number }[] = [];

/** xorshift32: the same mutants on every run. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return n <= 0 ? 0 : x % n;
  };
}

/** Offsets of the line programs' units (walking the unit lengths). */
function unitStarts(line: Uint8Array): number[] {
  const view = new DataView(line.buffer, line.byteOffset, line.byteLength);
  const out: number[] = [];
  for (let at = 0; at + 4 <= line.length; ) {
    out.push(at);
    const l = view.getUint32(at, true);
    if (l >= 0xfffffff0) break;
    at += 4 + l;
  }
  return out;
}

/** Header field offsets (relative to the unit) and sizes, for 32-bit DWARF 4 or 5. */
function headerFields(version: number): [number, number][] {
  const v5 = version >= 5;
  const hl = v5 ? 8 : 6;
  const fields: [number, number][] = [
    [0, 4], // unit_length
    [4, 2], // version
    [hl, 4], // header_length
    [hl + 4, 1], // minimum_instruction_length
    [hl + 5, 1], // maximum_operations_per_instruction
    [hl + 7, 1], // line_base
    [hl + 8, 1], // line_range
    [hl + 9, 1], // opcode_base
    [hl + 10 + 12, 1], // directory entry format count (v5) / first include directory byte (v4)
  ];
  if (v5) fields.push([6, 1], [7, 1], [hl + 10 + 13, 1], [hl + 10 + 14, 1], [hl + 10 + 15, 1]);
  return fields;
}

const EXTREMES = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xfffffff5, 0xffffffff];

function put(b: Uint8Array, at: number, size: number, value: number): void {
  for (let i = 0; i < size && at + i < b.length; i++) b[at + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
}

/** One mutant of `s` (copies of the sections; the input is untouched). */
function mutate(s: DebugSections, next: (n: number) => number): DebugSections {
  const copy = (a: Uint8Array | null): Uint8Array | null => (a === null ? null : Uint8Array.from(a));
  const m: DebugSections = { line: copy(s.line), lineStr: copy(s.lineStr), str: copy(s.str), info: copy(s.info), abbrev: copy(s.abbrev), strOffsets: copy(s.strOffsets) };
  const line = m.line!;
  const units = unitStarts(line);
  const unit = units[next(units.length)];
  const version = line[unit + 4];
  const rounds = 1 + next(3);
  for (let k = 0; k < rounds; k++) {
    switch (next(9)) {
      case 0:
      case 1: {
        // A header field set to an extreme value.
        const fields = headerFields(version);
        const [off, size] = fields[next(fields.length)];
        put(line, unit + off, size, EXTREMES[next(EXTREMES.length)]);
        break;
      }
      case 2: {
        // An over-long or huge LEB128 somewhere after the header start (counts, operands, lengths).
        const at = unit + 10 + next(Math.max(1, line.length - unit - 10));
        const n = Math.min(line.length - at, 1 + next(12));
        for (let i = 0; i < n; i++) line[at + i] = i === n - 1 && next(2) === 0 ? 0x7f : 0xff;
        break;
      }
      case 3: {
        // Byte flips.
        const n = 1 + next(8);
        for (let i = 0; i < n; i++) line[next(line.length)] ^= 1 << next(8);
        break;
      }
      case 4: {
        // An extended opcode with a wild length, or an unknown standard opcode.
        const at = unit + 30 + next(Math.max(1, line.length - unit - 30));
        if (at + 3 < line.length) {
          line[at] = 0;
          line[at + 1] = next(2) ? 0xff : 0;
          line[at + 2] = next(2) ? 0x7f : 0x01;
          line[at + 3] = next(256);
        }
        break;
      }
      case 5: {
        // Truncation: the section ends early.
        m.line = line.subarray(0, next(line.length));
        return m;
      }
      case 6: {
        // A splice: a run of bytes copied over another place.
        const from = next(line.length);
        const to = next(line.length);
        const n = next(64);
        line.copyWithin(to, from, Math.min(line.length, from + n));
        break;
      }
      case 7: {
        // .debug_info: a stmt_list or string offset pointing anywhere, or a header field.
        const info = m.info;
        if (info !== null && info.length > 16) {
          const at = next(Math.min(info.length, 64));
          put(info, at, 4, EXTREMES[next(EXTREMES.length)]);
        }
        break;
      }
      default: {
        // A string section truncated or without terminators.
        const strs = [m.lineStr, m.str].filter((x): x is Uint8Array => x !== null);
        if (strs.length > 0) {
          const target = strs[next(strs.length)];
          target.fill(0x41, next(target.length));
        }
      }
    }
  }
  return m;
}

beforeAll(() => {
  expect(() => execFileSync('gcc', ['--version'], { stdio: 'ignore' }), 'gcc is required').not.toThrow();
  dir = mkdtempSync(join(tmpdir(), 'ptscope-dwarf-fuzz-'));
  writeFileSync(join(dir, 'p.c'), SOURCE);
  for (const flags of [['-g', '-O2'], ['-gdwarf-4', '-O0']]) {
    const out = join(dir, `p${flags.join('')}`);
    execFileSync('gcc', [...flags, '-o', out, join(dir, 'p.c')]);
    const bytes = readFileSync(out);
    const elf = ElfFile.parse(bytes, out);
    const sections = debugSections(bytes, elf);
    expect(sections.line).not.toBeNull();
    const table = LineTable.fromSections(sections, true);
    const main = elf.symbols.find((s) => s.name === 'main')!;
    // Addresses around the program's code: those the original table answers, and some it does not.
    const addresses = Array.from({ length: 48 }, (_, i) => main.value - 0x200 + i * 0x10);
    expect(addresses.some((a) => table.lookup(a) !== null)).toBe(true);
    inputs.push({ name: flags.join(' '), sections, addresses, rows: table.rowCount });
  }
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('line table fuzz', () => {
  it(`${MUTANTS_PER_INPUT} mutants of each of DWARF 5 and DWARF 4 .debug_line: no exception, bounded rows, well-formed answers`, () => {
    let built = 0;
    let answered = 0;
    let damaged = 0;
    inputs.forEach((input, k) => {
      const next = rng(0x9e3779b9 + k);
      for (let i = 0; i < MUTANTS_PER_INPUT; i++) {
        const m = mutate(input.sections, next);
        let table: LineTable;
        try {
          table = LineTable.fromSections(m, true);
        } catch (e) {
          throw new Error(`${input.name} mutant ${i}: ${(e as Error).stack}`);
        }
        built++;
        if (table.rowCount < input.rows) damaged++;
        // A row costs a byte of program, and programs are decoded for at most three times the section.
        expect(table.rowCount).toBeLessThanOrEqual(3 * m.line!.length);
        for (const a of input.addresses) {
          const l = table.lookup(a);
          if (l === null) continue;
          answered++;
          expect(typeof l.file).toBe('string');
          expect(Number.isInteger(l.line) && l.line >= 0).toBe(true);
        }
      }
    });
    expect(built).toBe(MUTANTS_PER_INPUT * inputs.length);
    // The mutants hit the reader's error paths: many lose some or all of their rows.
    expect(damaged).toBeGreaterThan(MUTANTS_PER_INPUT / 4);
    // Many mutants still hold readable units: the reader drops what is broken, not everything.
    expect(answered).toBeGreaterThan(0);
  });

  it('a section of random bytes, and empty sections, give an empty table', () => {
    const next = rng(12345);
    for (let i = 0; i < 50; i++) {
      const junk = Uint8Array.from({ length: next(512) }, () => next(256));
      const t = LineTable.fromSections({ line: junk, lineStr: junk, str: junk, info: junk, abbrev: junk, strOffsets: junk }, next(2) === 0);
      expect(t.rowCount).toBeLessThanOrEqual(junk.length);
      expect(() => t.lookup(next(0x10000))).not.toThrow();
    }
    const empty = new Uint8Array(0);
    expect(LineTable.fromSections({ line: empty, lineStr: null, str: null, info: empty, abbrev: empty, strOffsets: null }, true).sequences).toBe(0);
  });
});
