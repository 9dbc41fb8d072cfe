/* crash-args: ["5000"] crash-set: held-out */
/* A large copy (libc takes its rep movsb / ERMS path): 5000 bytes into a
 * 4096-byte buffer, over the next heap object's callback. The sink is the
 * program's current one (a global) and writes the buffer out when called
 * after a progress message: so the copy is live and the compiler must load
 * the callback again after it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink { void (*flush)(struct sink *); const char *data; size_t pending; };

static void flush_sink(struct sink *s) { fwrite(s->data, 1, s->pending, stdout); }

static struct sink *current;

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t n = strtoul(argv[1], NULL, 10);
  char *src = malloc(n);
  memset(src, 'N', n);
  char *buf = malloc(4096);
  current = malloc(sizeof *current);
  current->flush = flush_sink;
  current->data = buf;
  memcpy(buf, src, n); /* ROOT CAUSE */
  fprintf(stderr, "copied %zu bytes\n", n);
  current->pending = n;
  current->flush(current);
  return 0;
}
