/* crash-args: ["1", "2", "3", "4", "5", "6", "7", "8", "9"] crash-set: tuned */
/* Off by one: the loop runs to i <= COUNT and its last store lands on the
 * low half of the callback stored after the array. */
#include <stdio.h>
#include <stdlib.h>

#define COUNT 8
struct table {
  int vals[COUNT];
  void (*show)(const struct table *);
};

static void show_table(const struct table *t) { printf("%d\n", t->vals[0]); }

int main(int argc, char **argv) {
  struct table *t = malloc(sizeof *t);
  t->show = show_table;
  for (int i = 0; i <= COUNT && i + 1 < argc; i++) t->vals[i] = atoi(argv[i + 1]); /* ROOT CAUSE */
  t->show(t);
  return 0;
}
