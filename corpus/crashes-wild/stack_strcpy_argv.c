/* crash-args: ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] crash-set: tuned */
/* Stack overflow: an argument copied with strcpy into a 16-byte local
 * runs over the saved frame pointer and the return address. */
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) static void greet(const char *who) {
  char buf[16];
  strcpy(buf, who); /* ROOT CAUSE */
  printf("hi %s\n", buf);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  greet(argv[1]);
  return 0;
}
