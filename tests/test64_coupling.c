/* RQS coupling block (src/flow/coupling.c + src/nn/mlp.c), double library: finite-difference
 * gradients w.r.t. parameters, x and c of L = sum(a.z + b logdet), inverse round trip, log-det
 * against the numerical Jacobian, the per-event and per-element tails rules, identity init. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/flow/bijector_impl.h"

enum { D = 5, C = 2, D1 = 3, D2 = 2, N = 12, K = 6 };
static const double BOUND = 2.5;

typedef struct fixture {
  cnf_bijector b;
  double *params, *grads;
} fixture;

/* Build the block the way cnf_flow_create does, with the subnet's every layer random and the
 * parameters then scaled by `gain` (larger gain: more nonlinear splines). */
static void fixture_make(fixture *f, cnf_coupling_tails tails, int identity, double gain,
                         uint64_t seed) {
  memset(f, 0, sizeof *f);
  f->b.spec = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS,
                                  .hidden = 7,
                                  .n_hidden = 2,
                                  .bins = K,
                                  .tail_bound = BOUND,
                                  .min_bin_width = 1e-3,
                                  .min_bin_height = 1e-3,
                                  .min_derivative = 1e-3,
                                  .tails = tails};
  f->b.dim = D;
  f->b.cond_dim = C;
  assert_int_equal(cnf_bij_coupling_create(&f->b), 0);
  /* layout from flow.h: W0 (H, D1+C), b0, W1 (H, H), b1, Wout (D2*P, H), bout */
  const size_t H = 7, P = 3 * K - 1;
  assert_int_equal(f->b.n_params, H * (D1 + C) + H + H * H + H + D2 * P * H + D2 * P);
  f->params = calloc(f->b.n_params, sizeof(double));
  f->grads = calloc(f->b.n_params, sizeof(double));
  f->b.params = f->params;
  f->b.grads = f->grads;
  assert_int_equal(f->b.ops->reserve(&f->b, N), 0);
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  assert_int_equal(f->b.ops->init_params(&f->b, &r, identity), 0);
  for (size_t k = 0; k < f->b.n_params; k++)
    f->params[k] *= gain;
}

static void fixture_free(fixture *f) {
  f->b.ops->destroy(&f->b);
  free(f->params), free(f->grads);
}

static void random_batch(cnf_rng *r, double sx, double *x, double *c) {
  for (int i = 0; i < N * D; i++)
    x[i] = sx * cnf_rng_normal(r);
  for (int i = 0; i < N * C; i++)
    c[i] = cnf_rng_normal(r);
}

/* L = sum(a.z) + sum(b logdet) */
static double loss(fixture *f, const double *x, const double *c, const double *a,
                   const double *bw) {
  double z[N * D], ld[N] = {0}, L = 0;
  assert_int_equal(f->b.ops->forward(&f->b, N, x, c, z, ld), 0);
  for (int i = 0; i < N * D; i++)
    L += a[i] * z[i];
  for (int i = 0; i < N; i++)
    L += bw[i] * ld[i];
  return L;
}

static void check_gradients(cnf_coupling_tails tails, uint64_t seed) {
  fixture f;
  fixture_make(&f, tails, 0, 2.0, seed);
  cnf_rng r;
  cnf_rng_init(&r, seed, 1, 0);
  double x[N * D], c[N * C], a[N * D], bw[N], z[N * D], ld[N] = {0};
  double dx[N * D], dc[N * C];
  random_batch(&r, 1.2, x, c); /* some events have |x2_j| > B */
  for (int i = 0; i < N * D; i++)
    a[i] = cnf_rng_normal(&r);
  for (int i = 0; i < N; i++)
    bw[i] = cnf_rng_normal(&r);
  for (int i = 0; i < N * C; i++)
    dc[i] = 0.5; /* dc accumulates: start from a known value */
  assert_int_equal(f.b.ops->forward(&f.b, N, x, c, z, ld), 0);
  assert_int_equal(f.b.ops->backward(&f.b, N, x, c, z, a, bw, dx, dc), 0);
  const double h = 1e-6, tol = 1e-6;
  for (size_t k = 0; k < f.b.n_params; k++) {
    const double save = f.params[k];
    f.params[k] = save + h;
    double lp = loss(&f, x, c, a, bw);
    f.params[k] = save - h;
    double lm = loss(&f, x, c, a, bw);
    f.params[k] = save;
    assert_close(f.grads[k], (lp - lm) / (2 * h), tol, tol);
  }
  for (int k = 0; k < N * D; k++) {
    const double save = x[k];
    x[k] = save + h;
    double lp = loss(&f, x, c, a, bw);
    x[k] = save - h;
    double lm = loss(&f, x, c, a, bw);
    x[k] = save;
    assert_close(dx[k], (lp - lm) / (2 * h), tol, tol);
  }
  for (int k = 0; k < N * C; k++) {
    const double save = c[k];
    c[k] = save + h;
    double lp = loss(&f, x, c, a, bw);
    c[k] = save - h;
    double lm = loss(&f, x, c, a, bw);
    c[k] = save;
    assert_close(dc[k] - 0.5, (lp - lm) / (2 * h), tol, tol);
  }
  /* gradients accumulate: a second backward doubles them; dc may be NULL */
  double g1 = f.grads[0], g2 = f.grads[f.b.n_params - 1];
  assert_int_equal(f.b.ops->forward(&f.b, N, x, c, z, ld), 0);
  assert_int_equal(f.b.ops->backward(&f.b, N, x, c, z, a, bw, dx, NULL), 0);
  assert_close(f.grads[0], 2 * g1, 1e-12, 1e-14);
  assert_close(f.grads[f.b.n_params - 1], 2 * g2, 1e-12, 1e-14);
  fixture_free(&f);
}

static void test_gradients_fd_event_tails(void **state) { check_gradients(CNF_TAILS_EVENT, 31); }
static void test_gradients_fd_element_tails(void **state) {
  check_gradients(CNF_TAILS_ELEMENT, 32);
}

static void check_round_trip(cnf_coupling_tails tails, uint64_t seed) {
  fixture f;
  fixture_make(&f, tails, 0, 2.0, seed);
  cnf_rng r;
  cnf_rng_init(&r, seed, 1, 0);
  double x[N * D], c[N * C], z[N * D], xr[N * D], ldf[N], ldi[N];
  random_batch(&r, 1.5, x, c);
  for (int i = 0; i < N; i++)
    ldf[i] = ldi[i] = 1.0; /* logdet accumulates */
  assert_int_equal(f.b.ops->forward(&f.b, N, x, c, z, ldf), 0);
  assert_int_equal(f.b.ops->inverse(&f.b, N, z, c, xr, ldi), 0);
  for (int i = 0; i < N * D; i++)
    assert_close(xr[i], x[i], 0, 1e-10);
  for (int i = 0; i < N; i++) {
    assert_close((ldf[i] - 1) + (ldi[i] - 1), 0.0, 0, 1e-10);
    for (int j = 0; j < D1; j++)
      assert_true(z[i * D + j] == x[i * D + j]);
  }
  fixture_free(&f);
}

static void test_round_trip_event_tails(void **state) { check_round_trip(CNF_TAILS_EVENT, 33); }
static void test_round_trip_element_tails(void **state) {
  check_round_trip(CNF_TAILS_ELEMENT, 34);
}

static void test_logdet_matches_numerical_jacobian(void **state) {
  fixture f;
  fixture_make(&f, CNF_TAILS_EVENT, 0, 2.0, 35);
  cnf_rng r;
  cnf_rng_init(&r, 35, 1, 0);
  double x[N * D], c[N * C], z[N * D], ld[N] = {0}, zp[N * D], zm[N * D], tmp[N];
  random_batch(&r, 0.8, x, c);
  assert_int_equal(f.b.ops->forward(&f.b, N, x, c, z, ld), 0);
  const double h = 1e-6;
  double J[N][D * D];
  for (int j = 0; j < D; j++) {
    double xs[N * D];
    memcpy(xs, x, sizeof xs);
    for (int i = 0; i < N; i++)
      xs[i * D + j] = x[i * D + j] + h;
    assert_int_equal(f.b.ops->forward(&f.b, N, xs, c, zp, tmp), 0);
    for (int i = 0; i < N; i++)
      xs[i * D + j] = x[i * D + j] - h;
    assert_int_equal(f.b.ops->forward(&f.b, N, xs, c, zm, tmp), 0);
    for (int i = 0; i < N; i++)
      for (int o = 0; o < D; o++)
        J[i][o * D + j] = (zp[i * D + o] - zm[i * D + o]) / (2 * h);
  }
  int inside = 0;
  for (int i = 0; i < N; i++) {
    inside += ld[i] != 0.0;
    assert_close(ld[i], testutil_log_abs_det(D, J[i]), 0, 1e-6);
  }
  assert_true(inside > N / 2);
  fixture_free(&f);
}

/* One x2 coordinate beyond B: the per-event rule leaves the whole x2 half alone (log-det 0);
 * the elementwise rule still transforms the other coordinate. */
static void test_tails_rules(void **state) {
  fixture fe, fl;
  fixture_make(&fe, CNF_TAILS_EVENT, 0, 2.0, 36);
  fixture_make(&fl, CNF_TAILS_ELEMENT, 0, 2.0, 36);
  double x[N * D], c[N * C], ze[N * D], zl[N * D], lde[N] = {0}, ldl[N] = {0};
  cnf_rng r;
  cnf_rng_init(&r, 36, 1, 0);
  random_batch(&r, 0.5, x, c);
  x[0 * D + D1 + 1] = BOUND + 0.5;                     /* event 0: one coordinate above */
  x[1 * D + D1 + 0] = -BOUND - 1e-9;                   /* event 1: just below -B */
  x[2 * D + D1 + 0] = BOUND, x[2 * D + D1 + 1] = -BOUND; /* event 2: both exactly on +-B */
  assert_int_equal(fe.b.ops->forward(&fe.b, N, x, c, ze, lde), 0);
  assert_int_equal(fl.b.ops->forward(&fl.b, N, x, c, zl, ldl), 0);
  for (int i = 0; i < 2; i++) {
    for (int j = 0; j < D; j++)
      assert_true(ze[i * D + j] == x[i * D + j]);
    assert_true(lde[i] == 0.0);
  }
  /* elementwise: the outside coordinate is untouched, the inside one transformed */
  assert_true(zl[0 * D + D1 + 1] == x[0 * D + D1 + 1]);
  assert_true(fabs(zl[0 * D + D1 + 0] - x[0 * D + D1 + 0]) > 1e-6);
  assert_true(ldl[0] != 0.0);
  /* on the bound counts as inside; the endpoints map onto themselves */
  assert_close(ze[2 * D + D1 + 0], BOUND, 0, 1e-12);
  assert_close(ze[2 * D + D1 + 1], -BOUND, 0, 1e-12);
  for (int i = 3; i < N; i++)
    assert_true(lde[i] == ldl[i]); /* all inside: the two rules agree */
  /* gradients of untouched events w.r.t. their x2 are the upstream ones */
  double a[N * D], bw[N], dx[N * D];
  for (int i = 0; i < N * D; i++)
    a[i] = 0.1 * (i % 7) - 0.3;
  for (int i = 0; i < N; i++)
    bw[i] = 1.0;
  assert_int_equal(fe.b.ops->backward(&fe.b, N, x, c, ze, a, bw, dx, NULL), 0);
  for (int j = D1; j < D; j++)
    assert_true(dx[0 * D + j] == a[0 * D + j]);
  fixture_free(&fe), fixture_free(&fl);
}

static void test_identity_init(void **state) {
  fixture f;
  fixture_make(&f, CNF_TAILS_EVENT, 1, 1.0, 37);
  double x[N * D], c[N * C], z[N * D], ld[N] = {0};
  cnf_rng r;
  cnf_rng_init(&r, 37, 1, 0);
  random_batch(&r, 1.5, x, c);
  assert_int_equal(f.b.ops->forward(&f.b, N, x, c, z, ld), 0);
  for (int i = 0; i < N * D; i++)
    assert_close(z[i], x[i], 0, 1e-13);
  for (int i = 0; i < N; i++)
    assert_close(ld[i], 0.0, 0, 1e-13);
  fixture_free(&f);
}

/* Batches larger than the reservation grow the caches; inverse handles several chunks. */
static void test_large_batch_inverse_chunks(void **state) {
  fixture f;
  fixture_make(&f, CNF_TAILS_EVENT, 0, 2.0, 38);
  enum { M = 150 };
  double *x = malloc(M * D * sizeof *x), *c = malloc(M * C * sizeof *c);
  double *z = malloc(M * D * sizeof *z), *xr = malloc(M * D * sizeof *xr);
  double ldf[M] = {0}, ldi[M] = {0};
  cnf_rng r;
  cnf_rng_init(&r, 38, 1, 0);
  for (int i = 0; i < M * D; i++)
    x[i] = cnf_rng_normal(&r);
  for (int i = 0; i < M * C; i++)
    c[i] = cnf_rng_normal(&r);
  assert_int_equal(f.b.ops->forward(&f.b, M, x, c, z, ldf), 0);
  assert_int_equal(f.b.ops->inverse(&f.b, M, z, c, xr, ldi), 0);
  for (int i = 0; i < M * D; i++)
    assert_close(xr[i], x[i], 0, 1e-10);
  for (int i = 0; i < M; i++)
    assert_close(ldf[i] + ldi[i], 0.0, 0, 1e-10);
  free(x), free(c), free(z), free(xr);
  fixture_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gradients_fd_event_tails),
      cmocka_unit_test(test_gradients_fd_element_tails),
      cmocka_unit_test(test_round_trip_event_tails),
      cmocka_unit_test(test_round_trip_element_tails),
      cmocka_unit_test(test_logdet_matches_numerical_jacobian),
      cmocka_unit_test(test_tails_rules),
      cmocka_unit_test(test_identity_init),
      cmocka_unit_test(test_large_batch_inverse_chunks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
