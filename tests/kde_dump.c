/* Helper of tests/check_kde_scipy.py: reads a sample (one value per line) and prints, one per
 * line, Scott's bandwidth, the KDE grid mode over linspace(min, max, N_GRID) and its index,
 * numpy 'median_unbiased' percentiles at 0, 2.5, ..., 100, and scipy percentileofscore of the
 * mode and of every 97th sample value.  usage: kde_dump FILE N_GRID */
#include "cnflow/core.h"

#include <stdio.h>
#include <stdlib.h>

#include "../src/stats/kde.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: kde_dump FILE N_GRID\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    fprintf(stderr, "kde_dump: cannot open %s\n", argv[1]);
    return 1;
  }
  size_t n = 0, cap = 1024;
  double *x = malloc(cap * sizeof *x), v;
  while (x && fscanf(f, "%lf", &v) == 1) {
    if (n == cap)
      x = realloc(x, (cap *= 2) * sizeof *x);
    if (x)
      x[n++] = v;
  }
  fclose(f);
  if (!x || n < 2) {
    fprintf(stderr, "kde_dump: need at least 2 values in %s\n", argv[1]);
    return 1;
  }
  qsort(x, n, sizeof *x, cmp_double);
  double h, mode;
  size_t idx;
  if (cnf_kde_scott_bandwidth(x, n, &h) < 0 ||
      cnf_kde_mode_grid(x, n, h, x[0], x[n - 1], (size_t)atol(argv[2]), &mode, &idx) < 0) {
    fprintf(stderr, "kde_dump: %s\n", cnf_error_message());
    return 1;
  }
  printf("%.17g\n%.17g\n%zu\n", h, mode, idx);
  for (int i = 0; i <= 40; i++)
    printf("%.17g\n", cnf_percentile_type8(x, n, 2.5 * i));
  printf("%.17g\n", cnf_percentile_of_score(x, n, mode));
  for (size_t i = 0; i < n; i += 97)
    printf("%.17g\n", cnf_percentile_of_score(x, n, x[i]));
  free(x);
  return 0;
}
