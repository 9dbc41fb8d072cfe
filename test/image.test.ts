import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, PtError } from '../src/packets/errors.js';
import {
  ANY_ASID,
  Asid,
  asidMatch,
  formatIp,
  ipFromBigInt,
  ipFromHiLo,
  ipHi,
  ipLo,
  isExactIp,
  NO_CR3,
} from '../src/flow/address-space.js';
import { Image } from '../src/flow/image.js';
import { addRawImage, isImageArgError, parseElfArg, parseRawArg, strtoull } from '../src/flow/raw-image-arg.js';
import { ByteSourceCache, Section } from '../src/flow/section.js';

/** Bytes 0..n-1 with value (seed + i) & 0xff, so every byte tells where it came from. */
function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i) & 0xff;
  return b;
}

function readAll(img: Image, ip: number, n: number, asid: Asid = ANY_ASID): number[] {
  const out: number[] = [];
  const buf = new Uint8Array(1);
  for (let i = 0; i < n; i++) {
    const r = img.read(buf, ip + i, 1, asid);
    out.push(r === 1 ? buf[0] : r);
  }
  return out;
}

describe('addresses', () => {
  it('represents kernel addresses as exact negative numbers', () => {
    const ip = ipFromHiLo(0xffffffff, 0x81000000);
    expect(ip).toBe(-0x7f000000);
    expect(formatIp(ip)).toBe('ffffffff81000000');
    expect(ipHi(ip)).toBe(0xffffffff);
    expect(ipLo(ip)).toBe(0x81000000);
    expect(ipFromBigInt(0xffffffff81000000n)).toBe(ip);
    expect(formatIp(ipFromHiLo(0, 0x400000))).toBe('0000000000400000');
    expect(formatIp(ipFromHiLo(0x7fff, 0xfffff000))).toBe('00007ffffffff000');
    expect(isExactIp(ipFromHiLo(0xffff8000, 0))).toBe(true);
    expect(isExactIp(2 ** 60)).toBe(false);
  });

  it('matches address spaces with wildcards like pt_asid_match', () => {
    const a = new Asid(0x1000, NO_CR3);
    expect(asidMatch(a, ANY_ASID)).toBe(true);
    expect(asidMatch(a, new Asid(0x1000, 0x5000))).toBe(true);
    expect(asidMatch(a, new Asid(0x2000))).toBe(false);
    expect(asidMatch(new Asid(0x1000, 0x5000), new Asid(0x1000, 0x6000))).toBe(false);
  });
});

describe('Image', () => {
  it('reads mapped bytes and fails with NoMap elsewhere', () => {
    const img = new Image();
    expect(img.add(Section.fromMemory('a', pattern(0x100, 0)), 0x1000)).toBe(0);
    const buf = new Uint8Array(16);
    expect(img.read(buf, 0x1010, 16, ANY_ASID)).toBe(16);
    expect(Array.from(buf)).toEqual(Array.from(pattern(16, 0x10)));
    // A read stops at the end of the section.
    expect(img.read(buf, 0x10f8, 16, ANY_ASID)).toBe(8);
    expect(img.read(buf, 0x1100, 1, ANY_ASID)).toBe(-ErrorCode.NoMap);
    expect(img.read(buf, 0xfff, 1, ANY_ASID)).toBe(-ErrorCode.NoMap);
  });

  it('cuts overlapped sections and keeps their front and back parts', () => {
    const img = new Image();
    img.add(Section.fromMemory('a', pattern(0x30, 0)), 0x1000);
    img.add(Section.fromMemory('b', pattern(0x10, 0x80)), 0x1010);
    expect(img.size).toBe(3);
    expect(readAll(img, 0x1000, 0x30)).toEqual([
      ...pattern(0x10, 0),
      ...pattern(0x10, 0x80),
      ...pattern(0x10, 0x20),
    ]);
    // A read in the front part stops where the overlay starts.
    const buf = new Uint8Array(32);
    expect(img.read(buf, 0x1008, 32, ANY_ASID)).toBe(8);
    // An overlay covering several sections and sticking out on both sides.
    img.add(Section.fromMemory('c', pattern(0x28, 0xc0)), 0x0ff8);
    expect(img.size).toBe(2);
    expect(readAll(img, 0x0ff8, 0x38)).toEqual([...pattern(0x28, 0xc0), ...pattern(0x10, 0x20)]);
  });

  it('does not cut sections of a different address space', () => {
    const img = new Image();
    const p1 = new Asid(0x1000);
    const p2 = new Asid(0x2000);
    img.add(Section.fromMemory('p1', pattern(0x10, 0x10)), 0x400000, p1);
    img.add(Section.fromMemory('p2', pattern(0x10, 0x20)), 0x400000, p2);
    expect(img.size).toBe(2);
    expect(readAll(img, 0x400000, 2, p1)).toEqual([0x10, 0x11]);
    expect(readAll(img, 0x400000, 2, p2)).toEqual([0x20, 0x21]);
    expect(readAll(img, 0x400000, 1, new Asid(0x3000))).toEqual([-ErrorCode.NoMap]);
    // A wildcard section matches both, so it replaces both.
    img.add(Section.fromMemory('any', pattern(0x10, 0x30)), 0x400008);
    expect(img.size).toBe(3);
    expect(readAll(img, 0x400006, 4, p1)).toEqual([0x16, 0x17, 0x30, 0x31]);
    expect(readAll(img, 0x400006, 4, p2)).toEqual([0x26, 0x27, 0x30, 0x31]);
  });

  it('removes by section, file name and address space, bumping the version', () => {
    const img = new Image();
    const a = Section.fromMemory('a', pattern(0x10, 0));
    const b = Section.fromMemory('b', pattern(0x10, 0));
    const cr3 = new Asid(0x7000);
    let v = img.version;
    img.add(a, 0x1000);
    expect(img.version).toBeGreaterThan(v);
    img.add(b, 0x2000, cr3);
    img.add(a, 0x3000, cr3);
    v = img.version;
    expect(img.remove(a, 0x1234)).toBe(-ErrorCode.BadImage);
    expect(img.version).toBe(v);
    expect(img.remove(a, 0x1000)).toBe(0);
    expect(img.version).toBeGreaterThan(v);
    expect(img.read(new Uint8Array(1), 0x1000, 1, ANY_ASID)).toBe(-ErrorCode.NoMap);
    expect(img.removeByFilename('a', new Asid(0x9999))).toBe(0);
    expect(img.removeByFilename('a')).toBe(1);
    expect(img.size).toBe(1);
    v = img.version;
    expect(img.removeByAsid(new Asid(0x8000))).toBe(0);
    expect(img.version).toBe(v);
    expect(img.removeByAsid(cr3)).toBe(1);
    expect(img.size).toBe(0);
    expect(img.version).toBeGreaterThan(v);
  });

  it('keeps kernel (negative) and user addresses apart and finds both', () => {
    const img = new Image();
    const kernel = ipFromHiLo(0xffffffff, 0x81000000);
    img.add(Section.fromMemory('k', pattern(0x100, 0x40)), kernel);
    img.add(Section.fromMemory('u', pattern(0x100, 0x50)), 0x400000);
    expect(readAll(img, kernel + 0xff, 1)).toEqual([(0x40 + 0xff) & 0xff]);
    expect(readAll(img, 0x400001, 1)).toEqual([0x51]);
    expect(img.add(Section.fromMemory('x', pattern(4, 0)), 2 ** 60)).toBe(-ErrorCode.Invalid);
  });

  it('loads a file once and shares it between sections', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-image-'));
    const path = join(dir, 'code.bin');
    writeFileSync(path, pattern(0x2000, 0));
    const files = new ByteSourceCache();
    const img = new Image();
    expect(img.addFile(files, path, 0, Infinity, 0x10000)).toBe(0);
    expect(img.addFile(files, path, 0x1000, 0x100, 0x20000)).toBe(0);
    const [s1, s2] = img.sections();
    expect(s1.section.source).toBe(s2.section.source);
    expect(s1.section.source.isLoaded).toBe(false);
    expect(readAll(img, 0x20000, 2)).toEqual([0x00, 0x01]);
    expect(s1.section.source.isLoaded).toBe(true);
    expect(s2.bytes.buffer).toBe(s1.bytes.buffer);
    // The size is truncated at the end of the file; an offset beyond it fails.
    expect(img.addFile(files, path, 0x1ff0, 0x100, 0x30000)).toBe(0);
    expect(img.read(new Uint8Array(0x100), 0x30000, 0x100, ANY_ASID)).toBe(0x10);
    expect(() => img.addFile(files, path, 0x2000, 1, 0x40000)).toThrow(PtError);
    expect(() => img.addFile(files, join(dir, 'missing.bin'), 0, 1, 0x40000)).toThrow(/missing\.bin/);
  });
});

describe('--raw and --elf arguments', () => {
  it('parses numbers like strtoull with base 0', () => {
    expect(strtoull('0x1f').value).toBe(0x1fn);
    expect(strtoull('017').value).toBe(15n);
    expect(strtoull('42').value).toBe(42n);
    expect(strtoull(' -1').value).toBe((1n << 64n) - 1n);
    expect(strtoull('0x').end).toBe(1);
    expect(strtoull('zz').end).toBe(0);
    expect(strtoull('0x10000000000000000').overflow).toBe(true);
  });

  it('parses every form ptxed accepts', () => {
    expect(parseRawArg('seg.bin:0x400000')).toEqual({ file: 'seg.bin', offset: 0n, size: null, base: 0x400000n });
    expect(parseRawArg('truncated.bin:0x2:0x1002')).toEqual({
      file: 'truncated.bin',
      offset: 2n,
      size: null,
      base: 0x1002n,
    });
    expect(parseRawArg('code.bin:0x10-0x30:4096')).toEqual({ file: 'code.bin', offset: 0x10n, size: 0x20n, base: 4096n });
    // A suffix that is not a range stays part of the file name (a drive letter).
    expect(parseRawArg('c:code.bin:0x1000')).toEqual({ file: 'c:code.bin', offset: 0n, size: null, base: 0x1000n });
    expect(parseRawArg('kernel.bin:0xffffffff81000000')).toMatchObject({ base: 0xffffffff81000000n });
    expect(isImageArgError(parseRawArg('code.bin'))).toBe(true);
    expect(isImageArgError(parseRawArg('code.bin:'))).toBe(true);
    expect(isImageArgError(parseRawArg('code.bin:0x1000x'))).toBe(true);
    expect(isImageArgError(parseRawArg('code.bin:0x30-0x10:0x1000'))).toBe(true);
    expect(parseElfArg('prog:0x555555554000')).toEqual({ file: 'prog', base: 0x555555554000n });
    expect(parseElfArg('prog')).toEqual({ file: 'prog', base: 0n });
    expect(parseElfArg('c:prog')).toEqual({ file: 'c:prog', base: 0n });
  });

  it('parses and maps every --raw argument of the libipt vectors', () => {
    const root = '/work/shared/vectors/libipt';
    const manifest = JSON.parse(readFileSync(join(root, 'MANIFEST.json'), 'utf8')) as {
      name: string;
      ptxed?: { argv: string[] };
    }[];
    let checked = 0;
    for (const entry of manifest) {
      const argv = entry.ptxed?.argv ?? [];
      const files = new ByteSourceCache();
      const img = new Image();
      for (let i = 0; i < argv.length; i++) {
        if (argv[i] !== '--raw') continue;
        const raw = parseRawArg(argv[i + 1]);
        if (isImageArgError(raw)) throw new Error(`${entry.name}: ${raw.error}`);
        // The file part must name the case's image; the base must round-trip.
        expect(raw.file).toMatch(/\.bin$/);
        expect(argv[i + 1].endsWith(':0x' + raw.base.toString(16))).toBe(true);
        raw.file = join(root, entry.name, raw.file);
        expect(addRawImage(img, files, raw)).toBe(0);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(300);
  });

  it('maps truncated.bin twice as the vector does', () => {
    const dir = '/work/shared/vectors/libipt/truncated';
    const whole = readFileSync(join(dir, 'truncated.bin'));
    const files = new ByteSourceCache();
    const img = new Image();
    for (const arg of ['truncated.bin:0x1000', 'truncated.bin:0x2:0x1002']) {
      const raw = parseRawArg(arg);
      if (isImageArgError(raw)) throw new Error(raw.error);
      raw.file = join(dir, raw.file);
      expect(addRawImage(img, files, raw)).toBe(0);
    }
    // The second mapping cut the first at 0x1002; the bytes are the same.
    expect(img.sections().map((m) => [m.vaddr, m.size])).toEqual([
      [0x1000, 2],
      [0x1002, whole.length - 2],
    ]);
    expect(readAll(img, 0x1000, whole.length)).toEqual(Array.from(whole));
    const buf = new Uint8Array(15);
    expect(img.read(buf, 0x1000, 15, ANY_ASID)).toBe(2);
  });
});
