/* crash-args: ["40"] crash-set: tuned */
/* memset with a length from the input clears past a 32-byte buffer, into
 * the callback after it: a call to address 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct session {
  char key[32];
  void (*close)(struct session *);
};

static void close_session(struct session *s) { printf("closed %d\n", s->key[0]); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct session *s = malloc(sizeof *s);
  s->close = close_session;
  size_t n = strtoul(argv[1], NULL, 10);
  memset(s->key, 0, n); /* ROOT CAUSE */
  s->close(s);
  return 0;
}
