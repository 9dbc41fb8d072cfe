/**
 * Hostile ELF images and image lists (issue 14): section headers that lie
 * about their size or place, and a trace that lists the same file
 * thousands of times. Each reproduction must finish with bounded work:
 * sections are clamped to what the file backs, code is modelled in sparse
 * regions, files are read and parsed once per content, and the number of
 * image entries is capped.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ElfFile } from '../src/flow/elf.js';
import { analyzeElfFile } from '../src/flow/static/cfg.js';
import { disassembleElf } from '../src/flow/static/disassembly.js';
import { ElfBytes, SHF_ALLOC } from '../src/flow/static/elf-tables.js';
import { ImageCache, MAX_IMAGE_ENTRIES } from '../src/flow/static/image-cache.js';
import { ModuleMap, TooManyImagesError } from '../src/analyses/modules.js';

let dir = '';
let nopie = '';
let pie = '';

const SOURCE = `
#include <stdio.h>
static const char *names[] = { "zero", "one", "two", "three", "four", "five", "six" };
static int counter;
__attribute__((constructor)) static void init(void) { counter = 3; }
__attribute__((noipa)) const char *pick(int x) {
  switch (x) { case 0: return names[1]; case 1: return names[3]; case 2: return names[2]; case 3: return names[6];
               case 4: return names[0]; case 5: return names[5]; default: return names[4]; }
}
int main(int argc, char **argv) { (void)argv; puts(pick(argc + counter)); return 0; }
`;

/** Copy `src` to `name` with field `field` of section `section` set to `value`. */
function patchSection(src: string, name: string, section: string, field: 'addr' | 'offset' | 'size', value: bigint): string {
  const b = Buffer.from(readFileSync(src));
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shent = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const strOff = Number(b.readBigUInt64LE(shoff + b.readUInt16LE(0x3e) * shent + 24));
  const at = { addr: 16, offset: 24, size: 32 }[field];
  let patched = 0;
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shent;
    let n = strOff + b.readUInt32LE(h);
    let s = '';
    while (b[n] !== 0) s += String.fromCharCode(b[n++]);
    if (s === section) {
      b.writeBigUInt64LE(value, h + at);
      patched++;
    }
  }
  expect(patched, `${section} in ${src}`).toBe(1);
  const out = join(dir, name);
  writeFileSync(out, b);
  return out;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptscope-hostile-elf-'));
  writeFileSync(join(dir, 'p.c'), SOURCE);
  nopie = join(dir, 'nopie');
  pie = join(dir, 'pie');
  execFileSync('gcc', ['-O2', '-fno-pie', '-no-pie', '-o', nopie, join(dir, 'p.c')]);
  execFileSync('gcc', ['-O2', '-fpie', '-pie', '-o', pie, join(dir, 'p.c')]);
});

describe('hostile section headers', () => {
  it.each([
    ['.rodata', 'nopie'],
    ['.init_array', 'nopie'],
    ['.init_array', 'pie'],
    ['.eh_frame', 'pie'],
    ['.rela.dyn', 'pie'],
  ])('a %s claiming 2^50 bytes (%s) is clamped to the file', (section, which) => {
    const src = which === 'pie' ? pie : nopie;
    const bad = patchSection(src, `${which}-${section}-huge`, section, 'size', 1n << 50n);
    const bytes = readFileSync(bad);
    const eb = new ElfBytes(bytes, ElfFile.parse(bytes, bad));
    for (const s of eb.sections) expect(s.offset + s.size <= bytes.length || s.type === 8).toBe(true);
    // The model is the same as the honest file's, except what the lie hides.
    const good = analyzeElfFile(src);
    const cfg = analyzeElfFile(bad);
    expect(cfg.functionCount).toBeGreaterThan(0);
    expect(cfg.functionByName('pick')).toBeGreaterThanOrEqual(0);
    expect(Math.abs(cfg.blockCount - good.blockCount)).toBeLessThan(good.blockCount);
  });

  it('an allocated section outside every PT_LOAD segment has no bytes', () => {
    const bad = patchSection(nopie, 'rodata-far', '.rodata', 'addr', 0x7000_0000n);
    const bytes = readFileSync(bad);
    const eb = new ElfBytes(bytes, ElfFile.parse(bytes, bad));
    const ro = eb.section('.rodata')!;
    expect((ro.flags & SHF_ALLOC) !== 0).toBe(true);
    expect(ro.size).toBe(0);
    expect(eb.fileOffset(0x7000_0000, 4)).toBe(-1);
  });

  it('moving .fini 1 GiB away adds a small region, not a gigabyte of tables', () => {
    const bad = patchSection(nopie, 'fini-far', '.fini', 'addr', 0x4000_0000n);
    const bytes = readFileSync(bad);
    const d = disassembleElf(bytes, ElfFile.parse(bytes, bad));
    try {
      // The per-byte tables cover code only: at most the file's size.
      expect(d.space.size).toBeLessThanOrEqual(bytes.length);
      expect(d.len.length).toBe(d.space.size);
      expect(d.space.regionCount).toBeGreaterThanOrEqual(1);
    } finally {
      d.dispose();
    }
    const cfg = analyzeElfFile(bad);
    expect(cfg.functionByName('main')).toBeGreaterThanOrEqual(0);
    expect(cfg.blockAt(cfg.functionEntry[cfg.functionByName('main')])).toBeGreaterThanOrEqual(0);
  });
});

describe('many image entries', () => {
  it('parses each distinct file once and refuses more than the cap', () => {
    const cache = new ImageCache();
    const map = new ModuleMap(cache);
    const copy = join(dir, 'copy-of-pie');
    copyFileSync(pie, copy);
    const elf = ElfFile.read(pie);
    const seg = elf.loadSegments()[0];
    let added = 0;
    let refused: unknown = null;
    try {
      for (let i = 0; i < 10_000; i++) {
        // The same content under two names, at different bases.
        map.addMapping(i % 2 === 0 ? pie : copy, seg.offset, seg.filesz, 0x10_0000_0000 + i * 0x10_0000);
        added++;
      }
    } catch (e) {
      refused = e;
    }
    expect(added).toBe(MAX_IMAGE_ENTRIES);
    expect(refused).toBeInstanceOf(TooManyImagesError);
    expect((refused as Error).message).toMatch(/too many image mappings: more than 4096/);
    expect(cache.reads).toBe(2); // two paths, each read once
    expect(cache.parses).toBe(1); // one content, parsed once
    expect(cache.size.files).toBe(1);
    // Static models are built once per content too.
    const a = map.modules[0].cfg();
    const b = map.modules[1].cfg();
    expect(a).not.toBeNull();
    expect(b).toBe(a);
    expect(cache.analyses).toBe(1);
  });

  it('refuses a FIFO or a directory as an image instead of waiting on it', () => {
    const cache = new ImageCache();
    const fifo = join(dir, 'image.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => cache.load(fifo)).toThrow(/not a regular file/);
    expect(() => cache.load(dir)).toThrow(/not a regular file/);
  });
});
