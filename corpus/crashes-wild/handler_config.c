/* crash-file: "# daemon settings\nname=reporter\nhandler=5\nretries=3\n" crash-set: held-out */
/* A configuration file names its event handler by number; the number is
 * checked to be non-negative, not against the number of handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*handler_fn)(const char *);

static void log_event(const char *e) { printf("log: %s\n", e); }
static void mail_event(const char *e) { printf("mail: %s\n", e); }
static void drop_event(const char *e) { (void)e; }

static handler_fn handlers[] = { log_event, mail_event, drop_event };
static const char *handler_names[] = { "log", "mail", "drop" };

struct settings { char name[32]; int handler; int retries; };

static int load(const char *path, struct settings *s) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[128];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    line[strcspn(line, "\n")] = 0;
    if (!strncmp(line, "name=", 5)) snprintf(s->name, sizeof s->name, "%s", line + 5);
    else if (!strncmp(line, "handler=", 8)) s->handler = atoi(line + 8);
    else if (!strncmp(line, "retries=", 8)) s->retries = atoi(line + 8);
  }
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  struct settings s = { "default", 0, 1 };
  if (argc < 2 || load(argv[1], &s) != 0) return 2;
  if (s.handler < 0) return 3;
  handler_fn h = handlers[s.handler]; /* ROOT CAUSE */
  for (int i = 0; i < s.retries; i++) h(s.name);
  printf("%s done with %s\n", s.name, s.handler < 3 ? handler_names[s.handler] : "?");
  return 0;
}
