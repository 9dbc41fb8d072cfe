/* crash-args: ["JJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJ"] crash-set: held-out */
/* sprintf into a fixed field: the formatted string is longer than the
 * 32-byte field and replaces the function pointer after it. */
#include <stdio.h>
#include <stdlib.h>

struct audit {
  char line[32];
  void (*emit)(const struct audit *);
};

static void emit_line(const struct audit *a) { puts(a->line); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct audit *a = malloc(sizeof *a);
  a->emit = emit_line;
  sprintf(a->line, "user=%s", argv[1]); /* ROOT CAUSE */
  a->emit(a);
  return 0;
}
