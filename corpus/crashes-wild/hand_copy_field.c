/* crash-args: ["DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"] crash-set: tuned */
/* A copy by hand, byte by byte up to the NUL, into a 16-byte field: the
 * function pointer after it is replaced. */
#include <stdio.h>
#include <stdlib.h>

struct user {
  char login[16];
  void (*welcome)(const struct user *);
};

static void say_welcome(const struct user *u) { printf("welcome %s\n", u->login); }

__attribute__((noinline)) static void set_login(struct user *u, const char *s) {
  char *d = u->login;
  while (*s) *d++ = *s++; /* ROOT CAUSE */
  *d = 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct user *u = calloc(1, sizeof *u);
  u->welcome = say_welcome;
  set_login(u, argv[1]);
  u->welcome(u);
  return 0;
}
