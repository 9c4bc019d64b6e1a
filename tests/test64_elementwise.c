/* Elementwise bijectors (permute, tanh, logit, affine_fixed, log, cond_scale), double precision: log-dets
 * against the log|det| of a finite-difference Jacobian, inverse round trips, backward against
 * finite differences of a scalar loss, closed forms, and domain errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/flow/bijector_impl.h"

enum { N = 5, D = 4 };

static void make_bijector(cnf_bijector *b, const cnf_bijector_spec *spec) {
  memset(b, 0, sizeof *b);
  b->spec = *spec;
  b->dim = D;
  b->cond_dim = 0;
  assert_int_equal(cnf_bij_elementwise_create(b), 0);
  assert_int_equal(b->n_params, 0);
  assert_int_equal(b->ops->reserve(b, N), 0);
}

/* Inputs inside every kind's domain: (0.05, 0.95) works for tanh and logit alike. */
static void fill_inputs(double *x, uint64_t seed) {
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  for (int e = 0; e < N * D; e++)
    x[e] = 0.05 + 0.9 * cnf_rng_uniform(&r);
}

/* All the generic properties of one bijector. */
static void check_bijector(const cnf_bijector_spec *spec) {
  cnf_bijector b;
  make_bijector(&b, spec);
  double x[N * D], z[N * D], xr[N * D], ld[N], ldi[N];
  fill_inputs(x, 7);
  for (int i = 0; i < N; i++) {
    ld[i] = 1.0; /* logdet must ACCUMULATE */
    ldi[i] = -2.0;
  }
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  assert_int_equal(b.ops->inverse(&b, N, z, NULL, xr, ldi), 0);
  check_array("inverse(forward(x))", N * D, xr, x, 1e-12, 1e-13);
  for (int i = 0; i < N; i++)
    assert_close(ldi[i] + 2.0, -(ld[i] - 1.0), 1e-11, 1e-12);

  /* log|det dz/dx| against the FD Jacobian, event by event */
  const double h = 1e-6;
  for (int i = 0; i < N; i++) {
    double J[D * D];
    for (int k = 0; k < D; k++) {
      double xp[N * D], xm[N * D], zp[N * D], zm[N * D], dummy[N] = {0};
      memcpy(xp, x, sizeof x);
      memcpy(xm, x, sizeof x);
      xp[i * D + k] += h;
      xm[i * D + k] -= h;
      assert_int_equal(b.ops->forward(&b, N, xp, NULL, zp, dummy), 0);
      assert_int_equal(b.ops->forward(&b, N, xm, NULL, zm, dummy), 0);
      for (int j = 0; j < D; j++)
        J[j * D + k] = (zp[i * D + j] - zm[i * D + j]) / (2 * h);
    }
    assert_close(ld[i] - 1.0, testutil_log_abs_det(D, J), 1e-7, 1e-8);
  }

  /* backward of L = sum a.z + sum w.logdet against central differences in x */
  double a[N * D], w[N], dx[N * D];
  cnf_rng r;
  cnf_rng_init(&r, 11, 0, 0);
  for (int e = 0; e < N * D; e++)
    a[e] = cnf_rng_normal(&r);
  for (int i = 0; i < N; i++)
    w[i] = cnf_rng_normal(&r);
  for (int i = 0; i < N; i++)
    ld[i] = 0;
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  for (int e = 0; e < N * D; e++)
    dx[e] = NAN; /* dx is OVERWRITTEN */
  assert_int_equal(b.ops->backward(&b, N, x, NULL, z, a, w, dx, NULL), 0);
  double fd[N * D];
  for (int e = 0; e < N * D; e++) {
    double Lpm[2];
    for (int s = 0; s < 2; s++) {
      double xs[N * D], zs[N * D], lds[N] = {0};
      memcpy(xs, x, sizeof x);
      xs[e] += s == 0 ? h : -h;
      assert_int_equal(b.ops->forward(&b, N, xs, NULL, zs, lds), 0);
      double L = 0;
      for (int f = 0; f < N * D; f++)
        L += a[f] * zs[f];
      for (int i = 0; i < N; i++)
        L += w[i] * lds[i];
      Lpm[s] = L;
    }
    fd[e] = (Lpm[0] - Lpm[1]) / (2 * h);
  }
  check_array("dx vs finite differences", N * D, dx, fd, 1e-6, 1e-8);
  b.ops->destroy(&b);
}

static void test_permute(void **state) {
  int perm[D] = {2, 0, 3, 1};
  cnf_bijector_spec s = {.kind = CNF_BIJ_PERMUTE, .perm = perm};
  check_bijector(&s);
  /* closed form: z[:, j] = x[:, perm[j]], log-det 0 */
  cnf_bijector b;
  make_bijector(&b, &s);
  perm[0] = 1; /* the spec array is only borrowed: the bijector kept its own copy */
  double x[N * D], z[N * D], ld[N] = {0};
  fill_inputs(x, 3);
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  const int want[D] = {2, 0, 3, 1};
  for (int i = 0; i < N; i++) {
    assert_true(ld[i] == 0.0);
    for (int j = 0; j < D; j++)
      assert_true(z[i * D + j] == x[i * D + want[j]]);
  }
  b.ops->destroy(&b);
}

static void test_permute_rejects_non_permutation(void **state) {
  int bad[D] = {0, 1, 1, 3}, out_of_range[D] = {0, 1, 2, 4};
  cnf_bijector b;
  memset(&b, 0, sizeof b);
  b.dim = D;
  b.spec = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = bad};
  assert_int_equal(cnf_bij_elementwise_create(&b), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "not a permutation"));
  b.spec.perm = out_of_range;
  assert_int_equal(cnf_bij_elementwise_create(&b), CNF_ERR_ARG);
}

static void test_tanh(void **state) {
  cnf_bijector_spec s = {.kind = CNF_BIJ_TANH};
  check_bijector(&s);
  /* closed form and the stable inverse log-det far in the tail */
  cnf_bijector b;
  make_bijector(&b, &s);
  double x[N * D], z[N * D], ld[N] = {0};
  fill_inputs(x, 5);
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  for (int i = 0; i < N; i++) {
    double want = 0;
    for (int j = 0; j < D; j++) {
      assert_close(z[i * D + j], atanh(x[i * D + j]), 1e-15, 0);
      want -= log(1 - x[i * D + j] * x[i * D + j]);
    }
    assert_close(ld[i], want, 1e-12, 0);
  }
  /* z = 30: tanh(z) rounds to 1 but log(1 - tanh^2) = log(4) - 2*30 + O(e^-60) stays exact */
  double zt[N * D], xt[N * D], ldt[N] = {0};
  for (int e = 0; e < N * D; e++)
    zt[e] = (e % D == 0) ? 30.0 : 0.0;
  assert_int_equal(b.ops->inverse(&b, N, zt, NULL, xt, ldt), 0);
  assert_close(ldt[0], log(4.0) - 60.0, 1e-12, 0);
  /* the sample stays strictly inside (-1, 1), so its density can be evaluated */
  assert_true(xt[0] < 1.0 && xt[0] > 0.999999);
  zt[0] = -30.0;
  assert_int_equal(b.ops->inverse(&b, N, zt, NULL, xt, ldt), 0);
  assert_true(xt[0] > -1.0);
  double zb[N * D], ldb[N] = {0};
  assert_int_equal(b.ops->forward(&b, N, xt, NULL, zb, ldb), 0);
  b.ops->destroy(&b);
}

static void test_tanh_out_of_range_is_an_error(void **state) {
  cnf_bijector_spec s = {.kind = CNF_BIJ_TANH};
  cnf_bijector b;
  make_bijector(&b, &s);
  double x[N * D], z[N * D], ld[N] = {0};
  fill_inputs(x, 9);
  x[2 * D + 3] = 1.0;
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "row 2 column 3"));
  x[2 * D + 3] = -1.5;
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), CNF_ERR_NUMERIC);
  x[2 * D + 3] = NAN;
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), CNF_ERR_NUMERIC);
  b.ops->destroy(&b);
}

static void test_logit(void **state) {
  const double alphas[2] = {1e-6, 0.05};
  for (int t = 0; t < 2; t++) {
    cnf_bijector_spec s = {.kind = CNF_BIJ_LOGIT, .alpha = alphas[t]};
    check_bijector(&s);
    cnf_bijector b;
    make_bijector(&b, &s);
    double x[N * D], z[N * D], ld[N] = {0};
    fill_inputs(x, 13);
    x[0] = 0.0; /* the closed interval [0, 1] is inside the domain for alpha > 0 */
    x[1] = 1.0;
    assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
    for (int e = 0; e < N * D; e++) {
      double u = alphas[t] + (1 - 2 * alphas[t]) * x[e];
      assert_close(z[e], log(u / (1 - u)), 1e-12, 1e-12);
    }
    x[1] = 1.2;
    assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), CNF_ERR_NUMERIC);
    b.ops->destroy(&b);
  }
  cnf_bijector b;
  memset(&b, 0, sizeof b);
  b.dim = D;
  b.spec = (cnf_bijector_spec){.kind = CNF_BIJ_LOGIT, .alpha = 0.5};
  assert_int_equal(cnf_bij_elementwise_create(&b), CNF_ERR_ARG);
}

static void test_affine_fixed(void **state) {
  double shift[D] = {0.5, -1.0, 2.0, 0.0}, scale[D] = {2.0, -0.5, 0.25, 3.0};
  cnf_bijector_spec s = {.kind = CNF_BIJ_AFFINE_FIXED, .shift = shift, .scale = scale};
  check_bijector(&s);
  cnf_bijector b;
  make_bijector(&b, &s);
  double x[N * D], z[N * D], ld[N] = {0};
  fill_inputs(x, 17);
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < D; j++)
      assert_close(z[i * D + j], (x[i * D + j] - shift[j]) / scale[j], 1e-15, 1e-15);
    assert_close(ld[i], -log(2.0 * 0.5 * 0.25 * 3.0), 1e-14, 1e-14);
  }
  b.ops->destroy(&b);
  scale[1] = 0.0;
  memset(&b, 0, sizeof b);
  b.dim = D;
  b.spec = s;
  assert_int_equal(cnf_bij_elementwise_create(&b), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "dimension 1"));
}

static void test_log(void **state) {
  cnf_bijector_spec s = {.kind = CNF_BIJ_LOG, .eps = 1e-3};
  check_bijector(&s);
  cnf_bijector b;
  make_bijector(&b, &s);
  double x[N * D], z[N * D], ld[N] = {0};
  fill_inputs(x, 19);
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), 0);
  for (int i = 0; i < N; i++) {
    double want = 0;
    for (int j = 0; j < D; j++) {
      assert_close(z[i * D + j], log(x[i * D + j] + 1e-3), 1e-15, 1e-15);
      want -= log(x[i * D + j] + 1e-3);
    }
    assert_close(ld[i], want, 1e-14, 1e-14);
  }
  x[3] = -2e-3; /* below -eps: outside the domain is an error, not a NaN */
  assert_int_equal(b.ops->forward(&b, N, x, NULL, z, ld), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "row 0 column 3"));
  b.ops->destroy(&b);
  s.eps = -1;
  memset(&b, 0, sizeof b);
  b.dim = D;
  b.spec = s;
  assert_int_equal(cnf_bij_elementwise_create(&b), CNF_ERR_ARG);
}

/* cond_scale depends on a condition: inverse, log-det against the FD Jacobian in x, backward
 * in x and in c against central differences. */
static void test_cond_scale(void **state) {
  enum { C = 2 };
  cnf_bijector_spec s = {.kind = CNF_BIJ_COND_SCALE, .cond_index = 1, .cond_a = 0.7,
                         .cond_b = -0.3};
  cnf_bijector b;
  memset(&b, 0, sizeof b);
  b.spec = s;
  b.dim = D;
  b.cond_dim = C;
  assert_int_equal(cnf_bij_elementwise_create(&b), 0);
  double x[N * D], z[N * D], xr[N * D], c[N * C], ld[N] = {0}, ldi[N] = {0};
  fill_inputs(x, 23);
  cnf_rng r;
  cnf_rng_init(&r, 29, 0, 0);
  for (int e = 0; e < N * C; e++)
    c[e] = cnf_rng_normal(&r);
  assert_int_equal(b.ops->forward(&b, N, x, c, z, ld), 0);
  assert_int_equal(b.ops->inverse(&b, N, z, c, xr, ldi), 0);
  check_array("inverse(forward(x))", N * D, xr, x, 1e-12, 1e-13);
  for (int i = 0; i < N; i++) {
    double sv = 0.7 * c[i * C + 1] - 0.3;
    assert_close(ld[i], -D * sv, 1e-13, 1e-13);
    assert_close(ldi[i], D * sv, 1e-13, 1e-13);
    for (int j = 0; j < D; j++)
      assert_close(z[i * D + j], x[i * D + j] * exp(-sv), 1e-14, 1e-15);
  }
  /* L = sum a.z + sum w.logdet */
  double a[N * D], w[N], dx[N * D], dc[N * C];
  for (int e = 0; e < N * D; e++)
    a[e] = cnf_rng_normal(&r);
  for (int i = 0; i < N; i++)
    w[i] = cnf_rng_normal(&r);
  for (int e = 0; e < N * C; e++)
    dc[e] = 0.5; /* dc ACCUMULATES */
  assert_int_equal(b.ops->backward(&b, N, x, c, z, a, w, dx, dc), 0);
  const double h = 1e-6;
  for (int which = 0; which < 2; which++) {
    double *v = which ? c : x;
    int nv = which ? N * C : N * D;
    for (int e = 0; e < nv; e++) {
      double Lpm[2], keep = v[e];
      for (int sgn = 0; sgn < 2; sgn++) {
        double zs[N * D], lds[N] = {0}, L = 0;
        v[e] = keep + (sgn == 0 ? h : -h);
        assert_int_equal(b.ops->forward(&b, N, x, c, zs, lds), 0);
        for (int f = 0; f < N * D; f++)
          L += a[f] * zs[f];
        for (int i = 0; i < N; i++)
          L += w[i] * lds[i];
        Lpm[sgn] = L;
      }
      v[e] = keep;
      double fd = (Lpm[0] - Lpm[1]) / (2 * h);
      double got = which ? dc[e] - 0.5 : dx[e];
      check_fd(which ? "dc" : "dx", got, fd, 1.0);
    }
  }
  b.ops->destroy(&b);
  /* out-of-range condition index is refused */
  memset(&b, 0, sizeof b);
  s.cond_index = C;
  b.spec = s;
  b.dim = D;
  b.cond_dim = C;
  assert_int_equal(cnf_bij_elementwise_create(&b), CNF_ERR_ARG);
}

/* Through a flow with a log map on the condition: cond_a = 1/k, cond_b = s0 divide by the RAW
 * condition exactly, and dL/dc_raw from cnf_flow_nll_backward matches finite differences. */
static void test_cond_scale_divides_by_raw_condition(void **state) {
  const double k = 0.8, s0 = 1.5;
  cnf_bijector_spec specs[2] = {
      {.kind = CNF_BIJ_COND_SCALE, .cond_index = 0, .cond_a = 1.0 / k, .cond_b = s0},
      {.kind = CNF_BIJ_LOG, .eps = 0.01}};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(D, 1, 2, specs, &f), 0);
  cnf_cond_map map = CNF_COND_LOG;
  assert_int_equal(cnf_flow_set_cond_transform(f, &map, &s0, &k), 0);
  double x[N * D], c[N], z[N * D], ld[N];
  fill_inputs(x, 31);
  for (int i = 0; i < N; i++)
    c[i] = 2.0 + 3.0 * i;
  assert_int_equal(cnf_flow_forward(f, N, x, c, z, ld), 0);
  for (int i = 0; i < N; i++) {
    double want = 0;
    for (int j = 0; j < D; j++) {
      double y = x[i * D + j] / c[i];
      assert_close(z[i * D + j], log(y + 0.01), 1e-13, 1e-14);
      want += -log(c[i]) - log(y + 0.01);
    }
    assert_close(ld[i], want, 1e-12, 1e-12);
  }
  double loss, dc[N], lp[N];
  assert_int_equal(cnf_flow_nll_backward(f, N, x, c, NULL, &loss, lp, dc), 0);
  const double h = 1e-6;
  for (int i = 0; i < N; i++) {
    double Lpm[2], keep = c[i];
    for (int sgn = 0; sgn < 2; sgn++) {
      c[i] = keep + (sgn == 0 ? h : -h);
      double lps[N], L = 0;
      assert_int_equal(cnf_flow_log_prob(f, N, x, c, lps), 0);
      for (int e = 0; e < N; e++)
        L -= lps[e] / N;
      Lpm[sgn] = L;
    }
    c[i] = keep;
    check_fd("dL/dc_raw", dc[i], (Lpm[0] - Lpm[1]) / (2 * h), 1.0);
  }
  cnf_flow_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_permute),
      cmocka_unit_test(test_permute_rejects_non_permutation),
      cmocka_unit_test(test_tanh),
      cmocka_unit_test(test_tanh_out_of_range_is_an_error),
      cmocka_unit_test(test_logit),
      cmocka_unit_test(test_affine_fixed),
      cmocka_unit_test(test_log),
      cmocka_unit_test(test_cond_scale),
      cmocka_unit_test(test_cond_scale_divides_by_raw_condition),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
