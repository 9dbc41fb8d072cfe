/* crash-args: ["KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"] crash-set: held-out */
/* strncpy bounded by the size of the whole object instead of the field:
 * the callback after the name is overwritten. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct account {
  char name[24];
  void (*notify)(const struct account *);
};

static void notify_account(const struct account *a) { printf("%.24s\n", a->name); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct account *a = malloc(sizeof *a);
  a->notify = notify_account;
  strncpy(a->name, argv[1], sizeof *a); /* ROOT CAUSE */
  a->notify(a);
  return 0;
}
