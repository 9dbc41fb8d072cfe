/* crash-stdin: "MMMMMMMMMMMMMMMMMMMMMMMMMMMM\u001d\u0000\u0000\u0000MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM\n" crash-set: tuned */
/* Held out until its -O0 miss was studied (session 15): the index the
 * stores go through is an `int` kept by 32-bit moves, which reverse
 * execution then learned to follow (zero-extension of 32-bit writes). */
/* A line read character by character into a 16-byte stack buffer with no
 * bound: the return address is overwritten by hand. The line is shaped as
 * an attack on the -O0 frame, where the index `i` lies above the buffer:
 * the bytes written over `i` keep its value (29, then 0s), so the copy goes
 * on up to the return address instead of jumping past it. */
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
