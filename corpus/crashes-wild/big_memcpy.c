/* crash-args: ["5000"] crash-set: held-out */
/* A large copy (libc takes its rep movsb / ERMS path): 5000 bytes into a
 * 4096-byte buffer, over the next heap object's callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink { void (*flush)(struct sink *); long pending; };

static void flush_sink(struct sink *s) { printf("%ld\n", s->pending); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t n = strtoul(argv[1], NULL, 10);
  char *src = malloc(n);
  memset(src, 'N', n);
  char *buf = malloc(4096);
  struct sink *s = malloc(sizeof *s);
  s->flush = flush_sink;
  s->pending = 0;
  memcpy(buf, src, n); /* ROOT CAUSE */
  s->flush(s);
  return 0;
}
