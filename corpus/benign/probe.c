/*
 * probe: does the recorder follow a forked child, a second thread, an
 * exec? tools/eval-benign.ts records `probe fork|thread|exec` and looks
 * for the marker function's instructions in the trace. The markers run
 * only in the child, only in the thread, and (for exec) the new image.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

volatile int sink;

__attribute__((noinline)) void probe_child_marker(void) {
  for (int i = 0; i < 100; i++) sink += i;
}

__attribute__((noinline)) void *probe_thread_marker(void *arg) {
  for (int i = 0; i < 100; i++) sink += i;
  return arg;
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (strcmp(what, "fork") == 0) {
    pid_t pid = fork();
    if (pid == 0) {
      probe_child_marker();
      _exit(0);
    }
    waitpid(pid, NULL, 0);
  } else if (strcmp(what, "thread") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, probe_thread_marker, NULL);
    pthread_join(t, NULL);
  } else if (strcmp(what, "exec") == 0) {
    execl(argv[0], argv[0], "child", (char *)NULL);
  } else if (strcmp(what, "child") == 0) {
    probe_child_marker();
  }
  printf("probe %s done\n", what);
  return 0;
}
