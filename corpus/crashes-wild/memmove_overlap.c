/* crash-args: ["OOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOO"] crash-set: tuned */
/* memmove that shifts a buffer's contents right by the input's length,
 * without a bound: the tail lands on the callback after the buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct editor {
  char text[48];
  void (*redraw)(struct editor *);
};

static void redraw_editor(struct editor *e) { puts(e->text); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct editor *e = malloc(sizeof *e);
  e->redraw = redraw_editor;
  strcpy(e->text, "0123456789");
  size_t shift = strlen(argv[1]);
  memmove(e->text + shift, e->text, 11); /* ROOT CAUSE */
  e->redraw(e);
  return 0;
}
