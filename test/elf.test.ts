import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, PtError } from '../src/packets/errors.js';
import { ANY_ASID } from '../src/flow/address-space.js';
import { ElfFile, EM_386, EM_X86_64, ET_DYN, ET_EXEC, loadElf, PT_LOAD } from '../src/flow/elf.js';
import { Image } from '../src/flow/image.js';
import { InstructionDecoder } from '../src/flow/instruction-decoder.js';
import { ExecMode, InsnClass, InstructionInfo } from '../src/flow/instruction.js';
import { ByteSourceCache } from '../src/flow/section.js';

// binutils' readelf and nm are the oracle for what the files contain.
function readelf(args: string[], file: string): string {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8' });
}

function nmAddress(file: string, symbol: string): number {
  const line = execFileSync('nm', [file], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.endsWith(' ' + symbol));
  if (!line) throw new Error(`${symbol} not in ${file}`);
  return parseInt(line.split(' ')[0], 16);
}

function oracleLoads(file: string): { offset: number; vaddr: number; filesz: number }[] {
  return readelf(['-l'], file)
    .split('\n')
    .filter((l) => /^\s+LOAD\s/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { offset: parseInt(f[1], 16), vaddr: parseInt(f[2], 16), filesz: parseInt(f[4], 16) };
    });
}

function oracleBuildId(file: string): string | null {
  const m = /Build ID: ([0-9a-f]+)/.exec(readelf(['-n'], file));
  return m ? m[1] : null;
}

function oracleEntry(file: string): number {
  const m = /Entry point address:\s+0x([0-9a-f]+)/.exec(readelf(['-h'], file));
  if (!m) throw new Error('no entry');
  return parseInt(m[1], 16);
}

let dir = '';
let prog64 = '';
let prog32 = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptscope-elf-'));
  const src = join(dir, 'prog.c');
  writeFileSync(
    src,
    [
      'int helper(int x) { return x * 3 + 1; }',
      'int other(int x) { return helper(x) - 2; }',
      'int main(int argc, char **argv) { (void) argv; return other(argc); }',
      '',
    ].join('\n'),
  );
  prog64 = join(dir, 'prog64');
  execFileSync('gcc', ['-O1', '-fno-inline', '-Wl,--build-id', '-o', prog64, src]);
  // No 32-bit C library here: a freestanding static i386 program.
  const src32 = join(dir, 'start32.c');
  writeFileSync(src32, 'int helper(int x) { return x * 3; }\nvoid _start(void) { helper(1); for (;;) ; }\n');
  prog32 = join(dir, 'prog32');
  execFileSync('gcc', ['-m32', '-O1', '-nostdlib', '-static', '-no-pie', '-fno-pie', '-Wl,--build-id', '-o', prog32, src32]);
});

describe('ElfFile', () => {
  it('reads the headers, segments, build id and symbols of a 64-bit PIE', () => {
    const elf = ElfFile.read(prog64);
    expect(elf.bits).toBe(64);
    expect(elf.littleEndian).toBe(true);
    expect(elf.machine).toBe(EM_X86_64);
    expect(elf.type).toBe(ET_DYN);
    expect(elf.entry).toBe(oracleEntry(prog64));
    expect(elf.buildId).toBe(oracleBuildId(prog64));
    expect(elf.loadSegments().map((s) => ({ offset: s.offset, vaddr: s.vaddr, filesz: s.filesz }))).toEqual(
      oracleLoads(prog64).filter((s) => s.filesz > 0),
    );
    const helper = nmAddress(prog64, 'helper');
    expect(elf.symbolize(helper)).toMatchObject({ name: 'helper', offset: 0 });
    expect(elf.symbolize(helper + 2)).toMatchObject({ name: 'helper', offset: 2 });
    expect(elf.symbolize(nmAddress(prog64, 'main'))).toMatchObject({ name: 'main', offset: 0 });
  });

  it('reads a 32-bit executable', () => {
    const elf = ElfFile.read(prog32);
    expect(elf.bits).toBe(32);
    expect(elf.machine).toBe(EM_386);
    expect(elf.type).toBe(ET_EXEC);
    expect(elf.entry).toBe(oracleEntry(prog32));
    expect(elf.entry).toBe(nmAddress(prog32, '_start'));
    expect(elf.buildId).toBe(oracleBuildId(prog32));
    expect(elf.loadSegments().map((s) => ({ offset: s.offset, vaddr: s.vaddr, filesz: s.filesz }))).toEqual(
      oracleLoads(prog32),
    );
    expect(elf.symbolize(nmAddress(prog32, 'helper') + 1)).toMatchObject({ name: 'helper', offset: 1 });
  });

  it('reads /bin/true (stripped: dynamic symbols only)', () => {
    const elf = ElfFile.read('/bin/true');
    expect(elf.machine).toBe(EM_X86_64);
    expect(elf.entry).toBe(oracleEntry('/bin/true'));
    expect(elf.buildId).toBe(oracleBuildId('/bin/true'));
    expect(elf.loadSegments().length).toBe(oracleLoads('/bin/true').length);
    expect(elf.sections.some((s) => s.name === '.dynsym')).toBe(true);
  });

  it('rejects malformed files with a PtError, never a crash', () => {
    const good = readFileSync(prog64);
    const expectBad = (bytes: Uint8Array, why: RegExp) => {
      let err: unknown;
      try {
        ElfFile.parse(bytes, 'x');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PtError);
      expect((err as PtError).code).toBe(ErrorCode.BadImage);
      expect((err as PtError).message).toMatch(why);
    };
    expectBad(new Uint8Array(0), /too short/);
    const wrongMagic = Uint8Array.from(good);
    wrongMagic[1] = 0x46;
    expectBad(wrongMagic, /magic/);
    const badClass = Uint8Array.from(good);
    badClass[4] = 7;
    expectBad(badClass, /class 7/);
    expectBad(good.subarray(0, 40), /outside the file/);
    expectBad(good.subarray(0, 200), /outside the file/);
    const badPhoff = Uint8Array.from(good);
    new DataView(badPhoff.buffer).setBigUint64(32, 0x7fffffffn, true);
    expectBad(badPhoff, /program header table/);
    const hugeOff = Uint8Array.from(good);
    new DataView(hugeOff.buffer).setBigUint64(40, 0xffffffffffffffffn, true);
    expectBad(hugeOff, /too large/);

    // Random corruption anywhere in the headers: parse or PtError, nothing else.
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
    const shoff = Number(new DataView(good.buffer, good.byteOffset).getBigUint64(40, true));
    for (let i = 0; i < 300; i++) {
      const b = Uint8Array.from(good);
      for (let k = 0; k < 4; k++) {
        const region = rand() & 1 ? rand() % 0x400 : shoff + (rand() % (good.length - shoff));
        b[region] = rand() & 0xff;
      }
      try {
        ElfFile.parse(b, 'fuzz');
      } catch (e) {
        expect(e).toBeInstanceOf(PtError);
      }
    }
  });
});

describe('loadElf', () => {
  it('maps the PT_LOAD segments at their linked addresses', () => {
    const files = new ByteSourceCache();
    const img = new Image();
    const loaded = loadElf(img, files, prog32, 0);
    const loads = oracleLoads(prog32);
    expect(loaded.mapped.map(({ offset, vaddr, filesz }) => ({ offset, vaddr, filesz }))).toEqual(loads.filter((s) => s.filesz > 0));
    expect(loaded.warnings).toEqual([]);
    expect(img.sections().map((m) => [m.vaddr, m.size, m.sourceOffset])).toEqual(
      loads.map((s) => [s.vaddr, s.filesz, s.offset]),
    );
    // The code at helper is the file's bytes, and decodes as 32-bit code.
    const helper = nmAddress(prog32, 'helper');
    const seg = loads.find((s) => helper >= s.vaddr && helper < s.vaddr + s.filesz)!;
    const file = readFileSync(prog32);
    const buf = new Uint8Array(4);
    expect(img.read(buf, helper, 4, ANY_ASID)).toBe(4);
    const at = seg.offset + helper - seg.vaddr;
    expect(Array.from(buf)).toEqual(Array.from(file.subarray(at, at + 4)));
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    let ip = helper;
    let guard = 0;
    while (dec.decode(insn, ip, ExecMode.Bit32, ANY_ASID) === 0 && insn.iclass !== InsnClass.Return && guard++ < 20) {
      ip += insn.size;
    }
    expect(insn.iclass).toBe(InsnClass.Return);
    expect(loaded.symbolize(ip)).toMatchObject({ name: 'helper' });
    dec.dispose();
  });

  it('rebases so the lowest segment lands at the base (ptxed --elf file:base)', () => {
    const files = new ByteSourceCache();
    const img = new Image();
    const base = 0x555555554000;
    const loaded = loadElf(img, files, prog64, 0x555555554000n);
    const loads = oracleLoads(prog64).filter((s) => s.filesz > 0);
    const min = Math.min(...loads.map((s) => s.vaddr));
    expect(loaded.loadOffset).toBe(base - min);
    expect(img.sections().map((m) => m.vaddr)).toEqual(loads.map((s) => s.vaddr - min + base));
    const helper = nmAddress(prog64, 'helper') - min + base;
    expect(loaded.symbolize(helper + 1)).toMatchObject({ name: 'helper', offset: 1 });
    // The entry point's first instruction decodes from the rebased image.
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    expect(dec.decode(insn, loaded.elf.entry + loaded.loadOffset, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.size).toBeGreaterThan(0);
    dec.dispose();
  });

  it('fails clearly for files that are not ELF', () => {
    const notElf = join(dir, 'not-elf.bin');
    writeFileSync(notElf, 'hello world, not an elf at all');
    expect(() => loadElf(new Image(), new ByteSourceCache(), notElf)).toThrow(/not an ELF file/);
    expect(() => loadElf(new Image(), new ByteSourceCache(), join(dir, 'nope'))).toThrow(PtError);
  });

  it('counts only PT_LOAD entries as ptxed does', () => {
    const elf = ElfFile.read(prog64);
    expect(elf.segments.filter((s) => s.type === PT_LOAD).length).toBe(oracleLoads(prog64).length);
  });
});
