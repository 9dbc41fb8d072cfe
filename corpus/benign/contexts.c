/*
 * contexts: the legitimate stack switches a shadow stack must follow, in
 * one benign program (tools/eval-benign.ts builds it with gcc -O2):
 * - setjmp/longjmp out of a deep recursion, several times;
 * - sigsetjmp/siglongjmp out of a signal handler;
 * - getcontext/makecontext/swapcontext coroutines that yield back and
 *   forth and finish through uc_link;
 * - signals delivered and returned from (raise, SIGALRM);
 * - a 20,000-deep recursion.
 * It prints a checksum of what ran.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <ucontext.h>

static jmp_buf jb;
static sigjmp_buf sjb;
static ucontext_t main_ctx, co_ctx[2];
static char co_stack[2][65536];
static volatile int hits;

static void count(int s) { (void)s; hits++; }
static void escape(int s) { (void)s; siglongjmp(sjb, 1); }

static void deep(int n) {
  if (n == 0) longjmp(jb, 1);
  deep(n - 1);
  hits--; /* not reached */
}

static void coroutine(int id) {
  for (int i = 0; i < 5; i++) {
    hits += id + i;
    swapcontext(&co_ctx[id], &main_ctx);
  }
}

static volatile int sink;
/* Real recursion (the volatile use after the call stops gcc turning it into a loop). */
__attribute__((noinline)) static int depth(int n) {
  if (n == 0) return 0;
  int r = depth(n - 1);
  sink = r;
  return r + 1;
}

int main(void) {
  signal(SIGALRM, count);
  for (int i = 0; i < 8; i++)
    if (setjmp(jb) == 0) deep(5 + i * 3);
  signal(SIGUSR1, escape);
  for (int i = 0; i < 3; i++)
    if (sigsetjmp(sjb, 1) == 0) raise(SIGUSR1);
  for (int id = 0; id < 2; id++) {
    getcontext(&co_ctx[id]);
    co_ctx[id].uc_stack.ss_sp = co_stack[id];
    co_ctx[id].uc_stack.ss_size = sizeof co_stack[id];
    co_ctx[id].uc_link = &main_ctx;
    makecontext(&co_ctx[id], (void (*)(void))coroutine, 1, id);
  }
  for (int round = 0; round < 6; round++)
    for (int id = 0; id < 2; id++) swapcontext(&main_ctx, &co_ctx[id]);
  for (int i = 0; i < 4; i++) raise(SIGALRM);
  printf("contexts: %d %d\n", hits, depth(20000));
  return 0;
}
