/* Held out of tuning. A time bomb that sleeps: it polls the clock a few times, a second apart. */
#include <time.h>
#include <unistd.h>
#include "guard-fn.h"
#include "payload.h"

GUARD_FN int due(void) { return time(NULL) >= 1956528000; /* 2032-01-01 */ }

int main(void) {
  for (int i = 0; i < 3; i++) {
    if (due()) {
      payload("sleepbomb");
      break;
    }
    sleep(1);
  }
  puts("done");
  return 0;
}
