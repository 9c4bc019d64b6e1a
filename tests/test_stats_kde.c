/* Bootstrap KDE mode (src/stats/kde.h, flows-reference.md 5.5): Scott's bandwidth and the
 * percentile helpers against closed forms, the fast grid argmax against a brute-force direct
 * sum, and the bootstrap mode / resolution of gamma, lognormal and normal samples against their
 * closed-form (kernel-smoothed) modes and quantiles. */
#include "testutil.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/stats/kde.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* n draws of a GSL distribution from the counter-based stream (seed, 0). */
typedef double (*draw_fn)(gsl_rng *g, double a, double b);
static double draw_gamma(gsl_rng *g, double k, double theta) { return gsl_ran_gamma(g, k, theta); }
static double draw_lognormal(gsl_rng *g, double mu, double s) { return gsl_ran_lognormal(g, mu, s); }
static double draw_normal(gsl_rng *g, double mu, double s) { return mu + gsl_ran_gaussian(g, s); }
static double draw_exponential(gsl_rng *g, double mu, double unused) {
  return gsl_ran_exponential(g, mu);
}
static double *sample(draw_fn f, double a, double b, size_t n, uint64_t seed) {
  gsl_rng *g = cnf_rng_gsl_alloc(seed, 0, 0);
  double *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++)
    x[i] = f(g, a, b);
  cnf_rng_gsl_free(g);
  return x;
}

/* ---- closed forms ----------------------------------------------------------------------- */
static void test_scott_bandwidth(void **state) {
  /* x = 0..n-1: sample variance (ddof 1) n (n + 1) / 12 */
  const size_t n = 1000;
  double *x = malloc(n * sizeof *x), h;
  for (size_t i = 0; i < n; i++)
    x[i] = (double)i;
  assert_int_equal(cnf_kde_scott_bandwidth(x, n, &h), 0);
  assert_close(h, pow((double)n, -0.2) * sqrt(n * (n + 1) / 12.0), 1e-13, 0);
  for (size_t i = 0; i < n; i++)
    x[i] = 3.0;
  assert_int_equal(cnf_kde_scott_bandwidth(x, n, &h), CNF_ERR_ARG);
  assert_int_equal(cnf_kde_scott_bandwidth(x, 1, &h), CNF_ERR_ARG);
  x[5] = NAN;
  x[6] = 1.0;
  assert_int_equal(cnf_kde_scott_bandwidth(x, n, &h), CNF_ERR_NUMERIC);
  free(x);
}

static void test_density_small_sample(void **state) {
  const double xs[3] = {-1.0, 0.5, 2.0}, h = 0.7;
  for (double g = -4.0; g <= 5.0; g += 0.37) {
    double want = 0.0;
    for (int i = 0; i < 3; i++)
      want += exp(-0.5 * (g - xs[i]) * (g - xs[i]) / (h * h)) / (3.0 * h * sqrt(2.0 * M_PI));
    /* terms beyond CNF_KDE_CUT bandwidths are dropped: at most e^(-CUT^2/2) / (h sqrt(2 pi)) */
    double trunc = exp(-0.5 * CNF_KDE_CUT * CNF_KDE_CUT) / (h * sqrt(2.0 * M_PI));
    assert_close(cnf_kde_density_sorted(xs, 3, h, g), want, 1e-12, trunc);
  }
  /* it integrates to one (trapezoid on a fine grid) */
  double s = 0.0, dx = 1e-3;
  for (double g = -10.0; g <= 10.0; g += dx)
    s += cnf_kde_density_sorted(xs, 3, h, g) * dx;
  assert_close(s, 1.0, 1e-6, 0);
}

static void test_percentiles(void **state) {
  const double x[5] = {1, 2, 3, 4, 5};
  /* Hyndman-Fan type 8: 1-based position (n + 1/3) p + 1/3, clamped to [1, n] */
  assert_close(cnf_percentile_type8(x, 5, 50.0), 3.0, 1e-15, 0);
  assert_close(cnf_percentile_type8(x, 5, 25.0), 5.0 / 3.0, 1e-14, 0);
  assert_close(cnf_percentile_type8(x, 5, 70.0), 4.0 + 1.0 / 15.0, 1e-14, 0);
  assert_close(cnf_percentile_type8(x, 5, 0.0), 1.0, 0, 0);
  assert_close(cnf_percentile_type8(x, 5, 10.0), 1.0, 0, 0); /* position 0.87 < 1 */
  assert_close(cnf_percentile_type8(x, 5, 90.0), 5.0, 0, 0);
  assert_close(cnf_percentile_type8(x, 5, 100.0), 5.0, 0, 0);
  /* scipy.stats.percentileofscore(kind='rank'): (left + right + [right > left]) * 50 / n */
  const double y[4] = {1, 2, 3, 4};
  assert_close(cnf_percentile_of_score(y, 4, 3.0), 75.0, 1e-15, 0);
  assert_close(cnf_percentile_of_score(y, 4, 2.5), 50.0, 1e-15, 0);
  assert_close(cnf_percentile_of_score(y, 4, 0.0), 0.0, 0, 0);
  assert_close(cnf_percentile_of_score(y, 4, 9.0), 100.0, 1e-15, 0);
  const double z[4] = {1, 2, 2, 3};
  assert_close(cnf_percentile_of_score(z, 4, 2.0), (1 + 3 + 1) * 12.5, 1e-15, 0);
}

/* ---- fast argmax == brute-force argmax of the full (untruncated) sum -------------------- */
static size_t brute_argmax(const double *x, size_t n, double h, double lo, double hi, size_t m) {
  size_t best = 0;
  double best_v = -1.0;
  for (size_t i = 0; i < m; i++) {
    double g = i == m - 1 ? hi : lo + (double)i * ((hi - lo) / (double)(m - 1)), s = 0.0;
    for (size_t j = 0; j < n; j++)
      s += exp(-0.5 * (g - x[j]) * (g - x[j]) / (h * h));
    if (s > best_v) {
      best_v = s;
      best = i;
    }
  }
  return best;
}

static void check_argmax(double *x, size_t n, double lo_frac, double hi_frac, size_t m) {
  qsort(x, n, sizeof *x, cmp_double);
  double h, mode;
  size_t idx;
  assert_int_equal(cnf_kde_scott_bandwidth(x, n, &h), 0);
  double span = x[n - 1] - x[0];
  double lo = x[0] + lo_frac * span, hi = x[0] + hi_frac * span;
  assert_int_equal(cnf_kde_mode_grid(x, n, h, lo, hi, m, &mode, &idx), 0);
  size_t want = brute_argmax(x, n, h, lo, hi, m);
  assert_int_equal(idx, want);
  assert_true(mode == (idx == m - 1 ? hi : lo + (double)idx * ((hi - lo) / (double)(m - 1))));
}

static void test_mode_grid_matches_direct_sum(void **state) {
  for (uint64_t seed = 1; seed <= 3; seed++) {
    double *x = sample(draw_gamma, 2.0, 1.0, 2000, seed);
    check_argmax(x, 2000, 0.0, 1.0, 4000); /* the study's setting: grid over [min, max] */
    check_argmax(x, 2000, 0.0, 1.0, 40);   /* coarse grid: many candidates */
    check_argmax(x, 2000, 0.05, 0.3, 3000); /* grid inside the data: outside points matter */
    free(x);
  }
  /* bimodal: two near-equal peaks must not be confused by the binning */
  double *x = sample(draw_normal, 0.0, 1.0, 3000, 9);
  for (size_t i = 0; i < 1500; i++)
    x[i] += 4.0;
  check_argmax(x, 3000, 0.0, 1.0, 5000);
  free(x);
}

/* ---- bootstrap on known distributions --------------------------------------------------- */
/* Mode of the density f convolved with N(0, h^2) (the expected KDE mode), by quadrature on a
 * fine grid around the true mode. */
typedef double (*pdf_fn)(double x, double a, double b);
static double pdf_gamma(double x, double k, double theta) {
  return x <= 0.0 ? 0.0 : exp((k - 1) * log(x) - x / theta - lgamma(k) - k * log(theta));
}
static double pdf_lognormal(double x, double mu, double s) {
  return x <= 0.0 ? 0.0 : exp(-0.5 * pow((log(x) - mu) / s, 2)) / (x * s * sqrt(2 * M_PI));
}
static double smoothed_mode(pdf_fn f, double a, double b, double h, double mode0) {
  double best = mode0, best_v = -1.0;
  for (double xg = mode0 - 0.3; xg <= mode0 + 0.3; xg += 2e-4) {
    const int nq = 800;
    double s = 0.0, dt = 16.0 * h / nq;
    for (int q = 0; q <= nq; q++) { /* Simpson over t in xg +- 8h */
      double t = xg - 8.0 * h + q * dt, u = (xg - t) / h;
      double wq = (q == 0 || q == nq) ? 1.0 : (q % 2 ? 4.0 : 2.0);
      s += wq * f(t, a, b) * exp(-0.5 * u * u);
    }
    if (s > best_v) {
      best_v = s;
      best = xg;
    }
  }
  return best;
}

/* The KDE mode of one 50k sample scatters by ~0.075 sd around the smoothed mode (measured over
 * 30 samples), so the test averages R independent samples (2 bootstrap repeats each) and
 * allows 4 standard errors. */
static void check_bootstrap_mode(draw_fn draw, pdf_fn pdf, double a, double b, double mode0,
                                 double sd) {
  const size_t n = 50000;
  const int R = 12;
  double mean = 0.0;
  for (int rep = 0; rep < R; rep++) {
    double *x = sample(draw, a, b, n, 100 + (uint64_t)rep);
    cnf_kde_mode_config cfg;
    cnf_kde_mode_config_default(&cfg);
    cfg.n_boot = 2;
    cfg.seed = (uint64_t)rep;
    cnf_kde_mode_result res;
    double modes[2];
    assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &res, modes, NULL), 0);
    assert_close(res.bandwidth_mean, pow((double)n, -0.2) * sd, 0.02, 0);
    for (int k = 0; k < 2; k++) /* every mode is a grid point inside the range */
      assert_true(modes[k] >= res.lo && modes[k] <= res.hi);
    assert_close(res.mode_mean, 0.5 * (modes[0] + modes[1]), 1e-15, 0);
    assert_close(res.mode_std, 0.5 * fabs(modes[0] - modes[1]), 1e-12, 1e-15);
    mean += res.mode_mean / R;
    free(x);
  }
  double want = smoothed_mode(pdf, a, b, pow((double)n, -0.2) * sd, mode0);
  assert_close(mean, want, 0, 4 * 0.075 * sd / sqrt(R));
}

static void test_bootstrap_mode_gamma(void **state) {
  /* Gamma(k = 4, theta = 0.5): mode (k - 1) theta = 1.5, sd sqrt(k) theta = 1 */
  check_bootstrap_mode(draw_gamma, pdf_gamma, 4.0, 0.5, 1.5, 1.0);
}

static void test_bootstrap_mode_lognormal(void **state) {
  /* lognormal(0, 0.25): mode exp(mu - s^2), sd sqrt((e^{s^2} - 1) e^{2 mu + s^2}) */
  double s = 0.25;
  check_bootstrap_mode(draw_lognormal, pdf_lognormal, 0.0, s, exp(-s * s),
                       sqrt((exp(s * s) - 1) * exp(s * s)));
}

static void test_bootstrap_resolution_normal(void **state) {
  const size_t n = 100000;
  double *x = sample(draw_normal, 1.0, 0.1, n, 5);
  cnf_kde_mode_config cfg;
  cnf_kde_mode_config_default(&cfg); /* the study's setting: 20 x 100k on a 10k grid */
  cnf_kde_mode_result res;
  double t0 = cnf_time_now();
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &res, NULL, NULL), 0);
  double dt = cnf_time_now() - t0;
  /* printed, not asserted: speed is the benchmarks' business (a timed assertion fails under
   * valgrind or on a loaded node without anything being wrong) */
  print_message("bootstrap KDE mode, 20 x 100k points, 10k grid: %.3f s\n", dt);
  assert_close(res.mode_mean, 1.0, 0, 0.01);
  /* p ~ 50, so the half-width is (q84 - q16)/2 = 0.1 Phi^-1(0.84) */
  assert_close(res.res_mean, 0.1 * 0.994457883209753, 0.02, 0);
  assert_true(res.res_std < 0.002);
  /* same seed: same answer; another seed: other resamples */
  cnf_kde_mode_result again, other;
  cfg.n_boot = 3;
  double m1[3], m2[3], m3[3];
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &again, m1, NULL), 0);
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &again, m2, NULL), 0);
  cfg.seed = 77;
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &other, m3, NULL), 0);
  assert_memory_equal(m1, m2, sizeof m1);
  assert_true(memcmp(m1, m3, sizeof m1) != 0);
  free(x);
}

static void test_bootstrap_percentile_clipping(void **state) {
  /* exponential: the KDE mode sits near the minimum, percentile ~0, so p - 34 < 0 */
  const size_t n = 5000;
  double *x = sample(draw_exponential, 1.0, 0.0, n, 3);
  cnf_kde_mode_config cfg;
  cnf_kde_mode_config_default(&cfg);
  cfg.n_boot = 2;
  cfg.n_grid = 2000;
  cnf_kde_mode_result res;
  /* the modes sit below the 34th percentile, so the lower percentile is clipped to 0 */
  double modes[2], res_b[2];
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &res, modes, res_b), 0);
  qsort(x, n, sizeof *x, cmp_double);
  for (int b = 0; b < 2; b++) {
    double p = cnf_percentile_of_score(x, n, modes[b]);
    assert_true(p < 34.0);
    assert_close(res_b[b], 0.5 * (cnf_percentile_type8(x, n, p + 34.0) - x[0]), 1e-14, 0);
  }
  cfg.clip_percentiles = 0;
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &res, NULL, NULL), CNF_ERR_ARG);
  assert_null(strchr(cnf_error_message(), '\n'));
  /* bad arguments */
  cnf_kde_mode_config_default(&cfg);
  assert_int_equal(cnf_kde_bootstrap_mode(x, 1, &cfg, &res, NULL, NULL), CNF_ERR_ARG);
  cfg.n_boot = 0;
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &res, NULL, NULL), CNF_ERR_ARG);
  cnf_kde_mode_config_default(&cfg);
  x[7] = NAN;
  assert_int_equal(cnf_kde_bootstrap_mode(x, n, &cfg, &res, NULL, NULL), CNF_ERR_NUMERIC);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scott_bandwidth),
      cmocka_unit_test(test_density_small_sample),
      cmocka_unit_test(test_percentiles),
      cmocka_unit_test(test_mode_grid_matches_direct_sum),
      cmocka_unit_test(test_bootstrap_mode_gamma),
      cmocka_unit_test(test_bootstrap_mode_lognormal),
      cmocka_unit_test(test_bootstrap_resolution_normal),
      cmocka_unit_test(test_bootstrap_percentile_clipping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
