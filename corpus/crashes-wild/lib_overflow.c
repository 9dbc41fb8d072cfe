/* crash-args: ["FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"] crash-lib: libfill.c crash-set: tuned */
/* The overflow happens in a shared library (lib/libfill.c copies without a
 * bound); the crash happens later in the main program, which calls the
 * callback the library overwrote. */
#include <stdio.h>
#include <stdlib.h>

void fill_name(char *dst, const char *src);

struct widget {
  char name[16];
  void (*draw)(const struct widget *);
};

static void draw_widget(const struct widget *w) { printf("[%s]\n", w->name); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct widget *w = malloc(sizeof *w);
  w->draw = draw_widget;
  fill_name(w->name, argv[1]);
  w->draw(w);
  return 0;
}
