/*
 * Three checks in a row, each reached only when the previous one passed:
 * an environment variable with a magic value, then the month from
 * localtime(), then a lock file. The first run never calls localtime() or
 * access(), so their results are never observed before the first patch.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "guard-fn.h"
#include "payload.h"

GUARD_FN int right_mode(void) {
  const char *mode = getenv("UPDATER_MODE");
  return mode != NULL && strcmp(mode, "beacon") == 0;
}

GUARD_FN int in_december(void) {
  time_t now = time(NULL);
  struct tm *tm = localtime(&now);
  return tm->tm_mon == 11;
}

GUARD_FN int locked(void) { return access("/var/lock/.updater", F_OK) == 0; }

int main(void) {
  if (right_mode()) {
    if (in_december()) {
      if (locked()) payload("threeguard");
    }
  }
  puts("done");
  return 0;
}
