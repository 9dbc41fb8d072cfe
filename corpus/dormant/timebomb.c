/* A time bomb: payload only between 2031-01-01 and 2031-02-01 (UTC seconds from time()). */
#include <time.h>
#include "payload.h"

int main(void) {
  time_t now = time(NULL);
  if (now >= 1924992000 && now < 1927670400) payload("timebomb");
  puts("done");
  return 0;
}
