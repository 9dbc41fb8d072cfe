/*
 * Preloaded into qemu-user (never into the program it runs) when ptscope
 * records one log per thread (src/sources/recorder/thread-fifos.ts). qemu
 * opens each thread's log at `/proc/self/fd/1<tid>`, a FIFO the recorder
 * handed in. Two things qemu 7.2 does not do, done here:
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
 * - A program the follower put under the emulator passes its environment as
 *   PTSCOPE_E=name=value entries, so that none of its variables reaches the
 *   emulator's own loader or options. Before qemu's main reads the
 *   environment, it is turned back into the program's, less any QEMU_*
 *   variable (qemu would read it as its own option).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "/proc/self/fd/1"

/* The log this thread of qemu opened (fopen64 below), or -1. */
static __thread int thread_log_fd = -1;

/*
 * In the child (atfork handlers run in the thread that forked): the forking
 * thread's log descriptor now names the child's own FIFO, or /dev/null when
 * it has none (a tid past the FIFOs, or the program closed its descriptor:
 * the child is then reported untraced, never mixed into its parent's log).
 */
static void child(void) {
  if (thread_log_fd < 0) return;
  char own[32];
  snprintf(own, sizeof own, LOG_PREFIX "%d", (int)syscall(SYS_gettid));
  int to = open(own, O_WRONLY | O_CLOEXEC);
  if (to < 0) to = open("/dev/null", O_WRONLY | O_CLOEXEC);
  /* Never let the child write into its parent's log. */
  if (to < 0 || dup3(to, thread_log_fd, O_CLOEXEC) < 0) _exit(127);
  close(to);
}

extern char **environ;

#define GUEST_PREFIX "PTSCOPE_E="

/* The followed program's own environment (see the top of this file). */
static void guest_environment(void) {
  if (getenv("PTSCOPE_FOLLOWED_EXEC") == NULL) return;
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

/* qemu opens each thread's log with fopen64(path, "w"): add close-on-exec. */
FILE *fopen64(const char *path, const char *mode) {
  static FILE *(*real)(const char *, const char *);
  if (real == NULL) real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen64");
  if (path != NULL && strncmp(path, LOG_PREFIX, strlen(LOG_PREFIX)) == 0 && strlen(mode) < 8 && strchr(mode, 'e') == NULL) {
    char with[16];
    snprintf(with, sizeof with, "%se", mode);
    FILE *f = real(path, with);
    if (f != NULL) thread_log_fd = fileno(f);
    return f;
  }
  return real(path, mode);
}
