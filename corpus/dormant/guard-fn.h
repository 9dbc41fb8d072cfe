/*
 * How a sample's checks are compiled: each check is a function of its own;
 * GUARD_FN decides whether the compiler may inline it. The test suite and
 * tools/eval-dormant.ts build every multi-step sample both ways
 * (-DGUARD_NOINLINE keeps each check a call of its own).
 */
#ifdef GUARD_NOINLINE
#define GUARD_FN __attribute__((noinline)) static
#else
#define GUARD_FN static inline
#endif
