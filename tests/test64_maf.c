/* MAF bijector blocks (src/flow/maf.c), double library: affine (both scale kinds) and RQS.
 * Central finite-difference gradients of L = sum_i (a_i . z_i + b_i logdet_i) w.r.t. every
 * unmasked parameter, the inputs and the conditions; round trips with log-dets cancelling
 * (several sampling tiles, RQS tails); log|det J| against a numerical Jacobian determinant;
 * identity init; the fast sequential inversion against a naive D-pass inversion written here
 * from the MADE and the element maps. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/flow/bijector_impl.h"
#include "cnflow/nn.h"

typedef struct maf_case {
  cnf_bijector_kind kind;
  cnf_affine_scale scale_kind;
  int D, C, H, L, K;
  double B;
} maf_case;

static const maf_case CASES[] = {
    {CNF_BIJ_MAF_AFFINE, CNF_AFFINE_SCALE_EXP, 4, 2, 16, 2, 0, 0},
    {CNF_BIJ_MAF_AFFINE, CNF_AFFINE_SCALE_EXP_TANH, 5, 3, 12, 3, 0, 0},
    {CNF_BIJ_MAF_RQS, CNF_AFFINE_SCALE_EXP, 4, 2, 16, 2, 5, 3.0},
    {CNF_BIJ_MAF_RQS, CNF_AFFINE_SCALE_EXP, 3, 1, 10, 2, 8, 2.5},
    {CNF_BIJ_MAF_RQS, CNF_AFFINE_SCALE_EXP, 2, 0, 10, 2, 4, 3.0},
};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

static int case_P(const maf_case *mc) { return mc->kind == CNF_BIJ_MAF_RQS ? 3 * mc->K - 1 : 2; }

/* A MAF block with its own parameter and gradient buffers.  init: 0 random, 1 identity.
 * Random weights are scaled up (hidden x1.5, output x out_scale) for strong non-linearity. */
static void maf_make(cnf_bijector *b, const maf_case *mc, uint64_t seed, int identity,
                     double out_scale) {
  memset(b, 0, sizeof *b);
  b->spec.kind = mc->kind;
  b->spec.hidden = mc->H;
  b->spec.n_hidden = mc->L;
  b->spec.bins = mc->K;
  b->spec.tail_bound = mc->B;
  b->spec.min_bin_width = b->spec.min_bin_height = b->spec.min_derivative = 1e-3;
  b->spec.scale_kind = mc->scale_kind;
  b->dim = mc->D;
  b->cond_dim = mc->C;
  assert_int_equal(cnf_bij_maf_create(b), 0);
  assert_int_equal(b->n_params,
                   cnf_made_count_params(mc->D, mc->C, mc->H, mc->L, case_P(mc)));
  b->params = calloc(b->n_params, sizeof(double));
  b->grads = calloc(b->n_params, sizeof(double));
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  assert_int_equal(b->ops->init_params(b, &r, identity), 0);
  if (!identity) {
    cnf_made *m;
    assert_int_equal(cnf_made_create(mc->D, mc->C, mc->H, mc->L, case_P(mc), &m), 0);
    const size_t out0 = cnf_made_offset_weight(m, mc->L);
    for (size_t i = 0; i < b->n_params; i++)
      b->params[i] *= i < out0 ? 1.5 : out_scale;
    cnf_made_free(&m);
  }
  assert_int_equal(b->ops->params_changed(b), 0);
}

static void maf_drop(cnf_bijector *b) {
  b->ops->destroy(b);
  free(b->params);
  free(b->grads);
}

/* Inputs: RQS cases get ~1/4 of the elements in the linear tails. */
static double *make_x(cnf_rng *r, const maf_case *mc, int n) {
  return testutil_alloc_normal(r, (size_t)n * mc->D, mc->kind == CNF_BIJ_MAF_RQS ? 0.9 * mc->B : 1.0);
}

static void run_forward(cnf_bijector *b, int n, const double *x, const double *c, double *z,
                        double *ld) {
  memset(ld, 0, sizeof(double) * n);
  assert_int_equal(b->ops->forward(b, n, x, c, z, ld), 0);
}

static double loss(cnf_bijector *b, int n, const double *x, const double *c, const double *a,
                   const double *bw, double *z, double *ld) {
  run_forward(b, n, x, c, z, ld);
  double s = 0;
  for (int i = 0; i < n; i++) {
    s += bw[i] * ld[i];
    for (int d = 0; d < b->dim; d++)
      s += a[i * b->dim + d] * z[i * b->dim + d];
  }
  return s;
}

static void test_gradients_fd(void **state) {
  enum { N = 8 };
  const double eps = 1e-6;
  for (int t = 0; t < N_CASES; t++) {
    const maf_case *mc = &CASES[t];
    const int D = mc->D, C = mc->C;
    cnf_bijector b;
    maf_make(&b, mc, 100 + t, 0, mc->kind == CNF_BIJ_MAF_RQS ? 3.0 : 1.0);
    cnf_rng r;
    cnf_rng_init(&r, 200 + t, 0, 0);
    double *x = make_x(&r, mc, N), *c = testutil_alloc_normal(&r, (size_t)N * C, 1.0);
    double *a = testutil_alloc_normal(&r, (size_t)N * D, 1.0), *bw = testutil_alloc_normal(&r, N, 1.0);
    double *z = malloc(sizeof(double) * N * D), *ld = malloc(sizeof(double) * N);
    double *dx = malloc(sizeof(double) * N * D), *dc = calloc((size_t)N * C + 1, sizeof(double));
    loss(&b, N, x, c, a, bw, z, ld);
    for (int i = 0; i < N * D; i++)
      dx[i] = NAN; /* dx is overwritten */
    assert_int_equal(b.ops->backward(&b, N, x, c, z, a, bw, dx, C ? dc : NULL), 0);
    double gscale = 0;
    for (size_t i = 0; i < b.n_params; i++)
      gscale = fmax(gscale, fabs(b.grads[i]));
    size_t checked = 0;
    char what[64];
    for (size_t i = 0; i < b.n_params; i++) {
      if (b.params[i] == 0.0) { /* masked (random unmasked weights are never exactly 0) */
        assert_true(b.grads[i] == 0.0);
        continue;
      }
      const double p0 = b.params[i];
      b.params[i] = p0 + eps;
      const double lp = loss(&b, N, x, c, a, bw, z, ld);
      b.params[i] = p0 - eps;
      const double lm = loss(&b, N, x, c, a, bw, z, ld);
      b.params[i] = p0;
      snprintf(what, sizeof what, "case %d param %zu", t, i);
      check_fd(what, b.grads[i], (lp - lm) / (2 * eps), gscale);
      checked++;
    }
    assert_true(checked >= 200);
    for (int i = 0; i < N * D; i++) {
      const double x0 = x[i];
      x[i] = x0 + eps;
      const double lp = loss(&b, N, x, c, a, bw, z, ld);
      x[i] = x0 - eps;
      const double lm = loss(&b, N, x, c, a, bw, z, ld);
      x[i] = x0;
      snprintf(what, sizeof what, "case %d x %d", t, i);
      check_fd(what, dx[i], (lp - lm) / (2 * eps), gscale);
    }
    for (int i = 0; i < N * C; i++) {
      const double c0 = c[i];
      c[i] = c0 + eps;
      const double lp = loss(&b, N, x, c, a, bw, z, ld);
      c[i] = c0 - eps;
      const double lm = loss(&b, N, x, c, a, bw, z, ld);
      c[i] = c0;
      snprintf(what, sizeof what, "case %d c %d", t, i);
      check_fd(what, dc[i], (lp - lm) / (2 * eps), gscale);
    }
    free(x), free(c), free(a), free(bw), free(z), free(ld), free(dx), free(dc);
    maf_drop(&b);
  }
}

/* x -> z -> x over several sampling tiles (n = 300); log-dets cancel. */
static void test_round_trip(void **state) {
  enum { N = 300 };
  for (int t = 0; t < N_CASES; t++) {
    const maf_case *mc = &CASES[t];
    const int D = mc->D, C = mc->C;
    cnf_bijector b;
    maf_make(&b, mc, 300 + t, 0, mc->kind == CNF_BIJ_MAF_RQS ? 3.0 : 1.0);
    cnf_rng r;
    cnf_rng_init(&r, 400 + t, 0, 0);
    double *x = make_x(&r, mc, N), *c = testutil_alloc_normal(&r, (size_t)N * C, 1.0);
    double *z = malloc(sizeof(double) * N * D), *xr = malloc(sizeof(double) * N * D);
    double *ldf = malloc(sizeof(double) * N), *ldi = calloc(N, sizeof(double));
    assert_int_equal(b.ops->reserve(&b, 16), 0); /* forward must grow the caches */
    run_forward(&b, N, x, c, z, ldf);
    assert_int_equal(b.ops->inverse(&b, N, z, c, xr, ldi), 0);
    int tails = 0;
    for (int i = 0; i < N; i++) {
      for (int d = 0; d < D; d++) {
        assert_close(xr[i * D + d], x[i * D + d], 1e-9, 1e-9);
        tails += fabs(x[i * D + d]) > mc->B;
      }
      assert_close(ldf[i] + ldi[i], 0.0, 0, 1e-9 * (1 + fabs(ldf[i])));
    }
    if (mc->kind == CNF_BIJ_MAF_RQS)
      assert_true(tails > N * D / 10); /* the tails were exercised */
    /* the transform is far from the identity */
    double dev = 0;
    for (int i = 0; i < N * D; i++)
      dev = fmax(dev, fabs(z[i] - x[i]));
    assert_true(dev > 0.5);
    free(x), free(c), free(z), free(xr), free(ldf), free(ldi);
    maf_drop(&b);
  }
}

/* Numerical Jacobian dz/dx (central differences, D = 3..6): triangular, log|det| = logdet. */
static void test_logdet_vs_jacobian(void **state) {
  enum { N = 5 };
  const double eps = 1e-5;
  for (int D = 3; D <= 6; D++) {
    for (int kind = 0; kind < 2; kind++) {
      maf_case mc = kind ? (maf_case){CNF_BIJ_MAF_RQS, CNF_AFFINE_SCALE_EXP, D, 2, 20, 2, 6, 3.0}
                         : (maf_case){CNF_BIJ_MAF_AFFINE, CNF_AFFINE_SCALE_EXP_TANH, D, 2, 20,
                                      2, 0, 0};
      cnf_bijector b;
      maf_make(&b, &mc, 500 + D, 0, kind ? 3.0 : 1.0);
      cnf_rng r;
      cnf_rng_init(&r, 600 + D, (uint64_t)kind, 0);
      double *x = make_x(&r, &mc, N), *c = testutil_alloc_normal(&r, (size_t)N * 2, 1.0);
      double z[6 * N], zp[6], zm[6], ld[N], ldp[1], J[36];
      run_forward(&b, N, x, c, z, ld);
      for (int i = 0; i < N; i++) {
        double xi[6];
        memcpy(xi, x + i * D, sizeof(double) * D);
        for (int j = 0; j < D; j++) {
          const double x0 = xi[j];
          xi[j] = x0 + eps;
          run_forward(&b, 1, xi, c + 2 * i, zp, ldp);
          xi[j] = x0 - eps;
          run_forward(&b, 1, xi, c + 2 * i, zm, ldp);
          xi[j] = x0;
          for (int k = 0; k < D; k++) {
            J[k * D + j] = (zp[k] - zm[k]) / (2 * eps);
            if (j > k)
              assert_true(zp[k] == zm[k]); /* dz_k/dx_j = 0 exactly for j > k */
          }
        }
        assert_close(testutil_log_abs_det(D, J), ld[i], 0, 1e-7);
      }
      free(x), free(c);
      maf_drop(&b);
    }
  }
}

/* Identity init: z == x and logdet == 0 (exactly for affine), both directions. */
static void test_identity_init(void **state) {
  enum { N = 50 };
  for (int t = 0; t < N_CASES; t++) {
    const maf_case *mc = &CASES[t];
    const int D = mc->D, C = mc->C;
    cnf_bijector b;
    maf_make(&b, mc, 700 + t, 1, 1.0);
    cnf_rng r;
    cnf_rng_init(&r, 800 + t, 0, 0);
    double *x = make_x(&r, mc, N), *c = testutil_alloc_normal(&r, (size_t)N * C, 1.0);
    double *z = malloc(sizeof(double) * N * D), *xr = malloc(sizeof(double) * N * D);
    double *ld = malloc(sizeof(double) * N), *ldi = calloc(N, sizeof(double));
    run_forward(&b, N, x, c, z, ld);
    assert_int_equal(b.ops->inverse(&b, N, x, c, xr, ldi), 0);
    const double tol = mc->kind == CNF_BIJ_MAF_RQS ? 1e-13 : 0.0;
    for (int i = 0; i < N; i++) {
      for (int d = 0; d < D; d++) {
        assert_close(z[i * D + d], x[i * D + d], 0, tol * (1 + mc->B));
        assert_close(xr[i * D + d], x[i * D + d], 0, tol * (1 + mc->B));
      }
      assert_close(ld[i], 0.0, 0, tol);
      assert_close(ldi[i], 0.0, 0, tol);
    }
    if (mc->kind == CNF_BIJ_MAF_RQS) {
      /* every interior knot derivative min_d + softplus(ud) is 1 */
      cnf_made *m;
      const int P = case_P(mc);
      assert_int_equal(cnf_made_create(D, C, mc->H, mc->L, P, &m), 0);
      const double *bout = b.params + cnf_made_offset_bias(m, mc->L);
      for (int d = 0; d < D; d++)
        for (int j = 0; j < mc->K - 1; j++) {
          const double u = bout[d * P + 2 * mc->K + j];
          assert_close(1e-3 + log1p(exp(u)), 1.0, 1e-15, 0);
        }
      cnf_made_free(&m);
    }
    free(x), free(c), free(z), free(xr), free(ld), free(ldi);
    maf_drop(&b);
  }
}

/* nflows-style inversion: D full MADE passes, each inverting every dimension. */
static void naive_inverse(const maf_case *mc, const double *params, int n, const double *z,
                          const double *c, double *x, double *ld) {
  const int D = mc->D, P = case_P(mc);
  cnf_made *m;
  assert_int_equal(cnf_made_create(D, mc->C, mc->H, mc->L, P, &m), 0);
  double *theta = malloc(sizeof(double) * n * D * P), *lde = malloc(sizeof(double) * n * D);
  const cnf_rqs_conf conf = {mc->K, mc->B, 1e-3, 1e-3, 1e-3};
  memset(x, 0, sizeof(double) * n * D);
  for (int pass = 0; pass < D; pass++) {
    assert_int_equal(cnf_made_forward(m, params, n, x, c, theta), 0);
    if (mc->kind == CNF_BIJ_MAF_RQS) {
      cnf_rqs_inverse(&conf, n * D, z, theta, x, lde);
    } else {
      for (int e = 0; e < n * D; e++) {
        double s = mc->scale_kind == CNF_AFFINE_SCALE_EXP_TANH ? tanh(theta[2 * e + 1])
                                                                : theta[2 * e + 1];
        x[e] = z[e] * exp(s) + theta[2 * e];
        lde[e] = s;
      }
    }
  }
  for (int i = 0; i < n; i++) {
    ld[i] = 0;
    for (int d = 0; d < D; d++)
      ld[i] += lde[i * D + d];
  }
  free(theta), free(lde);
  cnf_made_free(&m);
}

static void test_fast_inverse_matches_naive(void **state) {
  enum { N = 260 };
  for (int t = 0; t < N_CASES; t++) {
    const maf_case *mc = &CASES[t];
    const int D = mc->D, C = mc->C;
    cnf_bijector b;
    maf_make(&b, mc, 900 + t, 0, mc->kind == CNF_BIJ_MAF_RQS ? 3.0 : 1.0);
    cnf_rng r;
    cnf_rng_init(&r, 1000 + t, 0, 0);
    double *z = make_x(&r, mc, N), *c = testutil_alloc_normal(&r, (size_t)N * C, 1.0);
    double *x = malloc(sizeof(double) * N * D), *xn = malloc(sizeof(double) * N * D);
    double *ld = malloc(sizeof(double) * N), *ldn = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++)
      ld[i] = 1.0; /* inverse accumulates */
    assert_int_equal(b.ops->inverse(&b, N, z, c, x, ld), 0);
    naive_inverse(mc, b.params, N, z, c, xn, ldn);
    for (int i = 0; i < N; i++) {
      for (int d = 0; d < D; d++)
        assert_close(x[i * D + d], xn[i * D + d], 1e-10, 1e-10);
      assert_close(ld[i] - 1.0, ldn[i], 1e-10, 1e-10);
    }
    free(z), free(c), free(x), free(xn), free(ld), free(ldn);
    maf_drop(&b);
  }
}

/* params_changed re-applies the masks; backward accumulates parameter and condition gradients. */
static void test_mask_reapplied_and_accumulation(void **state) {
  enum { N = 7 };
  const maf_case *mc = &CASES[0];
  const int D = mc->D, C = mc->C;
  cnf_bijector b;
  maf_make(&b, mc, 1100, 0, 1.0);
  cnf_made *m;
  assert_int_equal(cnf_made_create(D, C, mc->H, mc->L, 2, &m), 0);
  /* W0 row 0 has degree 1: its x_2 column is masked */
  assert_int_equal(cnf_made_connected(m, 0, 0, 1), 0);
  b.params[cnf_made_offset_weight(m, 0) + 1] = 5.0;
  assert_int_equal(b.ops->params_changed(&b), 0);
  assert_true(b.params[cnf_made_offset_weight(m, 0) + 1] == 0.0);
  cnf_rng r;
  cnf_rng_init(&r, 1200, 0, 0);
  double *x = make_x(&r, mc, N), *c = testutil_alloc_normal(&r, (size_t)N * C, 1.0);
  double *a = testutil_alloc_normal(&r, (size_t)N * D, 1.0), *bw = testutil_alloc_normal(&r, N, 1.0);
  double z[4 * N], ld[N], dx[4 * N], dc1[2 * N] = {0}, dc2[2 * N] = {0};
  loss(&b, N, x, c, a, bw, z, ld);
  assert_int_equal(b.ops->backward(&b, N, x, c, z, a, bw, dx, dc1), 0);
  double *g1 = malloc(sizeof(double) * b.n_params);
  memcpy(g1, b.grads, sizeof(double) * b.n_params);
  assert_int_equal(b.ops->backward(&b, N, x, c, z, a, bw, dx, dc2), 0);
  assert_int_equal(b.ops->backward(&b, N, x, c, z, a, bw, dx, dc2), 0);
  for (size_t i = 0; i < b.n_params; i++)
    assert_close(b.grads[i], 3 * g1[i], 1e-12, 1e-300);
  for (int i = 0; i < N * C; i++)
    assert_close(dc2[i], 2 * dc1[i], 1e-12, 1e-300);
  free(g1), free(x), free(c), free(a), free(bw);
  cnf_made_free(&m);
  maf_drop(&b);
}

/* An empty batch is valid in every direction. */
static void test_empty_batch(void **state) {
  for (int t = 0; t < N_CASES; t++) {
    cnf_bijector b;
    maf_make(&b, &CASES[t], 1300 + t, 0, 1.0);
    double x[1] = {0}, z[1] = {0}, ld[1] = {0}, c[1] = {0}, dx[1] = {0}, dc[1] = {0};
    assert_int_equal(b.ops->forward(&b, 0, x, c, z, ld), 0);
    assert_int_equal(b.ops->backward(&b, 0, x, c, z, z, ld, dx, dc), 0);
    assert_int_equal(b.ops->inverse(&b, 0, z, c, x, ld), 0);
    for (size_t i = 0; i < b.n_params; i++)
      assert_true(b.grads[i] == 0.0);
    maf_drop(&b);
  }
}

static void test_bad_specs(void **state) {
  cnf_bijector b;
  memset(&b, 0, sizeof b);
  b.spec.kind = CNF_BIJ_MAF_RQS;
  b.spec.hidden = 8;
  b.spec.n_hidden = 2;
  b.spec.bins = 1;
  b.spec.tail_bound = 3;
  b.dim = 3;
  b.cond_dim = 1;
  assert_int_equal(cnf_bij_maf_create(&b), CNF_ERR_ARG);
  assert_true(strstr(cnf_error_message(), "bins") != NULL);
  b.spec.bins = 8;
  b.spec.tail_bound = 0;
  assert_int_equal(cnf_bij_maf_create(&b), CNF_ERR_ARG);
  b.spec.tail_bound = 3;
  b.spec.hidden = 0;
  assert_int_equal(cnf_bij_maf_create(&b), CNF_ERR_ARG);
  b.spec.kind = CNF_BIJ_PERMUTE;
  assert_int_equal(cnf_bij_maf_create(&b), CNF_ERR_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gradients_fd),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_logdet_vs_jacobian),
      cmocka_unit_test(test_identity_init),
      cmocka_unit_test(test_fast_inverse_matches_naive),
      cmocka_unit_test(test_mask_reapplied_and_accumulation),
      cmocka_unit_test(test_empty_batch),
      cmocka_unit_test(test_bad_specs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
