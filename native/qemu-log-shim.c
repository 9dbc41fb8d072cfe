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
 * - The logs are not close-on-exec, so a program started by exec (which
 *   qemu-user runs natively) would hold every log. Here every handed-in
 *   descriptor, and every log qemu opens from one, is close-on-exec.
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
#define MAX_TASK_ID 256

/* The descriptor that carries tid's log (thread-fifos.ts threadLogFd). */
static int log_fd_of(int tid) {
  char text[16];
  snprintf(text, sizeof text, "1%d", tid);
  return atoi(text);
}

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

__attribute__((constructor)) static void init(void) {
  for (int tid = 1; tid <= MAX_TASK_ID; tid++) {
    int fd = log_fd_of(tid);
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
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
