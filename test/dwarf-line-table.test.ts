/**
 * The in-process DWARF line-table reader (src/flow/dwarf) against binutils'
 * addr2line as the oracle: programs are built here with gcc and clang in
 * several ways (-O0/-O2/-Os, DWARF 4 and 5, PIE and not, static, a shared
 * library, compressed debug sections, several compilation units with files
 * in relative directories and an inline function in a header), and every
 * instruction address of the program's own functions must give the same
 * `file:line (discriminator n)` text as `addr2line -e`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decoder, DecoderOptions, Instruction } from 'iced-x86';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfFile } from '../src/flow/elf.js';
import { LineTable, type SourceLine } from '../src/flow/dwarf/line-table.js';
import { debugSections } from '../src/flow/dwarf/debug-sections.js';
import { CodeLocations } from '../src/analyses/crash/code-locations.js';

let dir = '';
let build = '';

const HELPERS_H = `static inline int clamp(int v, int lo, int hi) {
  if (v < lo) return lo;
  if (v > hi) return hi;
  return v;
}
int checksum(const char *s, int n);
`;

const UTIL_C = `#include "helpers.h"
int checksum(const char *s, int n) {
  int sum = 0;
  for (int i = 0; i < n; i++) {
    sum = sum * 31 + s[i];
    if (sum > 100000) sum = clamp(sum % 997, 0, 500);
  }
  return sum;
}
`;

const PROG_C = `#include <stdio.h>
#include <string.h>
#include "helpers.h"

struct item { int key; const char *name; };

static int classify(int x) {
  switch (x % 7) {
  case 0: return 10;
  case 1: return clamp(x, 3, 9);
  case 2: return x * 3;
  case 3: return x - 4;
  case 4: return checksum("abc", 3);
  default: return -1;
  }
}

int sum_items(const struct item *items, int n) {
  int total = 0;
  for (int i = 0; i < n; i++)
    total += classify(items[i].key) + (int)strlen(items[i].name);
  return total;
}

int main(int argc, char **argv) {
  struct item items[] = { {1, "one"}, {2, "two"}, {7, "seven"}, {11, "eleven"} };
  int r = sum_items(items, 4);
  for (int i = 1; i < argc; i++) r += checksum(argv[i], (int)strlen(argv[i]));
  printf("%d\\n", clamp(r, 0, 1000));
  return r > 5 ? 0 : 1;
}
`;

const FUNCTIONS = ['main', 'sum_items', 'classify', 'checksum'];

/** Many functions over several compilation units, some in a subdirectory (a deterministic generator). */
function writeManyUnits(root: string): { sources: string[]; functions: string[] } {
  mkdirSync(join(root, 'src', 'sub'), { recursive: true });
  writeFileSync(join(root, 'src', 'shared.h'), 'static inline int mix(int a, int b) { return (a * 31) ^ (b + (a >> 3)); }\n');
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const stmts = [
    (j: number) => `  for (int i = 0; i < b; i++) r += i * ${j};`,
    (j: number) => `  if (r > ${j * 7}) r -= b; else r += ${j};`,
    (j: number) => `  r = mix(r, ${j});`,
    (j: number) => `  switch (r & 3) { case 0: r++; break; case 1: r *= 3; break; default: r ^= ${j}; }`,
    () => '  while (r > 1000) r /= 2;',
  ];
  const sources: string[] = [];
  const functions: string[] = ['main'];
  for (let f = 0; f < 6; f++) {
    const path = f % 2 ? `src/sub/m${f}.c` : `src/m${f}.c`;
    const lines = [f % 2 ? '#include "../shared.h"' : '#include "shared.h"'];
    for (let k = 0; k < 20; k++) {
      functions.push(`f${f}_${k}`);
      lines.push(`int f${f}_${k}(int a, int b) {`, '  int r = a;');
      const n = 2 + rand(7);
      for (let j = 0; j < n; j++) lines.push(stmts[rand(stmts.length)](j));
      lines.push('  return r;', '}');
    }
    writeFileSync(join(root, path), lines.join('\n') + '\n');
    sources.push(`../${path}`);
  }
  const main = ['#include <stdio.h>'];
  for (let f = 0; f < 6; f++) for (let k = 0; k < 20; k++) main.push(`int f${f}_${k}(int, int);`);
  main.push('int main(int c, char **v) {', '  int s = 0;');
  for (let f = 0; f < 6; f++) for (let k = 0; k < 20; k++) main.push(`  s += f${f}_${k}(c + ${k}, ${f});`);
  main.push('  printf("%d\\n", s);', '  return 0;', '}');
  writeFileSync(join(root, 'src', 'main.c'), main.join('\n') + '\n');
  sources.unshift('../src/main.c');
  return { sources, functions };
}

/** Compile in `build` (so the sources are named by relative paths, joined with the compilation directory). */
function cc(compiler: string, out: string, args: string[]): string {
  execFileSync(compiler, [...args, '-o', out], { cwd: build, stdio: ['ignore', 'ignore', 'pipe'] });
  return join(build, out);
}

/** Every instruction address of the named functions (iced-x86 over the symbol's bytes). */
function instructionAddresses(bytes: Uint8Array, elf: ElfFile, names: readonly string[]): number[] {
  const out: number[] = [];
  for (const s of elf.symbols) {
    if (!names.includes(s.name) || s.size === 0) continue;
    const sec = elf.sections.find((x) => x.type === 1 && (x.flags & 4) !== 0 && s.value >= x.addr && s.value < x.addr + x.size);
    if (sec === undefined) continue;
    const at = sec.offset + (s.value - sec.addr);
    const dec = new Decoder(64, bytes.subarray(at, at + s.size), DecoderOptions.None);
    dec.ip = BigInt(s.value);
    const ins = new Instruction();
    try {
      while (dec.canDecode) {
        dec.decodeOut(ins);
        out.push(Number(ins.ip));
      }
    } finally {
      ins.free();
      dec.free();
    }
  }
  return out;
}

/** A lookup as addr2line prints it. */
function asAddr2line(l: SourceLine | null): string {
  if (l === null) return '??:0';
  return `${l.file}:${l.line === 0 ? '?' : l.line}${l.discriminator !== 0 ? ` (discriminator ${l.discriminator})` : ''}`;
}

/** Compare every instruction address of `names` with addr2line; returns how many had a line. */
function compareWithAddr2line(path: string, names: readonly string[]): { addresses: number; withLine: number } {
  const bytes = readFileSync(path);
  const elf = ElfFile.parse(bytes, path);
  const table = LineTable.fromElf(bytes, elf);
  const addresses = instructionAddresses(bytes, elf, names);
  expect(addresses.length, path).toBeGreaterThan(20);
  const oracle = execFileSync('addr2line', ['-e', path], { input: addresses.map((a) => `0x${a.toString(16)}`).join('\n') + '\n', encoding: 'utf8', maxBuffer: 64 << 20 })
    .trimEnd()
    .split('\n');
  expect(oracle.length).toBe(addresses.length);
  const mine = addresses.map((a) => asAddr2line(table.lookup(a)));
  const differ = addresses.map((a, i) => ({ a: `0x${a.toString(16)}`, mine: mine[i], oracle: oracle[i] })).filter((d) => d.mine !== d.oracle);
  expect(differ.slice(0, 10), path).toEqual([]);
  return { addresses: addresses.length, withLine: mine.filter((m) => !m.startsWith('??')).length };
}

const SMALL = ['../src/prog.c', '../src/util.c', '-I../include'];

const VARIANTS: { name: string; compiler: string; args: string[] }[] = [
  { name: 'gcc -g -O0 (DWARF 5, PIE)', compiler: 'gcc', args: ['-g', '-O0', ...SMALL] },
  { name: 'gcc -g -O2', compiler: 'gcc', args: ['-g', '-O2', ...SMALL] },
  { name: 'gcc -g -Os', compiler: 'gcc', args: ['-g', '-Os', ...SMALL] },
  { name: 'gcc -gdwarf-4 -O0', compiler: 'gcc', args: ['-gdwarf-4', '-O0', ...SMALL] },
  { name: 'gcc -gdwarf-4 -O2', compiler: 'gcc', args: ['-gdwarf-4', '-O2', ...SMALL] },
  { name: 'gcc -g -O2 -no-pie', compiler: 'gcc', args: ['-g', '-O2', '-no-pie', ...SMALL] },
  { name: 'gcc -gdwarf-4 -O1 -no-pie', compiler: 'gcc', args: ['-gdwarf-4', '-O1', '-no-pie', ...SMALL] },
  { name: 'gcc -g -O2 -static', compiler: 'gcc', args: ['-g', '-O2', '-static', ...SMALL] },
  { name: 'gcc -g -O1 -gz (zlib-compressed sections)', compiler: 'gcc', args: ['-g', '-O1', '-gz', ...SMALL] },
  { name: 'clang -g -O0', compiler: 'clang', args: ['-g', '-O0', ...SMALL] },
  { name: 'clang -g -O2', compiler: 'clang', args: ['-g', '-O2', ...SMALL] },
  { name: 'clang -gdwarf-4 -O2', compiler: 'clang', args: ['-gdwarf-4', '-O2', ...SMALL] },
];

beforeAll(() => {
  for (const tool of ['gcc', 'clang', 'addr2line']) {
    expect(() => execFileSync(tool, ['--version'], { stdio: 'ignore' }), `${tool} is required (scripts/install-test-deps.sh)`).not.toThrow();
  }
  dir = mkdtempSync(join(tmpdir(), 'ptscope-dwarf-'));
  build = join(dir, 'build');
  mkdirSync(join(dir, 'src'), { recursive: true });
  mkdirSync(join(dir, 'include'), { recursive: true });
  mkdirSync(build, { recursive: true });
  writeFileSync(join(dir, 'include', 'helpers.h'), HELPERS_H);
  writeFileSync(join(dir, 'src', 'util.c'), UTIL_C);
  writeFileSync(join(dir, 'src', 'prog.c'), PROG_C);
});

afterAll(() => {
  if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
});

describe('line table vs addr2line', () => {
  VARIANTS.forEach((v, i) => {
    it(`${v.name}: every instruction of the program's functions`, () => {
      const path = cc(v.compiler, `prog${i}`, v.args);
      const { addresses, withLine } = compareWithAddr2line(path, FUNCTIONS);
      // Nearly every instruction of code compiled with -g has a line.
      expect(withLine).toBeGreaterThan(addresses * 0.9);
    });
  });

  it('a shared library (gcc -O2 -fPIC -shared, DWARF 4 and 5)', () => {
    for (const [k, d] of [['4', '-gdwarf-4'], ['5', '-gdwarf-5']]) {
      const path = cc('gcc', `libutil${k}.so`, [d, '-O2', '-fPIC', '-shared', '../src/util.c', '-I../include']);
      compareWithAddr2line(path, ['checksum']);
    }
  });

  it('many compilation units, files in a subdirectory and an inline header function (gcc and clang)', () => {
    const { sources, functions } = writeManyUnits(dir);
    const built = [
      cc('gcc', 'many-g2', ['-g', '-O2', '-I../src', ...sources]),
      cc('gcc', 'many-g0d4', ['-gdwarf-4', '-O0', '-I../src', ...sources]),
      cc('clang', 'many-c2', ['-g', '-O2', '-I../src', ...sources]),
    ];
    for (const path of built) {
      const { addresses } = compareWithAddr2line(path, functions);
      expect(addresses).toBeGreaterThan(2000);
    }
  });

  it('names files like addr2line: the compilation directory, then the relative directory', () => {
    const path = cc('gcc', 'names', ['-gdwarf-4', '-O0', ...SMALL]);
    const bytes = readFileSync(path);
    const elf = ElfFile.parse(bytes, path);
    const table = LineTable.fromElf(bytes, elf);
    const main = elf.symbols.find((s) => s.name === 'main')!;
    expect(table.lookup(main.value)).toMatchObject({ file: `${build}/../src/prog.c`, line: 25 });
  });

  it('gives no line for a file without debug info, or an address outside every sequence', () => {
    const path = cc('gcc', 'nodebug', ['-O2', ...SMALL]);
    const bytes = readFileSync(path);
    const elf = ElfFile.parse(bytes, path);
    expect(debugSections(bytes, elf).line).toBeNull();
    const table = LineTable.fromElf(bytes, elf);
    expect(table.sequences).toBe(0);
    expect(table.lookup(elf.entry)).toBeNull();
    const withDebug = cc('gcc', 'withdebug', ['-g', '-O2', ...SMALL]);
    const b2 = readFileSync(withDebug);
    const t2 = LineTable.fromElf(b2, ElfFile.parse(b2, withDebug));
    expect(t2.lookup(0)).toBeNull();
    expect(t2.lookup(2 ** 52)).toBeNull();
  });

  it('crash reports take their lines from it, with no external tool (PATH emptied)', () => {
    const path = cc('gcc', 'located', ['-g', '-O2', ...SMALL]);
    const elf = ElfFile.read(path);
    const text = elf.sections.find((x) => x.name === '.text')!;
    // Mapped as a PIE at 0x555555554000: the mapping of the text section's file bytes.
    const base = 0x555555554000;
    const locations = new CodeLocations(
      [{ file: path, originalPath: path, offset: text.offset, size: text.size, address: base + text.addr, displayName: 'located', runtime: null }],
      path,
    );
    const checksum = elf.symbols.find((s) => s.name === 'checksum')!;
    const want = execFileSync('addr2line', ['-e', path, `0x${checksum.value.toString(16)}`], { encoding: 'utf8' }).trim();
    const saved = process.env.PATH;
    process.env.PATH = '';
    try {
      const where = locations.locate(base + checksum.value);
      expect(where).toMatchObject({ module: 'located', symbol: 'checksum', inMain: true });
      expect(where.line).toBe(want.replace(/ \(discriminator \d+\)$/, ''));
      expect(where.line).toMatch(/\/src\/util\.c:\d+$/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it('starts the file register at 1 in DWARF 5 too (the specification; addr2line 2.40 starts at 0)', () => {
    // A header's function first in the unit: gcc makes it file 1 (file 0 and 2 are the main file) and
    // starts its sequence without DW_LNS_set_file. readelf --debug-dump=decodedline, like the
    // specification (DWARF 5 table 6.4), puts these rows in first.h; binutils 2.40's addr2line says m.c.
    writeFileSync(join(build, 'first.h'), 'int from_header(int x) {\n  int r = x * 3;\n  return r + 1;\n}\n');
    writeFileSync(join(build, 'first.c'), '#include "first.h"\nint main(int c, char **v) {\n  (void)v;\n  return from_header(c) & 1;\n}\n');
    const path = cc('gcc', 'first', ['-g', '-O2', '-ffunction-sections', 'first.c']);
    const bytes = readFileSync(path);
    const elf = ElfFile.parse(bytes, path);
    const table = LineTable.fromElf(bytes, elf);
    const fn = elf.symbols.find((x) => x.name === 'from_header')!;
    const decoded = execFileSync('readelf', ['--debug-dump=decodedline', path], { encoding: 'utf8' });
    const row = new RegExp(`^(\\S+)\\s+(\\d+)\\s+0x${fn.value.toString(16)}\\b`, 'm').exec(decoded)!;
    expect(row[1]).toBe('first.h');
    const got = table.lookup(fn.value)!;
    expect(got.file).toBe(`${build}/first.h`);
    // The line is the last row at that address, as addr2line picks it.
    const oracle = execFileSync('addr2line', ['-e', path, `0x${fn.value.toString(16)}`], { encoding: 'utf8' }).trim();
    expect(`:${got.line}`).toBe(oracle.slice(oracle.lastIndexOf(':')));
  });
});
