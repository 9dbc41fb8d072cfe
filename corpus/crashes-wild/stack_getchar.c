/* crash-stdin: "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM\n" crash-set: held-out */
/* A line read character by character into a 16-byte stack buffer with no
 * bound: the return address is overwritten by hand. */
#include <stdio.h>

__attribute__((noinline)) static int read_word(void) {
  char word[16];
  int i = 0, c;
  while ((c = getchar()) != EOF && c != '\n') word[i++] = (char)c; /* ROOT CAUSE */
  word[i] = 0;
  return word[0];
}

int main(void) {
  printf("%d\n", read_word());
  return 0;
}
