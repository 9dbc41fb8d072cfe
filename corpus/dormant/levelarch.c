/* Written as a held-out sample; its first run led to the model of atoi and
 * strtol, so it counts as tuned. Three steps: a level from the environment
 * (a number above 7, through atoi), the machine uname reports (an ARM
 * server), then a line of a file, read line by line, that turns the payload
 * on. */
#include <stdlib.h>
#include <sys/utsname.h>
#include "guard-fn.h"
#include "payload.h"

GUARD_FN int level_high(void) {
  const char *v = getenv("SVC_LEVEL");
  return v != NULL && atoi(v) > 7;
}

GUARD_FN int on_arm(void) {
  struct utsname u;
  return uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0;
}

GUARD_FN int armed(void) {
  FILE *f = fopen("/etc/.svc-mode", "r");
  if (f == NULL) return 0;
  char line[64];
  int found = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "mode=armed", 10) == 0) found = 1;
  fclose(f);
  return found;
}

int main(void) {
  if (level_high() && on_arm() && armed()) payload("levelarch");
  puts("done");
  return 0;
}
