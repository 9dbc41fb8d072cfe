/* Stack buffer overflow: copy() has no bound, so a long name runs past
 * greet()'s 16-byte buffer and over its saved frame pointer and return
 * address; greet() returns to 0x424242424242. */
#include <stdio.h>

static void copy(char *dst, const char *src) {
  while (*src)
    *dst++ = *src++; /* ROOT CAUSE */
}

static void greet(const char *name) {
  char buf[16];
  copy(buf, name);
  printf("hello %.8s\n", buf);
}

int main(void) {
  greet("AAAAAAAAAAAAAAAAAAAAAAAABBBBBB");
  return 0;
}
