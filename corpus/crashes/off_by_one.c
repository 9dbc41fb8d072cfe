/* Off-by-one in a string copy: the loop copies one byte more than the
 * buffer holds (<= instead of <); the terminating NUL lands on the low
 * byte of the saved frame pointer, so main() reads its locals from the
 * wrong place after label() returns and dereferences garbage. */
#include <stdio.h>
#include <stdlib.h>

static void copy_upto(char *dst, const char *src, int n) {
  for (int i = 0; i <= n; i++)
    dst[i] = src[i]; /* ROOT CAUSE */
}

static void label(const char *s) {
  char buf[16];
  copy_upto(buf, s, sizeof buf);
  printf("%.15s\n", buf);
}

int main(void) {
  char *out = malloc(8);
  label("AAAAAAAAAAAAAAAA");
  out[0] = 'x';
  printf("%s\n", out);
  return 0;
}
