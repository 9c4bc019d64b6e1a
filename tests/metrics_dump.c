/* Helper of tests/check_metrics_scipy.py: reads whitespace-separated numbers from files and
 * prints the evaluation statistics of include/cnflow/stats.h, one value per line (%.17g).
 *   metrics_dump w1 A B                       W1(A, B)
 *   metrics_dump hist X LO HI NBINS           the NBINS counts, then the number dropped
 *   metrics_dump sep C1 C2                    separation power and its error (C1, C2: counts)
 *   metrics_dump auc POS NEG                  AUC
 *   metrics_dump core X K                     mean mean_err sigma sigma_err n_core iterations converged
 *   metrics_dump shower IMGS ROWS COLS E_MIN EPS MIN_PTS CLIP
 *        per image (ROWS*COLS values each): e_total e_max1 e_max2 width r9 n_clusters */
#include "cnflow/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double *read_values(const char *path, size_t *n) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "metrics_dump: cannot open %s\n", path);
    exit(1);
  }
  size_t cap = 1024;
  double *x = malloc(cap * sizeof *x), v;
  *n = 0;
  while (x && fscanf(f, "%lf", &v) == 1) {
    if (*n == cap) {
      double *y = realloc(x, (cap *= 2) * sizeof *x);
      if (!y)
        free(x);
      x = y;
    }
    if (x)
      x[(*n)++] = v;
  }
  fclose(f);
  if (!x) {
    fprintf(stderr, "metrics_dump: out of memory reading %s\n", path);
    exit(1);
  }
  return x;
}

static void fail(void) {
  fprintf(stderr, "metrics_dump: %s\n", cnf_error_message());
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: metrics_dump w1|hist|sep|auc|core|shower FILE ...\n");
    return 2;
  }
  const char *mode = argv[1];
  size_t n, m;
  double *x = read_values(argv[2], &n);
  if (!strcmp(mode, "w1") && argc == 4) {
    double *y = read_values(argv[3], &m);
    printf("%.17g\n", cnf_w1_1d(x, n, y, m));
    free(y);
  } else if (!strcmp(mode, "auc") && argc == 4) {
    double *y = read_values(argv[3], &m);
    printf("%.17g\n", cnf_auc(x, n, y, m));
    free(y);
  } else if (!strcmp(mode, "sep") && argc == 4) {
    double *y = read_values(argv[3], &m), s, e;
    if (m != n || cnf_separation_power(x, y, (int)n, &s, &e) < 0)
      fail();
    printf("%.17g\n%.17g\n", s, e);
    free(y);
  } else if (!strcmp(mode, "hist") && argc == 6) {
    int nb = atoi(argv[5]);
    double *c = malloc((nb > 0 ? (size_t)nb : 1) * sizeof *c);
    size_t out;
    if (!c || cnf_hist_fill(x, n, atof(argv[3]), atof(argv[4]), nb, c, &out) < 0)
      fail();
    for (int i = 0; i < nb; i++)
      printf("%.17g\n", c[i]);
    printf("%zu\n", out);
    free(c);
  } else if (!strcmp(mode, "core") && argc == 4) {
    cnf_core_fit f;
    if (cnf_core_width(x, n, atof(argv[3]), &f) < 0)
      fail();
    printf("%.17g\n%.17g\n%.17g\n%.17g\n%zu\n%d\n%d\n", f.mean, f.mean_err, f.sigma, f.sigma_err,
           f.n_core, f.iterations, f.converged);
  } else if (!strcmp(mode, "shower") && argc == 9) {
    int rows = atoi(argv[3]), cols = atoi(argv[4]);
    cnf_shower_conf conf;
    cnf_shower_conf_default(&conf);
    conf.cluster_e_min = atof(argv[5]);
    conf.cluster_eps = atof(argv[6]);
    conf.cluster_min_pts = atoi(argv[7]);
    conf.r9_clip_edges = atoi(argv[8]);
    size_t pix = (size_t)(rows > 0 ? rows : 1) * (size_t)(cols > 0 ? cols : 1);
    for (size_t k = 0; k + pix <= n; k += pix) {
      cnf_shower_shape s;
      if (cnf_shower_shape_compute(x + k, rows, cols, &conf, &s) < 0)
        fail();
      printf("%.17g %.17g %.17g %.17g %.17g %d\n", s.e_total, s.e_max1, s.e_max2, s.width, s.r9,
             s.n_clusters);
    }
  } else {
    fprintf(stderr, "metrics_dump: bad mode or argument count\n");
    return 2;
  }
  free(x);
  return 0;
}
