/* crash-args: ["-3"] crash-set: tuned */
/* Sums the depths of a chain of frames down to zero; a negative start
 * never reaches the base case and the recursion runs the stack out. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static long depth_sum(long n, const long *parent) {
  long here[256]; /* each frame keeps its path so far */
  here[0] = n + (parent != NULL ? parent[0] : 0);
  here[n & 255] = n;
  if (n == 0) return here[0];
  return depth_sum(n - 1, here) + here[0]; /* ROOT CAUSE */
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  printf("%ld\n", depth_sum(atol(argv[1]), NULL));
  return 0;
}
