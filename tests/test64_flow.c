/* The whole conditional flow in double precision: log p equals the sum of its pieces and the
 * log|det| of a finite-difference Jacobian; finite-difference gradients of the weighted NLL
 * w.r.t. parameters and raw conditions (through a log10 condition map), for a mixed chain and
 * the full 10-block architecture A; sampling consistency and batch independence; data-init
 * order; identity init; non-finite inputs; preset architectures and parameter counts. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cnflow/flow.h"

#define LOG_2PI 1.8378770664093454835606594728112

/* ---- helpers ---------------------------------------------------------------------------- */
static void perturb_params(cnf_flow *f, double sigma, uint64_t seed) {
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  cnf_real *p = cnf_flow_params(f);
  for (size_t i = 0; i < cnf_flow_num_params(f); i++)
    p[i] += sigma * cnf_rng_normal(&r);
  assert_int_equal(cnf_flow_params_changed(f), 0);
}

/* x in (-0.8, 0.8) (inside tanh's domain), c in (0.3, 3) (positive for log maps) */
static void make_batch(int n, int D, int C, uint64_t seed, double *x, double *c) {
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  for (int e = 0; e < n * D; e++)
    x[e] = -0.8 + 1.6 * cnf_rng_uniform(&r);
  for (int e = 0; e < n * C; e++)
    c[e] = 0.3 + 2.7 * cnf_rng_uniform(&r);
}

/* Mixed chain on D=4, C=2: every kind that has parameters or conditions, plus tanh/permute/
 * affine_fixed, with a log10 map on condition 0. */
static cnf_flow *make_mixed_flow(void) {
  static double shift[4] = {0.1, -0.2, 0.0, 0.05}, scale[4] = {1.5, 2.0, 1.25, 1.1};
  static int rev[4] = {3, 2, 1, 0}, swap[4] = {2, 3, 0, 1};
  cnf_bijector_spec s[9];
  memset(s, 0, sizeof s);
  s[0] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = shift, .scale = scale};
  s[1] = (cnf_bijector_spec){.kind = CNF_BIJ_TANH};
  s[2] = (cnf_bijector_spec){.kind = CNF_BIJ_ACTNORM};
  s[3] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 8, .n_hidden = 2,
                             .bins = 5, .tail_bound = 6.0, .min_bin_width = 1e-3,
                             .min_bin_height = 1e-3, .min_derivative = 1e-3,
                             .tails = CNF_TAILS_ELEMENT};
  s[4] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = rev};
  s[5] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 10, .n_hidden = 2,
                             .scale_kind = CNF_AFFINE_SCALE_EXP_TANH};
  s[6] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = swap};
  s[7] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_RQS, .hidden = 9, .n_hidden = 2, .bins = 4,
                             .tail_bound = 5.0, .min_bin_width = 1e-3, .min_bin_height = 1e-3,
                             .min_derivative = 1e-3};
  s[8] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 7, .n_hidden = 1,
                             .scale_kind = CNF_AFFINE_SCALE_EXP};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(4, 2, 9, s, &f), 0);
  cnf_cond_map map[2] = {CNF_COND_LOG10, CNF_COND_IDENTITY};
  double cs[2] = {0.2, 1.0}, cc[2] = {2.0, 0.7};
  assert_int_equal(cnf_flow_set_cond_transform(f, map, cs, cc), 0);
  assert_int_equal(cnf_flow_init_params(f, 21, 0), 0);
  perturb_params(f, 0.1, 77);
  return f;
}

/* Weighted loss -sum w_i log p_i through log_prob (the reference for finite differences). */
static double weighted_nll(cnf_flow *f, int n, const double *x, const double *c,
                           const double *w) {
  double lp[64];
  assert_true(n <= 64);
  assert_int_equal(cnf_flow_log_prob(f, n, x, c, lp), 0);
  double L = 0;
  for (int i = 0; i < n; i++)
    L -= w[i] * lp[i];
  return L;
}

/* Compare nll_backward's parameter gradients (n_check indices drawn at random, or all if
 * n_check >= n_params) and dc with central differences. */
static void check_gradients(cnf_flow *f, int n, const double *x, double *c, int n_check,
                            double h) {
  const int C = cnf_flow_cond_dim(f);
  double w[64], logp[64], dc[64 * 8], loss;
  cnf_rng r;
  cnf_rng_init(&r, 5, 0, 0);
  for (int i = 0; i < n; i++)
    w[i] = 0.5 + cnf_rng_uniform(&r);
  cnf_flow_zero_grads(f);
  assert_int_equal(cnf_flow_nll_backward(f, n, x, c, w, &loss, logp, dc), 0);
  assert_close(loss, weighted_nll(f, n, x, c, w), 1e-12, 1e-12);
  const size_t np = cnf_flow_num_params(f);
  double *g = malloc(np * sizeof(double));
  memcpy(g, cnf_flow_grads(f), np * sizeof(double));
  /* accumulation: a second call adds the same gradient again */
  assert_int_equal(cnf_flow_nll_backward(f, n, x, c, w, &loss, NULL, NULL), 0);
  for (size_t i = 0; i < np; i += 1 + np / 50)
    assert_close(cnf_flow_grads(f)[i], 2 * g[i], 1e-12, 1e-14);

  cnf_real *p = cnf_flow_params(f);
  int checked = 0, nonzero = 0;
  double max_err = 0;
  for (int t = 0; t < (n_check < (int)np ? n_check : (int)np); t++) {
    size_t k = n_check >= (int)np ? (size_t)t : (size_t)(cnf_rng_u64(&r) % np);
    double p0 = p[k];
    p[k] = p0 + h;
    assert_int_equal(cnf_flow_params_changed(f), 0);
    double Lp = weighted_nll(f, n, x, c, w);
    p[k] = p0 - h;
    assert_int_equal(cnf_flow_params_changed(f), 0);
    double Lm = weighted_nll(f, n, x, c, w);
    p[k] = p0;
    double fd = (Lp - Lm) / (2 * h);
    double err = fabs(g[k] - fd) / (1e-6 + 1e-4 * fabs(fd));
    if (err > max_err)
      max_err = err;
    if (err > 1.0)
      print_error("param %zu: backward %.10g, finite difference %.10g\n", k, g[k], fd);
    checked++;
    nonzero += fd != 0.0;
  }
  assert_int_equal(cnf_flow_params_changed(f), 0);
  assert_true(max_err <= 1.0);
  assert_true(nonzero > checked / 4); /* the check must not be vacuous */
  /* raw conditions (through the condition map) */
  for (int e = 0; e < n * C; e++) {
    double c0 = c[e];
    c[e] = c0 + h;
    double Lp = weighted_nll(f, n, x, c, w);
    c[e] = c0 - h;
    double Lm = weighted_nll(f, n, x, c, w);
    c[e] = c0;
    assert_close(dc[e], (Lp - Lm) / (2 * h), 1e-4, 1e-6);
  }
  /* cnf_flow_cond_gradient: d log p_i / dc_i against central differences of log p_i, the
   * same log p, and the parameter gradients left exactly as they were */
  memcpy(g, cnf_flow_grads(f), np * sizeof(double));
  double lp2[64], dl[64 * 8], lpp[64], lpm[64];
  assert_int_equal(cnf_flow_cond_gradient(f, n, x, c, lp2, dl), 0);
  assert_memory_equal(g, cnf_flow_grads(f), np * sizeof(double));
  for (int i = 0; i < n; i++)
    assert_close(lp2[i], logp[i], 1e-14, 1e-14);
  int moved = 0;
  for (int e = 0; e < n * C; e++) {
    const int i = e / C;
    double c0 = c[e];
    c[e] = c0 + h;
    assert_int_equal(cnf_flow_log_prob(f, n, x, c, lpp), 0);
    c[e] = c0 - h;
    assert_int_equal(cnf_flow_log_prob(f, n, x, c, lpm), 0);
    c[e] = c0;
    assert_close(dl[e], (lpp[i] - lpm[i]) / (2 * h), 1e-4, 1e-6);
    assert_close(dl[e], -dc[e] / w[i], 1e-12, 1e-14); /* dc = -w_i d log p_i / dc_i */
    moved += fabs(dl[e]) > 1e-3;
  }
  assert_true(moved > n * C / 2); /* the conditions matter: the check is not vacuous */
  free(g);
}

/* ---- tests ------------------------------------------------------------------------------- */
static void test_log_prob_is_sum_of_pieces(void **state) {
  cnf_flow *f = make_mixed_flow();
  enum { n = 6, D = 4, C = 2 };
  double x[n * D], c[n * C], lp[n], z[n * D], ld[n];
  make_batch(n, D, C, 3, x, c);
  assert_int_equal(cnf_flow_log_prob(f, n, x, c, lp), 0);
  assert_int_equal(cnf_flow_forward(f, n, x, c, z, ld), 0);
  /* run the bijectors one by one on the transformed conditions */
  double cc[n * C], a[n * D], b[n * D], sum[n] = {0};
  assert_int_equal(cnf_flow_transform_cond(f, n, c, cc, NULL), 0);
  assert_close(cc[0], (log10(c[0]) - 0.2) * 2.0, 1e-14, 0);
  assert_close(cc[1], (c[1] - 1.0) * 0.7, 1e-14, 1e-15);
  memcpy(a, x, sizeof x);
  for (int k = 0; k < cnf_flow_num_bijectors(f); k++) {
    cnf_bijector *bj = (cnf_bijector *)cnf_flow_bijector(f, k);
    double piece[n] = {0};
    assert_int_equal(bj->ops->forward(bj, n, a, cc, b, piece), 0);
    for (int i = 0; i < n; i++)
      sum[i] += piece[i];
    memcpy(a, b, sizeof a);
  }
  for (int i = 0; i < n; i++) {
    double base = -0.5 * D * LOG_2PI;
    for (int j = 0; j < D; j++) {
      base -= 0.5 * a[i * D + j] * a[i * D + j];
      assert_close(z[i * D + j], a[i * D + j], 1e-14, 1e-14);
    }
    assert_close(ld[i], sum[i], 1e-12, 1e-12);
    assert_close(lp[i], base + sum[i], 1e-12, 1e-12);
  }
  /* the total log-det against the finite-difference Jacobian of the whole chain */
  const double h = 1e-6;
  for (int i = 0; i < n; i++) {
    double J[D * D];
    for (int k = 0; k < D; k++) {
      double xp[D], xm[D], zp[D], zm[D];
      memcpy(xp, x + i * D, sizeof xp);
      memcpy(xm, x + i * D, sizeof xm);
      xp[k] += h;
      xm[k] -= h;
      assert_int_equal(cnf_flow_forward(f, 1, xp, c + i * C, zp, NULL), 0);
      assert_int_equal(cnf_flow_forward(f, 1, xm, c + i * C, zm, NULL), 0);
      for (int j = 0; j < D; j++)
        J[j * D + k] = (zp[j] - zm[j]) / (2 * h);
    }
    assert_close(ld[i], testutil_log_abs_det(D, J), 1e-6, 1e-7);
  }
  /* inverse round trip through every bijector */
  double xr[n * D], ldi[n];
  assert_int_equal(cnf_flow_inverse(f, n, z, c, xr, ldi), 0);
  check_array("inverse(forward(x))", n * D, xr, x, 1e-9, 1e-10);
  for (int i = 0; i < n; i++)
    assert_close(ldi[i], -ld[i], 1e-9, 1e-9);
  cnf_flow_free(&f);
}

static void test_gradients_mixed_chain(void **state) {
  cnf_flow *f = make_mixed_flow();
  enum { n = 5, D = 4, C = 2 };
  double x[n * D], c[n * C];
  make_batch(n, D, C, 4, x, c);
  check_gradients(f, n, x, c, 1 << 30, 1e-6); /* every parameter */
  cnf_flow_free(&f);
}

/* Architecture A as the PyTorch peer builds it: tanh + 10 affine MAF blocks 2x128 with
 * reverse permutations; and the CNF-study variant (exp(tanh) scales, half-swaps). */
static void test_gradients_architecture_a(void **state) {
  const char *presets[2] = {"cnf_peer", "cnf"};
  for (int t = 0; t < 2; t++) {
    cnf_flow *f = NULL;
    assert_int_equal(cnf_flow_create_preset(presets[t], 0, 0, 1, &f), 0);
    cnf_cond_map map[5] = {CNF_COND_LOG10, CNF_COND_IDENTITY, CNF_COND_LOG, CNF_COND_IDENTITY,
                           CNF_COND_IDENTITY};
    double cs[5] = {0.1, 0.5, 0.0, -1.0, 0.0}, cc[5] = {1.5, 1.0, 0.8, 0.5, 1.2};
    assert_int_equal(cnf_flow_set_cond_transform(f, map, cs, cc), 0);
    assert_int_equal(cnf_flow_init_params(f, 9, 0), 0);
    perturb_params(f, 0.03, 10 + t); /* non-zero output layers: every block matters */
    enum { n = 3, D = 6, C = 5 };
    double x[n * D], c[n * C];
    make_batch(n, D, C, 6 + t, x, c);
    check_gradients(f, n, x, c, t == 0 ? 320 : 120, 1e-6);
    cnf_flow_free(&f);
  }
}

/* dL/dx of the whole chain: the API has no dx, but a leading ActNorm at the identity has
 * dL/dloc = -sum_i dL/dx_i, so with one event its loc gradient is -dL/dx. */
static void test_gradient_wrt_x(void **state) {
  static int rev[3] = {2, 1, 0};
  static double shift[3] = {0.1, 0.0, -0.1}, scale[3] = {1.2, 1.5, 2.0};
  cnf_bijector_spec s[7];
  memset(s, 0, sizeof s);
  s[0] = (cnf_bijector_spec){.kind = CNF_BIJ_ACTNORM};
  s[1] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = shift, .scale = scale};
  s[2] = (cnf_bijector_spec){.kind = CNF_BIJ_TANH};
  s[3] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 12, .n_hidden = 2};
  s[4] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = rev};
  s[5] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_RQS, .hidden = 12, .n_hidden = 2, .bins = 6,
                             .tail_bound = 4.0, .min_bin_width = 1e-3, .min_bin_height = 1e-3,
                             .min_derivative = 1e-3};
  s[6] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 8, .n_hidden = 2,
                             .bins = 5, .tail_bound = 5.0, .min_bin_width = 1e-3,
                             .min_bin_height = 1e-3, .min_derivative = 1e-3,
                             .tails = CNF_TAILS_ELEMENT};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(3, 2, 7, s, &f), 0);
  assert_int_equal(cnf_flow_init_params(f, 3, 0), 0);
  perturb_params(f, 0.1, 5);
  memset(cnf_flow_params(f), 0, 6 * sizeof(double)); /* ActNorm loc = log_scale = 0 */
  assert_int_equal(cnf_flow_params_changed(f), 0);
  double x[3], c[2], w = 1.0, loss;
  make_batch(1, 3, 2, 17, x, c);
  cnf_flow_zero_grads(f);
  assert_int_equal(cnf_flow_nll_backward(f, 1, x, c, &w, &loss, NULL, NULL), 0);
  const double h = 1e-6;
  for (int j = 0; j < 3; j++) {
    double x0 = x[j];
    x[j] = x0 + h;
    double Lp = weighted_nll(f, 1, x, c, &w);
    x[j] = x0 - h;
    double Lm = weighted_nll(f, 1, x, c, &w);
    x[j] = x0;
    assert_close(-cnf_flow_grads(f)[j], (Lp - Lm) / (2 * h), 1e-5, 1e-7);
  }
  cnf_flow_free(&f);
}

static void test_sample_consistency_and_batching(void **state) {
  const char *presets[3] = {"cnf_peer", "flowi", "toy"};
  for (int t = 0; t < 3; t++) {
    cnf_flow *f = NULL;
    assert_int_equal(cnf_flow_create_preset(presets[t], 0, 0, 2, &f), 0);
    assert_int_equal(cnf_flow_init_params(f, 3, 0), 0);
    perturb_params(f, 0.02, 4);
    const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f);
    enum { n = 8 };
    double c[n * 8], x[n * 8], lp[n], lp2[n], xa[n * 8], xb[n * 8];
    double dummy[n * 8];
    make_batch(n, 1, C, 12, dummy, c);
    assert_int_equal(cnf_flow_sample(f, n, c, 99, 1000, x, lp), 0);
    assert_int_equal(cnf_flow_log_prob(f, n, x, c, lp2), 0);
    for (int i = 0; i < n; i++)
      assert_close(lp[i], lp2[i], 1e-8, 1e-8);
    /* event i's draw depends only on (seed, first_index + i): split the batch.  Equal up to
     * rounding only: BLAS may block a GEMM differently for another number of rows. */
    assert_int_equal(cnf_flow_sample(f, 3, c, 99, 1000, xa, NULL), 0);
    assert_int_equal(cnf_flow_sample(f, n - 3, c + 3 * C, 99, 1003, xb, NULL), 0);
    check_array("first 3 events alone", 3 * D, xa, x, 1e-12, 1e-14);
    check_array("last events alone", (n - 3) * D, xb, x + 3 * D, 1e-12, 1e-14);
    /* a different seed gives different samples */
    assert_int_equal(cnf_flow_sample(f, 3, c, 98, 1000, xa, NULL), 0);
    assert_true(memcmp(xa, x, sizeof(double) * 3 * D) != 0);
    cnf_flow_free(&f);
  }
}

static void test_data_init_sees_transformed_batch(void **state) {
  double shift[3] = {1.0, -2.0, 0.5}, scale[3] = {2.0, 0.5, 4.0};
  cnf_bijector_spec s[2] = {
      {.kind = CNF_BIJ_AFFINE_FIXED, .shift = shift, .scale = scale},
      {.kind = CNF_BIJ_ACTNORM},
  };
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(3, 0, 2, s, &f), 0);
  assert_int_equal(cnf_flow_init_params(f, 1, 1), 0);
  enum { n = 50 };
  double x[n * 3], z[n * 3];
  cnf_rng r;
  cnf_rng_init(&r, 8, 0, 0);
  for (int e = 0; e < n * 3; e++)
    x[e] = 3.0 + 5.0 * cnf_rng_normal(&r);
  assert_int_equal(cnf_flow_data_init(f, n, x, NULL), 0);
  assert_int_equal(cnf_flow_forward(f, n, x, NULL, z, NULL), 0);
  for (int j = 0; j < 3; j++) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
      m += z[i * 3 + j] / n;
    for (int i = 0; i < n; i++)
      v += (z[i * 3 + j] - m) * (z[i * 3 + j] - m) / (n - 1);
    assert_close(m, 0.0, 0, 1e-12);
    assert_close(v, 1.0, 1e-10, 0);
  }
  cnf_flow_free(&f);
}

static void test_identity_init(void **state) {
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create_preset("toy", 0, 0, 1, &f), 0);
  assert_int_equal(cnf_flow_init_params(f, 1, 1), 0);
  enum { n = 4 };
  double x[n * 2], c[n], z[n * 2], ld[n];
  make_batch(n, 2, 1, 2, x, c);
  assert_int_equal(cnf_flow_forward(f, n, x, c, z, ld), 0);
  /* 4 identity blocks and 3 reverse permutations: z = x reversed */
  for (int i = 0; i < n; i++) {
    assert_close(z[i * 2 + 0], x[i * 2 + 1], 1e-12, 1e-12);
    assert_close(z[i * 2 + 1], x[i * 2 + 0], 1e-12, 1e-12);
    assert_close(ld[i], 0.0, 0, 1e-12);
  }
  /* the random init is seeded: same seed, same parameters */
  cnf_flow *g = NULL;
  assert_int_equal(cnf_flow_create_preset("toy", 0, 0, 1, &g), 0);
  assert_int_equal(cnf_flow_init_params(f, 5, 0), 0);
  assert_int_equal(cnf_flow_init_params(g, 5, 0), 0);
  assert_memory_equal(cnf_flow_params(f), cnf_flow_params(g),
                      cnf_flow_num_params(f) * sizeof(double));
  assert_int_equal(cnf_flow_init_params(g, 6, 0), 0);
  assert_true(memcmp(cnf_flow_params(f), cnf_flow_params(g),
                     cnf_flow_num_params(f) * sizeof(double)) != 0);
  cnf_flow_free(&f);
  cnf_flow_free(&g);
}

static void test_nonfinite_inputs_are_errors(void **state) {
  cnf_flow *f = make_mixed_flow();
  enum { n = 3, D = 4, C = 2 };
  double x[n * D], c[n * C], lp[n], loss;
  make_batch(n, D, C, 1, x, c);
  x[1 * D + 2] = NAN;
  assert_int_equal(cnf_flow_log_prob(f, n, x, c, lp), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "row 1 column 2"));
  assert_int_equal(cnf_flow_nll_backward(f, n, x, c, NULL, &loss, NULL, NULL), CNF_ERR_NUMERIC);
  x[1 * D + 2] = 0.1;
  c[2 * C + 1] = INFINITY;
  assert_int_equal(cnf_flow_log_prob(f, n, x, c, lp), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "row 2 column 1"));
  double xs[n * D];
  assert_int_equal(cnf_flow_sample(f, n, c, 1, 0, xs, NULL), CNF_ERR_NUMERIC);
  c[2 * C + 1] = 1.0;
  c[0] = -1.0; /* log10 map of a negative condition */
  assert_int_equal(cnf_flow_log_prob(f, n, x, c, lp), CNF_ERR_NUMERIC);
  c[0] = 1.0;
  x[0] = 1.0 * 1.5 + 0.1; /* affine_fixed maps it to 1.0: outside tanh's domain */
  assert_int_equal(cnf_flow_log_prob(f, n, x, c, lp), CNF_ERR_NUMERIC);
  assert_non_null(strstr(cnf_error_message(), "bijector 1 (tanh)"));
  cnf_flow_free(&f);
}

/* MADE parameters of one MAF block (flow.h layout) */
static size_t made_params(int D, int C, int H, int L, int P) {
  return (size_t)H * (D + C) + H + (size_t)(L - 1) * (H * H + H) + (size_t)D * P * H +
         (size_t)D * P + (size_t)D * P * C;
}

static void test_presets(void **state) {
  struct {
    const char *name;
    int D, C, n_bij;
    size_t n_params;
  } want[] = {
      {"cnf", 6, 5, 21, 10 * made_params(6, 5, 128, 2, 2)},
      {"cnf_peer", 6, 5, 20, 10 * made_params(6, 5, 128, 2, 2)},
      {"paraflow", 128, 3, 19, 10 * made_params(128, 3, 196, 2, 29)},
      {"flowi", 6, 1, 11, 6 * made_params(6, 1, 64, 2, 23)},
      {"flowi_paper", 6, 1, 11, 6 * made_params(6, 1, 64, 3, 23)},
      {"toy", 2, 1, 7, 4 * made_params(2, 1, 32, 2, 23)},
  };
  /* the PyTorch peer's dense count per A block is 19,596; ours adds Wc = D*P*C = 60 */
  assert_int_equal(made_params(6, 5, 128, 2, 2), 19596 + 60);
  /* ParaFlow's dense count (7,957,480, flows-reference section 7) plus Wc = 128*29*3 each */
  assert_int_equal(10 * made_params(128, 3, 196, 2, 29), 7957480 + 10 * 128 * 29 * 3);
  for (size_t t = 0; t < sizeof want / sizeof want[0]; t++) {
    cnf_flow *f = NULL;
    assert_int_equal(cnf_flow_create_preset(want[t].name, 0, 0, 1, &f), 0);
    assert_int_equal(cnf_flow_dim(f), want[t].D);
    assert_int_equal(cnf_flow_cond_dim(f), want[t].C);
    assert_int_equal(cnf_flow_num_bijectors(f), want[t].n_bij);
    assert_int_equal(cnf_flow_num_params(f), want[t].n_params);
    cnf_flow_free(&f);
  }
  /* cnf_peer chain order: [tanh, maf, perm(reverse), maf, ..., maf] like the peer CondMAF */
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create_preset("cnf_peer", 0, 0, 1, &f), 0);
  assert_int_equal(cnf_flow_bijector(f, 0)->spec.kind, CNF_BIJ_TANH);
  for (int k = 1; k < 20; k++) {
    const cnf_bijector *b = cnf_flow_bijector(f, k);
    if (k % 2 == 1) {
      assert_int_equal(b->spec.kind, CNF_BIJ_MAF_AFFINE);
      assert_int_equal(b->spec.scale_kind, CNF_AFFINE_SCALE_EXP);
      assert_int_equal(b->spec.hidden, 128);
    } else {
      assert_int_equal(b->spec.kind, CNF_BIJ_PERMUTE);
      for (int j = 0; j < 6; j++)
        assert_int_equal(b->spec.perm[j], 5 - j);
    }
  }
  cnf_flow_free(&f);
  /* cnf (TFP order): [tanh, (half-swap, maf exp_tanh) x 10] */
  assert_int_equal(cnf_flow_create_preset("cnf", 0, 0, 1, &f), 0);
  const int half_swap[6] = {3, 4, 5, 0, 1, 2};
  for (int k = 1; k < 21; k += 2) {
    for (int j = 0; j < 6; j++)
      assert_int_equal(cnf_flow_bijector(f, k)->spec.perm[j], half_swap[j]);
    assert_int_equal(cnf_flow_bijector(f, k + 1)->spec.scale_kind, CNF_AFFINE_SCALE_EXP_TANH);
  }
  cnf_flow_free(&f);
  /* paraflow: random permutations from the seed (reproducible, differ between blocks) */
  cnf_flow *g = NULL;
  assert_int_equal(cnf_flow_create_preset("paraflow", 16, 0, 7, &f), 0);
  assert_int_equal(cnf_flow_create_preset("paraflow", 16, 0, 7, &g), 0);
  assert_memory_equal(cnf_flow_bijector(f, 1)->spec.perm, cnf_flow_bijector(g, 1)->spec.perm,
                      16 * sizeof(int));
  assert_true(memcmp(cnf_flow_bijector(f, 1)->spec.perm, cnf_flow_bijector(f, 3)->spec.perm,
                     16 * sizeof(int)) != 0);
  cnf_flow_free(&g);
  assert_int_equal(cnf_flow_create_preset("paraflow", 16, 0, 8, &g), 0);
  assert_true(memcmp(cnf_flow_bijector(f, 1)->spec.perm, cnf_flow_bijector(g, 1)->spec.perm,
                     16 * sizeof(int)) != 0);
  assert_int_equal(cnf_flow_bijector(f, 2)->spec.kind, CNF_BIJ_MAF_RQS);
  assert_int_equal(cnf_flow_bijector(f, 2)->spec.bins, 10);
  assert_true(cnf_flow_bijector(f, 2)->spec.tail_bound == 14.0);
  cnf_flow_free(&f);
  cnf_flow_free(&g);
  /* caloinn: D must be given; [actnorm, coupling, permute] x 8 without the last permute */
  assert_int_equal(cnf_flow_create_preset("caloinn", 0, 0, 1, &f), CNF_ERR_ARG);
  assert_int_equal(cnf_flow_create_preset("caloinn", 10, 1, 1, &f), 0);
  assert_int_equal(cnf_flow_num_bijectors(f), 23);
  size_t sub = 64 * (5 + 1) + 64 + (64 * 64 + 64) + 5 * 23 * 64 + 5 * 23;
  assert_int_equal(cnf_flow_num_params(f), 8 * (2 * 10 + sub));
  assert_int_equal(cnf_flow_bijector(f, 1)->spec.tails, CNF_TAILS_EVENT);
  cnf_flow_free(&f);
  assert_int_equal(cnf_flow_create_preset("nope", 0, 0, 1, &f), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "nope"));
}

static void test_spec_validation(void **state) {
  cnf_bijector_spec s = {.kind = CNF_BIJ_MAF_RQS, .hidden = 8, .n_hidden = 1, .bins = 4,
                         .tail_bound = 3, .min_bin_width = 0.3, .min_bin_height = 1e-3,
                         .min_derivative = 1e-3};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(3, 1, 1, &s, &f), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "min_bin_width"));
  s.min_bin_width = 1e-3;
  s.bins = 65;
  assert_int_equal(cnf_flow_create(3, 1, 1, &s, &f), CNF_ERR_ARG);
  s.bins = 4;
  s.n_hidden = 0;
  assert_int_equal(cnf_flow_create(3, 1, 1, &s, &f), CNF_ERR_ARG);
  assert_null(f);
  assert_string_equal(cnf_bijector_kind_name(CNF_BIJ_COUPLING_RQS), "coupling_rqs");
  for (int k = 0; k < CNF_BIJ_KIND_COUNT; k++)
    assert_int_equal(cnf_bijector_kind_from_name(cnf_bijector_kind_name(k)), k);
  assert_int_equal(cnf_bijector_kind_from_name("glow"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_prob_is_sum_of_pieces),
      cmocka_unit_test(test_gradients_mixed_chain),
      cmocka_unit_test(test_gradients_architecture_a),
      cmocka_unit_test(test_gradient_wrt_x),
      cmocka_unit_test(test_sample_consistency_and_batching),
      cmocka_unit_test(test_data_init_sees_transformed_batch),
      cmocka_unit_test(test_identity_init),
      cmocka_unit_test(test_nonfinite_inputs_are_errors),
      cmocka_unit_test(test_presets),
      cmocka_unit_test(test_spec_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
