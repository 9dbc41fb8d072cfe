/* Nonlocal gotos without a library call, as Ruby raises its exceptions:
 * GCC's and clang's __builtin_setjmp/__builtin_longjmp. A protect frame
 * saves its own label, frame and stack pointers in a buffer; a raise deep
 * in the calls under it loads them back and jumps. Protect frames nest
 * (a handler that protects again), and one raise goes past a protect frame
 * that has already returned to the one still running below it. */
#include <stdio.h>

struct tag {
  void *buf[5];
  struct tag *prev;
};

static struct tag *volatile top;
static int raised;

__attribute__((noinline)) static void raise_error(void) {
  raised++;
  __builtin_longjmp(top->buf, 1);
}

__attribute__((noinline)) static int work(int depth, int n) {
  if (depth == 0) {
    if (n % 3 == 0) raise_error();
    return n;
  }
  return work(depth - 1, n) + 1;
}

__attribute__((noinline)) static int protect(int (*f)(int, int), int depth, int n) {
  struct tag t;
  volatile int r;
  t.prev = top;
  top = &t;
  if (__builtin_setjmp(t.buf) == 0) {
    r = f(depth, n);
  } else {
    r = -1;
  }
  top = t.prev;
  return r;
}

/* A protected call whose body protects again, returns, then raises into the outer frame. */
__attribute__((noinline)) static int nested(int depth, int n) {
  int inner = protect(work, depth, n + 1);
  if (n % 2 == 0) raise_error();
  return inner + depth;
}

int main(void) {
  int sum = 0;
  for (int n = 0; n < 60; n++) {
    sum += protect(work, n % 5, n);
    sum += protect(nested, 3, n);
  }
  printf("builtin_longjmp: %d %d\n", sum, raised);
  return 0;
}
