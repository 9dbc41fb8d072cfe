/* crash-stdin: "alpha beta gamma\n7\n" crash-set: held-out */
/* A line is split into words; a second line picks one of them by its
 * position, which is never compared with the number of words. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS 16

int main(void) {
  char line[256];
  char **words = calloc(MAX_WORDS, sizeof *words);
  int n = 0;
  if (!fgets(line, sizeof line, stdin)) return 2;
  for (char *w = strtok(line, " \t\n"); w && n < MAX_WORDS; w = strtok(NULL, " \t\n")) words[n++] = w;
  int pick;
  if (scanf("%d", &pick) != 1 || pick < 0 || pick >= MAX_WORDS) return 3;
  const char *chosen = words[pick]; /* ROOT CAUSE */
  printf("word %d of %d has %zu letters\n", pick, n, strlen(chosen));
  return 0;
}
