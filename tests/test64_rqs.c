/* RQS kernel (src/flow/rqs.c), double library: round trips, identity init, linear tails with
 * boundary derivative 1, finite-difference gradients w.r.t. x and all 3K-1 raw parameters,
 * log-det against the numerical derivative, and finiteness under extreme parameters. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/flow/bijector_impl.h"

enum { K = 10, P = 3 * K - 1 };
static const cnf_rqs_conf CONF = {.K = K, .B = 3.0, .min_w = 1e-3, .min_h = 1e-3, .min_d = 1e-3};

/* Random raw parameters with standard deviation `scale` (scale 2: strongly nonlinear). */
static void random_theta(cnf_rng *r, int n, double scale, double *theta) {
  for (int i = 0; i < n * P; i++)
    theta[i] = scale * cnf_rng_normal(r);
}

/* Knots x_k (K+1) of one element, recomputed here from the closed form (not the kernel's). */
static void ref_knots(const double *u, double min_size, double B, double *knots) {
  double m = u[0], s = 0, p[K];
  for (int j = 1; j < K; j++)
    m = fmax(m, u[j]);
  for (int j = 0; j < K; j++)
    s += (p[j] = exp(u[j] - m));
  double cum = 0;
  knots[0] = -B;
  for (int j = 0; j < K; j++) {
    cum += min_size + (1 - K * min_size) * p[j] / s;
    knots[j + 1] = 2 * B * cum - B;
  }
}

static double fwd1(const double *theta, double x, double *ld) {
  double y, l;
  cnf_rqs_forward(&CONF, 1, &x, theta, &y, &l);
  if (ld)
    *ld = l;
  return y;
}

/* Round trip and log-det cancellation at the given points, one theta per point. */
static void check_round_trip(int n, const double *x, const double *theta) {
  double *y = malloc(n * sizeof *y), *ldf = malloc(n * sizeof *ldf);
  double *xr = malloc(n * sizeof *xr), *ldi = malloc(n * sizeof *ldi);
  cnf_rqs_forward(&CONF, n, x, theta, y, ldf);
  cnf_rqs_inverse(&CONF, n, y, theta, xr, ldi);
  /* dlogdet/dx from the kernel's backward (checked against differences in test_gradients_fd) */
  double *zero = calloc(n, sizeof *zero), *one = malloc(n * sizeof *one);
  double *dld_dx = malloc(n * sizeof *dld_dx);
  for (int i = 0; i < n; i++)
    one[i] = 1;
  cnf_rqs_backward(&CONF, n, x, theta, zero, one, dld_dx, NULL);
  for (int i = 0; i < n; i++) {
    /* rounding of y is amplified by 1/slope in x, and that by dlogdet/dx in the log-det */
    const double xerr = 1e-14 * (1 + exp(-ldf[i]));
    assert_close(xr[i], x[i], 0, xerr);
    assert_close(ldf[i] + ldi[i], 0.0, 0, 1e-14 + xerr * fabs(dld_dx[i]));
    if (fabs(x[i]) > CONF.B) {
      assert_true(y[i] == x[i] && ldf[i] == 0.0); /* identity tails, exactly */
    } else {
      assert_true(fabs(y[i]) <= CONF.B * (1 + 1e-15)); /* [-B, B] maps onto itself */
    }
  }
  free(y), free(ldf), free(xr), free(ldi), free(zero), free(one), free(dld_dx);
}

static void test_round_trip_random(void **state) {
  enum { N = 2000 };
  cnf_rng r;
  cnf_rng_init(&r, 11, 0, 0);
  double *theta = malloc(N * P * sizeof *theta), x[N];
  random_theta(&r, N, 2.0, theta);
  for (int i = 0; i < N; i++)
    x[i] = 1.3 * CONF.B * (2 * cnf_rng_uniform(&r) - 1); /* ~23% in the tails */
  check_round_trip(N, x, theta);
  free(theta);
}

/* Points exactly on every knot, at exactly +-B, just inside and just outside. */
static void test_round_trip_special_points(void **state) {
  enum { NT = 20, PER = K + 6 /* the K + 1 knots and 5 edge points */ };
  cnf_rng r;
  cnf_rng_init(&r, 12, 0, 0);
  double theta1[P], knots[K + 1];
  double *theta = malloc(NT * PER * P * sizeof *theta), x[NT * PER];
  int n = 0;
  for (int t = 0; t < NT; t++) {
    random_theta(&r, 1, 2.0, theta1);
    ref_knots(theta1, CONF.min_w, CONF.B, knots);
    const double B = CONF.B;
    double pts[PER];
    for (int k = 0; k <= K; k++)
      pts[k] = knots[k];
    pts[0] = -B, pts[K] = B; /* endpoints exactly */
    pts[K + 1] = nextafter(-B, 0), pts[K + 2] = nextafter(B, 0);
    pts[K + 3] = nextafter(-B, -INFINITY), pts[K + 4] = nextafter(B, INFINITY);
    pts[K + 5] = 1e-300;
    for (int i = 0; i < PER; i++) {
      x[n] = pts[i];
      memcpy(theta + (size_t)n * P, theta1, sizeof theta1);
      n++;
    }
  }
  check_round_trip(n, x, theta);
  /* the endpoints map exactly onto themselves */
  for (int i = 0; i < n; i++)
    if (fabs(x[i]) == CONF.B)
      assert_true(fwd1(theta + (size_t)i * P, x[i], NULL) == x[i]);
  free(theta);
}

static void test_identity_init(void **state) {
  double theta[P];
  const double ud = cnf_rqs_identity_ud(CONF.min_d);
  assert_close(CONF.min_d + log1p(exp(ud)), 1.0, 1e-15, 0);
  for (int j = 0; j < P; j++)
    theta[j] = j < 2 * K ? 0.0 : ud;
  for (int i = 0; i <= 200; i++) {
    double x = -1.5 * CONF.B + 3.0 * CONF.B * i / 200, ld;
    double y = fwd1(theta, x, &ld);
    assert_close(y, x, 0, 1e-14);
    assert_close(ld, 0.0, 0, 1e-14);
  }
}

/* Boundary derivative 1: one-sided slopes inside and outside agree at -B and +B, and the
 * kernel's own log-derivative at the endpoints is 0. */
static void test_boundary_derivative_is_one(void **state) {
  cnf_rng r;
  cnf_rng_init(&r, 13, 0, 0);
  double theta[P];
  const double h = 1e-7, B = CONF.B;
  for (int t = 0; t < 50; t++) {
    random_theta(&r, 1, 2.0, theta);
    double ld;
    double in_hi = (fwd1(theta, B, &ld) - fwd1(theta, B - h, NULL)) / h;
    assert_close(ld, 0.0, 0, 1e-12);
    double out_hi = (fwd1(theta, B + h, NULL) - fwd1(theta, B, NULL)) / h;
    double in_lo = (fwd1(theta, -B + h, NULL) - fwd1(theta, -B, &ld)) / h;
    assert_close(ld, 0.0, 0, 1e-12);
    double out_lo = (fwd1(theta, -B, NULL) - fwd1(theta, -B - h, NULL)) / h;
    assert_close(out_hi, 1.0, 0, 1e-7);
    assert_close(out_lo, 1.0, 0, 1e-7);
    /* the second derivative inside can be large: allow O(h * y'') */
    assert_close(in_hi, out_hi, 0, 1e-3);
    assert_close(in_lo, out_lo, 0, 1e-3);
  }
}

/* log|dy/dx| against a central difference, inside the spline. */
static void test_logdet_matches_numerical_derivative(void **state) {
  cnf_rng r;
  cnf_rng_init(&r, 14, 0, 0);
  double theta[P];
  for (int t = 0; t < 500; t++) {
    random_theta(&r, 1, 2.0, theta);
    double x = 0.999 * CONF.B * (2 * cnf_rng_uniform(&r) - 1), ld;
    const double h = 1e-6;
    fwd1(theta, x, &ld);
    double slope = (fwd1(theta, x + h, NULL) - fwd1(theta, x - h, NULL)) / (2 * h);
    assert_true(slope > 0);
    /* truncation O(h^2) plus rounding eps |y| / h, relative to the slope */
    assert_close(ld, log(slope), 0, 1e-6 + 1e-9 / slope);
  }
}

/* Reverse mode against central differences of L = a y + b logdet, per element, w.r.t. x and
 * every raw parameter.  Points in the tails must get dx = a and dtheta exactly 0. */
static void check_gradients(double scale, double xspan, unsigned seed, double tol) {
  enum { N = 300 };
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  double *theta = malloc(N * P * sizeof *theta), *gth = malloc(N * P * sizeof *gth);
  double x[N], a[N], b[N], gx[N];
  random_theta(&r, N, scale, theta);
  for (int i = 0; i < N; i++) {
    x[i] = xspan * CONF.B * (2 * cnf_rng_uniform(&r) - 1);
    a[i] = cnf_rng_normal(&r);
    b[i] = cnf_rng_normal(&r);
  }
  cnf_rqs_backward(&CONF, N, x, theta, a, b, gx, gth);
  int tails = 0;
  for (int i = 0; i < N; i++) {
    double *th = theta + (size_t)i * P;
    double ld, y = fwd1(th, x[i], &ld);
    assert_true(isfinite(gx[i]));
    if (fabs(x[i]) > CONF.B) {
      tails++;
      assert_true(y == x[i] && ld == 0.0);
      assert_true(gx[i] == a[i]);
      for (int p = 0; p < P; p++)
        assert_true(gth[(size_t)i * P + p] == 0.0);
      continue;
    }
    const double hx = 1e-6;
    double lp, lm;
    double yp = fwd1(th, x[i] + hx, &lp), ym = fwd1(th, x[i] - hx, &lm);
    double fd = (a[i] * (yp - ym) + b[i] * (lp - lm)) / (2 * hx);
    assert_close(gx[i], fd, tol, tol);
    for (int p = 0; p < P; p++) {
      const double ht = 1e-6, save = th[p];
      th[p] = save + ht;
      yp = fwd1(th, x[i], &lp);
      th[p] = save - ht;
      ym = fwd1(th, x[i], &lm);
      th[p] = save;
      fd = (a[i] * (yp - ym) + b[i] * (lp - lm)) / (2 * ht);
      assert_close(gth[(size_t)i * P + p], fd, tol, tol);
    }
  }
  if (xspan > 1)
    assert_true(tails > 10);
  /* NULL outputs are allowed and do not change the others */
  double gx2[N];
  cnf_rqs_backward(&CONF, N, x, theta, a, b, gx2, NULL);
  for (int i = 0; i < N; i++)
    assert_true(gx2[i] == gx[i]);
  free(theta), free(gth);
}

static void test_gradients_fd(void **state) { check_gradients(2.0, 1.2, 15, 1e-6); }
static void test_gradients_fd_mild(void **state) { check_gradients(0.3, 1.2, 16, 1e-6); }

/* Other configurations: the smallest and largest K, and CaloFlow's constants (1e-6, B = 14).
 * Gradients against central differences (a y + b logdet), round trip, identity tails. */
static void check_conf(const cnf_rqs_conf *conf, unsigned seed) {
  enum { M = 37 }; /* two full tiles and a partial one */
  const int Pc = 3 * conf->K - 1;
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  double *theta = malloc(M * Pc * sizeof *theta), *gth = malloc(M * Pc * sizeof *gth);
  double x[M], a[M], b[M], gx[M], y[M], ld[M], xr[M], ldi[M];
  for (int i = 0; i < M * Pc; i++)
    theta[i] = 1.5 * cnf_rng_normal(&r);
  for (int i = 0; i < M; i++) {
    x[i] = 1.2 * conf->B * (2 * cnf_rng_uniform(&r) - 1);
    a[i] = cnf_rng_normal(&r), b[i] = cnf_rng_normal(&r);
  }
  cnf_rqs_forward(conf, M, x, theta, y, ld);
  cnf_rqs_inverse(conf, M, y, theta, xr, ldi);
  cnf_rqs_backward(conf, M, x, theta, a, b, gx, gth);
  for (int i = 0; i < M; i++) {
    double *th = theta + (size_t)i * Pc;
    assert_close(xr[i], x[i], 0, 1e-13 * conf->B * (1 + exp(-ld[i])));
    if (fabs(x[i]) > conf->B) {
      assert_true(y[i] == x[i] && ld[i] == 0.0 && gx[i] == a[i]);
      for (int q = 0; q < Pc; q++)
        assert_true(gth[(size_t)i * Pc + q] == 0.0);
      continue;
    }
    const double h = 1e-6 * conf->B;
    double yp, ym, lp, lm;
    cnf_rqs_forward(conf, 1, &(double){x[i] + h}, th, &yp, &lp);
    cnf_rqs_forward(conf, 1, &(double){x[i] - h}, th, &ym, &lm);
    const double tol = 1e-6 * (1 + fabs(gx[i]));
    assert_close(gx[i], (a[i] * (yp - ym) + b[i] * (lp - lm)) / (2 * h), 0, tol);
    for (int q = 0; q < Pc; q++) {
      const double ht = 1e-6, save = th[q];
      th[q] = save + ht;
      cnf_rqs_forward(conf, 1, &x[i], th, &yp, &lp);
      th[q] = save - ht;
      cnf_rqs_forward(conf, 1, &x[i], th, &ym, &lm);
      th[q] = save;
      const double fd = (a[i] * (yp - ym) + b[i] * (lp - lm)) / (2 * ht);
      assert_close(gth[(size_t)i * Pc + q], fd, 1e-5, 1e-6);
    }
  }
  free(theta), free(gth);
}

static void test_other_configs(void **state) {
  const cnf_rqs_conf k2 = {.K = 2, .B = 3.0, .min_w = 1e-3, .min_h = 1e-3, .min_d = 1e-3};
  const cnf_rqs_conf k64 = {.K = 64, .B = 5.0, .min_w = 1e-3, .min_h = 1e-3, .min_d = 1e-3};
  const cnf_rqs_conf calo = {.K = 8, .B = 14.0, .min_w = 1e-6, .min_h = 1e-6, .min_d = 1e-6};
  check_conf(&k2, 18);
  check_conf(&k64, 19);
  check_conf(&calo, 20);
}

/* |u| up to 50: outputs and gradients finite everywhere, round trip still holds. */
static void test_extreme_params_finite(void **state) {
  enum { N = 4000 };
  cnf_rng r;
  cnf_rng_init(&r, 17, 0, 0);
  double *theta = malloc(N * P * sizeof *theta), *gth = malloc(N * P * sizeof *gth);
  double x[N], y[N], ld[N], xr[N], ldi[N], gx[N], a[N], b[N];
  for (int i = 0; i < N * P; i++) {
    double v = cnf_rng_uniform(&r);
    theta[i] = v < 0.3 ? 50.0 : (v < 0.6 ? -50.0 : 50.0 * (2 * cnf_rng_uniform(&r) - 1));
  }
  for (int i = 0; i < N; i++) {
    x[i] = 1.2 * CONF.B * (2 * cnf_rng_uniform(&r) - 1);
    a[i] = 1, b[i] = 1;
  }
  cnf_rqs_forward(&CONF, N, x, theta, y, ld);
  cnf_rqs_inverse(&CONF, N, y, theta, xr, ldi);
  cnf_rqs_backward(&CONF, N, x, theta, a, b, gx, gth);
  assert_true(cnf_all_finite_d(N, y) && cnf_all_finite_d(N, ld));
  assert_true(cnf_all_finite_d(N, xr) && cnf_all_finite_d(N, ldi));
  assert_true(cnf_all_finite_d(N, gx) && cnf_all_finite_d((size_t)N * P, gth));
  for (int i = 0; i < N; i++) {
    /* slopes range over ~1e-6..1e6 here: the inverse loses digits proportionally */
    assert_close(xr[i], x[i], 0, 1e-6);
    assert_close(ld[i] + ldi[i], 0.0, 0, 1e-6);
  }
  /* inverse of values on the y-knots and at the endpoints, extreme params */
  double yk[K + 1], knots[K + 1], xo[K + 1], lo[K + 1], th1[(K + 1) * P];
  for (int t = 0; t < 20; t++) {
    ref_knots(theta + (size_t)t * P + K, CONF.min_h, CONF.B, knots);
    for (int k = 0; k <= K; k++) {
      yk[k] = k == 0 ? -CONF.B : (k == K ? CONF.B : knots[k]);
      memcpy(th1 + (size_t)k * P, theta + (size_t)t * P, P * sizeof *th1);
    }
    cnf_rqs_inverse(&CONF, K + 1, yk, th1, xo, lo);
    assert_true(cnf_all_finite_d(K + 1, xo) && cnf_all_finite_d(K + 1, lo));
    assert_true(xo[0] == -CONF.B);
    assert_close(xo[K], CONF.B, 0, 1e-13);
  }
  free(theta), free(gth);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_random),
      cmocka_unit_test(test_round_trip_special_points),
      cmocka_unit_test(test_identity_init),
      cmocka_unit_test(test_boundary_derivative_is_one),
      cmocka_unit_test(test_logdet_matches_numerical_derivative),
      cmocka_unit_test(test_gradients_fd),
      cmocka_unit_test(test_gradients_fd_mild),
      cmocka_unit_test(test_other_configs),
      cmocka_unit_test(test_extreme_params_finite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
