/**
 * Confinement of recorded and re-run programs (they may be malware) with
 * bubblewrap. bwrap is the security boundary; qemu-user is not one (the
 * guest shares the emulator's process, memory and file descriptors).
 *
 * - Files: only the view of sandbox-view.ts, read-only (system code, a
 *   filtered /etc, the program and the files named on the command line).
 *   The root itself and /dev are remounted read-only.
 * - Writable: a size-limited tmpfs /tmp holding the scratch directory (the
 *   working directory, where qemu writes the guest's core), and a
 *   size-limited /dev/shm. Nothing written reaches the host's disk.
 * - No network: a new network namespace with only a loopback that is down,
 *   so no TCP/UDP to anything and no abstract unix socket of the host; no
 *   host socket directory (/run, /var/run, /tmp) is in the view, so no
 *   path-named unix socket either (docker.sock, D-Bus, ssh-agent).
 * - Its own user (no nested user namespaces: --disable-userns), PID, IPC,
 *   UTS (host name "sandbox") and cgroup namespaces; a new session (no
 *   terminal input injection); every capability dropped, so root inside
 *   cannot remount, and /proc/sys and /proc/sysrq-trigger are read-only
 *   (root without capabilities could otherwise still write sysctls such as
 *   kernel.core_pattern).
 * - A seccomp filter (seccomp-filter.ts): no AF_UNIX socket(), no io_uring,
 *   keyrings, ptrace, perf events, bpf or userfaultfd, no other syscall ABI.
 * - Only the given environment (--clearenv): no host variable reaches it.
 * - Killed with the recorder (--die-with-parent); its pid 1 is the run's
 *   wrapper shell (confined-run.ts), which kills whatever is left before the
 *   results leave the sandbox.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS, type ResourceLimits } from './resource-limits.js';
import { sandboxSeccompFilter } from './seccomp-filter.js';
import { SANDBOX_HOSTNAME, sandboxView, type SandboxView } from './sandbox-view.js';

/** The working directory of a confined program (inside its private /tmp). */
export const SCRATCH_DIR = '/tmp/ptscope-work';

export interface SandboxSpec {
  view: SandboxView;
  limits: ResourceLimits;
  /** The program's complete environment. */
  env: Readonly<Record<string, string>>;
  /** A descriptor the command inherits holding the seccomp filter (seccomp-filter.ts). */
  seccompFd?: number;
}

/** The bwrap argv that runs `command` confined. */
export function sandboxArgv(spec: SandboxSpec, command: readonly string[]): string[] {
  const argv = [
    'bwrap',
    '--unshare-user', '--disable-userns',
    '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try',
    '--hostname', SANDBOX_HOSTNAME,
    '--die-with-parent', '--new-session', '--as-pid-1',
    '--cap-drop', 'ALL',
    '--clearenv',
  ];
  if (spec.seccompFd !== undefined) argv.push('--seccomp', String(spec.seccompFd));
  for (const [k, v] of Object.entries(spec.env)) argv.push('--setenv', k, v);
  argv.push(
    '--proc', '/proc',
    '--ro-bind', '/proc/sys', '/proc/sys',
    '--ro-bind-try', '/proc/sysrq-trigger', '/proc/sysrq-trigger',
    '--dev', '/dev',
    '--size', String(spec.limits.shmBytes), '--tmpfs', '/dev/shm',
    '--remount-ro', '/dev',
    '--size', String(spec.limits.tmpBytes), '--tmpfs', '/tmp',
    '--dir', SCRATCH_DIR,
  );
  for (const l of spec.view.links) argv.push('--symlink', l.target, l.path);
  for (const p of spec.view.shared) argv.push('--ro-bind', p, p);
  for (const f of spec.view.placed) argv.push('--ro-bind', f.host, f.guest);
  argv.push('--chdir', SCRATCH_DIR, '--remount-ro', '/', '--', ...command);
  return argv;
}

/** The descriptor a confined command gets its seccomp filter on. */
export const SECCOMP_FD = 5;

/** Write the seccomp filter to a file in `dir` and open it for bwrap. */
export function openSeccompFilter(dir: string): number {
  const path = join(dir, 'seccomp.bpf');
  writeFileSync(path, sandboxSeccompFilter(), { mode: 0o600 });
  return openSync(path, 'r');
}

/** null if bwrap can run a confined program here, else why not. */
export function sandboxUnavailable(): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'ptscope-check-'));
  let fd: number | null = null;
  let res;
  try {
    fd = openSeccompFilter(dir);
    const argv = sandboxArgv({ view: sandboxView({}), limits: DEFAULT_LIMITS, env: { PATH: '/usr/bin:/bin' }, seccompFd: SECCOMP_FD }, ['/bin/true']);
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', 'pipe', 'ignore', 'ignore', fd];
    res = spawnSync(argv[0], argv.slice(1), { stdio, encoding: 'utf8', timeout: 10_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  } finally {
    if (fd !== null) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  if (res.error) {
    const code = (res.error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'bwrap (bubblewrap) is not installed' : `bwrap cannot start: ${res.error.message}`;
  }
  if (res.status !== 0) return `bwrap does not work here: ${(res.stderr || '').trim().split('\n')[0] || `exit ${res.status}`}`;
  return null;
}
