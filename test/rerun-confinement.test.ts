/**
 * Re-runs of a recording (the crash analysis's core capture, the dormant
 * snapshot run) are confined by the analyst's command line only: nothing in
 * a bundle decides whether, or what, runs unconfined (SECURITY.md,
 * "Re-runs"). The reproduction of the critical report: a manifest saying
 * `config.sandbox: false`, `program.path: /bin/sh` and a shell command as
 * argv, with its core removed, made `ptscope crash` run the command on the
 * host as root.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { snapshotRun } from '../src/analyses/dormant/rerun.js';
import { main } from '../src/cli/main.js';
import { importBundle } from '../src/sources/import/bundle-import.js';
import { buildProbe, recordProbe } from './helpers/probe.js';

let work: string;
let crashBundle: string;
/** A host path a hostile command would write (under the host's /tmp, which the sandbox replaces). */
const marker = `/tmp/ptscope-rerun-marker-${process.pid}`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-rerun-test-'));
  const probe = buildProbe(work);
  const res = await recordProbe(work, [probe, 'crash']);
  expect(res.manifest.exit.signal).toBe('SIGSEGV');
  crashBundle = res.bundle;
});

afterEach(() => rmSync(marker, { force: true }));

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  rmSync(marker, { force: true });
});

let seq = 0;

/**
 * A hostile copy of the crash bundle: no core, `config.sandbox: false`, and
 * a shell command as the program. With `shell`, the bundle also brings an
 * image for /bin/sh (a copy of that file).
 */
function hostileBundle(shell: string | null): string {
  const dir = join(work, `hostile-${seq++}.ptscope`);
  cpSync(crashBundle, dir, { recursive: true });
  rmSync(join(dir, 'core'));
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8'));
  m.exit = { status: null, signal: 'SIGSEGV', stopped: null };
  m.config = { ...m.config, sandbox: false };
  m.program = { path: '/bin/sh', argv: ['sh', '-c', `id > ${marker}; kill -SEGV $$`], cwd: '/tmp' };
  if (shell !== null) {
    const file = 'images/9-sh';
    copyFileSync(shell, join(dir, file));
    m.images.push({ file, path: '/bin/sh', offset: 0, size: statSync(shell).size, address: '0x100000000' });
  }
  writeFileSync(path, JSON.stringify(m, null, 2));
  return dir;
}

async function crashCli(args: string[]): Promise<{ status: number; errors: string[] }> {
  const writes: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  const origOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    const status = await main(['crash', ...args]);
    return { status, errors: writes.join('').split('\n').filter((l) => l.startsWith('ptscope: ')) };
  } finally {
    process.stderr.write = orig;
    process.stdout.write = origOut;
  }
}

describe('ptscope crash: the re-run for a core', () => {
  it('never runs the host file a manifest names (config.sandbox: false is ignored)', async () => {
    const r = await crashCli([hostileBundle(null)]);
    expect(r.status).toBe(2);
    expect(r.errors.join('\n')).toMatch(/no copy of its program \/bin\/sh: cannot re-run it/);
    expect(existsSync(marker)).toBe(false);
  });

  it('runs the bundle\'s own copy of the program confined: its writes stay in the sandbox', async () => {
    const dir = hostileBundle(realpathSync('/bin/sh'));
    const r = await crashCli([dir]);
    expect(existsSync(marker)).toBe(false);
    // It did run (confined): the shell killed itself, and its core is the bundle's now.
    expect(existsSync(join(dir, 'core')), r.errors.join('\n')).toBe(true);
  });

  it('--no-sandbox runs unconfined only what the bundle holds, never the host path it names', async () => {
    // The bundle's "/bin/sh" is a copy of /bin/true: the shell command in argv never runs.
    const dir = hostileBundle(realpathSync('/bin/true'));
    const r = await crashCli(['--no-sandbox', dir]);
    expect(r.status).toBe(2);
    expect(r.errors.join('\n')).toMatch(/left no core dump/);
    expect(existsSync(marker)).toBe(false);
  });

  it('a manifest cannot name a sandbox path of its own for the program', async () => {
    const dir = hostileBundle(realpathSync('/bin/sh'));
    const path = join(dir, 'manifest.json');
    const m = JSON.parse(readFileSync(path, 'utf8'));
    for (const bad of ['/proc/self/exe', '/dev/null', 'relative/sh', '/bin/../bin/sh']) {
      m.program.path = bad;
      m.images.at(-1).path = bad;
      writeFileSync(path, JSON.stringify(m));
      const r = await crashCli([dir]);
      expect(r.status, bad).toBe(2);
      expect(r.errors.join('\n'), bad).toMatch(/program\.path: .*cannot re-run it/);
    }
  });
});

describe('ptscope dormant: the snapshot run', () => {
  it('runs the bundle\'s copy confined whatever the manifest says', () => {
    const snapshots = snapshotRun(importBundle(hostileBundle(realpathSync('/bin/sh'))));
    // The copy ran (the shim saw its library calls), and its writes stayed in the sandbox.
    expect(snapshots.length).toBeGreaterThan(0);
    expect(existsSync(marker)).toBe(false);
  });

  it('refuses a bundle without a copy of its program', () => {
    expect(() => snapshotRun(importBundle(hostileBundle(null)))).toThrow(/no copy of its program/);
    expect(existsSync(marker)).toBe(false);
  });
});
