/* Heap overflow: strcpy() into a 16-byte object runs over the next chunk,
 * the handler object, and replaces its function pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item { char name[16]; };
struct handler { void (*fn)(const char *); long calls; };

static void say(const char *s) { printf("%s\n", s); }

int main(void) {
  struct item *it = malloc(sizeof *it);
  struct handler *h = malloc(sizeof *h);
  h->fn = say;
  h->calls = 0;
  strcpy(it->name, "0123456789abcdef0123456789abcdefBBBBBB"); /* ROOT CAUSE */
  h->fn(it->name);
  return 0;
}
