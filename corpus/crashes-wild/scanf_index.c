/* crash-stdin: "9 1094795585\n" crash-set: tuned */
/* An index read from stdin is not checked: the store lands past the end
 * of a global table, on the handler pointer stored after it. */
#include <stdio.h>

static long table[8];
static void (*handler)(long);

static void print_value(long v) { printf("%ld\n", v); }

int main(void) {
  int idx;
  long value;
  handler = print_value;
  if (scanf("%d %ld", &idx, &value) != 2) return 2;
  table[idx] = value; /* ROOT CAUSE */
  handler(table[0]);
  return 0;
}
