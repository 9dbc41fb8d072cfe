/* crash-args: ["a-worker-name-that-is-much-longer-than-the-field-it-is-copied-into"] crash-set: tuned */
/* A worker thread copies its name into a fixed field of its job, over the
 * job's completion callback, then calls it: the crash is in the worker
 * thread, whose trace starts after main stored the callback. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
  char name[16];
  void (*done)(struct job *);
  int result;
  const char *requested;
};

static void report(struct job *j) { printf("%s: %d\n", j->name, j->result); }

static void *worker(void *arg) {
  struct job *j = arg;
  j->result = (int)strlen(j->requested);
  strcpy(j->name, j->requested); /* ROOT CAUSE */
  j->done(j);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *requested = strdup(argv[1]);
  struct job *j = calloc(1, sizeof *j);
  j->requested = requested;
  j->done = report;
  pthread_t t;
  pthread_create(&t, NULL, worker, j);
  pthread_join(t, NULL);
  return 0;
}
