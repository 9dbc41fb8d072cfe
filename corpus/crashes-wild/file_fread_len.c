/* crash-file: "\u0030\u0000\u0000\u0000CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC" crash-set: tuned */
/* A file's header gives the length of the payload that follows; the
 * payload is read with fread into a 24-byte field, whatever the length. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

struct packet {
  char body[24];
  int (*check)(const struct packet *);
};

static int accept_all(const struct packet *p) { return p->body[0]; }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  FILE *f = fopen(argv[1], "rb");
  if (f == NULL) return 2;
  uint32_t len;
  if (fread(&len, sizeof len, 1, f) != 1) return 2;
  struct packet *p = malloc(sizeof *p);
  p->check = accept_all;
  fread(p->body, 1, len, f); /* ROOT CAUSE */
  fclose(f);
  return p->check(p);
}
