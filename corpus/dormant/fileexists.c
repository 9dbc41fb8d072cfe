/* Payload only when a trigger file exists. */
#include <unistd.h>
#include "payload.h"

int main(void) {
  if (access("/etc/.dormant-trigger", F_OK) == 0) payload("fileexists");
  puts("done");
  return 0;
}
