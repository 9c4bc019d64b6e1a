/* ActNorm (src/flow/actnorm.c), double library: data init gives zero-mean unit-std output,
 * closed-form log-det, inverse round trip, finite-difference gradients, zero-std error. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/flow/bijector_impl.h"

enum { D = 4, N = 50 };

static void make(cnf_bijector *b, double *params, double *grads) {
  memset(b, 0, sizeof *b);
  b->spec.kind = CNF_BIJ_ACTNORM;
  b->dim = D;
  b->cond_dim = 0;
  assert_int_equal(cnf_bij_actnorm_create(b), 0);
  assert_int_equal(b->n_params, 2 * D);
  b->params = params;
  b->grads = grads;
  assert_int_equal(b->ops->reserve(b, N), 0);
}

static void random_data(uint64_t seed, double *x) {
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  for (int i = 0; i < N; i++)
    for (int d = 0; d < D; d++)
      x[i * D + d] = (d + 1) * 3.0 * cnf_rng_normal(&r) + 10.0 * d - 7.0;
}

static void test_identity_then_data_init(void **state) {
  double params[2 * D], grads[2 * D] = {0}, x[N * D], z[N * D], ld[N] = {0};
  cnf_bijector b;
  make(&b, params, grads);
  for (int k = 0; k < 2 * D; k++)
    params[k] = 1.0;
  assert_int_equal(b.ops->init_params(&b, NULL, 1), 0);
  random_data(41, x);
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  for (int i = 0; i < N * D; i++)
    assert_true(z[i] == x[i]);
  assert_true(ld[0] == 0.0);
  assert_int_equal(b.ops->data_init(&b, N, x), 0);
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  for (int d = 0; d < D; d++) {
    double m = 0, ss = 0;
    for (int i = 0; i < N; i++)
      m += z[i * D + d];
    m /= N;
    for (int i = 0; i < N; i++)
      ss += (z[i * D + d] - m) * (z[i * D + d] - m);
    assert_close(m, 0.0, 0, 1e-12);
    assert_close(sqrt(ss / (N - 1)), 1.0, 1e-12, 0);
  }
  /* log-det = -sum log std, the same for every event */
  double want = 0;
  for (int d = 0; d < D; d++)
    want -= params[D + d];
  assert_close(ld[0], want, 1e-14, 1e-14);
  assert_close(ld[N - 1], want, 1e-14, 1e-14);
  b.ops->destroy(&b);
}

static void test_round_trip(void **state) {
  double params[2 * D], grads[2 * D] = {0}, x[N * D], z[N * D], xr[N * D];
  double ldf[N], ldi[N];
  cnf_bijector b;
  make(&b, params, grads);
  for (int d = 0; d < D; d++)
    params[d] = 0.3 * d - 1, params[D + d] = 0.7 - 0.4 * d;
  random_data(42, x);
  for (int i = 0; i < N; i++)
    ldf[i] = ldi[i] = 0.25; /* accumulated into */
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ldf), 0);
  assert_int_equal(b.ops->inverse(&b, N, z, NULL, xr, ldi), 0);
  for (int i = 0; i < N * D; i++)
    assert_close(xr[i], x[i], 1e-14, 1e-13);
  for (int i = 0; i < N; i++)
    assert_close(ldf[i] + ldi[i], 0.5, 0, 1e-14);
  b.ops->destroy(&b);
}

static double loss(cnf_bijector *b, const double *x, const double *a, const double *bw) {
  double z[N * D], ld[N] = {0}, L = 0;
  assert_int_equal(b->ops->forward(b, N, x, NULL, z, ld), 0);
  for (int i = 0; i < N * D; i++)
    L += a[i] * z[i];
  for (int i = 0; i < N; i++)
    L += bw[i] * ld[i];
  return L;
}

static void test_gradients_fd(void **state) {
  double params[2 * D], grads[2 * D] = {0}, x[N * D], z[N * D], ld[N] = {0};
  double a[N * D], bw[N], dx[N * D];
  cnf_bijector b;
  make(&b, params, grads);
  cnf_rng r;
  cnf_rng_init(&r, 43, 1, 0);
  for (int d = 0; d < 2 * D; d++)
    params[d] = cnf_rng_normal(&r);
  random_data(43, x);
  for (int i = 0; i < N * D; i++)
    a[i] = cnf_rng_normal(&r);
  for (int i = 0; i < N; i++)
    bw[i] = cnf_rng_normal(&r);
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  assert_int_equal(b.ops->backward(&b, N, x, NULL, z, a, bw, dx, NULL), 0);
  const double h = 1e-6;
  for (int k = 0; k < 2 * D; k++) {
    double s = params[k];
    params[k] = s + h;
    double lp = loss(&b, x, a, bw);
    params[k] = s - h;
    double lm = loss(&b, x, a, bw);
    params[k] = s;
    assert_close(grads[k], (lp - lm) / (2 * h), 1e-7, 1e-7);
  }
  for (int k = 0; k < N * D; k++) {
    double s = x[k];
    x[k] = s + h;
    double lp = loss(&b, x, a, bw);
    x[k] = s - h;
    double lm = loss(&b, x, a, bw);
    x[k] = s;
    assert_close(dx[k], (lp - lm) / (2 * h), 1e-7, 1e-7);
  }
  b.ops->destroy(&b);
}

static void test_zero_std_is_a_clear_error(void **state) {
  double params[2 * D], grads[2 * D] = {0}, x[N * D];
  cnf_bijector b;
  make(&b, params, grads);
  random_data(44, x);
  for (int i = 0; i < N; i++)
    x[i * D + 2] = 5.0; /* dimension 2 constant */
  assert_int_equal(b.ops->data_init(&b, N, x), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "dimension 2"));
  assert_int_equal(b.ops->data_init(&b, 1, x), CNF_ERR_ARG);
  b.ops->destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identity_then_data_init),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_gradients_fd),
      cmocka_unit_test(test_zero_std_is_a_clear_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
