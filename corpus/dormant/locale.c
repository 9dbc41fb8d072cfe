/* Payload only for a German locale (the LANG value through setlocale). */
#include <locale.h>
#include "payload.h"

int main(void) {
  const char *loc = setlocale(LC_ALL, "");
  if (loc != NULL && strncmp(loc, "de_", 3) == 0) payload("locale");
  puts("done");
  return 0;
}
