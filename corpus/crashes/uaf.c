/* Use after free: the session object is freed, then its callback is
 * called through the dangling pointer; free() wrote allocator metadata
 * over the callback field. */
#include <stdio.h>
#include <stdlib.h>

struct session { void (*on_close)(struct session *); long id; };

static void closed(struct session *s) { printf("closed %ld\n", s->id); }

int main(void) {
  struct session *s = malloc(sizeof *s);
  s->on_close = closed;
  s->id = 7;
  s->on_close(s);
  free(s); /* ROOT CAUSE */
  s->on_close(s);
  return 0;
}
