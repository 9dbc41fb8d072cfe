/**
 * What a system call does to user memory, for reverse execution and the
 * backward taint: the range it writes, taken from its arguments.
 */
import { RDI, RDX, RSI } from './instruction-facts.js';

/** The longest range a syscall is taken to write byte by byte (a hostile length must not exhaust memory). */
const MAX_SYSCALL_WRITE = 1 << 20;

/**
 * The user memory a syscall writes, by x86-64 number
 * (arch/x86/entry/syscalls/syscall_64.tbl; sizes of the x86-64 structs,
 * from the man pages): the pointer argument's register and the length, as
 * a register or a byte count. Arguments: rdi, rsi, rdx, r10, r8, r9.
 */
const SYSCALL_WRITES = new Map<number, [number, number | { bytes: number }, string]>([
  [0, [RSI, 2, 'read']], // read(fd, buf, count)
  [17, [RSI, 2, 'pread64']], // pread64
  [45, [RSI, 2, 'recvfrom']], // recvfrom
  [89, [RSI, 2, 'readlink']], // readlink(path, buf, size)
  [267, [2, 10, 'readlinkat']], // readlinkat(dirfd, path, buf, size)
  [79, [RDI, RSI, 'getcwd']], // getcwd(buf, size)
  [318, [RDI, RSI, 'getrandom']], // getrandom(buf, len)
  [4, [RSI, { bytes: 144 }, 'stat']], // stat: struct stat
  [5, [RSI, { bytes: 144 }, 'fstat']], // fstat
  [6, [RSI, { bytes: 144 }, 'lstat']], // lstat
  [262, [2, { bytes: 144 }, 'newfstatat']], // newfstatat(dirfd, path, statbuf, flags)
  [332, [8, { bytes: 256 }, 'statx']], // statx(..., statxbuf)
  [13, [10, { bytes: 32 }, 'rt_sigaction']], // rt_sigaction(sig, act, oldact): struct kernel_sigaction
  [14, [2, 10, 'rt_sigprocmask']], // rt_sigprocmask(how, set, oldset, sigsetsize)
  [302, [10, { bytes: 16 }, 'prlimit64']], // prlimit64(pid, res, new, old)
  [228, [RSI, { bytes: 16 }, 'clock_gettime']], // clock_gettime(clk, tp)
  [96, [RDI, { bytes: 16 }, 'gettimeofday']], // gettimeofday(tv, tz)
  [63, [RDI, { bytes: 390 }, 'uname']], // uname: struct utsname
  [22, [RDI, { bytes: 8 }, 'pipe']], // pipe
  [293, [RDI, { bytes: 8 }, 'pipe2']], // pipe2
]);
/**
 * Syscalls that write no user memory (or only memory nothing reads before
 * it, as mmap's new mappings): write, open/openat, close, lseek, mmap,
 * mprotect, munmap, brk, access, sched_yield, getpid, exit, kill,
 * getuid..getegid, exit_group, tgkill, arch_prctl, set_tid_address,
 * set_robust_list, futex (a wait), madvise, rseq, faccessat; writev and
 * gettid, tkill (glibc's abort path: the message, then the signal).
 */
const NO_MEMORY_WRITE_SYSCALLS = new Set([1, 2, 257, 3, 8, 9, 10, 11, 12, 21, 24, 39, 60, 62, 102, 104, 107, 108, 231, 234, 158, 218, 273, 202, 28, 334, 269, 439, 20, 186, 200]);

const IOCTL = 16;
/**
 * ioctl requests that only read a struct into the third argument, by
 * request number (asm-generic/ioctls.h, asm-generic/termbits.h): the
 * terminal queries stdio makes (isatty, the window size).
 */
const IOCTL_READS = new Map<number, [number, string]>([
  [0x5401, [36, 'ioctl TCGETS']], // struct termios: 4 flags, c_line, c_cc[19]
  [0x802c542a, [44, 'ioctl TCGETS2']], // struct termios2: termios + 2 speeds
  [0x5413, [8, 'ioctl TIOCGWINSZ']], // struct winsize
  [0x541b, [4, 'ioctl FIONREAD']], // int
  [0x540f, [4, 'ioctl TIOCGPGRP']], // pid_t
]);

/** Linux returns -errno in rax: -4095..-1. */
function failed(result: bigint | null): boolean {
  return result !== null && BigInt.asIntN(64, result) < 0n && BigInt.asIntN(64, result) >= -4095n;
}

export type SyscallWrite = { name: string; addr: number; n: number } | null | 'anywhere';

/**
 * The user memory syscall `nr` writes given its argument registers (`reg(r)`,
 * null when unknown) and its result (rax after it, null when unknown): none
 * (null), a range, or 'anywhere' for an unknown number or unrecovered
 * arguments. A call of the table (or a known ioctl) that failed wrote
 * nothing: these copy to user memory only on success.
 */
export function syscallWrites(nr: bigint | null, reg: (r: number) => bigint | null, result: bigint | null = null): SyscallWrite {
  if (nr === null) return 'anywhere';
  if (NO_MEMORY_WRITE_SYSCALLS.has(Number(nr))) return null;
  if (Number(nr) === IOCTL) {
    const req = reg(RSI);
    const known = req === null ? undefined : IOCTL_READS.get(Number(req & 0xffffffffn));
    if (known === undefined) return 'anywhere';
    if (failed(result)) return null;
    const p = reg(RDX);
    if (p === null) return 'anywhere';
    return p === 0n ? null : { name: known[1], addr: Number(p), n: known[0] };
  }
  const spec = SYSCALL_WRITES.get(Number(nr));
  if (spec !== undefined && failed(result)) return null;
  if (spec === undefined) return 'anywhere';
  const p = reg(spec[0]);
  const len = typeof spec[1] === 'number' ? reg(spec[1]) : BigInt(spec[1].bytes);
  if (p === null || len === null || len > BigInt(MAX_SYSCALL_WRITE)) return 'anywhere';
  return p === 0n ? null : { name: spec[2], addr: Number(p), n: Number(len) };
}
