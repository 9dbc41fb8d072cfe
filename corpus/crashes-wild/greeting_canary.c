/* crash-args: ["a-visitor-whose-name-is-longer-than-the-buffer"] crash-set: tuned crash-cflags: ["-fstack-protector-strong"] */
/* Copies the name into a fixed buffer to format a greeting; a long name
 * overruns it. Built with the stack protector, as Debian's packages are,
 * the overflow ends in __stack_chk_fail's abort, not in a bad return. */
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) static int greet(const char *name) {
  char line[24];
  strcpy(line, name); /* ROOT CAUSE */
  return printf("hello, %s\n", line);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  return greet(argv[1]) > 0 ? 0 : 1;
}
