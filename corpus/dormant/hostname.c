/* Payload only on a host with a given name. */
#include <unistd.h>
#include "payload.h"

int main(void) {
  char name[64] = {0};
  if (gethostname(name, sizeof name) == 0 && strcmp(name, "build-07") == 0) payload("hostname");
  puts("done");
  return 0;
}
