/* Anti-debugging: payload only when PTRACE_TRACEME succeeds (no tracer;
 * under qemu-user ptrace fails, which looks like a debugger). */
#include <sys/ptrace.h>
#include "payload.h"

int main(void) {
  if (ptrace(PTRACE_TRACEME, 0, 0, 0) == -1) {
    puts("debugger?");
    return 1;
  }
  payload("antidebug");
  puts("done");
  return 0;
}
