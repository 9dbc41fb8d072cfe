/**
 * A library's calls of its own IFUNCs (glibc's fread copying with memcpy)
 * go through PLT slots with an IRELATIVE relocation and no symbol. The crash
 * analysis names them by the IFUNC symbol whose resolver the relocation
 * calls. The oracle is binutils: readelf's relocations and nm's IFUNC
 * symbols ('i') of this machine's libc.
 */
import { spawnSync } from 'node:child_process';
import { realpathSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CodeLocations } from '../src/analyses/crash/code-locations.js';
import { routineOf } from '../src/analyses/crash/library-routines.js';

const LIBC = realpathSync('/lib/x86_64-linux-gnu/libc.so.6');

function tool(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

describe('IRELATIVE PLT slots', () => {
  it("name the IFUNC their resolver resolves, at the slot's run-time address", () => {
    // resolver address -> IFUNC names
    const ifuncs = new Map<number, string[]>();
    for (const line of tool('nm', ['-D', LIBC]).split('\n')) {
      const m = /^([0-9a-f]+) i (\S+?)(@.*)?$/.exec(line);
      if (m === null) continue;
      const at = parseInt(m[1], 16);
      ifuncs.set(at, [...(ifuncs.get(at) ?? []), m[2]]);
    }
    const slots: { slot: number; names: string[] }[] = [];
    for (const line of tool('readelf', ['-rW', LIBC]).split('\n')) {
      const m = /^([0-9a-f]+)\s+\S+\s+R_X86_64_IRELATIVE\s+([0-9a-f]+)/.exec(line);
      if (m !== null) slots.push({ slot: parseInt(m[1], 16), names: ifuncs.get(parseInt(m[2], 16)) ?? [] });
    }
    const named = slots.filter((s) => s.names.length > 0);
    expect(named.length).toBeGreaterThan(10);
    // libc mapped whole at a page-aligned base, as ld.so would (bias = base).
    const base = 0x7f0000000000;
    const locs = new CodeLocations(
      [{ file: LIBC, originalPath: LIBC, offset: 0, size: statSync(LIBC).size + 0x100000, address: base, displayName: 'libc.so.6', runtime: null }],
      null,
    );
    for (const s of named) expect(s.names, `slot 0x${s.slot.toString(16)}`).toContain(locs.importName(base + s.slot));
    // The copy routines among them are summarised.
    const copies = named.map((s) => locs.importName(base + s.slot)!).map(routineOf).filter((r) => r !== null);
    expect(copies).toEqual(expect.arrayContaining(['memmove', 'memset', 'strcpy']));
  });
});
