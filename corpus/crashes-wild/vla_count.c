/* crash-args: ["200000000"] crash-set: tuned */
/* Keeps a table of squares in a variable-length array sized by the
 * input: a large count asks the stack for more than it has. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static long sum_of_squares(long n) {
  long squares[n]; /* ROOT CAUSE */
  for (long i = 0; i < n; i++) squares[i] = i * i;
  long s = 0;
  for (long i = n - 1; i >= 0; i--) s += squares[i];
  return s;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  printf("%ld\n", sum_of_squares(atol(argv[1])));
  return 0;
}
