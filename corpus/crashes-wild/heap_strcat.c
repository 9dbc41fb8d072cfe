/* crash-args: ["IIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII"] crash-set: tuned */
/* Heap overflow between objects: strcat appends the argument to a
 * 24-byte greeting and runs into the next heap object, whose callback is
 * then called. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct logger { void (*log)(const char *); long level; };

static void log_line(const char *s) { puts(s); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  char *greeting = malloc(24);
  struct logger *lg = malloc(sizeof *lg);
  lg->log = log_line;
  strcpy(greeting, "hello ");
  strcat(greeting, argv[1]); /* ROOT CAUSE */
  lg->log(greeting);
  return 0;
}
