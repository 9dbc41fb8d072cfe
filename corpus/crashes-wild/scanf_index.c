/* crash-stdin: "8 1094795585\n" crash-set: tuned */
/* An index read from stdin is not checked: the store lands past the end
 * of a global table, on the handler pointer stored after it. */
#include <stdio.h>

static struct {
  long table[8];
  void (*handler)(long);
} g;

static void print_value(long v) { printf("%ld\n", v); }

int main(void) {
  int idx;
  long value;
  g.handler = print_value;
  if (scanf("%d %ld", &idx, &value) != 2) return 2;
  g.table[idx] = value; /* ROOT CAUSE */
  g.handler(g.table[0]);
  return 0;
}
