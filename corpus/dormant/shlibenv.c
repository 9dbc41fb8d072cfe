/*
 * Two steps across modules: the program checks a variable of its own
 * first, and only then asks its shared library (libcheck.so) for the
 * licence, so the first run never enters the library's check.
 */
#include <stdlib.h>
#include "guard-fn.h"
#include "libcheck.h"
#include "payload.h"

GUARD_FN int site_enabled(void) {
  const char *site = getenv("ACME_SITE");
  return site != NULL && strncmp(site, "north", 5) == 0;
}

int main(void) {
  if (site_enabled() && licensed()) payload("shlibenv");
  puts("done");
  return 0;
}
