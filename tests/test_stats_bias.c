/* Calibration bias and resolution (src/stats/bias.c, `cnflow bias`): the bootstrap KDE mode
 * and full resolution of a normal sample of ratios against their closed forms, the resample
 * function against cnf_kde_bootstrap_mode (the study's rule), the stream keying, and the
 * per-shower resolution, asymmetry, flag counts and input errors on constructed scans with
 * known answers. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/stats/kde.h"
#include "cnflow/stats.h"

typedef struct scan_cols {
  size_t n;
  double *e_true, *e_pred, *e_lo, *e_hi;
  int32_t *flags;
} scan_cols;

static scan_cols cols_alloc(size_t n) {
  scan_cols s = {n, calloc(n, sizeof(double)), calloc(n, sizeof(double)),
                 calloc(n, sizeof(double)), calloc(n, sizeof(double)), calloc(n, sizeof(int32_t))};
  return s;
}
static void cols_free(scan_cols *s) {
  free(s->e_true), free(s->e_pred), free(s->e_lo), free(s->e_hi), free(s->flags);
}
static cnf_bias_columns cols_view(const scan_cols *s) {
  cnf_bias_columns c = {s->n, s->e_true, s->e_pred, s->e_lo, s->e_hi, s->flags};
  return c;
}

/* r ~ N(mu, sd^2) at e_true = e: e_pred = e r, intervals NaN (a regression scan) */
static scan_cols normal_scan(size_t n, double e, double mu, double sd, uint64_t seed) {
  scan_cols s = cols_alloc(n);
  cnf_rng g;
  cnf_rng_init(&g, seed, 0, 0);
  for (size_t i = 0; i < n; i++) {
    s.e_true[i] = e;
    s.e_pred[i] = e * (mu + sd * cnf_rng_normal(&g));
    s.e_lo[i] = s.e_hi[i] = NAN;
  }
  return s;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- bootstrap: closed forms and the study's rule ---------------------------------------- */
static void test_normal_mode_and_resolution(void **state) {
  const double mu = 1.02, sd = 0.05;
  scan_cols s = normal_scan(20000, 50.0, mu, sd, 11);
  cnf_bias_columns c = cols_view(&s);
  cnf_bias_conf conf;
  cnf_bias_conf_default(&conf);
  assert_int_equal(conf.n_boot, 20);
  assert_int_equal((int)conf.n_grid, 10000);
  cnf_bias_row row;
  assert_int_equal(cnf_bias_compute(&c, &conf, 0, &row), 0);
  assert_int_equal(row.n_showers, 20000);
  assert_int_equal(row.n_used, 20000);
  assert_close(row.e_true_mean, 50.0, 1e-14, 0);
  /* the mode of a normal density is its mean; the bootstrap error is a few 1e-3 */
  assert_true(row.mode_err > 0.0 && row.mode_err < 0.01);
  assert_true(fabs(row.mode - mu) < 3.0 * row.mode_err + 1e-9);
  /* half the central 68 % interval of N(mu, sd^2): sd * z(0.84) = 0.9945 sd */
  assert_true(row.res_full_err > 0.0 && row.res_full_err < 0.005);
  assert_close(row.res_full, 0.9945 * sd, 0.03, 0);
  assert_true(isnan(row.res_shower_mean) && isnan(row.asym_median));
  assert_int_equal(row.n_intervals, 0);
  cols_free(&s);
}

static void test_boot_one_is_the_kde_rule(void **state) {
  /* resample (stream b, sub 0) is repeat b of cnf_kde_bootstrap_mode, bit for bit */
  const size_t n = 3000;
  scan_cols s = normal_scan(n, 20.0, 0.97, 0.08, 5);
  double *r = malloc(n * sizeof *r), *rs = malloc(n * sizeof *rs);
  cnf_bias_row row;
  cnf_bias_columns c = cols_view(&s);
  assert_int_equal(cnf_bias_prepare(&c, &row, r), 0);
  assert_int_equal(row.n_used, (int64_t)n);
  memcpy(rs, r, n * sizeof *rs);
  qsort(rs, n, sizeof *rs, cmp_double);
  cnf_kde_mode_config kc;
  cnf_kde_mode_config_default(&kc);
  kc.n_boot = 6;
  kc.n_grid = 2000;
  kc.seed = 42;
  double kmodes[6], kres[6], modes[6], res[6];
  cnf_kde_mode_result kr;
  assert_int_equal(cnf_kde_bootstrap_mode(r, n, &kc, &kr, kmodes, kres), 0);
  for (int b = 0; b < 6; b++) {
    assert_int_equal(cnf_bias_boot_one(r, rs, n, 2000, 42, (uint64_t)b, 0, &modes[b], &res[b]), 0);
    assert_true(modes[b] == kmodes[b]);
    assert_true(res[b] == kres[b]);
  }
  cnf_bias_boot_finish(modes, res, 6, &row);
  assert_true(row.mode == kr.mode_mean && row.mode_err == kr.mode_std);
  assert_true(row.res_full == kr.res_mean && row.res_full_err == kr.res_std);
  free(r), free(rs);
  cols_free(&s);
}

static void test_streams_keyed_by_file_and_resample(void **state) {
  const size_t n = 2000;
  scan_cols s = normal_scan(n, 20.0, 1.0, 0.1, 9);
  cnf_bias_columns c = cols_view(&s);
  cnf_bias_conf conf;
  cnf_bias_conf_default(&conf);
  conf.n_boot = 4;
  conf.n_grid = 1000;
  cnf_bias_row a, b, f1;
  assert_int_equal(cnf_bias_compute(&c, &conf, 3, &a), 0);
  assert_int_equal(cnf_bias_compute(&c, &conf, 3, &b), 0);
  assert_int_equal(cnf_bias_compute(&c, &conf, 4, &f1), 0);
  assert_true(a.mode == b.mode && a.mode_err == b.mode_err && a.res_full == b.res_full);
  assert_true(a.mode != f1.mode || a.res_full != f1.res_full); /* another file: other draws */
  /* the rows come from the streams (seed, file, b): recompute them one by one */
  double *r = malloc(n * sizeof *r), *rs = malloc(n * sizeof *rs), modes[4], res[4];
  cnf_bias_row row;
  assert_int_equal(cnf_bias_prepare(&c, &row, r), 0);
  memcpy(rs, r, n * sizeof *rs);
  qsort(rs, n, sizeof *rs, cmp_double);
  for (int k = 3; k >= 0; k--) /* any order */
    assert_int_equal(cnf_bias_boot_one(r, rs, n, 1000, 1, 3, (uint32_t)k, &modes[k], &res[k]), 0);
  assert_true(modes[0] != modes[1] || modes[1] != modes[2]);
  cnf_bias_boot_finish(modes, res, 4, &row);
  assert_true(row.mode == a.mode && row.res_full_err == a.res_full_err);
  free(r), free(rs);
  cols_free(&s);
}

/* ---- intervals, flags, asymmetry --------------------------------------------------------- */
static void test_intervals_known_answers(void **state) {
  /* e_lo = e_pred - 1, e_hi = e_pred + 2 (dyadic values: exact): asymmetry 1/2 for every
   * shower; e_true alternates 10 and 30: resolution 3/20 and 1/20, mean 1/10, std 1/20 */
  const size_t n = 400;
  scan_cols s = cols_alloc(n);
  for (size_t i = 0; i < n; i++) {
    s.e_true[i] = i % 2 ? 30.0 : 10.0;
    s.e_pred[i] = s.e_true[i] + (double)(i % 7) / 8.0 - 0.375;
    s.e_lo[i] = s.e_pred[i] - 1.0;
    s.e_hi[i] = s.e_pred[i] + 2.0;
  }
  cnf_bias_columns c = cols_view(&s);
  cnf_bias_row row;
  double *r = malloc(n * sizeof *r);
  assert_int_equal(cnf_bias_prepare(&c, &row, r), 0);
  assert_true(row.asym_median == 0.5);
  assert_int_equal(row.n_intervals, (int64_t)n);
  assert_close(row.res_shower_mean, 0.1, 1e-14, 0);
  assert_close(row.res_shower_std, 0.05, 1e-12, 0);
  assert_close(row.e_true_mean, 20.0, 1e-14, 0);
  int64_t total = 0;
  for (int k = 0; k < CNF_BIAS_ASYM_BINS; k++) {
    total += row.asym_hist[k];
    /* 0.5 lies in [0.48, 0.54): bin 8 */
    assert_int_equal(row.asym_hist[k], k == 8 ? (int64_t)n : 0);
  }
  assert_int_equal(total, (int64_t)n);
  for (size_t i = 0; i < n; i++)
    assert_true(r[i] == s.e_pred[i] / s.e_true[i]);
  assert_true(isnan(row.mode)); /* no bootstrap yet */
  free(r);
  cols_free(&s);
}

static void test_flags_and_asymmetry_histogram(void **state) {
  /* asymmetries spread over [-0.5, 4): median and histogram against a direct recount; flagged
   * showers counted per bit, failed ones (bit 3) left out of r and of the interval statistics */
  const size_t n = 1001;
  scan_cols s = cols_alloc(n);
  cnf_rng g;
  cnf_rng_init(&g, 3, 0, 0);
  double *want_asym = malloc(n * sizeof *want_asym);
  size_t n_asym = 0, n_fail = 0;
  int64_t want_flags[4] = {0};
  for (size_t i = 0; i < n; i++) {
    s.e_true[i] = 40.0;
    s.flags[i] = (int32_t)(cnf_rng_u32(&g) % 16) & (i % 3 ? 7 : 15);
    for (int k = 0; k < 4; k++)
      want_flags[k] += (s.flags[i] >> k) & 1;
    if (s.flags[i] & 8) {
      s.e_pred[i] = s.e_lo[i] = s.e_hi[i] = NAN;
      n_fail++;
      continue;
    }
    double a = -0.5 + 4.5 * cnf_rng_uniform(&g), du = 0.5 + cnf_rng_uniform(&g);
    if (i % 97 == 0)
      a = 3.0; /* on the closed upper edge */
    if (i % 89 == 0)
      a = cnf_bias_asym_edge(17); /* on an inner edge: the bin above */
    s.e_pred[i] = 40.0 + cnf_rng_normal(&g);
    s.e_hi[i] = s.e_pred[i] + du;
    s.e_lo[i] = s.e_pred[i] - a * du;
    if (i % 50 == 1) { /* e_pred on the upper end: no asymmetry, resolution still counted */
      s.e_hi[i] = s.e_pred[i];
      continue;
    }
    want_asym[n_asym++] = (s.e_pred[i] - s.e_lo[i]) / (s.e_hi[i] - s.e_pred[i]);
  }
  cnf_bias_columns c = cols_view(&s);
  cnf_bias_row row;
  double *r = malloc(n * sizeof *r);
  assert_int_equal(cnf_bias_prepare(&c, &row, r), 0);
  assert_true(n_fail > 0 && n_fail < n);
  assert_int_equal(row.n_showers, (int64_t)n);
  assert_int_equal(row.n_used, (int64_t)(n - n_fail));
  assert_int_equal(row.n_intervals, (int64_t)(n - n_fail));
  for (int k = 0; k < 4; k++)
    assert_int_equal(row.flag_counts[k], want_flags[k]);
  qsort(want_asym, n_asym, sizeof *want_asym, cmp_double);
  double med = n_asym % 2 ? want_asym[n_asym / 2]
                          : 0.5 * (want_asym[n_asym / 2 - 1] + want_asym[n_asym / 2]);
  assert_true(row.asym_median == med);
  int64_t edge_hits = 0;
  for (int k = 0; k < CNF_BIAS_ASYM_BINS; k++) {
    double lo = cnf_bias_asym_edge(k), hi = cnf_bias_asym_edge(k + 1);
    int64_t cnt = 0;
    for (size_t j = 0; j < n_asym; j++)
      cnt += want_asym[j] >= lo && (want_asym[j] < hi || (k == CNF_BIAS_ASYM_BINS - 1 && want_asym[j] == hi));
    assert_int_equal(row.asym_hist[k], cnt);
    if (k == 17 || k == CNF_BIAS_ASYM_BINS - 1)
      edge_hits += cnt;
  }
  assert_true(edge_hits >= 2);
  assert_close(cnf_bias_asym_edge(CNF_BIAS_ASYM_BINS), 3.0, 0, 0);
  free(r), free(want_asym);
  cols_free(&s);
}

static void test_no_intervals(void **state) {
  scan_cols s = normal_scan(100, 10.0, 1.0, 0.1, 2);
  cnf_bias_columns c = cols_view(&s);
  c.e_lo = c.e_hi = NULL;
  cnf_bias_row row;
  double r[100];
  assert_int_equal(cnf_bias_prepare(&c, &row, r), 0);
  assert_true(isnan(row.res_shower_mean) && isnan(row.res_shower_std) && isnan(row.asym_median));
  for (int k = 0; k < CNF_BIAS_ASYM_BINS; k++)
    assert_int_equal(row.asym_hist[k], 0);
  cols_free(&s);
}

static void test_bad_inputs(void **state) {
  scan_cols s = normal_scan(50, 10.0, 1.0, 0.1, 4);
  cnf_bias_columns c = cols_view(&s);
  cnf_bias_row row;
  double r[50];
  s.e_true[3] = NAN;
  assert_int_equal(cnf_bias_prepare(&c, &row, r), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "shower 3: e_true"));
  s.e_true[3] = -1.0;
  assert_int_equal(cnf_bias_prepare(&c, &row, r), CNF_ERR_NUMERIC);
  s.e_true[3] = 10.0;
  s.e_pred[7] = INFINITY;
  assert_int_equal(cnf_bias_prepare(&c, &row, r), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "shower 7: e_pred"));
  s.flags[7] = 8; /* flagged failed: allowed */
  assert_int_equal(cnf_bias_prepare(&c, &row, r), 0);
  assert_int_equal(row.n_used, 49);
  assert_int_equal(row.flag_counts[3], 1);
  for (size_t i = 0; i < 50; i++)
    s.flags[i] = 8 | 1;
  assert_int_equal(cnf_bias_prepare(&c, &row, r), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "all 50 showers are flagged failed"));
  s.flags[0] = 0;
  assert_int_equal(cnf_bias_prepare(&c, &row, r), CNF_ERR_ARG); /* one usable shower */
  for (size_t i = 0; i < 50; i++) {
    s.flags[i] = 0;
    s.e_pred[i] = 12.5;
  }
  assert_int_equal(cnf_bias_prepare(&c, &row, r), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "ratios"));
  c.n = 0;
  assert_int_equal(cnf_bias_prepare(&c, &row, r), CNF_ERR_ARG);
  cnf_bias_conf conf;
  cnf_bias_conf_default(&conf);
  conf.n_boot = 0;
  c.n = 50;
  assert_int_equal(cnf_bias_compute(&c, &conf, 0, &row), CNF_ERR_ARG);
  cols_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normal_mode_and_resolution),
      cmocka_unit_test(test_boot_one_is_the_kde_rule),
      cmocka_unit_test(test_streams_keyed_by_file_and_resample),
      cmocka_unit_test(test_intervals_known_answers),
      cmocka_unit_test(test_flags_and_asymmetry_histogram),
      cmocka_unit_test(test_no_intervals),
      cmocka_unit_test(test_bad_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
