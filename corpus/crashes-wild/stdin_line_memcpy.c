/* crash-stdin: "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n" crash-set: tuned */
/* A line read from stdin is copied with its own length into a record
 * whose text field is 32 bytes; the callback that follows is replaced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct record {
  char text[32];
  void (*done)(struct record *);
};

static void print_record(struct record *r) { printf("%s", r->text); }

int main(void) {
  char line[256];
  if (fgets(line, sizeof line, stdin) == NULL) return 2;
  struct record *r = malloc(sizeof *r);
  r->done = print_record;
  memcpy(r->text, line, strlen(line) + 1); /* ROOT CAUSE */
  r->done(r);
  free(r);
  return 0;
}
