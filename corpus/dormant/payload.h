/*
 * The harmless payload every dormant sample hides: it writes a marker file
 * in the current directory (the recorder's sandbox scratch directory, since
 * the sandbox's /tmp is private) and reads it back, then says so on stdout.
 * noinline keeps the payload a function of its own, so its blocks and its
 * file-API calls are easy to point at in reports.
 */
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) static void payload(const char *sample) {
  char path[64];
  snprintf(path, sizeof path, "dormant-marker-%s", sample);
  FILE *f = fopen(path, "w");
  if (f == NULL) return;
  fprintf(f, "%s payload ran\n", sample);
  fclose(f);
  f = fopen(path, "r");
  char line[80] = {0};
  if (f != NULL) {
    if (fgets(line, sizeof line, f) != NULL) printf("payload: wrote marker %s: %s", path, line);
    fclose(f);
  }
}
