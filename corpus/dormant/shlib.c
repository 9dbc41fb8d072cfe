/* The payload runs only if the program's own shared library (libcheck.so) says it is licensed. */
#include "libcheck.h"
#include "payload.h"

int main(void) {
  if (licensed()) payload("shlib");
  puts("done");
  return 0;
}
