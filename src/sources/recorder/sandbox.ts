/**
 * Confinement of recorded programs (they may be malware) with bubblewrap:
 * - the whole file system read-only (`--ro-bind / /`), a fresh /dev and
 *   /proc, a private empty /tmp;
 * - one writable directory, the target's scratch and working directory
 *   (qemu also writes its core dump there when the target crashes);
 * - files named on the command line that live under /tmp are bound
 *   read-only at the same path, so that inputs stay visible;
 * - no network (`--unshare-net`: only a loopback that is down), its own
 *   PID, IPC and UTS namespaces, a new session (no terminal injection), all
 *   capabilities dropped (root in the sandbox cannot remount), and killed
 *   with the recorder (`--die-with-parent`).
 */
import { spawnSync } from 'node:child_process';

export interface SandboxLayout {
  /** The writable directory (same path inside and outside). */
  workDir: string;
  /** Host paths to show read-only at the same path. */
  readOnly: string[];
}

/** The bwrap argv prefix that runs `command` confined. */
export function sandboxArgv(layout: SandboxLayout, command: string[]): string[] {
  const argv = [
    'bwrap',
    '--ro-bind', '/', '/',
    '--dev', '/dev',
    '--proc', '/proc',
    '--tmpfs', '/tmp',
  ];
  for (const p of layout.readOnly) argv.push('--ro-bind', p, p);
  argv.push(
    '--bind', layout.workDir, layout.workDir,
    '--chdir', layout.workDir,
    '--setenv', 'TMPDIR', layout.workDir,
    '--unshare-net',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--new-session',
    '--die-with-parent',
    '--cap-drop', 'ALL',
    '--',
    ...command,
  );
  return argv;
}

/** null if bwrap can run a confined program here (with scratch `workDir`), else why not. */
export function sandboxUnavailable(workDir: string): string | null {
  const res = spawnSync('bwrap', sandboxArgv({ workDir, readOnly: [] }, ['true']).slice(1), {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (res.error) {
    const code = (res.error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'bwrap (bubblewrap) is not installed' : `bwrap cannot start: ${res.error.message}`;
  }
  if (res.status !== 0) return `bwrap does not work here: ${(res.stderr || '').trim().split('\n')[0] || `exit ${res.status}`}`;
  return null;
}
