/*
 * Runs the sandbox under ptrace so that every program the recorded program
 * executes runs under the emulator too (src/sources/recorder/exec-follow.ts).
 *
 * qemu-user does not follow execve: the host kernel runs the new program
 * natively. This supervisor sits outside the sandbox (and its seccomp
 * filter), traces the whole tree from bwrap down with only the fork, clone
 * and exec events (no syscall stops, so the cost is one stop per process
 * and per signal), and acts at the exec stop of a process that was running
 * the emulator: the new program is loaded but has not run one instruction,
 * and it is the only thread of its process. There it
 *
 *   1. checks the new program is x86-64 (what qemu-x86_64 runs);
 *   2. learns its path (readlink of /proc/self/exe, run in the process, so
 *      the path is the sandbox's) and reads its argv and environment;
 *   3. makes the process execute the emulator on it: execve(qemu, -d ...
 *      -D ... -0 argv0 path args...), with the emulator's own environment
 *      (the log shim) and the program's environment carried as
 *      PTSCOPE_E=name=value entries, which the shim turns back into the
 *      program's (so no variable of the program reaches the emulator's own
 *      loader: LD_PRELOAD, LD_LIBRARY_PATH or QEMU_* would run native code);
 *   4. at the new emulator's exec stop, before it runs, writes a marker into
 *      that thread's log FIFO: everything of the old emulator is in the FIFO
 *      before it, everything of the new one after it.
 *
 * A program that cannot run under the emulator (another architecture, a
 * thread id past the logs, an emulator that would not start) has the log
 * descriptors closed, runs natively, and is reported untraced by a marker.
 * Nothing the program does decides what this supervisor runs: the emulator's
 * path, options and shim come from its own command line.
 *
 * Syscalls are injected at the exec stop: a `syscall` instruction written
 * over the entry point, the registers set, one PTRACE_SYSCALL round trip
 * per call; the original bytes and registers come back before a native run.
 *
 * A program with no readable path (a memfd, a deleted file: "fileless"
 * code) is copied out of /proc/pid/exe into --copies DIR for the recorder,
 * before it runs.
 *
 * Usage: exec-follower --qemu HOST_PATH --guest-qemu PATH --shim PATH
 *          --log-items ITEMS --log-template TEMPLATE --max-tid N
 *          [--copies DIR] -- COMMAND...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define MARKER "PTSCOPE-EXEC"
/* One write to a FIFO of at most PIPE_BUF bytes is atomic. */
#define MARKER_MAX 4000
#define LIST_MAX (8u << 20)
#define MAX_PENDING 64

enum state { UNKNOWN = 0, LAUNCH, EMULATED, NATIVE };
#define STATE_MASK 0x0f
/* Seen stopped before its parent's fork event: held until the event. */
#define HELD 0x20
/* ... and that first stop was also a group stop (released with PTRACE_LISTEN). */
#define HELD_IN_GROUP_STOP 0x40

static const char *qemu_host, *guest_qemu, *shim, *log_items, *log_template, *copies;
static int copy_count;
/*
 * The log template a followed program's emulator gets: /proc/self/fd/1%d
 * with "self" replaced by the sandbox pid of the wrapper that started the
 * first emulator. The wrapper holds every log descriptor for the whole run,
 * so the new emulator reopens its thread's log from there even when the
 * program closed its own copies before the exec (Python's close_fds, any
 * daemon). The program cannot do the same unseen: an open of /proc/N/fd/M
 * shows in the log and is refused as tampered.
 */
static char held_template[96];
/* The largest program copied out for the recorder (a memfd's, a deleted file's). */
#define COPY_MAX (512u << 20)
static int max_tid;
static struct stat qemu_stat;
static unsigned char *states;
static long pid_max;

static void vreport(const char *fmt, va_list ap) {
  fputs("ptscope exec-follower: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
  exit(125);
}

static int state_of(pid_t pid) { return pid > 0 && pid <= pid_max ? states[pid] : 0; }
static void set_state(pid_t pid, int s) {
  if (pid > 0 && pid <= pid_max) states[pid] = (unsigned char)s;
}

/* The descriptor that carries tid's log (thread-fifos.ts threadLogFd). */
static int log_fd_of(int tid) {
  char text[16];
  snprintf(text, sizeof text, "1%d", tid);
  return atoi(text);
}

/* The numbers of one /proc/pid/status field ("NSpid:", "PPid:"): the last one, or -1. */
static long status_field(pid_t pid, const char *field) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return -1;
  long last = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, field, n) != 0) continue;
    char *p = line + n, *end;
    for (;;) {
      long v = strtol(p, &end, 10);
      if (end == p) break;
      last = v;
      p = end;
    }
    break;
  }
  fclose(f);
  return last;
}

/* The pid in the sandbox's own namespace (the last NSpid field). */
static int namespace_pid(pid_t pid) { return (int)status_field(pid, "NSpid:"); }

/* Read a whole /proc file of NUL-separated strings, bounded. */
static char *read_list(pid_t pid, const char *what, size_t *len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", pid, what);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (n == cap) {
      if (cap >= LIST_MAX) {
        free(buf);
        close(fd);
        return NULL;
      }
      cap *= 2;
      buf = realloc(buf, cap + 1);
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  *len = n;
  return buf;
}

/* Split a NUL-separated list into a NULL-terminated array (pointing into buf). */
static char **split_list(char *buf, size_t len, int *count) {
  int n = 0;
  for (size_t i = 0; i < len; i++)
    if (buf[i] == 0) n++;
  if (len > 0 && buf[len - 1] != 0) n++;
  char **v = calloc((size_t)n + 1, sizeof *v);
  int k = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len && k < n; i++) {
    if (i == len || buf[i] == 0) {
      v[k++] = buf + start;
      start = i + 1;
    }
  }
  *count = k;
  return v;
}

/* Is the file behind /proc/pid/exe an x86-64 ELF program? */
static int is_x86_64_program(pid_t pid) {
  char path[64];
  unsigned char h[20];
  snprintf(path, sizeof path, "/proc/%d/exe", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t r = pread(fd, h, sizeof h, 0);
  close(fd);
  return r == (ssize_t)sizeof h && memcmp(h, "\177ELF", 4) == 0 && h[4] == 2 && h[5] == 1 && h[18] == 62 && h[19] == 0;
}

static int runs_emulator(pid_t pid) {
  char path[64];
  struct stat st;
  snprintf(path, sizeof path, "/proc/%d/exe", pid);
  return stat(path, &st) == 0 && st.st_dev == qemu_stat.st_dev && st.st_ino == qemu_stat.st_ino;
}

/* Write the marker into tid's log FIFO (the recorder's write end, non-blocking). */
static void write_marker(int tid, const char *text, size_t len) {
  if (tid < 1 || tid > max_tid) return;
  int fd = log_fd_of(tid);
  for (int tries = 0; tries < 100; tries++) {
    ssize_t w = write(fd, text, len);
    if (w == (ssize_t)len) return;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd p = { .fd = fd, .events = POLLOUT };
      poll(&p, 1, 100);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    break;
  }
  note("could not write the exec marker of thread %d", tid);
}

static void hex_field(char *out, size_t *n, const char *s, size_t max_bytes) {
  static const char digits[] = "0123456789abcdef";
  out[(*n)++] = ' ';
  size_t len = strlen(s);
  if (len > max_bytes) len = max_bytes;
  if (len == 0) out[(*n)++] = '-';
  for (size_t i = 0; i < len; i++) {
    out[(*n)++] = digits[(unsigned char)s[i] >> 4];
    out[(*n)++] = digits[(unsigned char)s[i] & 15];
  }
}

/*
 * `\0PTSCOPE-EXEC followed <hex path> <hex copy> <argc> <hex arg>... +<omitted>\n` or
 * `\0PTSCOPE-EXEC untraced <hex path> <hex reason>\n`. A NUL never occurs
 * in qemu's text log (guest strings are printed as C strings), so the
 * marker cannot be forged through the log; it is bounded to one atomic
 * FIFO write.
 */
static void mark_followed(int tid, const char *path, const char *copy, char **argv, int argc) {
  char out[MARKER_MAX + 64];
  size_t n = (size_t)snprintf(out, sizeof out, "%c%s followed", 0, MARKER);
  hex_field(out, &n, path, 1024);
  hex_field(out, &n, copy, 256);
  n += (size_t)snprintf(out + n, sizeof out - n, " %d", argc);
  int shown = 0;
  for (; shown < argc; shown++) {
    size_t need = 2 * strlen(argv[shown]) + 2;
    if (need > 512) need = 2 * 256 + 2;
    if (n + need + 32 > MARKER_MAX) break;
    hex_field(out, &n, argv[shown], 256);
  }
  n += (size_t)snprintf(out + n, sizeof out - n, " +%d\n", argc - shown);
  write_marker(tid, out, n);
}

static void mark_untraced(int tid, const char *path, const char *reason) {
  char out[MARKER_MAX + 64];
  size_t n = (size_t)snprintf(out, sizeof out, "%c%s untraced", 0, MARKER);
  hex_field(out, &n, path, 1024);
  hex_field(out, &n, reason, 512);
  out[n++] = '\n';
  write_marker(tid, out, n);
}

/* ---- syscalls run in a stopped tracee ---- */

struct injection {
  pid_t pid;
  int mem;
  struct user_regs_struct saved;
  unsigned char code[2];
  int pending[MAX_PENDING];
  int npending;
  int dead;
};

static int mem_write(struct injection *j, unsigned long addr, const void *buf, size_t n) {
  return pwrite(j->mem, buf, n, (off_t)addr) == (ssize_t)n ? 0 : -1;
}

static int mem_read(struct injection *j, unsigned long addr, void *buf, size_t n) {
  return pread(j->mem, buf, n, (off_t)addr) == (ssize_t)n ? 0 : -1;
}

/* Resume with PTRACE_SYSCALL until the next syscall stop (or the exec stop); signals are held. */
static int next_syscall_stop(struct injection *j, int *exec_event) {
  if (ptrace(PTRACE_SYSCALL, j->pid, 0, 0) < 0) return -1;
  for (;;) {
    int st;
    pid_t w = waitpid(j->pid, &st, __WALL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 || WIFEXITED(st) || WIFSIGNALED(st)) {
      j->dead = 1;
      return -1;
    }
    int sig = WSTOPSIG(st), event = st >> 16;
    if (sig == (SIGTRAP | 0x80)) return 0;
    if (event == PTRACE_EVENT_EXEC) {
      if (exec_event != NULL) *exec_event = 1;
      return 0;
    }
    /* A signal (or a group stop) meanwhile: held, raised again at the end. */
    if (event == 0 && sig != SIGTRAP && j->npending < MAX_PENDING) j->pending[j->npending++] = sig;
    if (ptrace(PTRACE_SYSCALL, j->pid, 0, 0) < 0) return -1;
  }
}

/* Run one syscall in the tracee (which is at a syscall-exit stop); returns its result or -errno. */
static long inject_call(struct injection *j, int *execed, long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  struct user_regs_struct r = j->saved;
  r.rax = (unsigned long)nr;
  r.orig_rax = (unsigned long)-1;
  r.rdi = (unsigned long)a1;
  r.rsi = (unsigned long)a2;
  r.rdx = (unsigned long)a3;
  r.r10 = (unsigned long)a4;
  r.r8 = (unsigned long)a5;
  r.r9 = (unsigned long)a6;
  r.rip = j->saved.rip;
  if (ptrace(PTRACE_SETREGS, j->pid, 0, &r) < 0) return -ESRCH;
  int exec_event = 0;
  if (next_syscall_stop(j, NULL) < 0) return -ESRCH; /* entry */
  if (next_syscall_stop(j, &exec_event) < 0) return -ESRCH; /* exit, or the exec stop */
  if (exec_event) {
    /* execve succeeded: the tracee is at the new program's exec stop. */
    if (execed != NULL) *execed = 1;
    return 0;
  }
  if (ptrace(PTRACE_GETREGS, j->pid, 0, &r) < 0) return -ESRCH;
  return (long)r.rax;
}

static long inject(struct injection *j, long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  return inject_call(j, NULL, nr, a1, a2, a3, a4, a5, a6);
}

static long inject_exec(struct injection *j, long path, long argv, long envp, int *execed) {
  return inject_call(j, execed, SYS_execve, path, argv, envp, 0, 0, 0);
}

/* Put the program back as the kernel loaded it and let it run (held signals raised again). */
static void release(struct injection *j) {
  if (j->dead) return;
  mem_write(j, j->saved.rip, j->code, sizeof j->code);
  ptrace(PTRACE_SETREGS, j->pid, 0, &j->saved);
  for (int i = 0; i < j->npending; i++) syscall(SYS_tgkill, j->pid, j->pid, j->pending[i]);
  ptrace(PTRACE_CONT, j->pid, 0, 0);
}

/* The log descriptors, as close_range spans (1..9 -> 11..19, 10..99 -> 110..199, ...). */
static void close_logs(struct injection *j) {
  for (long lo = 1; lo <= max_tid; lo *= 10) {
    long hi = lo * 10 - 1;
    if (hi > max_tid) hi = max_tid;
    inject(j, SYS_close_range, log_fd_of((int)lo), log_fd_of((int)hi), 0, 0, 0, 0);
    if (j->dead) return;
  }
}

static void run_native(struct injection *j, int tid, const char *path, const char *reason) {
  close_logs(j);
  mark_untraced(tid, path, reason);
  set_state(j->pid, NATIVE);
  release(j);
}

/*
 * A program with no path the recorder can read (a memfd, a deleted file) is
 * copied from /proc/pid/exe into the recorder's directory; returns the
 * copy's name there, or "" when there is none.
 */
static const char *copy_program(pid_t pid, char *name, size_t size) {
  name[0] = 0;
  if (copies == NULL) return name;
  char src[64], dst[PATH_MAX];
  snprintf(src, sizeof src, "/proc/%d/exe", pid);
  snprintf(name, size, "exec-%d", ++copy_count);
  snprintf(dst, sizeof dst, "%s/%s", copies, name);
  int in = open(src, O_RDONLY | O_CLOEXEC);
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  size_t total = 0;
  int ok = in >= 0 && out >= 0;
  char buf[65536];
  while (ok) {
    ssize_t r = read(in, buf, sizeof buf);
    if (r == 0) break;
    if (r < 0 || total + (size_t)r > COPY_MAX || write(out, buf, (size_t)r) != r) ok = 0;
    total += (size_t)r;
  }
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  if (!ok) {
    unlink(dst);
    name[0] = 0;
  }
  return name;
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* The exec stop of a process that ran the emulator and now holds another program. */
static void follow(pid_t pid) {
  struct injection j = { .pid = pid, .mem = -1 };
  int tid = namespace_pid(pid);
  /* Leave the execve syscall: its exit stop is where syscalls can be run. */
  if (next_syscall_stop(&j, NULL) < 0) return;
  if (ptrace(PTRACE_GETREGS, pid, 0, &j.saved) < 0) return;
  char mempath[64];
  snprintf(mempath, sizeof mempath, "/proc/%d/mem", pid);
  j.mem = open(mempath, O_RDWR | O_CLOEXEC);
  static const unsigned char syscall_insn[2] = { 0x0f, 0x05 };
  if (j.mem < 0 || mem_read(&j, j.saved.rip, j.code, sizeof j.code) < 0 || mem_write(&j, j.saved.rip, syscall_insn, sizeof syscall_insn) < 0) {
    note("cannot reach process %d's memory: it is killed", pid);
    kill(pid, SIGKILL);
    if (j.mem >= 0) close(j.mem);
    return;
  }

  size_t arg_len = 0, env_len = 0;
  char *args = read_list(pid, "cmdline", &arg_len);
  char *envs = read_list(pid, "environ", &env_len);
  if (args == NULL || envs == NULL || arg_len == 0) {
    run_native(&j, tid, "", "its arguments or environment could not be read");
    goto out;
  }
  int argc = 0, envc = 0;
  char **argv = split_list(args, arg_len, &argc);
  char **envp = split_list(envs, env_len, &envc);

  /* Scratch memory in the process for the strings and arrays of the calls. */
  size_t prefix = 2 * PATH_MAX + 128 + strlen(shim) + strlen(guest_qemu) + strlen(log_items) + strlen(log_template) + 64;
  size_t size = align8(PATH_MAX + 64) + align8(prefix) + arg_len + env_len + (size_t)envc * 16 + ((size_t)argc + (size_t)envc + 16) * 8 + 4096;
  size = (size + 4095) & ~(size_t)4095;
  long base = inject(&j, SYS_mmap, 0, (long)size, 3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
  if (j.dead) goto free_all;
  if (base < 0 && base > -4096) {
    run_native(&j, tid, "", "no memory to start the emulator");
    goto free_all;
  }
  static const char self_exe[] = "/proc/self/exe";
  char path[PATH_MAX + 1];
  mem_write(&j, (unsigned long)base, self_exe, sizeof self_exe);
  long plen = inject(&j, SYS_readlink, base, base + 64, PATH_MAX, 0, 0, 0);
  if (j.dead) goto free_all;
  if (plen <= 0 || plen > PATH_MAX || mem_read(&j, (unsigned long)base + 64, path, (size_t)plen) < 0) plen = 0;
  path[plen] = 0;
  /* A deleted file or a memfd has no path to open: the emulator opens the file the kernel loaded. */
  int by_descriptor = plen == 0 || path[0] != '/' || strstr(path, " (deleted)") != NULL;

  if (!is_x86_64_program(pid)) {
    run_native(&j, tid, path, "not an x86-64 program, which qemu-x86_64 cannot run");
    goto free_all;
  }
  if (tid < 1 || tid > max_tid) {
    run_native(&j, tid, path, "its thread id is past the recorder's logs");
    goto free_all;
  }
  char program[PATH_MAX + 32], copy[64];
  copy[0] = 0;
  if (by_descriptor) {
    copy_program(pid, copy, sizeof copy);
    long fd = inject(&j, SYS_open, base, O_RDONLY, 0, 0, 0, 0);
    if (j.dead) goto free_all;
    if (fd < 0) {
      run_native(&j, tid, path, "the program's file cannot be opened again");
      goto free_all;
    }
    snprintf(program, sizeof program, "/proc/self/fd/%ld", fd);
  } else {
    snprintf(program, sizeof program, "%s", path);
  }

  /* The emulator's command line and environment, built in the scratch memory. */
  const char *template = held_template[0] != 0 ? held_template : log_template;
  const char *fixed[] = { guest_qemu, "-d", log_items, "-D", template, "-0", argv[0], program };
  int nfixed = (int)(sizeof fixed / sizeof fixed[0]);
  int new_argc = nfixed + argc - 1;
  int new_envc = envc + 2;
  unsigned long at = (unsigned long)base + align8(PATH_MAX + 64);
  unsigned long arr = at;
  const unsigned long limit = (unsigned long)base + size;
  at += ((size_t)new_argc + 1 + (size_t)new_envc + 1) * 8;
  uint64_t *ptrs = calloc((size_t)new_argc + 1 + (size_t)new_envc + 1, 8);
  int k = 0;
  int failed = 0;
#define PUT(str, pre)                                                                  \
  do {                                                                                 \
    size_t pl = strlen(pre), sl = strlen(str);                                         \
    ptrs[k++] = at;                                                                    \
    if (at + pl + sl + 1 > limit || mem_write(&j, at, pre, pl) < 0 || mem_write(&j, at + pl, str, sl + 1) < 0) failed = 1; \
    else at += pl + sl + 1;                                                            \
  } while (0)
  for (int i = 0; i < nfixed; i++) PUT(fixed[i], "");
  for (int i = 1; i < argc; i++) PUT(argv[i], "");
  ptrs[k++] = 0;
  int env_start = k;
  char preload[PATH_MAX + 16];
  snprintf(preload, sizeof preload, "LD_PRELOAD=%s", shim);
  PUT(preload, "");
  PUT("PTSCOPE_FOLLOWED_EXEC=1", "");
  for (int i = 0; i < envc; i++) PUT(envp[i], "PTSCOPE_E=");
  ptrs[k++] = 0;
#undef PUT
  if (failed || at > limit || mem_write(&j, arr, ptrs, (size_t)k * 8) < 0) {
    free(ptrs);
    run_native(&j, tid, path, "the emulator's command line did not fit");
    goto free_all;
  }
  long exec_path = (long)ptrs[0], exec_argv = (long)arr, exec_envp = (long)(arr + (unsigned long)env_start * 8);
  free(ptrs);
  int execed = 0;
  long r = inject_exec(&j, exec_path, exec_argv, exec_envp, &execed);
  if (j.dead) goto free_all;
  if (!execed) {
    char why[96];
    snprintf(why, sizeof why, "the emulator could not be started on it (errno %ld)", -r);
    run_native(&j, tid, path, why);
    goto free_all;
  }
  /* The emulator is loaded and has not run: its log comes after the marker. */
  mark_followed(tid, path, copy, argv, argc);
  set_state(pid, EMULATED);
  if (next_syscall_stop(&j, NULL) == 0) {
    for (int i = 0; i < j.npending; i++) syscall(SYS_tgkill, pid, pid, j.pending[i]);
    ptrace(PTRACE_CONT, pid, 0, 0);
  }
free_all:
  free(argv);
  free(envp);
out:
  free(args);
  free(envs);
  if (j.mem >= 0) close(j.mem);
}

/* The parent's host pid. */
static pid_t parent_of(pid_t pid) { return (pid_t)status_field(pid, "PPid:"); }

/* The first emulator's parent is the wrapper that holds the logs (see held_template). */
static void hold_logs_at_parent(pid_t pid) {
  static const char self[] = "/proc/self/";
  if (strncmp(log_template, self, strlen(self)) != 0) return;
  pid_t parent = parent_of(pid);
  int ns = parent > 0 ? namespace_pid(parent) : -1;
  if (ns <= 0) return;
  snprintf(held_template, sizeof held_template, "/proc/%d/%s", ns, log_template + strlen(self));
}

/* An exec stop: decide by what the process ran before and what it runs now. */
static void exec_stop(pid_t pid) {
  int s = state_of(pid) & STATE_MASK;
  if (s == EMULATED) {
    follow(pid);
    return;
  }
  /* The launch chain (bwrap, the wrapper, prlimit, env) reaching the emulator. */
  if (s == LAUNCH && runs_emulator(pid)) {
    set_state(pid, EMULATED);
    if (held_template[0] == 0) hold_logs_at_parent(pid);
  }
  ptrace(PTRACE_CONT, pid, 0, 0);
}

static const char *option(int argc, char **argv, int *i, const char *name) {
  if (strcmp(argv[*i], name) != 0) return NULL;
  if (*i + 1 >= argc) die("%s needs a value", name);
  *i += 1;
  return argv[*i];
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *v;
    if ((v = option(argc, argv, &i, "--qemu")) != NULL) qemu_host = v;
    else if ((v = option(argc, argv, &i, "--guest-qemu")) != NULL) guest_qemu = v;
    else if ((v = option(argc, argv, &i, "--shim")) != NULL) shim = v;
    else if ((v = option(argc, argv, &i, "--log-items")) != NULL) log_items = v;
    else if ((v = option(argc, argv, &i, "--log-template")) != NULL) log_template = v;
    else if ((v = option(argc, argv, &i, "--max-tid")) != NULL) max_tid = atoi(v);
    else if ((v = option(argc, argv, &i, "--copies")) != NULL) copies = v;
    else die("unknown option %s", argv[i]);
  }
  if (i >= argc - 1 || !qemu_host || !guest_qemu || !shim || !log_items || !log_template || max_tid < 1) die("usage: exec-follower --qemu P --guest-qemu P --shim P --log-items I --log-template T --max-tid N -- COMMAND...");
  char **command = argv + i + 1;
  if (stat(qemu_host, &qemu_stat) != 0) die("%s: %s", qemu_host, strerror(errno));

  FILE *pm = fopen("/proc/sys/kernel/pid_max", "re");
  if (pm == NULL || fscanf(pm, "%ld", &pid_max) != 1 || pid_max < 1 || pid_max > (1L << 22)) pid_max = 1L << 22;
  if (pm != NULL) fclose(pm);
  states = calloc((size_t)pid_max + 1, 1);
  if (states == NULL) die("out of memory");
  signal(SIGPIPE, SIG_IGN);

  int sync[2];
  if (pipe2(sync, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  pid_t root = fork();
  if (root < 0) die("fork: %s", strerror(errno));
  if (root == 0) {
    char c;
    close(sync[1]);
    /* Wait until traced, so that no exec happens untraced. */
    if (read(sync[0], &c, 1) != 1) _exit(125);
    signal(SIGPIPE, SIG_DFL);
    execvp(command[0], command);
    fprintf(stderr, "ptscope exec-follower: %s: %s\n", command[0], strerror(errno));
    _exit(127);
  }
  close(sync[0]);
  long opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL;
  if (ptrace(PTRACE_SEIZE, root, 0, opts) < 0) {
    kill(root, SIGKILL);
    die("cannot trace the sandbox (ptrace: %s)", strerror(errno));
  }
  set_state(root, LAUNCH);
  if (write(sync[1], "x", 1) != 1) die("cannot start the sandbox");
  close(sync[1]);

  int root_status = 0, root_done = 0;
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, __WALL);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break; /* ECHILD: every traced process has ended */
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (pid == root) {
        root_status = st;
        root_done = 1;
      }
      set_state(pid, UNKNOWN);
      continue;
    }
    if (!WIFSTOPPED(st)) continue;
    int sig = WSTOPSIG(st), event = st >> 16;
    switch (event) {
      case PTRACE_EVENT_FORK:
      case PTRACE_EVENT_VFORK:
      case PTRACE_EVENT_CLONE: {
        unsigned long child = 0;
        ptrace(PTRACE_GETEVENTMSG, pid, 0, &child);
        int held = state_of((pid_t)child) & (HELD | HELD_IN_GROUP_STOP);
        set_state((pid_t)child, state_of(pid) & STATE_MASK);
        if (held & HELD_IN_GROUP_STOP) ptrace(PTRACE_LISTEN, (pid_t)child, 0, 0);
        else if (held) ptrace(PTRACE_CONT, (pid_t)child, 0, 0);
        ptrace(PTRACE_CONT, pid, 0, 0);
        break;
      }
      case PTRACE_EVENT_EXEC:
        exec_stop(pid);
        break;
      case PTRACE_EVENT_STOP: {
        int group = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
        if ((state_of(pid) & (STATE_MASK | HELD)) == UNKNOWN) {
          /*
           * A new task's first stop, before its parent's fork or clone event
           * told what it runs: held until then, or its exec could pass
           * unfollowed. A seized task's first stop reports SIGTRAP (a stop
           * signal only if a group stop was under way), so any
           * PTRACE_EVENT_STOP of a task not known yet is that stop.
           */
          set_state(pid, HELD | (group ? HELD_IN_GROUP_STOP : 0));
          break;
        }
        if (group) ptrace(PTRACE_LISTEN, pid, 0, 0); /* a group stop: stays stopped until SIGCONT */
        else ptrace(PTRACE_CONT, pid, 0, 0);
        break;
      }
      default:
        if (sig == (SIGTRAP | 0x80)) sig = 0; /* a syscall stop: none is asked for outside an injection */
        ptrace(PTRACE_CONT, pid, 0, (void *)(long)sig);
        break;
    }
  }
  if (!root_done) return 125;
  if (WIFEXITED(root_status)) return WEXITSTATUS(root_status);
  int sig = WTERMSIG(root_status);
  signal(sig, SIG_DFL);
  kill(getpid(), sig);
  return 128 + sig;
}
