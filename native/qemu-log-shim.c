/*
 * Preloaded into qemu-user (never into the program it runs). With the one
 * log of a single-thread recording (`/proc/self/fd/3`) it only moves and
 * guards that log (below). When ptscope records one log per thread
 * (src/sources/recorder/thread-fifos.ts), qemu
 * opens each thread's log at `/proc/self/fd/1<tid>` (or, in a program the
 * exec follower started, at the wrapper's copy: `/proc/<pid>/fd/1<tid>`), a
 * FIFO the recorder handed in. What qemu 7.2 does not do, done here:
 *
 * - A forked child keeps writing its log through the FILE of the thread
 *   that forked, i.e. into its parent thread's FIFO. After fork, the child
 *   points that descriptor at its own FIFO (1<its tid>), so each process
 *   has its own log; a child whose tid has no FIFO logs nowhere and is
 *   reported untraced.
 * - The log qemu opens from a handed-in descriptor is not close-on-exec:
 *   here it is. The handed-in descriptors themselves stay open across exec,
 *   for the emulator that the exec follower (exec-follower.c) starts on the
 *   new program, which reopens its thread's log from them; a program that
 *   is not followed gets them closed by the follower before it runs.
 * - The program cannot close the emulator's own logs: qemu runs the
 *   program's close and close_range through libc (close, syscall), so a
 *   close of a log descriptor here succeeds without closing it, and a range
 *   is closed around them. Programs close every descriptor they did not
 *   open before they exec (Python's close_fds, daemons); the log of what
 *   they do until the exec is kept. A dup2 or dup3 onto a log fails with
 *   EBADF. Every log sits at descriptor LOG_FD_FLOOR and up, out of the
 *   way of the low numbers scripts use (`exec 5>&1`).
 * - A program the follower put under the emulator passes its environment as
 *   PTSCOPE_E=name=value entries, so that none of its variables reaches the
 *   emulator's own loader or options. Before qemu's main reads the
 *   environment, it is turned back into the program's, less any QEMU_*
 *   variable (qemu would read it as its own option).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * qemu's per-thread logs are `/proc/self/fd/1<tid>`, or for a program the
 * exec follower started `/proc/<wrapper>/fd/1<tid>` (exec-follower.c): the
 * directory part up to the "1", as qemu opened it.
 */
static char log_prefix[48];

/* The length of the log prefix `path` starts with (/proc/self/fd/1 or /proc/N/fd/1), or 0. */
static size_t log_prefix_of(const char *path) {
  static const char proc[] = "/proc/";
  if (strncmp(path, proc, strlen(proc)) != 0) return 0;
  const char *p = path + strlen(proc);
  if (strncmp(p, "self", 4) == 0) {
    p += 4;
  } else {
    const char *d = p;
    while (*p >= '0' && *p <= '9') p++;
    if (p == d || p - d > 7) return 0;
  }
  if (strncmp(p, "/fd/1", 5) != 0) return 0;
  return (size_t)(p + 5 - path);
}

/*
 * The wrapper's copies of the logs, for a child whose program closed its
 * own (Python's close_fds does, before exec): the first emulator's parent
 * is the sandbox's wrapper, which holds every log for the whole run.
 */
static char wrapper_prefix[48];

/* The log this thread of qemu opened (fopen64 below), or -1. */
static __thread int thread_log_fd = -1;

/* Every log descriptor of this process's threads (a bitmap over the first descriptors). */
#define GUARDED_FDS 65536
/* The lowest descriptor a log is moved to (the sandbox allows 1024; see relocated). */
#define LOG_FD_FLOOR 700
/* The one log of a single-thread recording, handed in as descriptor 3 (confined-run.ts LOG_FD). */
#define ONE_LOG_FD 3
#define ONE_LOG_PATH "/proc/self/fd/3"
static unsigned char guarded[GUARDED_FDS / 8];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;

static void guard(int fd) {
  if (fd < 0 || fd >= GUARDED_FDS) return;
  pthread_mutex_lock(&guard_lock);
  guarded[fd / 8] |= (unsigned char)(1u << (fd % 8));
  pthread_mutex_unlock(&guard_lock);
}

static int is_guarded(long fd) {
  return fd >= 0 && fd < GUARDED_FDS && (guarded[fd / 8] & (1u << (fd % 8))) != 0;
}

static int real_dup3(int oldfd, int newfd, int flags) {
  static int (*real)(int, int, int);
  if (real == NULL) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
  return real(oldfd, newfd, flags);
}

static int real_close(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "close");
  return real(fd);
}

/*
 * In the child (atfork handlers run in the thread that forked): the forking
 * thread's log descriptor now names the child's own FIFO, or /dev/null when
 * it has none (a tid past the FIFOs, or the program closed its descriptor:
 * the child is then reported untraced, never mixed into its parent's log).
 */
static void child(void) {
  if (thread_log_fd < 0) return;
  char own[80];
  snprintf(own, sizeof own, "%s%d", log_prefix, (int)syscall(SYS_gettid));
  int to = open(own, O_WRONLY | O_CLOEXEC);
  if (to < 0 && wrapper_prefix[0] != 0) {
    snprintf(own, sizeof own, "%s%d", wrapper_prefix, (int)syscall(SYS_gettid));
    to = open(own, O_WRONLY | O_CLOEXEC);
  }
  if (to < 0) to = open("/dev/null", O_WRONLY | O_CLOEXEC);
  /* Never let the child write into its parent's log. */
  if (to < 0 || real_dup3(to, thread_log_fd, O_CLOEXEC) < 0) _exit(127);
  real_close(to);
  /* The child has one thread: only its log is guarded. */
  memset(guarded, 0, sizeof guarded);
  guard(thread_log_fd);
}

extern char **environ;

#define GUEST_PREFIX "PTSCOPE_E="

/* The followed program's own environment (see the top of this file). */
static void guest_environment(void) {
  if (getenv("PTSCOPE_FOLLOWED_EXEC") == NULL) {
    /* The first emulator: started by the wrapper (a followed one opens the wrapper's logs itself). */
    snprintf(wrapper_prefix, sizeof wrapper_prefix, "/proc/%d/fd/1", (int)getppid());
    return;
  }
  size_t n = 0;
  for (char **e = environ; *e != NULL; e++) n++;
  char **guest = calloc(n + 1, sizeof *guest);
  if (guest == NULL) _exit(127);
  size_t k = 0;
  for (char **e = environ; *e != NULL; e++) {
    if (strncmp(*e, GUEST_PREFIX, strlen(GUEST_PREFIX)) != 0) continue;
    char *v = *e + strlen(GUEST_PREFIX);
    if (strncmp(v, "QEMU_", 5) == 0) continue;
    guest[k++] = v;
  }
  environ = guest;
}

__attribute__((constructor)) static void init(void) {
  guest_environment();
  pthread_atfork(NULL, NULL, child);
}

/*
 * Move a log out of the low descriptors the program uses: shells and
 * scripts name 3..9 freely (`exec 3>&1`), and a program that finds one
 * open would save, duplicate or replace it. Above LOG_FD_FLOOR only a
 * program that goes looking finds it (and then meets the guards below).
 */
static FILE *relocated(FILE *f, const char *mode) {
  int hi = fcntl(fileno(f), F_DUPFD_CLOEXEC, LOG_FD_FLOOR);
  if (hi < 0) return f;
  FILE *g = fdopen(hi, mode);
  if (g == NULL) {
    real_close(hi);
    return f;
  }
  fclose(f);
  return g;
}

/*
 * qemu opens its log with fopen64(path, "w"): per-thread logs, or the one
 * log of a single-thread recording (ONE_LOG_PATH). Add close-on-exec, move
 * it up, and guard it. The one log's handed-in descriptor is closed once
 * qemu has its own, so the program never sees it.
 */
FILE *fopen64(const char *path, const char *mode) {
  static FILE *(*real)(const char *, const char *);
  if (real == NULL) real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen64");
  size_t prefix = path != NULL ? log_prefix_of(path) : 0;
  int one_log = path != NULL && strcmp(path, ONE_LOG_PATH) == 0;
  if ((one_log || (prefix > 0 && prefix < sizeof log_prefix)) && strlen(mode) < 8 && strchr(mode, 'e') == NULL) {
    char with[16];
    snprintf(with, sizeof with, "%se", mode);
    FILE *f = real(path, with);
    if (f != NULL) {
      f = relocated(f, with);
      thread_log_fd = fileno(f);
      guard(thread_log_fd);
      if (one_log) {
        real_close(ONE_LOG_FD);
      } else {
        memcpy(log_prefix, path, prefix);
        log_prefix[prefix] = 0;
      }
    }
    return f;
  }
  return real(path, mode);
}

/*
 * qemu's dup2 and dup3 for the program: a log cannot be replaced. The
 * kernel's answer for a descriptor the program may not use is EBADF.
 */
int dup2(int oldfd, int newfd) {
  static int (*real)(int, int);
  if (real == NULL) real = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
  if (is_guarded(newfd) && oldfd != newfd) {
    errno = EBADF;
    return -1;
  }
  return real(oldfd, newfd);
}

int dup3(int oldfd, int newfd, int flags) {
  if (is_guarded(newfd)) {
    errno = EBADF;
    return -1;
  }
  return real_dup3(oldfd, newfd, flags);
}

/* qemu's close for the program: a log stays open (see the top of this file). */
int close(int fd) {
  if (is_guarded(fd)) return 0;
  return real_close(fd);
}

/* qemu's close_range for the program goes through syscall(): closed around the logs. */
long syscall(long number, ...) {
  static long (*real)(long, ...);
  if (real == NULL) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
#ifdef SYS_close_range
  if (number == SYS_close_range && (a[2] & 4 /* CLOSE_RANGE_CLOEXEC */) == 0) {
    unsigned long lo = (unsigned long)(unsigned int)a[0], hi = (unsigned long)(unsigned int)a[1];
    if (lo > hi) return real(number, a[0], a[1], a[2]);
    unsigned long from = lo;
    for (unsigned long fd = lo; fd <= hi && fd < GUARDED_FDS; fd++) {
      if (!is_guarded((long)fd)) continue;
      if (fd > from && real(number, from, fd - 1, a[2]) < 0) return -1;
      from = fd + 1;
    }
    if (from <= hi) return real(number, from, hi, a[2]);
    return 0;
  }
#endif
  return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
