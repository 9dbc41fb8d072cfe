/* crash-args: ["x"] crash-set: tuned */
/* Double free: an error path frees the buffer that the normal path frees
 * again; glibc's tcache check aborts (SIGABRT). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static int parse(char *buf, const char *arg) {
  strcpy(buf, arg);
  if (strlen(buf) < 4) {
    free(buf);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  char *buf = malloc(64);
  int rc = parse(buf, argv[1]);
  if (rc < 0) printf("short input\n");
  free(buf); /* ROOT CAUSE */
  return rc;
}
