/* crash-args: ["3", "1", "9", "4", "12"] crash-set: tuned */
/* Records are sorted by a key looked up through a table of pointers; an
 * index read from the arguments is one past the table and overwrites the
 * pointer after it with a record's address truncated by an int cast. The
 * crash is in the comparator, called back from libc's qsort. */
#include <stdio.h>
#include <stdlib.h>

struct rec { int id; int weight; };

static const int *keys[4];
static const int *spare;
static int key_values[4] = {40, 10, 30, 20};

static int by_key(const void *a, const void *b) {
  const struct rec *x = a, *y = b;
  return *keys[x->id % 5] - *keys[y->id % 5];
}

int main(int argc, char **argv) {
  int n = argc - 1;
  struct rec *r = malloc(sizeof *r * n);
  for (int i = 0; i < 4; i++) keys[i] = &key_values[i];
  spare = &key_values[0];
  for (int i = 0; i < n; i++) {
    r[i].id = atoi(argv[i + 1]);
    r[i].weight = i;
  }
  int slot = r[n - 1].id / 3;
  keys[slot] = (const int *)(long)(int)(long)&r[0]; /* ROOT CAUSE */
  qsort(r, n, sizeof *r, by_key);
  for (int i = 0; i < n; i++) printf("%d ", r[i].id);
  printf("%p\n", (void *)spare);
  return 0;
}
