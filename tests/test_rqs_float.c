/* RQS kernel in the float (production) library: round trip, identity init, finiteness of
 * outputs and gradients under extreme parameters with the architecture-B bound (B = 14), and
 * the float result against a double-precision evaluation of the same closed form. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

#include "../src/flow/bijector_impl.h"

enum { K = 10, P = 3 * K - 1, N = 4096 };
static const cnf_rqs_conf CONF = {.K = K, .B = 14.0f, .min_w = 1e-3f, .min_h = 1e-3f,
                                  .min_d = 1e-3f};

/* Double-precision forward of one element from the closed form (the peer's formulas). */
static double ref_forward(const float *th, double x, double *ld) {
  const double B = CONF.B, md = CONF.min_d;
  if (x < -B || x > B) {
    *ld = 0;
    return x;
  }
  double cw[K + 1], ch[K + 1], d[K + 1];
  for (int pass = 0; pass < 2; pass++) {
    const float *u = th + pass * K;
    double *knots = pass ? ch : cw, m = u[0], s = 0, p[K], cum = 0;
    for (int j = 1; j < K; j++)
      m = fmax(m, u[j]);
    for (int j = 0; j < K; j++)
      s += (p[j] = exp(u[j] - m));
    knots[0] = -B;
    for (int j = 0; j < K - 1; j++) {
      cum += 1e-3 + (1 - K * 1e-3) * p[j] / s;
      knots[j + 1] = 2 * B * cum - B;
    }
    knots[K] = B;
  }
  d[0] = d[K] = 1;
  for (int j = 1; j < K; j++)
    d[j] = md + log1p(exp(th[2 * K + j - 1]));
  int k = 0;
  for (int j = 1; j < K; j++)
    k += cw[j] <= x;
  double w = cw[k + 1] - cw[k], h = ch[k + 1] - ch[k], s = h / w, t = (x - cw[k]) / w;
  double t1m = t * (1 - t), den = s + (d[k] + d[k + 1] - 2 * s) * t1m;
  *ld = log(s * s * (d[k + 1] * t * t + 2 * s * t1m + d[k] * (1 - t) * (1 - t))) - 2 * log(den);
  return ch[k] + h * (s * t * t + d[k] * t1m) / den;
}

static void test_float_round_trip_and_reference(void **state) {
  cnf_rng r;
  cnf_rng_init(&r, 21, 0, 0);
  float *theta = malloc(N * P * sizeof *theta), *x = malloc(N * sizeof *x);
  float *y = malloc(N * sizeof *y), *ld = malloc(N * sizeof *ld);
  float *xr = malloc(N * sizeof *xr), *ldi = malloc(N * sizeof *ldi);
  for (int i = 0; i < N * P; i++)
    theta[i] = (float)cnf_rng_normal(&r);
  for (int i = 0; i < N; i++)
    x[i] = (float)(1.2 * CONF.B * (2 * cnf_rng_uniform(&r) - 1));
  cnf_rqs_forward(&CONF, N, x, theta, y, ld);
  cnf_rqs_inverse(&CONF, N, y, theta, xr, ldi);
  for (int i = 0; i < N; i++) {
    double lref, yref = ref_forward(theta + (size_t)i * P, x[i], &lref);
    const double amp = 1 + exp(-ld[i]);
    assert_close(y[i], yref, 0, 2e-5 * CONF.B);
    assert_close(ld[i], lref, 0, 1e-3);
    assert_close(xr[i], x[i], 0, 1e-5 * CONF.B * amp);
    assert_close(ld[i] + ldi[i], 0.0, 0, 2e-3 * amp);
  }
  free(theta), free(x), free(y), free(ld), free(xr), free(ldi);
}

static void test_float_identity_init(void **state) {
  float theta[P], x[64], y[64], ld[64];
  for (int j = 0; j < P; j++)
    theta[j] = j < 2 * K ? 0.0f : (float)cnf_rqs_identity_ud(CONF.min_d);
  for (int i = 0; i < 64; i++) {
    x[i] = (float)(-16.0 + 32.0 * i / 63);
    cnf_rqs_forward(&CONF, 1, x + i, theta, y + i, ld + i);
    assert_close(y[i], x[i], 0, 1e-5);
    assert_close(ld[i], 0.0, 0, 1e-5);
  }
}

static void test_float_extreme_params_finite(void **state) {
  cnf_rng r;
  cnf_rng_init(&r, 22, 0, 0);
  float *theta = malloc(N * P * sizeof *theta), *gth = malloc(N * P * sizeof *gth);
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *ld = malloc(N * sizeof *ld);
  float *xr = malloc(N * sizeof *xr), *gx = malloc(N * sizeof *gx), *one = malloc(N * sizeof *one);
  for (int i = 0; i < N * P; i++)
    theta[i] = (float)(50.0 * (2 * cnf_rng_uniform(&r) - 1));
  for (int i = 0; i < N; i++) {
    x[i] = (float)(1.2 * CONF.B * (2 * cnf_rng_uniform(&r) - 1));
    one[i] = 1;
  }
  x[0] = -14.0f, x[1] = 14.0f, x[2] = nextafterf(14.0f, 0), x[3] = nextafterf(14.0f, 100);
  cnf_rqs_forward(&CONF, N, x, theta, y, ld);
  assert_true(cnf_all_finite(N, y) && cnf_all_finite(N, ld));
  cnf_rqs_inverse(&CONF, N, y, theta, xr, ld);
  assert_true(cnf_all_finite(N, xr) && cnf_all_finite(N, ld));
  cnf_rqs_backward(&CONF, N, x, theta, one, one, gx, gth);
  assert_true(cnf_all_finite(N, gx) && cnf_all_finite((size_t)N * P, gth));
  free(theta), free(gth), free(x), free(y), free(ld), free(xr), free(gx), free(one);
}

/* A non-finite parameter (an overflowing network upstream) makes its own element non-finite,
 * so the flow's NLL check reports it instead of training on a silently finite value, and
 * leaves the other lanes of its tile bit-identical.  The float kernel's inline exp must also
 * stay defined behaviour for NaN input (run under -DCNFLOW_SANITIZE=ON). */
static void test_float_nonfinite_params_isolated(void **state) {
  enum { M = 40 }; /* two full tiles and a partial one */
  float theta[M * P], bad[M * P], x[M], y[M], ld[M], yb[M], ldb[M];
  float gth[M * P], gx[M], one[M];
  cnf_rng r;
  cnf_rng_init(&r, 23, 0, 0);
  for (int i = 0; i < M * P; i++)
    theta[i] = bad[i] = (float)(2 * cnf_rng_uniform(&r) - 1);
  for (int i = 0; i < M; i++) {
    x[i] = (float)(0.9 * CONF.B * (2 * cnf_rng_uniform(&r) - 1));
    one[i] = 1;
  }
  /* a NaN width, an infinite height (both enter every knot through the softmax), NaN
   * derivative parameters (all of them: a bin uses only its two knots'): one element each */
  const int hit[3] = {3, 17, 35};
  bad[hit[0] * P + 2] = NAN;
  bad[hit[1] * P + K + 5] = INFINITY;
  for (int j = 2 * K; j < P; j++)
    bad[hit[2] * P + j] = NAN;
  cnf_rqs_forward(&CONF, M, x, theta, y, ld);
  cnf_rqs_forward(&CONF, M, x, bad, yb, ldb);
  for (int i = 0; i < M; i++) {
    const int is_hit = i == hit[0] || i == hit[1] || i == hit[2];
    if (is_hit) {
      assert_false(isfinite(yb[i]) && isfinite(ldb[i]));
    } else {
      assert_true(yb[i] == y[i] && ldb[i] == ld[i]);
    }
  }
  cnf_rqs_inverse(&CONF, M, y, bad, yb, ldb);
  cnf_rqs_backward(&CONF, M, x, bad, one, one, gx, gth);
  for (int i = 0; i < M; i++)
    if (i != hit[0] && i != hit[1] && i != hit[2])
      assert_true(isfinite(yb[i]) && isfinite(gx[i]));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_float_round_trip_and_reference),
      cmocka_unit_test(test_float_identity_init),
      cmocka_unit_test(test_float_extreme_params_finite),
      cmocka_unit_test(test_float_nonfinite_params_isolated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
