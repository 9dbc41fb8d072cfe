/* Payload only when an environment variable holds a number in a narrow range (parsed by atoi). */
#include <stdlib.h>
#include "payload.h"

int main(void) {
  const char *level = getenv("WORKER_LEVEL");
  if (level != NULL) {
    int n = atoi(level);
    if (n > 40 && n < 45) payload("envlevel");
  }
  puts("done");
  return 0;
}
