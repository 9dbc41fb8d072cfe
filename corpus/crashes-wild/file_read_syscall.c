/* crash-file: "\u0040\u0000\u0000\u0000LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL" crash-set: held-out */
/* A record read with read(2): its length comes from the file and is not
 * checked against the 16-byte buffer, which the parser's callback follows. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct parser {
  char buf[16];
  int (*step)(struct parser *);
};

static int step_parser(struct parser *p) { return p->buf[0]; }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) return 2;
  uint32_t len;
  if (read(fd, &len, sizeof len) != sizeof len) return 2;
  struct parser *p = malloc(sizeof *p);
  p->step = step_parser;
  read(fd, p->buf, len); /* ROOT CAUSE */
  close(fd);
  return p->step(p);
}
