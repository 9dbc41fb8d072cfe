/*
 * Payload only for one user id. The brief's classic is uid == 0, but the
 * recorder's sandbox (and CI) already runs as root, so that payload would
 * not be dormant here: this sample waits for a service account's uid.
 */
#include <unistd.h>
#include "payload.h"

int main(void) {
  if (getuid() == 1500) payload("uid");
  else puts("wrong user");
  puts("done");
  return 0;
}
