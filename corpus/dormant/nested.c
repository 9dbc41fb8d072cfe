/* Two guards at once: a Wednesday, and an evening hour (both from localtime). */
#include <time.h>
#include "payload.h"

int main(void) {
  time_t now = time(NULL);
  struct tm *tm = localtime(&now);
  if (tm->tm_wday == 3) {
    puts("wednesday");
    if (tm->tm_hour >= 22) payload("nested");
  }
  puts("done");
  return 0;
}
