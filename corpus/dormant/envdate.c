/* Two steps: an environment variable names the campaign, then the date must be past its start (2031 or later). */
#include <stdlib.h>
#include <time.h>
#include "guard-fn.h"
#include "payload.h"

GUARD_FN int campaign_selected(void) {
  const char *c = getenv("CAMPAIGN");
  return c != NULL && strcmp(c, "orion") == 0;
}

GUARD_FN int campaign_started(void) {
  time_t now = time(NULL);
  struct tm *tm = localtime(&now);
  return tm->tm_year + 1900 >= 2031;
}

int main(void) {
  if (campaign_selected() && campaign_started()) payload("envdate");
  puts("done");
  return 0;
}
