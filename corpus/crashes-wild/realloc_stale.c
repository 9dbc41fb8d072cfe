/* crash-args: ["200"] crash-set: tuned */
/* A pointer to the first element is kept across the array's growth; after
 * realloc moved the array, a write through it lands in freed memory that a
 * later allocation (a handler with a callback) reuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct handler { void (*on_event)(int); int count; };

/* Where the running total goes: the first element, kept by the caller. */
static long *volatile first;

static void log_event(int v) { printf("event %d\n", v); }

__attribute__((noipa)) static void record_total(long *slot, long total) {
  *slot = total; /* ROOT CAUSE */
}

__attribute__((noipa)) static void fire(struct handler *h) { h->on_event(h->count++); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int n = atoi(argv[1]);
  size_t cap = 2;
  long *items = malloc(cap * sizeof *items);
  first = &items[0];
  char *label = strdup("items");
  for (int i = 0; i < n; i++) {
    if ((size_t)i == cap) {
      cap *= 2;
      items = realloc(items, cap * sizeof *items);
    }
    items[i] = i;
  }
  struct handler *h = malloc(sizeof *h);
  h->on_event = log_event;
  h->count = 0;
  record_total(first, n * 1000L);
  fire(h);
  printf("%s\n", label);
  free(label);
  free(items);
  return 0;
}
