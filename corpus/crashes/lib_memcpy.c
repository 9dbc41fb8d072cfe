/* Crash inside a library function: memcpy() faults on its destination,
 * but the bad pointer comes from the caller, which adds an unchecked
 * (negative) offset to a heap buffer. */
#include <stdlib.h>
#include <string.h>

static long parse_offset(const char *s) { return atol(s); }

int main(void) {
  char *buf = malloc(64);
  long off = parse_offset("-1000000000");
  memcpy(buf + off, "payload", 8); /* ROOT CAUSE */
  return buf[0];
}
