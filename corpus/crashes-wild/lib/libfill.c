/* A library routine without a bound: copies until the NUL. */
void fill_name(char *dst, const char *src) {
  while ((*dst++ = *src++) != 0) /* ROOT CAUSE */
    ;
}
