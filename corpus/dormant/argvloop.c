/* A check behind a loop: the arguments are scanned first, then the environment decides. */
#include <stdlib.h>
#include "guard-fn.h"
#include "payload.h"

GUARD_FN int count_flags(int argc, char **argv) {
  int n = 0;
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-') n++;
  return n;
}

GUARD_FN int armed(void) {
  const char *v = getenv("ARM_LEVEL");
  return v != NULL && strcmp(v, "3") == 0;
}

int main(int argc, char **argv) {
  int flags = count_flags(argc, argv);
  if (armed()) payload("argvloop");
  printf("%d flags\n", flags);
  puts("done");
  return 0;
}
