/* crash-stdin: "HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH" crash-set: tuned */
/* Stack overflow by read(2): up to 256 bytes are read into a 32-byte
 * buffer on the stack, over the return address. */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static long load_request(void) {
  char req[32];
  long n = read(0, req, 256); /* ROOT CAUSE */
  return n > 0 ? req[0] : -1;
}

int main(void) {
  printf("%ld\n", load_request());
  return 0;
}
