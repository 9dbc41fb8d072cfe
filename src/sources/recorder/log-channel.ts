/**
 * What a syscall of the recorded program means for the emulator's log.
 *
 * qemu-user runs the guest in its own process and does not guard its own
 * descriptors: the guest can name the log's descriptors (LOG_FD, handed in,
 * and the one qemu opened from it) in any syscall. qemu's strace shows
 * every guest syscall, so the recorder sees each such use:
 *
 * - writing to the log (write, writev, pwrite*, sendfile, splice, tee,
 *   vmsplice, copy_file_range), duplicating it (dup*, fcntl F_DUPFD), making
 *   it non-blocking (fcntl F_SETFL, ioctl FIONBIO), changing its mode or
 *   owner, or opening it again through /proc/.../fd/N or /dev/fd/N: no
 *   program does that except to forge or blind its trace, so the recording
 *   is refused as tampered;
 * - closing qemu's own descriptor (close, close_range, or dup2/dup3 onto
 *   it), which programs that close every descriptor they do not know also
 *   do: qemu cannot print the result of that very syscall, so the recording
 *   stops at its entry and keeps the trace up to there;
 * - exec and clone: qemu follows neither (a new program would run natively
 *   with the log's descriptors open; a new thread or process would write its
 *   own lines into the log), so the recording stops at the syscall's entry
 *   and reads nothing after it.
 */

/** Why a recording stops at a syscall (see path-reconstruction.ts StopReason). */
export type ChannelStop = 'exec' | 'clone' | 'log-closed';

export type ChannelVerdict = { stop: ChannelStop; why: string } | { tampered: string } | null;

/** Syscalls the recording stops at, at their entry. */
const STOP_AT_ENTRY: Record<string, ChannelStop> = {
  execve: 'exec',
  execveat: 'exec',
  clone: 'clone',
  clone3: 'clone',
  fork: 'clone',
  vfork: 'clone',
};

/** Syscalls that write to a descriptor, and which argument names it. */
const WRITES: Record<string, number> = {
  write: 0, writev: 0, pwrite64: 0, pwritev: 0, pwritev2: 0, sendfile: 0, vmsplice: 0,
  splice: 2, tee: 1, copy_file_range: 2, sendto: 0, sendmsg: 0, sendmmsg: 0,
};

/** Syscalls that change a descriptor's owner, mode or flags (argument 0). */
const CHANGES = new Set(['fchmod', 'fchown', 'ftruncate', 'fallocate']);

const F_DUPFD = /^(?:F_DUPFD|F_DUPFD_CLOEXEC|0|1030)$/;
const F_SETFL = /^(?:F_SETFL|4)$/;
const FIONBIO = /^(?:FIONBIO|21537|0x5421)$/;
/** close_range's flag that only sets close-on-exec (closes nothing). */
const CLOSE_RANGE_CLOEXEC = 4;

/**
 * The verdict on a syscall's entry: stop at exec and clone, and where the
 * syscall closes the emulator's own log descriptor (`qemuFd`).
 */
export function entryVerdict(name: string, text: string, qemuFd: number): ChannelVerdict {
  const stop = STOP_AT_ENTRY[name];
  if (stop !== undefined) {
    const what = stop === 'exec' ? 'executes another program' : 'starts a thread or process';
    return { stop, why: `the program ${what} (${short(text)}), which the emulated recorder follows only inside its sandbox (record without --no-sandbox)` };
  }
  if (name !== 'close' && name !== 'close_range' && name !== 'dup2' && name !== 'dup3') return null;
  const close = text.indexOf(')');
  if (close < 0) return null;
  const args = text.slice(name.length + 1, close).split(',').map(numberArg);
  let hit: boolean;
  if (name === 'close') hit = args[0] === qemuFd;
  else if (name === 'close_range') hit = (args[2] & CLOSE_RANGE_CLOEXEC) === 0 && args[0] <= qemuFd && (args[1] >= qemuFd || args[1] < 0);
  else hit = args[1] === qemuFd;
  return hit ? { stop: 'log-closed', why: `the program closed the emulator's log (${short(text)}); the rest of the run cannot be recorded` } : null;
}

function short(text: string): string {
  const t = text.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 100 ? `${t.slice(0, 100)}...` : t;
}

function numberArg(a: string | undefined): number {
  if (a === undefined) return NaN;
  const t = a.trim();
  if (/^-?\d+$/.test(t)) return Number(t);
  if (/^0x[0-9a-fA-F]+$/.test(t)) return Number(BigInt(t));
  return NaN;
}

/**
 * The verdict on a complete syscall line (`name(args) = result`, without
 * the pid), given the numbers of the log's descriptors.
 */
export function syscallVerdict(line: string, logFds: readonly number[]): ChannelVerdict {
  const paren = line.indexOf('(');
  if (paren <= 0) return null;
  const name = line.slice(0, paren);
  const eq = line.lastIndexOf(' = ');
  const result = eq > 0 ? numberArg(line.slice(eq + 3).split(' ')[0]) : NaN;
  const isLog = (fd: number): boolean => logFds.includes(fd);
  if (name === 'open' || name === 'openat' || name === 'openat2' || name === 'creat') {
    const m = /"((?:[^"\\]|\\.)*)"/.exec(line);
    const fd = /\/fd\/(\d+)$/.exec(m?.[1] ?? '');
    if (fd !== null && isLog(Number(fd[1])) && result >= 0) return { tampered: `the program opened the emulator's log again (${short(line)})` };
    return null;
  }
  const close = eq > 0 ? line.lastIndexOf(')', eq) : line.lastIndexOf(')');
  if (close <= paren || line.indexOf('"', paren) >= 0) return null;
  const args = line.slice(paren + 1, close).split(',');
  const w = WRITES[name];
  if (w !== undefined && isLog(numberArg(args[w]))) return { tampered: `the program wrote to the emulator's log (${short(line)})` };
  const a0 = numberArg(args[0]);
  switch (name) {
    case 'dup':
      return isLog(a0) ? { tampered: `the program duplicated the emulator's log (${short(line)})` } : null;
    case 'dup2':
    case 'dup3':
      return isLog(a0) ? { tampered: `the program duplicated the emulator's log (${short(line)})` } : null;
    case 'fcntl':
    case 'fcntl64':
      if (!isLog(a0)) return null;
      if (F_DUPFD.test((args[1] ?? '').trim())) return { tampered: `the program duplicated the emulator's log (${short(line)})` };
      if (F_SETFL.test((args[1] ?? '').trim())) return { tampered: `the program changed the emulator's log flags (${short(line)})` };
      return null;
    case 'ioctl':
      return isLog(a0) && FIONBIO.test((args[1] ?? '').trim()) ? { tampered: `the program made the emulator's log non-blocking (${short(line)})` } : null;
    default:
      if (CHANGES.has(name) && isLog(a0)) return { tampered: `the program changed the emulator's log (${short(line)})` };
      return null;
  }
}
