/* The check exported by libcheck.so (libcheck.c). */
int licensed(void);
