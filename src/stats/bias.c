/* Calibration bias and resolution of one fixed-energy scan sample (cnflow/stats.h, `cnflow
 * bias`): pure functions on the scan columns; the bootstrap reuses the KDE helpers of kde.h. */
#include "cnflow/stats.h"

#include "kde.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int bias_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* numpy.median of an ascending sample (mean of the two middle values for even n). */
static double bias_median_sorted(const double *xs, size_t n) {
  return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

void cnf_bias_conf_default(cnf_bias_conf *conf) {
  conf->n_boot = 20;
  conf->n_grid = 10000;
  conf->seed = 1;
}

double cnf_bias_asym_edge(int i) { /* numpy.linspace(0, MAX, BINS + 1)[i] */
  return i == CNF_BIAS_ASYM_BINS ? CNF_BIAS_ASYM_MAX
                                 : (double)i * (CNF_BIAS_ASYM_MAX / CNF_BIAS_ASYM_BINS);
}

/* numpy.histogram bin of a (-1 outside [0, MAX]): the estimate from the bin width, corrected
 * against the edges so that a value on an edge goes to the bin above it (last bin closed). */
static int bias_asym_bin(double a) {
  if (!(a >= 0.0 && a <= CNF_BIAS_ASYM_MAX))
    return -1;
  int k = (int)(a * (CNF_BIAS_ASYM_BINS / CNF_BIAS_ASYM_MAX));
  if (k >= CNF_BIAS_ASYM_BINS)
    k = CNF_BIAS_ASYM_BINS - 1;
  if (k > 0 && a < cnf_bias_asym_edge(k))
    k--;
  else if (k < CNF_BIAS_ASYM_BINS - 1 && a >= cnf_bias_asym_edge(k + 1))
    k++;
  return k;
}

/* Per-shower resolution and asymmetry over the used showers with a finite interval. */
static int bias_intervals(const cnf_bias_columns *c, cnf_bias_row *row) {
  row->res_shower_mean = row->res_shower_std = row->asym_median = NAN;
  if (!c->e_lo || !c->e_hi)
    return 0;
  double *res = cnf_malloc((c->n ? c->n : 1) * sizeof *res);
  double *asym = cnf_malloc((c->n ? c->n : 1) * sizeof *asym);
  if (!res || !asym) {
    free(res), free(asym);
    return CNF_ERR_NOMEM;
  }
  size_t n_res = 0, n_asym = 0;
  for (size_t i = 0; i < c->n; i++) {
    if ((c->flags[i] & CNF_BIAS_FLAG_FAILED) || !isfinite(c->e_lo[i]) || !isfinite(c->e_hi[i]))
      continue;
    res[n_res++] = (c->e_hi[i] - c->e_lo[i]) / (2.0 * c->e_true[i]);
    double dl = c->e_pred[i] - c->e_lo[i], du = c->e_hi[i] - c->e_pred[i];
    if (du > 0.0) {
      double a = dl / du;
      asym[n_asym++] = a;
      int k = bias_asym_bin(a);
      if (k >= 0)
        row->asym_hist[k]++;
    }
  }
  row->n_intervals = (int64_t)n_res;
  if (n_res > 0)
    cnf_mean_std_ddof0(res, n_res, &row->res_shower_mean, &row->res_shower_std);
  if (n_asym > 0) {
    qsort(asym, n_asym, sizeof *asym, bias_cmp_double);
    row->asym_median = bias_median_sorted(asym, n_asym);
  }
  free(res), free(asym);
  return 0;
}

int cnf_bias_prepare(const cnf_bias_columns *c, cnf_bias_row *row, double *r) {
  memset(row, 0, sizeof *row);
  row->mode = row->mode_err = row->res_full = row->res_full_err = NAN;
  row->n_showers = (int64_t)c->n;
  if (c->n == 0)
    return cnf_error_set(CNF_ERR_ARG, "no showers");
  double sum_e = 0.0;
  size_t n_used = 0;
  for (size_t i = 0; i < c->n; i++) {
    double et = c->e_true[i];
    if (!isfinite(et) || !(et > 0.0))
      return cnf_error_set(CNF_ERR_NUMERIC, "shower %zu: e_true is %g (bias needs the finite, "
                           "positive true energy of every shower)", i, et);
    sum_e += et;
    for (int k = 0; k < CNF_BIAS_N_FLAGS; k++)
      row->flag_counts[k] += (c->flags[i] >> k) & 1;
    if (c->flags[i] & CNF_BIAS_FLAG_FAILED)
      continue;
    if (!isfinite(c->e_pred[i]))
      return cnf_error_set(CNF_ERR_NUMERIC, "shower %zu: e_pred is %g but flags bit 3 (failed) "
                           "is clear", i, c->e_pred[i]);
    r[n_used++] = c->e_pred[i] / et;
  }
  row->e_true_mean = sum_e / (double)c->n;
  row->n_used = (int64_t)n_used;
  if (n_used == 0)
    return cnf_error_set(CNF_ERR_ARG, "all %zu showers are flagged failed (flags bit 3)", c->n);
  if (n_used < 2)
    return cnf_error_set(CNF_ERR_ARG, "only %zu shower not flagged failed: the KDE needs 2",
                         n_used);
  int constant = 1;
  for (size_t i = 1; i < n_used && constant; i++)
    constant = r[i] == r[0];
  if (constant)
    return cnf_error_set(CNF_ERR_ARG, "all %zu ratios e_pred/e_true equal %g: no KDE bandwidth",
                         n_used, r[0]);
  return bias_intervals(c, row);
}

int cnf_bias_boot_one(const double *r, const double *rs, size_t n, size_t n_grid, uint64_t seed,
                      uint64_t stream_id, uint32_t sub, double *mode, double *res) {
  if (n < 2 || n_grid < 1)
    return cnf_error_set(CNF_ERR_ARG, "bias bootstrap: need n >= 2 and n_grid >= 1 (n %zu, grid "
                         "%zu)", n, n_grid);
  double *y = cnf_malloc(n * sizeof *y);
  if (!y)
    return CNF_ERR_NOMEM;
  cnf_rng g;
  cnf_rng_init(&g, seed, stream_id, sub);
  for (size_t j = 0; j < n; j++) { /* random.choices(r, k=n), as cnf_kde_bootstrap_mode */
    size_t idx = (size_t)(cnf_rng_uniform(&g) * (double)n);
    y[j] = r[idx < n ? idx : n - 1];
  }
  qsort(y, n, sizeof *y, bias_cmp_double);
  double h;
  int rc = cnf_kde_scott_bandwidth(y, n, &h);
  if (rc == 0)
    rc = cnf_kde_mode_grid(y, n, h, rs[0], rs[n - 1], n_grid, mode, NULL);
  if (rc == 0) {
    double p = cnf_percentile_of_score(rs, n, *mode);
    double plo = fmax(p - 34.0, 0.0), phi = fmin(p + 34.0, 100.0);
    *res = 0.5 * (cnf_percentile_type8(rs, n, phi) - cnf_percentile_type8(rs, n, plo));
  }
  free(y);
  return rc;
}

void cnf_bias_boot_finish(const double *modes, const double *res, int n_boot, cnf_bias_row *row) {
  cnf_mean_std_ddof0(modes, (size_t)n_boot, &row->mode, &row->mode_err);
  cnf_mean_std_ddof0(res, (size_t)n_boot, &row->res_full, &row->res_full_err);
}

int cnf_bias_compute(const cnf_bias_columns *c, const cnf_bias_conf *conf, uint64_t file_index,
                     cnf_bias_row *row) {
  if (conf->n_boot < 1)
    return cnf_error_set(CNF_ERR_ARG, "bias: n_boot must be >= 1, got %d", conf->n_boot);
  size_t nb = (size_t)conf->n_boot;
  double *r = cnf_malloc((c->n ? c->n : 1) * sizeof *r), *rs = cnf_malloc((c->n ? c->n : 1) * sizeof *rs);
  double *mv = cnf_malloc(2 * nb * sizeof *mv);
  int rc = (!r || !rs || !mv) ? CNF_ERR_NOMEM : 0;
  if (rc == 0)
    rc = cnf_bias_prepare(c, row, r);
  if (rc == 0) {
    size_t n = (size_t)row->n_used;
    memcpy(rs, r, n * sizeof *rs);
    qsort(rs, n, sizeof *rs, bias_cmp_double);
    for (size_t b = 0; b < nb && rc == 0; b++) {
      rc = cnf_bias_boot_one(r, rs, n, conf->n_grid, conf->seed, file_index, (uint32_t)b, &mv[b],
                             &mv[nb + b]);
      cnf_watchdog_beat("a bias bootstrap");
    }
    if (rc == 0)
      cnf_bias_boot_finish(mv, mv + nb, conf->n_boot, row);
  }
  free(r), free(rs), free(mv);
  return rc;
}
