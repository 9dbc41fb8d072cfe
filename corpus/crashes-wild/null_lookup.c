/* crash-args: ["nosuchkey"] crash-set: tuned */
/* A lookup that returns NULL for a key it does not know; the caller
 * dereferences the result unchecked. */
#include <stdio.h>
#include <string.h>

struct entry { const char *key; int value; };
static struct entry entries[] = { { "alpha", 1 }, { "beta", 2 } };

__attribute__((noinline)) static struct entry *lookup(const char *key) {
  for (unsigned i = 0; i < sizeof entries / sizeof entries[0]; i++)
    if (strcmp(entries[i].key, key) == 0) return &entries[i];
  return NULL; /* ROOT CAUSE */
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct entry *e = lookup(argv[1]);
  printf("%d\n", e->value);
  return 0;
}
