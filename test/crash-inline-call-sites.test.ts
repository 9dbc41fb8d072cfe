/**
 * DWARF's inline records: code that gcc inlined from a header into the
 * program is charged to the program's line that called it. The oracle is
 * binutils' `addr2line -i`, whose last line for an address is its outermost
 * call site.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InlineCallSites } from '../src/analyses/crash/inline-call-sites.js';
import { debugSections } from '../src/flow/dwarf/debug-sections.js';
import { ElfFile } from '../src/flow/elf.js';

const dir = mkdtempSync(join(tmpdir(), 'ptscope-inline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tool(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

function sitesOf(path: string): InlineCallSites {
  const bytes = readFileSync(path);
  const elf = ElfFile.parse(bytes, path);
  const raw = (name: string): Uint8Array | null => {
    const s = elf.sections.find((x) => x.name === name);
    return s === undefined ? null : bytes.subarray(s.offset, s.offset + s.size);
  };
  return InlineCallSites.fromSections(debugSections(bytes, elf), raw('.debug_rnglists'), raw('.debug_ranges'), elf.littleEndian);
}

describe('inline call sites', () => {
  for (const dwarf of ['-gdwarf-5', '-gdwarf-4']) {
    it(`${dwarf}: every address of main that addr2line -i shows inlined has its outermost call site; the others none`, () => {
      const src = join(dir, 'prog.c');
      writeFileSync(src, [
        '#include <stdlib.h>',
        '#include <string.h>',
        'int table[8];',
        'int main(int argc, char **argv) {',
        '  for (int i = 1; i < argc; i++)',
        '    table[i & 7] = atoi(argv[i]);',
        '  return table[1] + (int)strlen(argv[0]);',
        '}',
        '',
      ].join('\n'));
      const exe = join(dir, `prog${dwarf}`);
      tool('gcc', ['-O2', dwarf, '-o', exe, src]);
      const sites = sitesOf(exe);
      const addrs = [...tool('objdump', ['-d', '--no-show-raw-insn', exe]).split('<main>:')[1].split('\n\n')[0].matchAll(/^\s+([0-9a-f]+):/gm)].map((m) => parseInt(m[1], 16));
      expect(addrs.length).toBeGreaterThan(5);
      // One run: -a prints each address before its lines.
      const groups = new Map<number, string[]>();
      let current: string[] = [];
      for (const l of tool('addr2line', ['-a', '-i', '-e', exe, ...addrs.map((a) => `0x${a.toString(16)}`)]).trim().split('\n')) {
        if (/^0x[0-9a-f]+$/.test(l)) groups.set(parseInt(l, 16), (current = []));
        else current.push(l);
      }
      let inlined = 0;
      for (const a of addrs) {
        const out = groups.get(a)!;
        const site = sites.outermostCallSite(a);
        if (out.length > 1) {
          inlined++;
          const [file, line] = out[out.length - 1].replace(/ \(discriminator \d+\)$/, '').split(':');
          expect(site, `0x${a.toString(16)}`).not.toBeNull();
          expect(site!.file.endsWith(file.slice(file.lastIndexOf('/') + 1)), `0x${a.toString(16)}`).toBe(true);
          expect(site!.line, `0x${a.toString(16)}`).toBe(Number(line));
        } else {
          expect(site, `0x${a.toString(16)}`).toBeNull();
        }
      }
      expect(inlined).toBeGreaterThan(0);
    });
  }
});
