/* Held out of tuning: written after per-call rules for reads (SITE#N) and
 * first run by tools/eval-dormant.ts. Two steps, each reading a file the
 * way ordinary programs do: a configuration file read line by line, whose
 * last "limit=" line (comments skipped) must give a number above 1000, then
 * the first bytes of a database file read with read(2), whose magic and
 * version must match. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "guard-fn.h"
#include "payload.h"

GUARD_FN int configured_limit(void) {
  FILE *f = fopen("/etc/cfgscan.conf", "r");
  if (f == NULL) return 0;
  char line[80];
  int limit = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (line[0] == '#') continue;
    if (strncmp(line, "limit=", 6) == 0) limit = atoi(line + 6);
  }
  fclose(f);
  return limit;
}

GUARD_FN int database_ready(void) {
  int fd = open("/var/lib/cfgscan.db", O_RDONLY);
  if (fd < 0) return 0;
  unsigned char header[8];
  ssize_t n = read(fd, header, sizeof header);
  close(fd);
  return n == (ssize_t)sizeof header && memcmp(header, "CSDB", 4) == 0 && header[4] >= 3;
}

int main(void) {
  if (configured_limit() > 1000 && database_ready()) payload("cfgscan");
  puts("done");
  return 0;
}
