/* crash-args: ["-1", "1094795585"] crash-set: held-out */
/* A signed index checked only against the upper bound: -1 writes the
 * callback stored before the array. */
#include <stdio.h>
#include <stdlib.h>

struct slots {
  void (*report)(const struct slots *);
  long values[8];
};

static void report_slots(const struct slots *s) { printf("%ld\n", s->values[0]); }

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  struct slots *s = calloc(1, sizeof *s);
  s->report = report_slots;
  int i = atoi(argv[1]);
  if (i < 8) s->values[i] = atol(argv[2]); /* ROOT CAUSE */
  s->report(s);
  return 0;
}
