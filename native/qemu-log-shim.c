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
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "/proc/self/fd/1"
#define MAX_TASK_ID 256

/* The tid of the thread that is forking (fork is serialised by qemu). */
static int forking_tid;

static int log_fd_of(int tid) {
  char text[16];
  snprintf(text, sizeof text, "1%d", tid);
  return atoi(text);
}

static int is_handed_in(int fd) {
  for (int tid = 1; tid <= MAX_TASK_ID; tid++)
    if (log_fd_of(tid) == fd) return 1;
  return 0;
}

static void prepare(void) {
  forking_tid = (int)syscall(SYS_gettid);
}

/* In the child: the forking thread's log descriptor now names our own FIFO. */
static void child(void) {
  struct stat parent_fifo, st;
  if (fstat(log_fd_of(forking_tid), &parent_fifo) != 0) return;
  char own[32];
  snprintf(own, sizeof own, LOG_PREFIX "%d", (int)syscall(SYS_gettid));
  int to = open(own, O_WRONLY | O_CLOEXEC);
  if (to < 0) to = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (to < 0) _exit(127);
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) _exit(127);
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    if (fd <= 2 || fd == to || fd == dirfd(d) || is_handed_in(fd)) continue;
    if (fstat(fd, &st) == 0 && st.st_dev == parent_fifo.st_dev && st.st_ino == parent_fifo.st_ino) {
      if (dup3(to, fd, O_CLOEXEC) < 0) _exit(127);
      found = 1;
    }
  }
  closedir(d);
  close(to);
  /* qemu always has the forking thread's log open: without it, refuse to run unlogged. */
  if (!found) _exit(127);
}

__attribute__((constructor)) static void init(void) {
  for (int tid = 1; tid <= MAX_TASK_ID; tid++) {
    int fd = log_fd_of(tid);
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  pthread_atfork(prepare, NULL, child);
}

/* qemu opens each thread's log with fopen64(path, "w"): add close-on-exec. */
FILE *fopen64(const char *path, const char *mode) {
  static FILE *(*real)(const char *, const char *);
  if (real == NULL) real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen64");
  if (path != NULL && strncmp(path, LOG_PREFIX, strlen(LOG_PREFIX)) == 0 && strlen(mode) < 8 && strchr(mode, 'e') == NULL) {
    char with[16];
    snprintf(with, sizeof with, "%se", mode);
    return real(path, with);
  }
  return real(path, mode);
}
