/* Likelihood scans (include/cnflow/infer.h), double precision, against closed forms.
 *
 * The response x | E ~ N(a E, (b E)^2) is represented EXACTLY by a flow with set (not trained)
 * constants: condition map ln, cond_scale (z1 = x exp(-(ln E + ln b)) = x / (b E)), then
 * affine_fixed (z = z1 - a / b):  log p(x | E) = log N(x / (b E) - a / b) - ln(b E).
 * Its maximum has a closed form: with w = x / (b E), w^2 - (a/b) w - 1 = 0, so
 *   E_pred = x / (b w+),  w+ = (a/b + sqrt((a/b)^2 + 4)) / 2,
 * and the 68 % interval ends are found here by bisection on the closed-form log L. */
#include "testutil.h"

#include "cnflow/infer.h"

#include <math.h>
#include <petscsys.h>
#include <stdlib.h>

static cnf_flow *response_flow(double a, double b) {
  double shift[1] = {a / b}, scale[1] = {1.0};
  cnf_bijector_spec specs[2] = {
      {.kind = CNF_BIJ_COND_SCALE, .cond_index = 0, .cond_a = 1.0, .cond_b = log(b)},
      {.kind = CNF_BIJ_AFFINE_FIXED, .shift = shift, .scale = scale}};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(1, 1, 2, specs, &f), 0);
  cnf_cond_map map[1] = {CNF_COND_LOG};
  double cs[1] = {0}, cc[1] = {1};
  assert_int_equal(cnf_flow_set_cond_transform(f, map, cs, cc), 0);
  assert_int_equal(cnf_flow_params_changed(f), 0);
  return f;
}

static double logp_closed(double x, double E, double a, double b) {
  double z = x / (b * E) - a / b;
  return -0.5 * z * z - 0.5 * log(2 * M_PI) - log(b * E);
}

/* log L of an ensemble of responses (a_k, b) in closed form, by log-sum-exp in long double */
static double logl_closed(double x, double E, const double *a, int K, double b) {
  double m = -INFINITY;
  for (int k = 0; k < K; k++)
    m = fmax(m, logp_closed(x, E, a[k], b));
  long double s = 0;
  for (int k = 0; k < K; k++)
    s += expl((long double)(logp_closed(x, E, a[k], b) - m));
  return m + (double)logl(s) - log((double)K);
}

/* bisection of 2 (L(e_max) - L(E)) = 1 between E_in (inside) and E_out (outside) */
static double crossing(double x, double a, double b, double lmax, double e_in, double e_out) {
  for (int it = 0; it < 200; it++) {
    double mid = 0.5 * (e_in + e_out);
    if (2.0 * (lmax - logp_closed(x, mid, a, b)) < 1.0)
      e_in = mid;
    else
      e_out = mid;
  }
  return 0.5 * (e_in + e_out);
}

/* the refinement method under test: the cmocka state points at a cnf_scan_method */
static int method_of(void **state) { return *state ? *(const int *)*state : CNF_SCAN_LOCKSTEP; }

static void test_closure_single_flow(void **state) {
  const double a = 0.9, b = 0.12; /* response 0.9 E with 12 % resolution */
  cnf_flow *f = response_flow(a, b);
  cnf_scan_conf conf;
  cnf_scan_conf_default(&conf); /* [1, 100], 48 grid points */
  conf.method = method_of(state);
  cnf_scanner *s = NULL;
  assert_int_equal(cnf_scanner_create(&f, 1, &conf, 4, &s), 0);
  /* showers at several energies across the range; c carries junk: the scan must ignore it */
  const double xs[6] = {2.0, 7.3, 18.0, 40.0, 63.0, 81.0};
  cnf_real x[6], c[6];
  for (int i = 0; i < 6; i++) {
    x[i] = xs[i];
    c[i] = 1e6;
  }
  cnf_scan_result r[6];
  assert_int_equal(cnf_scanner_run(s, 6, x, c, r), 0);
  const double q = a / b, wp = 0.5 * (q + sqrt(q * q + 4));
  for (int i = 0; i < 6; i++) {
    double e_pred = xs[i] / (b * wp), lmax = logp_closed(xs[i], e_pred, a, b);
    double e_lo = crossing(xs[i], a, b, lmax, e_pred, 1e-3);
    double e_hi = crossing(xs[i], a, b, lmax, e_pred, 1e4);
    assert_close(r[i].e_pred, e_pred, 1e-4, 0);
    assert_close(r[i].logl_max, lmax, 1e-9, 1e-9);
    assert_close(r[i].e_lo, e_lo, 1e-4, 0);
    if (e_hi <= conf.e_max) {
      assert_close(r[i].e_hi, e_hi, 1e-4, 0);
      assert_int_equal(r[i].flags, 0);
    } else { /* the last shower: the interval leaves the prior, its end is the edge, flagged */
      assert_close(r[i].e_hi, conf.e_max, 0, 0);
      assert_int_equal(r[i].flags, CNF_SCAN_OPEN_INTERVAL);
    }
    assert_int_equal(r[i].n_maxima, 1);
    /* the interval is asymmetric the way the closed form says: wider above */
    assert_true(r[i].e_hi - r[i].e_pred > r[i].e_pred - r[i].e_lo);
  }
  cnf_scanner_free(&s);
  cnf_flow_free(&f);
}

static void test_boundary_and_open_interval_flags(void **state) {
  const double a = 1.0, b = 0.1;
  cnf_flow *f = response_flow(a, b);
  cnf_scan_conf conf;
  cnf_scan_conf_default(&conf);
  conf.method = method_of(state);
  cnf_scanner *s = NULL;
  assert_int_equal(cnf_scanner_create(&f, 1, &conf, 8, &s), 0);
  /* x = 150: the likelihood rises to the upper edge of the prior; x = 95: maximum inside but
   * the interval reaches past 100 */
  cnf_real x[2] = {150, 95}, c[2] = {0, 0};
  cnf_scan_result r[2];
  assert_int_equal(cnf_scanner_run(s, 2, x, c, r), 0);
  assert_true(r[0].flags & CNF_SCAN_AT_BOUNDARY);
  assert_close(r[0].e_pred, 100.0, 1e-6, 0);
  assert_true(r[0].flags & CNF_SCAN_OPEN_INTERVAL);
  assert_close(r[0].e_hi, 100.0, 0, 0);
  assert_false(r[1].flags & CNF_SCAN_AT_BOUNDARY);
  assert_true(r[1].flags & CNF_SCAN_OPEN_INTERVAL);
  assert_true(r[1].e_lo < r[1].e_pred && r[1].e_pred < 100.0);
  cnf_scanner_free(&s);
  cnf_flow_free(&f);
}

static void test_ensemble_combination(void **state) {
  (void)state;
  const double a[2] = {0.8, 1.3}, b = 0.05;
  cnf_flow *f[2] = {response_flow(a[0], b), response_flow(a[1], b)};
  cnf_scan_conf conf;
  cnf_scan_conf_default(&conf);
  cnf_scanner *s = NULL;
  assert_int_equal(cnf_scanner_create(f, 2, &conf, 4, &s), 0);
  cnf_real x[1] = {30}, c[1] = {0};
  /* log L = log of the mean of likelihoods, and its E-derivative against finite differences */
  for (double E = 5; E < 90; E *= 1.7) {
    double ll = 0, d = 0, lp = 0, lm = 0, h = 1e-5 * E;
    assert_int_equal(cnf_scanner_logl(s, x, c, E, &ll, &d), 0);
    assert_close(ll, logl_closed(30, E, a, 2, b), 1e-10, 1e-10);
    assert_int_equal(cnf_scanner_logl(s, x, c, E + h, &lp, NULL), 0);
    assert_int_equal(cnf_scanner_logl(s, x, c, E - h, &lm, NULL), 0);
    check_fd("d log L / dE", d, (lp - lm) / (2 * h), fabs(d) + 1.0);
  }
  /* two separated maxima (E = 30/0.8 and 30/1.3 roughly) are reported */
  cnf_scan_result r;
  assert_int_equal(cnf_scanner_run(s, 1, x, c, &r), 0);
  assert_int_equal(r.n_maxima, 2);
  assert_true(r.flags & CNF_SCAN_MULTI_MAXIMA);
  /* far from both members every log p is ~ -1e5: exp() of it underflows, log-sum-exp does not */
  cnf_real xf[1] = {1e4};
  double ll = 0;
  assert_int_equal(cnf_scanner_logl(s, xf, c, 10.0, &ll, NULL), 0);
  assert_true(isfinite(ll) && ll < -1e4);
  assert_close(ll, logl_closed(1e4, 10.0, a, 2, b), 1e-12, 0);
  cnf_scanner_free(&s);
  cnf_flow_free(&f[0]);
  cnf_flow_free(&f[1]);
}

/* A coarse grid (the lockstep default's use: the grid only finds the basin) still gives the
 * closed-form maximum and interval, for one shower per batch and for many showers per batch
 * (the lockstep iteration must not couple the showers of a batch), and the lockstep and the
 * per-shower TAO solutions agree on an ensemble whose likelihood is not a single Gaussian. */
static void test_coarse_grid_and_methods_agree(void **state) {
  (void)state;
  const double a[2] = {0.85, 1.0}, b = 0.15; /* overlapping members: one skewed maximum */
  cnf_flow *f[2] = {response_flow(a[0], b), response_flow(a[1], b)};
  enum { N = 37 };
  cnf_real x[N], c[N];
  for (int i = 0; i < N; i++) {
    x[i] = (cnf_real)(1.5 * pow(60.0, (double)i / (N - 1))); /* 1.5 .. 90 */
    c[i] = 0;
  }
  cnf_scan_result r[3][N];
  const int methods[3] = {CNF_SCAN_LOCKSTEP, CNF_SCAN_LOCKSTEP, CNF_SCAN_TAO};
  const int batch[3] = {16, 1, 16}, grid[3] = {24, 24, 400};
  for (int v = 0; v < 3; v++) {
    cnf_scan_conf conf;
    cnf_scan_conf_default(&conf);
    conf.method = methods[v];
    conf.n_grid = grid[v];
    cnf_scanner *s = NULL;
    assert_int_equal(cnf_scanner_create(f, 2, &conf, batch[v], &s), 0);
    assert_int_equal(cnf_scanner_run(s, N, x, c, r[v]), 0);
    cnf_scanner_free(&s);
  }
  for (int i = 0; i < N; i++) {
    /* the maximum against a golden-section search of the closed form */
    double lo = 0.5, hi = 200.0;
    const double gr = 0.5 * (sqrt(5.0) - 1);
    for (int it = 0; it < 200; it++) {
      double m1 = hi - gr * (hi - lo), m2 = lo + gr * (hi - lo);
      if (logl_closed(x[i], m1, a, 2, b) > logl_closed(x[i], m2, a, 2, b))
        hi = m2;
      else
        lo = m1;
    }
    const double e_pred = fmin(0.5 * (lo + hi), 100.0);
    for (int v = 0; v < 3; v++) {
      assert_close(r[v][i].e_pred, e_pred, 1e-5, 0);
      assert_close(r[v][i].logl_max, logl_closed(x[i], e_pred, a, 2, b), 1e-9, 1e-9);
      assert_int_equal(r[v][i].flags, r[2][i].flags);
      if (!(r[v][i].flags & CNF_SCAN_OPEN_INTERVAL)) {
        assert_close(r[v][i].e_lo, r[2][i].e_lo, 1e-5, 0);
        assert_close(r[v][i].e_hi, r[2][i].e_hi, 1e-5, 0);
        /* the ends solve -2 delta log L = 1 */
        assert_close(-2 * (logl_closed(x[i], r[v][i].e_lo, a, 2, b) - r[v][i].logl_max), 1.0,
                     1e-3, 0);
        assert_close(-2 * (logl_closed(x[i], r[v][i].e_hi, a, 2, b) - r[v][i].logl_max), 1.0,
                     1e-3, 0);
      }
    }
    /* batch of 1 and batch of 16: the same iterations, the same numbers */
    assert_true(r[0][i].e_pred == r[1][i].e_pred && r[0][i].e_lo == r[1][i].e_lo &&
                r[0][i].e_hi == r[1][i].e_hi);
  }
  cnf_flow_free(&f[0]);
  cnf_flow_free(&f[1]);
}

static void test_bad_configuration(void **state) {
  (void)state;
  cnf_flow *f = response_flow(1, 0.1);
  cnf_scan_conf conf;
  cnf_scan_conf_default(&conf);
  cnf_scanner *s = NULL;
  conf.e_min = 0;
  assert_int_equal(cnf_scanner_create(&f, 1, &conf, 1, &s), CNF_ERR_ARG);
  cnf_scan_conf_default(&conf);
  conf.n_grid = 2;
  assert_int_equal(cnf_scanner_create(&f, 1, &conf, 1, &s), CNF_ERR_ARG);
  cnf_scan_conf_default(&conf);
  conf.cond_index = 1;
  assert_int_equal(cnf_scanner_create(&f, 1, &conf, 1, &s), CNF_ERR_ARG);
  cnf_scan_conf_default(&conf);
  conf.method = 7;
  assert_int_equal(cnf_scanner_create(&f, 1, &conf, 1, &s), CNF_ERR_ARG);
  assert_null(s);
  cnf_flow_free(&f);
}

int main(int argc, char **argv) {
  if (PetscInitialize(&argc, &argv, NULL, NULL) != 0)
    return 1;
  static const int lockstep = CNF_SCAN_LOCKSTEP, tao = CNF_SCAN_TAO;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_closure_single_flow, (void *)&lockstep),
      cmocka_unit_test_prestate(test_closure_single_flow, (void *)&tao),
      cmocka_unit_test_prestate(test_boundary_and_open_interval_flags, (void *)&lockstep),
      cmocka_unit_test_prestate(test_boundary_and_open_interval_flags, (void *)&tao),
      cmocka_unit_test(test_coarse_grid_and_methods_agree),
      cmocka_unit_test(test_ensemble_combination),
      cmocka_unit_test(test_bad_configuration),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  PetscFinalize();
  return rc;
}
