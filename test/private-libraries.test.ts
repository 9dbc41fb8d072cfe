/**
 * The private shared libraries a program ships beside itself
 * (`-Wl,-rpath,'$ORIGIN'`) are shown to the sandbox as files, read-only;
 * their directory's other files are not.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateLibraries } from '../src/sources/recorder/private-libraries.js';
import { sandboxView } from '../src/sources/recorder/sandbox-view.js';

let dir: string;

function gcc(args: string[]): void {
  const r = spawnSync('gcc', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptscope-private-libs-'));
  writeFileSync(join(dir, 'b.c'), 'int b(void) { return 2; }\n');
  writeFileSync(join(dir, 'a.c'), 'int b(void);\nint a(void) { return b() + 1; }\n');
  writeFileSync(join(dir, 'main.c'), 'int a(void);\nint main(void) { return a(); }\n');
  writeFileSync(join(dir, 'secret.txt'), 'not for the sandbox\n');
  mkdirSync(join(dir, 'deps'));
  // a.so finds b.so in its own deps/ through its own $ORIGIN.
  gcc(['-shared', '-fPIC', '-Wl,-soname,libb.so', '-o', join(dir, 'deps', 'libb.so'), join(dir, 'b.c')]);
  gcc(['-shared', '-fPIC', '-Wl,-soname,liba.so', '-o', join(dir, 'liba.so'), join(dir, 'a.c'), `-L${join(dir, 'deps')}`, '-lb', '-Wl,-rpath,$ORIGIN/deps']);
  gcc(['-o', join(dir, 'prog'), join(dir, 'main.c'), `-L${dir}`, '-la', '-Wl,-rpath,$ORIGIN', `-Wl,-rpath-link,${join(dir, 'deps')}`]);
  gcc(['-o', join(dir, 'plain'), join(dir, 'main.c'), join(dir, 'a.c'), join(dir, 'b.c')]);
  // A hostile program's run paths: an absolute directory, one above its own, and a file that is not a library.
  mkdirSync(join(dir, 'app'));
  mkdirSync(join(dir, 'elsewhere'));
  gcc(['-shared', '-fPIC', '-Wl,-soname,libc2.so', '-o', join(dir, 'elsewhere', 'libc2.so'), join(dir, 'b.c')]);
  gcc(['-shared', '-fPIC', '-Wl,-soname,libup.so', '-o', join(dir, 'libup.so'), join(dir, 'b.c')]);
  writeFileSync(join(dir, 'app', 'libnotelf.so'), 'a secret, not a library\n');
  gcc(['-shared', '-fPIC', '-Wl,-soname,libnotelf.so', '-o', join(dir, 'libnotelf-build.so'), join(dir, 'b.c')]);
  gcc([
    '-o', join(dir, 'app', 'hostile'), join(dir, 'main.c'), join(dir, 'a.c'), '-Wl,--no-as-needed',
    join(dir, 'elsewhere', 'libc2.so'), join(dir, 'libup.so'), join(dir, 'libnotelf-build.so'),
    `-Wl,-rpath,${join(dir, 'elsewhere')}:$ORIGIN/..:$ORIGIN`,
  ]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('private libraries', () => {
  it("follows DT_RUNPATH's $ORIGIN from the program and from each library found", () => {
    expect(privateLibraries(join(dir, 'prog'))).toEqual([join(dir, 'liba.so'), join(dir, 'deps', 'libb.so')]);
  });

  it('finds none without a run path, and none for a file that is not ELF', () => {
    expect(privateLibraries(join(dir, 'plain'))).toEqual([]);
    expect(privateLibraries(join(dir, 'secret.txt'))).toEqual([]);
    expect(privateLibraries(join(dir, 'missing'))).toEqual([]);
  });

  it("a hostile program's run path shows nothing outside its own directory, and nothing that is not a shared object", () => {
    const hostile = join(dir, 'app', 'hostile');
    const needed = spawnSync('readelf', ['-d', hostile], { encoding: 'utf8' }).stdout;
    for (const lib of ['libc2.so', 'libup.so', 'libnotelf.so']) expect(needed).toContain(`[${lib}]`);
    expect(privateLibraries(hostile)).toEqual([]);
  });

  it('the sandbox shows the library files, not their directory', () => {
    const view = sandboxView({ program: join(dir, 'prog') });
    expect(view.shared).toContain(join(dir, 'prog'));
    expect(view.shared).toContain(join(dir, 'liba.so'));
    expect(view.shared).toContain(join(dir, 'deps', 'libb.so'));
    expect(view.shared).not.toContain(dir);
    expect(view.shared.some((p) => p.endsWith('secret.txt'))).toBe(false);
  });
});
