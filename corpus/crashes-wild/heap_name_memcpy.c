/* crash-args: ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] crash-set: tuned */
/* Heap overflow through libc's memcpy: the name is copied with its length
 * taken from the input, runs past name[24] into the function pointer that
 * follows it, and main then calls that pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct session {
  char name[24];
  void (*greet)(const char *);
};

static void hello(const char *who) { printf("hello %s\n", who); }

static void set_name(struct session *s, const char *src) {
  size_t n = strlen(src) + 1;
  memcpy(s->name, src, n); /* ROOT CAUSE */
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct session *s = malloc(sizeof *s);
  s->greet = hello;
  set_name(s, argv[1]);
  s->greet(s->name);
  free(s);
  return 0;
}
