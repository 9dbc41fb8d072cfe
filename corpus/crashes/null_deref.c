/* NULL dereference: reset() clears the buffer pointer but keeps the
 * connection marked open; the later write goes through the NULL pointer. */
#include <stdio.h>
#include <stdlib.h>

struct conn { int open; char *buf; long len; };

static void reset(struct conn *c) {
  c->buf = NULL; /* ROOT CAUSE */
  c->len = 0;
}

static void put(struct conn *c, char ch) {
  if (c->open)
    c->buf[c->len++] = ch;
}

int main(void) {
  struct conn *c = malloc(sizeof *c);
  c->open = 1;
  c->buf = malloc(32);
  c->len = 0;
  put(c, 'a');
  reset(c);
  put(c, 'b');
  printf("%ld\n", c->len);
  return 0;
}
