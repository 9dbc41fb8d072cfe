/* Payload only when an environment variable has a magic value. */
#include <stdlib.h>
#include "payload.h"

int main(void) {
  const char *mode = getenv("UPDATER_MODE");
  if (mode != NULL && strcmp(mode, "beacon") == 0) payload("envvar");
  puts("done");
  return 0;
}
