/* Integer overflow: row * width wraps to a negative index, which passes the
 * upper-bound check and writes before the cells array, over the function
 * pointer of the object allocated just before it. */
#include <stdio.h>
#include <stdlib.h>

struct ops { void (*report)(long); long pad; };

static void report(long v) { printf("%ld\n", v); }

static void set_cell(long *cells, int row, int width, int col, long v) {
  int idx = row * width + col; /* ROOT CAUSE */
  if (idx < 4)
    cells[idx] = v;
}

int main(void) {
  struct ops *ops = malloc(sizeof *ops);
  long *cells = malloc(4 * sizeof *cells);
  ops->report = report;
  set_cell(cells, 65535, 65537, -3, 0x424242424242L);
  ops->report(cells[0]);
  return 0;
}
