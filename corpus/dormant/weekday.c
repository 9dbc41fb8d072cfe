/* Payload only on Wednesdays (struct tm field from localtime). */
#include <time.h>
#include "payload.h"

int main(void) {
  time_t now = time(NULL);
  struct tm *tm = localtime(&now);
  if (tm != NULL && tm->tm_wday == 3) payload("weekday");
  puts("done");
  return 0;
}
