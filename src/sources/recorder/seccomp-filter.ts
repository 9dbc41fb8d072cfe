/**
 * The sandbox's seccomp filter (classic BPF over `struct seccomp_data`,
 * Linux Documentation/userspace-api/seccomp_filter.rst), loaded by bwrap
 * (`--seccomp FD`) for everything in the sandbox. It is a second wall behind
 * the namespaces, for what they do not cover:
 *
 * - socket(AF_UNIX, ...) fails with EAFNOSUPPORT. A unix socket that is
 *   reachable by path stays connectable through a read-only bind mount (the
 *   kernel's read-only check is for files, directories and links, not for
 *   sockets), so a directory shown to the program (one named on the
 *   command line, say /run) could otherwise lead to docker.sock, D-Bus or an
 *   ssh agent. socketpair(AF_UNIX) still works: it reaches nothing outside.
 * - io_uring (which could open sockets and files around the socket() rule),
 *   keyctl/add_key/request_key, ptrace and process_vm_readv/writev,
 *   perf_event_open, bpf and userfaultfd fail with ENOSYS: none is needed
 *   by a recorded program under qemu-user, and each is kernel surface.
 * - Any syscall of another ABI (i386 `int 0x80`, x32) fails with ENOSYS, so
 *   that the numbers above cannot be reached under other numbers.
 */

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JSET_K = 0x45;
const BPF_RET_K = 0x06;

const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;

const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const AF_UNIX = 1;

/** x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
const NR_SOCKET = 41;
const DENIED: ReadonlyArray<[string, number]> = [
  ['ptrace', 101],
  ['add_key', 248],
  ['request_key', 249],
  ['keyctl', 250],
  ['perf_event_open', 298],
  ['process_vm_readv', 310],
  ['process_vm_writev', 311],
  ['bpf', 321],
  ['userfaultfd', 323],
  ['io_uring_setup', 425],
  ['io_uring_enter', 426],
  ['io_uring_register', 427],
];

/** Offsets in `struct seccomp_data`. */
const NR = 0;
const ARCH = 4;
const ARG0_LOW = 16;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** The filter program as bwrap reads it: `struct sock_filter` entries (8 bytes each, little-endian). */
export function sandboxSeccompFilter(): Buffer {
  const p: Insn[] = [];
  const ins = (code: number, k: number, jt = 0, jf = 0): void => {
    p.push({ code, jt, jf, k });
  };
  const ret = (k: number): void => ins(BPF_RET_K, k);
  // Another ABI: ENOSYS.
  ins(BPF_LD_W_ABS, ARCH);
  ins(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0);
  ret(SECCOMP_RET_ERRNO | ENOSYS);
  ins(BPF_LD_W_ABS, NR);
  ins(BPF_JSET_K, X32_SYSCALL_BIT, 0, 1);
  ret(SECCOMP_RET_ERRNO | ENOSYS);
  // Denied outright.
  for (const [, nr] of DENIED) {
    ins(BPF_JEQ_K, nr, 0, 1);
    ret(SECCOMP_RET_ERRNO | ENOSYS);
  }
  // socket(AF_UNIX, ...): the domain is the low word of argument 0.
  ins(BPF_JEQ_K, NR_SOCKET, 0, 3);
  ins(BPF_LD_W_ABS, ARG0_LOW);
  ins(BPF_JEQ_K, AF_UNIX, 0, 1);
  ret(SECCOMP_RET_ERRNO | EAFNOSUPPORT);
  ret(SECCOMP_RET_ALLOW);
  const out = Buffer.alloc(p.length * 8);
  p.forEach((x, i) => {
    out.writeUInt16LE(x.code, i * 8);
    out.writeUInt8(x.jt, i * 8 + 2);
    out.writeUInt8(x.jf, i * 8 + 3);
    out.writeUInt32LE(x.k >>> 0, i * 8 + 4);
  });
  return out;
}

/** The syscalls the filter refuses, for the documentation and tests. */
export const SECCOMP_DENIED_SYSCALLS: readonly string[] = ['socket(AF_UNIX)', ...DENIED.map(([n]) => n)];
