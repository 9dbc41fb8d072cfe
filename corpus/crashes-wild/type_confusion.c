/* crash-args: ["2", "1094795585"] crash-set: tuned */
/* Type confusion: a number object is handled as a callback object: the
 * dispatcher trusts a tag from the input instead of the object's type. */
#include <stdio.h>
#include <stdlib.h>

enum kind { CALLBACK = 1, NUMBER = 2 };
struct object { enum kind kind; };
struct callback_obj { struct object base; void (*fn)(void); };
struct number_obj { struct object base; long value; };

static void hello(void) { puts("hello"); }

__attribute__((noinline)) static void dispatch(struct object *o, int claimed) {
  if (claimed == CALLBACK) ((struct callback_obj *)o)->fn();
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  struct callback_obj *c = malloc(sizeof *c);
  c->base.kind = CALLBACK;
  c->fn = hello;
  struct number_obj *num = malloc(sizeof *num);
  num->base.kind = NUMBER;
  num->value = atol(argv[2]);
  struct object *objs[2] = { &c->base, &num->base };
  int pick = atoi(argv[1]) - 1;
  dispatch(objs[pick], CALLBACK); /* ROOT CAUSE */
  return 0;
}
