/* crash-args: ["1200", "0"] crash-set: tuned */
/* Divides a total by a count read from the command line, unchecked:
 * a count of zero is a divide error. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int total = atoi(argv[1]);
  int items = atoi(argv[2]); /* ROOT CAUSE */
  for (int i = 0; i < 3; i++) total += i;
  printf("%d per item\n", total / items);
  return 0;
}
