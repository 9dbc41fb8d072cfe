/* crash-args: ["EEEEEEEEEEEEEEEE"] crash-set: tuned */
/* Use after free with reuse: the job is freed but still referenced; a
 * later allocation of the same size gets its memory and fills it with
 * input; the dangling job's callback is then called. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job { void (*run)(struct job *); long id; };

static void run_job(struct job *j) { printf("job %ld\n", j->id); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct job *j = malloc(sizeof *j);
  j->run = run_job;
  j->id = 1;
  j->run(j);
  free(j); /* ROOT CAUSE */
  char *note = malloc(sizeof(struct job));
  strncpy(note, argv[1], sizeof(struct job));
  j->run(j);
  free(note);
  return 0;
}
