/* crash-args: ["GGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG"] crash-set: tuned */
/* Integer truncation: the length is checked as an 8-bit value (260 bytes
 * pass as 4) and then copied in full into a 32-byte field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct message {
  char text[32];
  void (*send)(const struct message *);
};

static void send_message(const struct message *m) { puts(m->text); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t len = strlen(argv[1]);
  unsigned char checked = (unsigned char)len;
  struct message *m = malloc(sizeof *m);
  m->send = send_message;
  if (checked < sizeof m->text) memcpy(m->text, argv[1], len); /* ROOT CAUSE */
  m->send(m);
  return 0;
}
