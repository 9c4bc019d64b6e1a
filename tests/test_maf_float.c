/* MAF blocks in the float library (production precision): round trips x -> z -> x through the
 * fast sequential inverse over several tiles, log-dets cancelling, the log-det against central
 * differences of the triangular Jacobian's diagonal, and identity init. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/flow/bijector_impl.h"

static void make_block(cnf_bijector *b, cnf_bijector_kind kind, int D, int C, int H, int K,
                       double B, int identity) {
  memset(b, 0, sizeof *b);
  b->spec.kind = kind;
  b->spec.hidden = H;
  b->spec.n_hidden = 2;
  b->spec.bins = K;
  b->spec.tail_bound = B;
  b->spec.min_bin_width = b->spec.min_bin_height = b->spec.min_derivative = 1e-3;
  b->spec.scale_kind = CNF_AFFINE_SCALE_EXP_TANH;
  b->dim = D;
  b->cond_dim = C;
  assert_int_equal(cnf_bij_maf_create(b), 0);
  b->params = calloc(b->n_params, sizeof(float));
  b->grads = calloc(b->n_params, sizeof(float));
  cnf_rng r;
  cnf_rng_init(&r, 77, (uint64_t)kind, 0);
  assert_int_equal(b->ops->init_params(b, &r, identity), 0);
  if (!identity)
    for (size_t i = 0; i < b->n_params; i++)
      b->params[i] *= 2.0f; /* clearly non-linear */
  assert_int_equal(b->ops->params_changed(b), 0);
}

static void drop_block(cnf_bijector *b) {
  b->ops->destroy(b);
  free(b->params);
  free(b->grads);
}

/* Round trip over several sampling tiles; the log-det of one event against central differences
 * of the (lower-triangular) Jacobian diagonal. */
static void check_block(cnf_bijector_kind kind, int D, int C, int H, int K, double B) {
  enum { N = 300 };
  cnf_bijector b;
  make_block(&b, kind, D, C, H, K, B, 0);
  cnf_rng r;
  cnf_rng_init(&r, 5, 0, 0);
  float *x = malloc(sizeof(float) * N * D), *z = malloc(sizeof(float) * N * D);
  float *xr = malloc(sizeof(float) * N * D), *c = malloc(sizeof(float) * N * C);
  float *ld = calloc(N, sizeof(float)), *ldi = calloc(N, sizeof(float));
  for (int i = 0; i < N * D; i++)
    x[i] = (float)(1.2 * cnf_rng_normal(&r));
  for (int i = 0; i < N * C; i++)
    c[i] = (float)cnf_rng_normal(&r);
  assert_int_equal(b.ops->forward(&b, N, x, c, z, ld), 0);
  assert_int_equal(b.ops->inverse(&b, N, z, c, xr, ldi), 0);
  double dev = 0;
  for (int i = 0; i < N; i++) {
    for (int d = 0; d < D; d++) {
      assert_close(xr[i * D + d], x[i * D + d], 1e-3, 1e-3);
      dev = fmax(dev, fabs(z[i * D + d] - x[i * D + d]));
    }
    assert_close(ld[i] + ldi[i], 0.0, 0, 1e-3 * (1 + fabs(ld[i])));
  }
  assert_true(dev > 0.1);
  /* log|det| = sum_d log dz_d/dx_d for the triangular Jacobian */
  double lsum = 0;
  const float h = 1e-2f;
  for (int d = 0; d < D; d++) {
    float xp[8], xm[8], zp[8], zm[8], l1 = 0;
    memcpy(xp, x, sizeof(float) * D);
    memcpy(xm, x, sizeof(float) * D);
    xp[d] += h;
    xm[d] -= h;
    assert_int_equal(b.ops->forward(&b, 1, xp, c, zp, &l1), 0);
    assert_int_equal(b.ops->forward(&b, 1, xm, c, zm, &l1), 0);
    lsum += log(fabs(((double)zp[d] - zm[d]) / (2.0 * h)));
  }
  assert_close(lsum, ld[0], 0.02, 0.02);
  free(x), free(z), free(xr), free(c), free(ld), free(ldi);
  drop_block(&b);
}

static void test_affine_float(void **state) { check_block(CNF_BIJ_MAF_AFFINE, 6, 5, 64, 0, 0); }
static void test_rqs_float(void **state) { check_block(CNF_BIJ_MAF_RQS, 6, 1, 32, 8, 3.0); }

static void test_identity_float(void **state) {
  enum { N = 40, D = 5, C = 2 };
  for (int kind = CNF_BIJ_MAF_AFFINE; kind <= CNF_BIJ_MAF_RQS; kind++) {
    cnf_bijector b;
    make_block(&b, (cnf_bijector_kind)kind, D, C, 16, 6, 4.0, 1);
    cnf_rng r;
    cnf_rng_init(&r, 6, 0, 0);
    float x[N * D], z[N * D], c[N * C], ld[N] = {0};
    for (int i = 0; i < N * D; i++)
      x[i] = (float)(3.0 * cnf_rng_normal(&r));
    for (int i = 0; i < N * C; i++)
      c[i] = (float)cnf_rng_normal(&r);
    assert_int_equal(b.ops->forward(&b, N, x, c, z, ld), 0);
    for (int i = 0; i < N * D; i++)
      assert_close(z[i], x[i], kind == CNF_BIJ_MAF_AFFINE ? 0 : 1e-5, 1e-5);
    for (int i = 0; i < N; i++)
      assert_close(ld[i], 0.0, 0, kind == CNF_BIJ_MAF_AFFINE ? 0 : 1e-5);
    drop_block(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_affine_float),
      cmocka_unit_test(test_rqs_float),
      cmocka_unit_test(test_identity_float),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
