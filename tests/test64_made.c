/* Conditional MADE (src/nn/made.c), double library: the parameter layout and counts of
 * flow.h, autoregressive connectivity (exact zero dependence on x_j for j >= d, dependence on
 * some x_j, j < d, and on every condition for every output), the mask product, central
 * finite-difference gradients w.r.t. parameters, inputs and conditions, gradient
 * accumulation, the sequential (sampling) mode against the full forward pass, and the live
 * ranges (the entries that can carry gradients). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cnflow/nn.h"

typedef struct made_case {
  int D, C, H, L, P;
} made_case;

/* Small shapes, including D = 1, C = 0, three hidden layers and H not a multiple of D - 1. */
static const made_case CASES[] = {
    {5, 3, 23, 2, 3}, {6, 5, 32, 2, 2}, {4, 1, 13, 3, 4}, {3, 0, 10, 2, 2}, {1, 2, 6, 2, 3},
};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

/* A MADE with random weights scaled by `scale` (so the ReLUs switch and the map is far from
 * linear), masked as the library would. */
static cnf_made *make_made(const made_case *mc, cnf_rng *r, double scale, double **params) {
  cnf_made *m;
  assert_int_equal(cnf_made_create(mc->D, mc->C, mc->H, mc->L, mc->P, &m), 0);
  size_t np = cnf_made_num_params(m);
  *params = malloc(np * sizeof **params);
  cnf_made_init_params(m, *params, r, 0);
  for (size_t i = 0; i < np; i++)
    (*params)[i] *= scale;
  return m;
}

static void test_layout_and_counts(void **state) {
  /* flow.h: W0 (H, D+C), b0, [W_l, b_l], Wout (D*P, H), bout, Wc (D*P, C) */
  for (int t = 0; t < N_CASES; t++) {
    const made_case *mc = &CASES[t];
    cnf_made *m;
    assert_int_equal(cnf_made_create(mc->D, mc->C, mc->H, mc->L, mc->P, &m), 0);
    const size_t D = mc->D, C = mc->C, H = mc->H, DP = (size_t)mc->D * mc->P;
    size_t off = 0;
    assert_int_equal(cnf_made_offset_weight(m, 0), off);
    off += H * (D + C);
    assert_int_equal(cnf_made_offset_bias(m, 0), off);
    off += H;
    for (int l = 1; l < mc->L; l++) {
      assert_int_equal(cnf_made_offset_weight(m, l), off);
      off += H * H;
      assert_int_equal(cnf_made_offset_bias(m, l), off);
      off += H;
    }
    assert_int_equal(cnf_made_offset_weight(m, mc->L), off);
    off += DP * H;
    assert_int_equal(cnf_made_offset_bias(m, mc->L), off);
    off += DP;
    assert_int_equal(cnf_made_offset_wc(m), off);
    off += DP * C;
    assert_int_equal(cnf_made_num_params(m), off);
    assert_int_equal(cnf_made_count_params(mc->D, mc->C, mc->H, mc->L, mc->P), off);
    /* effective count = number of connected weights + biases + Wc, counted by brute force */
    size_t eff = 0;
    for (int l = 0; l <= mc->L; l++) {
      const int rows = l < mc->L ? mc->H : (int)DP, cols = l == 0 ? (int)(D + C) : mc->H;
      for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
          eff += (size_t)cnf_made_connected(m, l, i, j);
      eff += (size_t)rows;
    }
    eff += DP * C;
    assert_int_equal(cnf_made_count_params_effective(mc->D, mc->C, mc->H, mc->L, mc->P), eff);
    /* degrees: sorted, and a permutation of the peer sequence k mod max(1,D-1) + min(1,D-1) */
    const int period = mc->D > 1 ? mc->D - 1 : 1, lo = mc->D > 1 ? 1 : 0;
    int *seen = calloc(H, sizeof *seen);
    for (int k = 0; k < mc->H; k++) {
      int pk = cnf_made_hidden_peer_index(m, k);
      assert_true(pk >= 0 && pk < mc->H && !seen[pk]);
      seen[pk] = 1;
      assert_int_equal(cnf_made_hidden_degree(m, k), pk % period + lo);
      if (k > 0)
        assert_true(cnf_made_hidden_degree(m, k) >= cnf_made_hidden_degree(m, k - 1));
    }
    free(seen);
    cnf_made_free(&m);
  }
  /* the peer's dense count for architecture A (19,596 per block) plus Wc (D*P*C = 60) */
  assert_int_equal(cnf_made_count_params(6, 5, 128, 2, 2), 19596 + 60);
}

/* Boolean product of the masks: dependence of output dimension d on input j must be j < d. */
static void test_mask_product(void **state) {
  for (int t = 0; t < N_CASES; t++) {
    const made_case *mc = &CASES[t];
    cnf_made *m;
    assert_int_equal(cnf_made_create(mc->D, mc->C, mc->H, mc->L, mc->P, &m), 0);
    const int D = mc->D, H = mc->H;
    int *reach = calloc((size_t)H * D, sizeof *reach), *next = calloc((size_t)H * D, sizeof *next);
    for (int u = 0; u < H; u++)
      for (int j = 0; j < D; j++)
        reach[u * D + j] = cnf_made_connected(m, 0, u, j);
    for (int l = 1; l < mc->L; l++) {
      for (int u = 0; u < H; u++)
        for (int j = 0; j < D; j++) {
          int v = 0;
          for (int w = 0; w < H; w++)
            v |= cnf_made_connected(m, l, u, w) && reach[w * D + j];
          next[u * D + j] = v;
        }
      memcpy(reach, next, sizeof(int) * H * D);
    }
    for (int d = 0; d < D; d++)
      for (int p = 0; p < mc->P; p++)
        for (int j = 0; j < D; j++) {
          int v = 0;
          for (int w = 0; w < H; w++)
            v |= cnf_made_connected(m, mc->L, d * mc->P + p, w) && reach[w * D + j];
          assert_int_equal(v, j < d);
        }
    free(reach);
    free(next);
    cnf_made_free(&m);
  }
}

/* Perturbing x_j leaves outputs of dimensions d <= j bit-identical (masked weights are exact
 * zeros); outputs of dimension d > j move for some event; every condition moves every output. */
static void test_connectivity_numeric(void **state) {
  enum { N = 16 };
  cnf_rng r;
  cnf_rng_init(&r, 5, 0, 0);
  for (int t = 0; t < N_CASES; t++) {
    const made_case *mc = &CASES[t];
    const int D = mc->D, C = mc->C, DP = mc->D * mc->P;
    double *params;
    cnf_made *m = make_made(mc, &r, 1.0, &params);
    double *x = testutil_alloc_normal(&r, (size_t)N * D, 1.0);
    double *c = testutil_alloc_normal(&r, (size_t)N * (C ? C : 1), 1.0);
    double *out0 = malloc(sizeof(double) * N * DP), *out1 = malloc(sizeof(double) * N * DP);
    assert_int_equal(cnf_made_forward(m, params, N, x, c, out0), 0);
    double *saved = malloc(sizeof(double) * N);
    for (int j = 0; j < D; j++) {
      for (int i = 0; i < N; i++) {
        saved[i] = x[i * D + j];
        x[i * D + j] += 0.5;
      }
      assert_int_equal(cnf_made_forward(m, params, N, x, c, out1), 0);
      for (int i = 0; i < N; i++)
        x[i * D + j] = saved[i];
      for (int d = 0; d < D; d++) {
        double moved = 0;
        for (int i = 0; i < N; i++)
          for (int p = 0; p < mc->P; p++)
            moved += fabs(out1[i * DP + d * mc->P + p] - out0[i * DP + d * mc->P + p]);
        if (d <= j)
          assert_true(moved == 0.0);
        else
          assert_true(moved > 1e-6);
      }
    }
    for (int k = 0; k < C; k++) {
      for (int i = 0; i < N; i++) {
        saved[i] = c[i * C + k];
        c[i * C + k] += 0.5;
      }
      assert_int_equal(cnf_made_forward(m, params, N, x, c, out1), 0);
      for (int i = 0; i < N; i++)
        c[i * C + k] = saved[i];
      for (int o = 0; o < DP; o++) {
        double moved = 0;
        for (int i = 0; i < N; i++)
          moved += fabs(out1[i * DP + o] - out0[i * DP + o]);
        assert_true(moved > 1e-6);
      }
    }
    free(x), free(c), free(out0), free(out1), free(params), free(saved);
    cnf_made_free(&m);
  }
}

/* L = sum(A .* out) for a fixed random A. */
static double made_loss(cnf_made *m, const double *params, int n, const double *x,
                        const double *c, const double *A, double *out, int DP) {
  assert_int_equal(cnf_made_forward(m, params, n, x, c, out), 0);
  double s = 0;
  for (int i = 0; i < n * DP; i++)
    s += A[i] * out[i];
  return s;
}

static void test_gradients_fd(void **state) {
  enum { N = 6 };
  const double eps = 1e-6;
  cnf_rng r;
  cnf_rng_init(&r, 9, 0, 0);
  for (int t = 0; t < N_CASES; t++) {
    const made_case *mc = &CASES[t];
    const int D = mc->D, C = mc->C, DP = mc->D * mc->P;
    double *params;
    cnf_made *m = make_made(mc, &r, 2.0, &params);
    const size_t np = cnf_made_num_params(m);
    double *x = testutil_alloc_normal(&r, (size_t)N * D, 1.5);
    double *c = testutil_alloc_normal(&r, (size_t)N * (C ? C : 1), 1.5);
    double *A = testutil_alloc_normal(&r, (size_t)N * DP, 1.0);
    double *out = malloc(sizeof(double) * N * DP);
    double *grads = calloc(np, sizeof *grads), *dx = malloc(sizeof(double) * N * D);
    double *dc = calloc((size_t)N * (C ? C : 1), sizeof *dc);
    made_loss(m, params, N, x, c, A, out, DP);
    assert_int_equal(cnf_made_backward(m, params, N, x, c, A, grads, dx, C ? dc : NULL), 0);
    double gscale = 0;
    for (size_t i = 0; i < np; i++)
      gscale = fmax(gscale, fabs(grads[i]));
    /* masked weights: parameter and gradient exactly zero */
    double *mask_probe = malloc(np * sizeof *mask_probe);
    for (size_t i = 0; i < np; i++)
      mask_probe[i] = 1;
    cnf_made_apply_mask(m, mask_probe);
    size_t n_masked = 0;
    for (size_t i = 0; i < np; i++)
      if (mask_probe[i] == 0) {
        assert_true(params[i] == 0.0 && grads[i] == 0.0);
        n_masked++;
      }
    assert_int_equal(np - n_masked,
                     cnf_made_count_params_effective(mc->D, mc->C, mc->H, mc->L, mc->P));
    /* every unmasked parameter (these MADEs are small) */
    char what[64];
    for (size_t i = 0; i < np; i++) {
      if (mask_probe[i] == 0)
        continue;
      const double p0 = params[i];
      params[i] = p0 + eps;
      const double lp = made_loss(m, params, N, x, c, A, out, DP);
      params[i] = p0 - eps;
      const double lm = made_loss(m, params, N, x, c, A, out, DP);
      params[i] = p0;
      snprintf(what, sizeof what, "case %d param %zu", t, i);
      check_fd(what, grads[i], (lp - lm) / (2 * eps), gscale);
    }
    for (int i = 0; i < N * D; i++) {
      const double x0 = x[i];
      x[i] = x0 + eps;
      const double lp = made_loss(m, params, N, x, c, A, out, DP);
      x[i] = x0 - eps;
      const double lm = made_loss(m, params, N, x, c, A, out, DP);
      x[i] = x0;
      snprintf(what, sizeof what, "case %d x %d", t, i);
      check_fd(what, dx[i], (lp - lm) / (2 * eps), gscale);
    }
    for (int i = 0; i < N * C; i++) {
      const double c0 = c[i];
      c[i] = c0 + eps;
      const double lp = made_loss(m, params, N, x, c, A, out, DP);
      c[i] = c0 - eps;
      const double lm = made_loss(m, params, N, x, c, A, out, DP);
      c[i] = c0;
      snprintf(what, sizeof what, "case %d c %d", t, i);
      check_fd(what, dc[i], (lp - lm) / (2 * eps), gscale);
    }
    /* a second backward accumulates: parameter and condition gradients double, dx is rewritten */
    double *grads2 = malloc(np * sizeof *grads2), *dc2 = malloc(sizeof(double) * N * (C ? C : 1));
    memcpy(grads2, grads, np * sizeof *grads2);
    memcpy(dc2, dc, sizeof(double) * N * (C ? C : 1));
    double *dx2 = malloc(sizeof(double) * N * D);
    made_loss(m, params, N, x, c, A, out, DP);
    assert_int_equal(cnf_made_backward(m, params, N, x, c, A, grads2, dx2, C ? dc2 : NULL), 0);
    for (size_t i = 0; i < np; i++)
      assert_close(grads2[i], 2 * grads[i], 1e-12, 1e-300);
    for (int i = 0; i < N * C; i++)
      assert_close(dc2[i], 2 * dc[i], 1e-12, 1e-300);
    check_array("dx rewritten", (size_t)N * D, dx2, dx, 0, 0);
    free(grads2), free(dc2), free(dx2), free(mask_probe);
    free(x), free(c), free(A), free(out), free(grads), free(dx), free(dc), free(params);
    cnf_made_free(&m);
  }
}

/* The sequential mode gives the same outputs as the full pass, reading only x_{<d} at step d. */
static void test_sequential_matches_forward(void **state) {
  enum { N = 37 };
  cnf_rng r;
  cnf_rng_init(&r, 21, 0, 0);
  for (int t = 0; t < N_CASES; t++) {
    const made_case *mc = &CASES[t];
    const int D = mc->D, C = mc->C, P = mc->P, DP = D * P;
    double *params;
    cnf_made *m = make_made(mc, &r, 1.5, &params);
    double *x = testutil_alloc_normal(&r, (size_t)N * D, 1.0);
    double *c = testutil_alloc_normal(&r, (size_t)N * (C ? C : 1), 1.0);
    double *out = malloc(sizeof(double) * N * DP), *od = malloc(sizeof(double) * N * P);
    double *xs = malloc(sizeof(double) * N * D);
    assert_int_equal(cnf_made_forward(m, params, N, x, c, out), 0);
    /* xs holds x_{<d} and garbage (NaN) from column d on: it must never be read */
    for (int i = 0; i < N * D; i++)
      xs[i] = NAN;
    assert_int_equal(cnf_made_seq_begin(m, params, N, C ? c : NULL), 0);
    for (int d = 0; d < D; d++) {
      cnf_made_seq_step(m, params, d, xs, od);
      for (int i = 0; i < N; i++) {
        for (int p = 0; p < P; p++)
          assert_close(od[i * P + p], out[i * DP + d * P + p], 1e-13, 1e-13);
        xs[i * D + d] = x[i * D + d];
      }
    }
    free(x), free(c), free(out), free(od), free(xs), free(params);
    cnf_made_free(&m);
  }
}

/* A large batch (several internal row tiles) gives the same outputs and gradients as the same
 * rows passed in small chunks, with parameter and condition gradients summed over the chunks. */
static void test_large_batch_matches_chunks(void **state) {
  enum { N = 700, CHUNK = 70 };
  const made_case *mc = &CASES[0];
  const int D = mc->D, C = mc->C, DP = mc->D * mc->P;
  cnf_rng r;
  cnf_rng_init(&r, 33, 0, 0);
  double *params;
  cnf_made *m = make_made(mc, &r, 1.5, &params);
  const size_t np = cnf_made_num_params(m);
  double *x = testutil_alloc_normal(&r, (size_t)N * D, 1.0), *c = testutil_alloc_normal(&r, (size_t)N * C, 1.0);
  double *A = testutil_alloc_normal(&r, (size_t)N * DP, 1.0);
  double *out = malloc(sizeof(double) * N * DP), *out_c = malloc(sizeof(double) * N * DP);
  double *g = calloc(np, sizeof(double)), *g_c = calloc(np, sizeof(double));
  double *dx = malloc(sizeof(double) * N * D), *dx_c = malloc(sizeof(double) * N * D);
  double *dc = calloc((size_t)N * C, sizeof(double)), *dc_c = calloc((size_t)N * C, sizeof(double));
  assert_int_equal(cnf_made_forward(m, params, N, x, c, out), 0);
  assert_int_equal(cnf_made_backward(m, params, N, x, c, A, g, dx, dc), 0);
  for (int i0 = 0; i0 < N; i0 += CHUNK) {
    assert_int_equal(cnf_made_forward(m, params, CHUNK, x + i0 * D, c + i0 * C, out_c + i0 * DP), 0);
    assert_int_equal(cnf_made_backward(m, params, CHUNK, x + i0 * D, c + i0 * C, A + i0 * DP, g_c,
                                       dx_c + i0 * D, dc_c + i0 * C), 0);
  }
  check_array("out", (size_t)N * DP, out, out_c, 1e-12, 1e-12);
  check_array("dx", (size_t)N * D, dx, dx_c, 1e-12, 1e-12);
  check_array("dc", (size_t)N * C, dc, dc_c, 1e-12, 1e-12);
  check_array("grads", np, g, g_c, 1e-10, 1e-10);
  free(x), free(c), free(A), free(out), free(out_c), free(g), free(g_c), free(dx), free(dx_c);
  free(dc), free(dc_c), free(params);
  cnf_made_free(&m);
}

/* cnf_made_live_ranges: exactly the entries apply_mask keeps (the FD test above shows those
 * carry every non-zero gradient), offset by the base, sorted, merged (no two ranges touch),
 * and the counting call agrees with the writing one. */
static void test_live_ranges(void **state) {
  for (int t = 0; t < N_CASES; t++) {
    const made_case *mc = &CASES[t];
    cnf_made *m;
    assert_int_equal(cnf_made_create(mc->D, mc->C, mc->H, mc->L, mc->P, &m), 0);
    const size_t np = cnf_made_num_params(m), base = 7 + (size_t)t;
    double *probe = malloc(np * sizeof *probe);
    for (size_t i = 0; i < np; i++)
      probe[i] = 1;
    cnf_made_apply_mask(m, probe);
    const size_t n = cnf_made_live_ranges(m, base, NULL);
    assert_true(n >= 1);
    size_t *r = malloc(sizeof(size_t) * 2 * n);
    assert_int_equal(cnf_made_live_ranges(m, base, r), n);
    char *live = calloc(np, 1);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
      assert_true(r[2 * i] >= base && r[2 * i] < r[2 * i + 1] && r[2 * i + 1] <= base + np);
      if (i > 0)
        assert_true(r[2 * i] > r[2 * i - 1]); /* sorted and merged */
      for (size_t j = r[2 * i]; j < r[2 * i + 1]; j++)
        live[j - base] = 1;
      count += r[2 * i + 1] - r[2 * i];
    }
    for (size_t j = 0; j < np; j++)
      assert_int_equal(live[j], probe[j] != 0);
    assert_int_equal(count, cnf_made_count_params_effective(mc->D, mc->C, mc->H, mc->L, mc->P));
    free(live), free(r), free(probe);
    cnf_made_free(&m);
  }
}

static void test_bad_arguments(void **state) {
  cnf_made *m = NULL;
  assert_true(cnf_made_create(0, 1, 8, 2, 2, &m) == CNF_ERR_ARG && m == NULL);
  assert_true(cnf_made_create(3, 1, 8, 0, 2, &m) == CNF_ERR_ARG && m == NULL);
  assert_true(strstr(cnf_error_message(), "L=0") != NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layout_and_counts),
      cmocka_unit_test(test_mask_product),
      cmocka_unit_test(test_connectivity_numeric),
      cmocka_unit_test(test_gradients_fd),
      cmocka_unit_test(test_sequential_matches_forward),
      cmocka_unit_test(test_large_batch_matches_chunks),
      cmocka_unit_test(test_live_ranges),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
