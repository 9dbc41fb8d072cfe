/* crash-args: ["bad"] crash-set: tuned */
/* Reports a fatal configuration error by raising SIGSEGV itself, as some
 * programs do to get a core dump: the crash is no fault. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) static void fatal(const char *why) {
  fprintf(stderr, "fatal: %s\n", why);
  raise(SIGSEGV); /* ROOT CAUSE */
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  if (strcmp(argv[1], "good") != 0) fatal("unknown mode");
  puts("ok");
  return 0;
}
