/* One setjmp call site, saved at several depths at once (a re-entrant
 * guard, as an interpreter's call_sv/JMPENV nests): a longjmp goes to the
 * innermost guard still running, after deeper ones have returned. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf *top;
static int fails;

__attribute__((noinline)) static void fail(void) {
  fails++;
  longjmp(*top, 1);
}

__attribute__((noinline)) static int guarded(int depth, int fail_at);

__attribute__((noinline)) static int body(int depth, int fail_at) {
  int r = 0;
  if (depth < 2) r = guarded(depth + 1, fail_at);
  if (depth == fail_at || (depth == 0 && r < 0)) fail();
  return r + 1;
}

__attribute__((noinline)) static int guarded(int depth, int fail_at) {
  jmp_buf env;
  jmp_buf *prev = top;
  volatile int r;
  top = &env;
  if (setjmp(env) == 0) r = body(depth, fail_at);
  else r = -1 - depth;
  top = prev;
  return r;
}

int main(void) {
  int sum = 0;
  for (int round = 0; round < 50; round++)
    for (int fail_at = 0; fail_at < 4; fail_at++) sum += guarded(0, fail_at);
  printf("nested_setjmp: %d %d\n", sum, fails);
  return 0;
}
