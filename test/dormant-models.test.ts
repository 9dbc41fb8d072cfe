/**
 * The dormant-code model table (library-models.ts) against its sources of
 * truth: the struct layouts against glibc's own headers (a C program
 * prints offsetof/sizeof), the modelled calls against the symbolic models
 * (slice.ts) and the shim's interposed entries (native/dormant-shim.c),
 * and the generated header against a compile of the shim.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fieldAt, LAYOUTS, LIBRARY_MODELS, shimModelHeader } from '../src/analyses/dormant/library-models.js';
import { buildShim, packageRoot } from '../src/analyses/dormant/rerun.js';
import { SOURCE_CALLS } from '../src/analyses/dormant/slice.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-dormant-models-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** C names of the layout fields (st_atime is glibc's macro for st_atim.tv_sec). */
function cField(name: string): string {
  const m = /^st_([amc])time(_nsec)?$/.exec(name);
  if (m) return `st_${m[1]}tim.${m[2] ? 'tv_nsec' : 'tv_sec'}`;
  return name;
}

describe('dormant model table', () => {
  it('struct layouts match glibc x86-64 (offsetof, sizeof from the system headers)', () => {
    const structs: Record<string, string> = { tm: 'struct tm', stat: 'struct stat', utsname: 'struct utsname', timeval: 'struct timeval' };
    const lines = ['#define _GNU_SOURCE', '#include <stddef.h>', '#include <stdio.h>', '#include <sys/stat.h>', '#include <sys/time.h>', '#include <sys/utsname.h>', '#include <time.h>', 'int main(void) {'];
    for (const [key, layout] of Object.entries(LAYOUTS)) {
      const t = structs[key];
      lines.push(`  printf("${key} size %zu\\n", sizeof(${t}));`);
      for (const f of layout.fields) lines.push(`  printf("${key} ${f.name} %zu %zu\\n", offsetof(${t}, ${cField(f.name)}), sizeof(((${t} *)0)->${cField(f.name)}));`);
    }
    lines.push('  return 0;', '}');
    const src = join(work, 'layouts.c');
    writeFileSync(src, lines.join('\n'));
    const exe = join(work, 'layouts');
    const cc = spawnSync('gcc', ['-o', exe, src], { encoding: 'utf8' });
    expect(cc.status, cc.stderr).toBe(0);
    const out = spawnSync(exe, { encoding: 'utf8' }).stdout;
    const expected: string[] = [];
    for (const [key, layout] of Object.entries(LAYOUTS)) {
      expected.push(`${key} size ${layout.size}`);
      for (const f of layout.fields) expected.push(`${key} ${f.name} ${f.offset} ${f.size}`);
    }
    expect(out.trimEnd().split('\n')).toEqual(expected);
    expect(fieldAt('tm', 17)?.name).toBe('tm_mon');
    expect(fieldAt('stat', 50)?.name).toBe('st_size');
    expect(fieldAt('utsname', 70)?.name).toBe('nodename');
  });

  it('the symbolic models and the shim cover exactly the table', () => {
    expect([...SOURCE_CALLS].sort()).toEqual(Object.keys(LIBRARY_MODELS).sort());
    const shim = readFileSync(join(packageRoot(), 'native', 'dormant-shim.c'), 'utf8');
    const entries = [...shim.matchAll(/^(?:TRAMPOLINE|INT_CALL0)\((\w+)/gm)].map((m) => m[1]);
    expect(entries.sort()).toEqual(Object.keys(LIBRARY_MODELS).sort());
  });

  it('the generated header bounds every out-object and builds into the shim', () => {
    const h = shimModelHeader();
    expect(h).toContain('{"localtime", -1, 56, -1, -1}');
    expect(h).toContain('{"stat", 1, 144, -1, -1}');
    expect(h).toContain('{"uname", 0, 390, -1, -1}');
    expect(h).toContain('{"fread", 0, 0, 1, 2}');
    expect(h).toContain('"nl_langinfo"');
    const so = buildShim();
    const nm = spawnSync('nm', ['-D', '--defined-only', so], { encoding: 'utf8' });
    for (const name of Object.keys(LIBRARY_MODELS)) expect(nm.stdout, name).toMatch(new RegExp(`\\sT ${name}$`, 'm'));
  });
});
