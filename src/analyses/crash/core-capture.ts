/**
 * Getting a core for a recorder bundle. `ptscope record` (qemu) reads the
 * registers from qemu's core dump but does not keep the file, so a bundle
 * has no `core` unless the recorder is told to keep it. This re-runs the
 * recorded program once more under qemu-x86_64, in the same sandbox, with
 * the same argv and environment and a working directory of the same path
 * length (qemu-user places the guest deterministically, so the same inputs
 * give the same addresses), and stores the core as `<bundle>/core`.
 *
 * A re-run is a second execution, not the recorded one: the crash analysis
 * checks the core against the trace (the final IP, the code bytes of every
 * image) and says so when they do not match.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifest } from '../../sources/recorder/bundle.js';
import { sandboxArgv } from '../../sources/recorder/sandbox.js';

export const BUNDLE_CORE_NAME = 'core';

/** Write `<bundle>/core` by re-running the program; returns its path, or throws with one line. */
export function captureCore(bundle: string, options: { timeoutSec?: number; sandbox?: boolean } = {}): string {
  const m = readManifest(bundle);
  if (m.recorder !== 'qemu') throw new Error(`${bundle}: only emulated (qemu) recordings can be re-run for a core`);
  if (m.exit.signal === null) throw new Error(`${bundle}: the recorded program did not die of a signal`);
  // Same prefix as the recorder's scratch directory: the same path length.
  const workDir = mkdtempSync(join(tmpdir(), 'ptscope-target-'));
  try {
    const argv = [m.program.path, ...m.program.argv.slice(1)];
    const inner = ['/bin/sh', '-c', 'ulimit -c unlimited 2>/dev/null; exec "$@"', 'sh', 'qemu-x86_64', ...argv];
    // Confinement is the analyst's choice on the command line, never the bundle's.
    const sandbox = options.sandbox !== false;
    const readOnly = m.program.path.startsWith('/tmp/') ? [m.program.path] : [];
    const command = sandbox ? sandboxArgv({ workDir, readOnly }, inner) : inner;
    const r = spawnSync(command[0], command.slice(1), { cwd: workDir, stdio: 'ignore', timeout: (options.timeoutSec ?? 60) * 1000 });
    if (r.error) throw new Error(`cannot re-run ${m.program.path}: ${r.error.message}`);
    const name = readdirSync(workDir).find((f) => f.startsWith('qemu_') && f.endsWith('.core'));
    if (name === undefined) throw new Error(`re-running ${m.program.path} left no core dump (it did not crash again, or core dumps are disabled)`);
    const out = join(bundle, BUNDLE_CORE_NAME);
    copyFileSync(join(workDir, name), out);
    return out;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** The bundle's core file, if it has one. */
export function bundleCore(bundle: string): string | null {
  const p = join(bundle, BUNDLE_CORE_NAME);
  return existsSync(p) ? p : null;
}
