/*
 * A licence check that lives in the program's own shared library
 * (libcheck.so, linked by shlib.c and shlibenv.c): a key in the
 * environment, then the year from localtime(), then a licence file.
 * Each check only runs after the previous one passed. Built with -fPIC
 * -shared at the same optimisation as the program (tools/eval-dormant-corpus.ts);
 * GUARD_NOINLINE keeps each check a call of its own inside the library.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "guard-fn.h"

GUARD_FN int key_present(void) {
  const char *key = getenv("LICENSE_KEY");
  return key != NULL && strcmp(key, "ACME-7731") == 0;
}

GUARD_FN int not_expired(void) {
  time_t now = time(NULL);
  struct tm *tm = localtime(&now);
  return tm->tm_year + 1900 >= 2030;
}

GUARD_FN int licence_file(void) { return access("/opt/acme/licence", R_OK) == 0; }

int licensed(void) { return key_present() && not_expired() && licence_file(); }
