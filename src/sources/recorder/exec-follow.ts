/**
 * Following every process of a recorded program under the emulator, forks
 * and execs included, with two native helpers built on first use:
 *
 * - the log shim (native/qemu-log-shim.c), preloaded into qemu only: a
 *   forked child gets a log of its own, and a program the follower starts
 *   gets its own environment back;
 * - the exec follower (native/exec-follower.c), which runs the sandbox as
 *   its child under ptrace, outside it: qemu-user runs an exec'd program
 *   natively, so at the exec the follower makes the process run the
 *   emulator on it instead, and writes a marker into that thread's log
 *   FIFO between the old emulator's log and the new one's. A program it
 *   cannot put under the emulator runs natively without the logs and is
 *   reported untraced by the marker.
 *
 * The marker: `\0PTSCOPE-EXEC followed <hex path> <hex copy> <argc> <hex arg>... +<omitted>\n`
 * or `\0PTSCOPE-EXEC untraced <hex path> <hex reason>\n`, where a copy is
 * the name, in the copies directory, of a program that has no path to read
 * (a memfd, a deleted file), or empty. A NUL never
 * occurs in qemu's text log, so the program cannot forge one there.
 */
import { buildNativeProgram, buildNativeShim } from '../native-build.js';
import { errorText } from './record-support.js';

export interface ExecFollowing {
  /** What runs qemu with the shim preloaded (before qemu's path). */
  preload: string[];
  /** The supervisor's argv (ConfinedRunSpec.supervisor), or undefined when execs are not followed. */
  supervisor: string[] | undefined;
  /** Forks are followed (the shim is built). */
  forks: boolean;
  /** Execs are followed (the follower is built). */
  execs: boolean;
  /** Files the sandbox must show at their own paths (the shim, at {@link SHIM_IN_SANDBOX}). */
  place: { host: string; guest: string }[];
}

/**
 * Where the sandbox shows the log shim: a path of its own on the sandbox's
 * read-only root, not the host's cache directory (which would show /root
 * or a home directory) and not under the writable /tmp.
 */
export const SHIM_IN_SANDBOX = '/ptscope/qemu-log-shim.so';

/** The log shim as qemu names it, and what the sandbox must place for it (nothing when unconfined). */
export function shimPlacement(host: string, sandbox: boolean): { path: string; place: { host: string; guest: string }[] } {
  return sandbox ? { path: SHIM_IN_SANDBOX, place: [{ host, guest: SHIM_IN_SANDBOX }] } : { path: host, place: [] };
}

export interface ExecFollowSpec {
  /** qemu's path on the host, and as the sandbox names it (the same: /usr is shown as it is). */
  qemu: string;
  logItems: string;
  logTemplate: string;
  maxTaskId: number;
  /** A host directory (the recorder's) where the follower copies programs that have no readable path. */
  copies: string;
  /** The program runs in the sandbox (the shim is shown there at its own path). */
  sandbox: boolean;
  notice: (line: string) => void;
}

/** Build the helpers; without gcc, a recording stops at a fork or exec as it did before them. */
export function execFollowing(spec: ExecFollowSpec): ExecFollowing {
  let shim: string;
  try {
    shim = buildNativeShim('qemu-log-shim', "emulator's log shim");
  } catch (e) {
    spec.notice(`warning: forks and execs will not be followed (${errorText(e)})`);
    return { preload: [], supervisor: undefined, forks: false, execs: false, place: [] };
  }
  let follower: string;
  try {
    follower = buildNativeProgram('exec-follower', 'exec follower');
  } catch (e) {
    // The shim keeps the logs open across exec for the follower: without it, forks are not followed either.
    spec.notice(`warning: forks and execs will not be followed (${errorText(e)})`);
    return { preload: [], supervisor: undefined, forks: false, execs: false, place: [] };
  }
  const placed = shimPlacement(shim, spec.sandbox);
  return {
    preload: ['/usr/bin/env', `LD_PRELOAD=${placed.path}`],
    supervisor: [
      follower,
      '--qemu', spec.qemu,
      '--guest-qemu', spec.qemu,
      '--shim', placed.path,
      '--log-items', spec.logItems,
      '--log-template', spec.logTemplate,
      '--max-tid', String(spec.maxTaskId),
      '--copies', spec.copies,
    ],
    forks: true,
    execs: true,
    place: placed.place,
  };
}

/** What a marker says about the exec it follows. */
export type ExecMarker =
  | { kind: 'followed'; path: string; copy: string; argv: string[]; omitted: number }
  | { kind: 'untraced'; path: string; reason: string };

const MARKER_PREFIX = 'PTSCOPE-EXEC ';
/** The longest marker the follower writes (one atomic FIFO write), with room. */
export const MAX_MARKER_BYTES = 4096;

function unhex(field: string): string | null {
  if (field === '-') return '';
  if (!/^(?:[0-9a-f]{2})+$/.test(field)) return null;
  return Buffer.from(field, 'hex').toString('utf8');
}

/** Parse a marker line (after its NUL, without its newline); null if malformed. */
export function parseExecMarker(line: string): ExecMarker | null {
  if (!line.startsWith(MARKER_PREFIX)) return null;
  const f = line.slice(MARKER_PREFIX.length).split(' ');
  if (f[0] === 'untraced' && f.length === 3) {
    const path = unhex(f[1]);
    const reason = unhex(f[2]);
    return path === null || reason === null ? null : { kind: 'untraced', path, reason };
  }
  if (f[0] !== 'followed' || f.length < 5) return null;
  const path = unhex(f[1]);
  const copy = unhex(f[2]);
  const argc = /^\d{1,7}$/.test(f[3]) ? Number(f[3]) : -1;
  const omittedText = f[f.length - 1];
  const omitted = /^\+\d{1,7}$/.test(omittedText) ? Number(omittedText.slice(1)) : -1;
  const args = f.slice(4, -1).map(unhex);
  if (path === null || copy === null || !/^(?:exec-\d{1,9})?$/.test(copy) || argc < 0 || omitted < 0 || args.some((a) => a === null) || args.length + omitted !== argc) return null;
  return { kind: 'followed', path, copy, argv: args as string[], omitted };
}
