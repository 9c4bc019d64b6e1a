/* The regression baseline (double library): the shift-only maf_affine block (scale kind
 * "shift", P = 1) and the -prep regress flow of src/train/prep.c, against closed forms.
 *   - shift block: central finite-difference gradients (parameters, inputs, conditions) of
 *     L = sum a.z + b logdet, round trip, log-det exactly 0, parameter count with P = 1;
 *   - the regress prep builds [log, affine_fixed, maf_affine shift] with c' = c / 100 GeV; with
 *     zero hidden weights and a hand-set output bias and Wc the member's prediction is
 *     10 GeV * 10^(bout + Wc.c/100), and cnf_regress_predict averages the members in E space;
 *   - with random hidden weights the block is a plain ReLU MLP of the conditions (D = 1: the
 *     target column of W0 is masked), recomputed here from the documented parameter layout;
 *   - log p(E | c) = log N(log10(E/10 GeV) - m(c)) - ln(E ln 10): NLL = MSE/2 + const;
 *   - the model file keeps scale_kind "shift" and the predictions. */
#include "testutil.h"

#include "../src/flow/bijector_impl.h"
#include "../src/train/train_impl.h"
#include "cnflow/infer.h"
#include "cnflow/nn.h"

#include <math.h>
#include <petscsys.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the shift-only block ------------------------------------------------------------------ */
static void shift_make(cnf_bijector *b, int D, int C, int H, int L, uint64_t seed) {
  memset(b, 0, sizeof *b);
  b->spec.kind = CNF_BIJ_MAF_AFFINE;
  b->spec.hidden = H;
  b->spec.n_hidden = L;
  b->spec.scale_kind = CNF_AFFINE_SCALE_SHIFT;
  b->dim = D;
  b->cond_dim = C;
  assert_int_equal(cnf_bij_maf_create(b), 0);
  /* no log-scale outputs are allocated */
  assert_int_equal(b->n_params, cnf_made_count_params(D, C, H, L, 1));
  b->params = calloc(b->n_params, sizeof(double));
  b->grads = calloc(b->n_params, sizeof(double));
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  assert_int_equal(b->ops->init_params(b, &r, 0), 0);
  for (size_t i = 0; i < b->n_params; i++)
    b->params[i] *= 1.5; /* strong non-linearity */
  assert_int_equal(b->ops->params_changed(b), 0);
}

static void shift_drop(cnf_bijector *b) {
  b->ops->destroy(b);
  free(b->params);
  free(b->grads);
}

static double shift_loss(cnf_bijector *b, int n, const double *x, const double *c,
                         const double *a, const double *bw, double *z, double *ld) {
  memset(ld, 0, sizeof(double) * n);
  assert_int_equal(b->ops->forward(b, n, x, c, z, ld), 0);
  double s = 0;
  for (int i = 0; i < n; i++) {
    s += bw[i] * ld[i];
    for (int d = 0; d < b->dim; d++)
      s += a[i * b->dim + d] * z[i * b->dim + d];
  }
  return s;
}

static void test_shift_block_gradients_fd(void **state) {
  (void)state;
  enum { N = 7 };
  const int cases[][4] = {{1, 6, 16, 3}, {3, 2, 12, 2}};
  const double eps = 1e-6;
  for (int t = 0; t < 2; t++) {
    const int D = cases[t][0], C = cases[t][1];
    cnf_bijector b;
    shift_make(&b, D, C, cases[t][2], cases[t][3], 10 + t);
    cnf_rng r;
    cnf_rng_init(&r, 20 + t, 0, 0);
    double *x = testutil_alloc_normal(&r, (size_t)N * D, 1.0);
    double *c = testutil_alloc_normal(&r, (size_t)N * C, 1.0);
    double *a = testutil_alloc_normal(&r, (size_t)N * D, 1.0);
    double *bw = testutil_alloc_normal(&r, N, 1.0);
    double *z = malloc(sizeof(double) * N * D), *ld = malloc(sizeof(double) * N);
    double *dx = malloc(sizeof(double) * N * D), *dc = calloc((size_t)N * C, sizeof(double));
    shift_loss(&b, N, x, c, a, bw, z, ld);
    for (int i = 0; i < N; i++)
      assert_true(ld[i] == 0.0); /* unit Jacobian */
    assert_int_equal(b.ops->backward(&b, N, x, c, z, a, bw, dx, dc), 0);
    double gscale = 0;
    for (size_t i = 0; i < b.n_params; i++)
      gscale = fmax(gscale, fabs(b.grads[i]));
    char what[64];
    size_t checked = 0;
    for (size_t i = 0; i < b.n_params; i++) {
      if (b.params[i] == 0.0) { /* masked */
        assert_true(b.grads[i] == 0.0);
        continue;
      }
      const double p0 = b.params[i];
      b.params[i] = p0 + eps;
      const double lp = shift_loss(&b, N, x, c, a, bw, z, ld);
      b.params[i] = p0 - eps;
      const double lm = shift_loss(&b, N, x, c, a, bw, z, ld);
      b.params[i] = p0;
      snprintf(what, sizeof what, "case %d param %zu", t, i);
      check_fd(what, b.grads[i], (lp - lm) / (2 * eps), gscale);
      checked++;
    }
    assert_true(checked >= 200);
    double *v[2] = {x, c};
    double *g[2] = {dx, dc};
    const int len[2] = {N * D, N * C};
    for (int w = 0; w < 2; w++)
      for (int i = 0; i < len[w]; i++) {
        const double v0 = v[w][i];
        v[w][i] = v0 + eps;
        const double lp = shift_loss(&b, N, x, c, a, bw, z, ld);
        v[w][i] = v0 - eps;
        const double lm = shift_loss(&b, N, x, c, a, bw, z, ld);
        v[w][i] = v0;
        snprintf(what, sizeof what, "case %d %s %d", t, w ? "c" : "x", i);
        check_fd(what, g[w][i], (lp - lm) / (2 * eps), gscale);
      }
    /* x -> z -> x over several sampling tiles */
    enum { NR = 300 };
    double *xr = testutil_alloc_normal(&r, (size_t)NR * D, 1.0);
    double *cr = testutil_alloc_normal(&r, (size_t)NR * C, 1.0);
    double *zr = malloc(sizeof(double) * NR * D), *xb = malloc(sizeof(double) * NR * D);
    double *l1 = calloc(NR, sizeof(double)), *l2 = calloc(NR, sizeof(double));
    assert_int_equal(b.ops->forward(&b, NR, xr, cr, zr, l1), 0);
    assert_int_equal(b.ops->inverse(&b, NR, zr, cr, xb, l2), 0);
    double dev = 0;
    for (int i = 0; i < NR * D; i++) {
      assert_close(xb[i], xr[i], 1e-12, 1e-12);
      dev = fmax(dev, fabs(zr[i] - xr[i]));
    }
    for (int i = 0; i < NR; i++)
      assert_true(l1[i] == 0.0 && l2[i] == 0.0);
    assert_true(dev > 0.3); /* far from the identity */
    free(xr), free(cr), free(zr), free(xb), free(l1), free(l2);
    free(x), free(c), free(a), free(bw), free(z), free(ld), free(dx), free(dc);
    shift_drop(&b);
  }
}

/* ---- the regress prep ---------------------------------------------------------------------- */
enum { NC = 6, H = 256, L = 3 };

/* The -prep regress flow built by train_prep_build on a hand-made training shard (GeV). */
static cnf_flow *regress_flow(uint64_t seed) {
  enum { NT = 20 };
  train_shard *tr = calloc(1, sizeof *tr);
  tr->n = NT;
  tr->D = 1;
  tr->C = NC;
  tr->x = malloc(sizeof(double) * NT);
  tr->c = malloc(sizeof(double) * NT * NC);
  for (int i = 0; i < NT; i++) {
    tr->x[i] = 1.0 + 5.0 * i;
    for (int j = 0; j < NC; j++)
      tr->c[i * NC + j] = 0.1 * (i + j);
  }
  snprintf(tr->file, sizeof tr->file, "hand-made");
  snprintf(tr->target_names[0], sizeof tr->target_names[0], "E_inc");
  snprintf(tr->target_units[0], sizeof tr->target_units[0], "GeV");
  for (int j = 0; j < NC; j++) {
    snprintf(tr->cond_names[j], sizeof tr->cond_names[j], "E_%d", j);
    snprintf(tr->cond_units[j], sizeof tr->cond_units[j], "GeV");
  }
  cnf_study_conf conf;
  cnf_study_conf_default(&conf);
  conf.prep = CNF_PREP_REGRESS;
  conf.seed = seed;
  train_prep prep;
  cnf_flow *f = NULL;
  assert_int_equal(train_prep_build(MPI_COMM_SELF, &conf, tr, &prep, &f), 0);
  /* support: E > 0 only */
  unsigned char keep[NT];
  tr->x[3] = 0.0;
  train_prep_support(&prep, tr, keep);
  for (int i = 0; i < NT; i++)
    assert_int_equal(keep[i], i != 3);
  free(tr->x);
  free(tr->c);
  free(tr);
  assert_int_equal(cnf_flow_init_params(f, seed, 0), 0);
  return f;
}

/* the MAF block of the regress flow: its slice and MADE offsets (the documented layout) */
typedef struct mlp_view {
  cnf_real *w0, *b0, *w[L], *b[L], *wout, *bout, *wc;
} mlp_view;

static mlp_view view_of(cnf_flow *f) {
  assert_int_equal(cnf_flow_num_bijectors(f), 3);
  assert_int_equal(cnf_flow_bijector(f, 0)->spec.kind, CNF_BIJ_LOG);
  assert_true(cnf_flow_bijector(f, 0)->spec.eps == 0.0);
  assert_int_equal(cnf_flow_bijector(f, 1)->spec.kind, CNF_BIJ_AFFINE_FIXED);
  const cnf_bijector *b = cnf_flow_bijector(f, 2);
  assert_int_equal(b->spec.kind, CNF_BIJ_MAF_AFFINE);
  assert_int_equal(b->spec.scale_kind, CNF_AFFINE_SCALE_SHIFT);
  assert_int_equal(b->spec.hidden, H); /* RegressionLayerNet: 3 x 256 */
  assert_int_equal(b->spec.n_hidden, L);
  assert_int_equal(b->n_params, cnf_made_count_params(1, NC, H, L, 1));
  assert_int_equal(cnf_flow_num_params(f), b->n_params);
  cnf_real *p = cnf_flow_params(f) + b->param_offset;
  mlp_view v;
  v.w0 = p, p += (size_t)H * (1 + NC);
  v.b0 = p, p += H;
  for (int l = 1; l < L; l++) {
    v.w[l] = p, p += (size_t)H * H;
    v.b[l] = p, p += H;
  }
  v.wout = p, p += H;
  v.bout = p, p += 1;
  v.wc = p, p += NC;
  assert_true(p == cnf_flow_params(f) + b->param_offset + b->n_params);
  return v;
}

/* m(c) recomputed: c' = c / 100, h = relu(W0[:, 1:] c' + b0), ..., m = Wout h + bout + Wc c' */
static double mlp_m(const mlp_view *v, const double *c) {
  double cp[NC], h[H], h2[H];
  for (int j = 0; j < NC; j++)
    cp[j] = c[j] / 100.0;
  for (int k = 0; k < H; k++) {
    double s = v->b0[k];
    for (int j = 0; j < NC; j++)
      s += v->w0[(size_t)k * (1 + NC) + 1 + j] * cp[j];
    h[k] = s > 0 ? s : 0;
  }
  for (int l = 1; l < L; l++) {
    for (int k = 0; k < H; k++) {
      double s = v->b[l][k];
      for (int q = 0; q < H; q++)
        s += v->w[l][(size_t)k * H + q] * h[q];
      h2[k] = s > 0 ? s : 0;
    }
    memcpy(h, h2, sizeof h);
  }
  double m = v->bout[0];
  for (int k = 0; k < H; k++)
    m += v->wout[k] * h[k];
  for (int j = 0; j < NC; j++)
    m += v->wc[j] * cp[j];
  return m;
}

static void draw_layers(int n, double *c, uint64_t seed) {
  cnf_rng r;
  cnf_rng_init(&r, seed, 0, 0);
  for (int i = 0; i < n * NC; i++)
    c[i] = 30.0 * cnf_rng_uniform(&r); /* GeV */
}

static void test_prediction_with_hand_set_parameters(void **state) {
  (void)state;
  enum { N = 9, K = 2 };
  cnf_flow *f[K];
  const double bias[K] = {0.3, -0.45}, wc[K][NC] = {{1.0, -2.0, 0.5, 0.0, 3.0, -1.0},
                                                    {0.2, 0.4, -0.6, 0.8, -1.0, 1.2}};
  for (int k = 0; k < K; k++) {
    f[k] = regress_flow(5 + k);
    /* zero hidden weights and biases: h = 0, so m(c) = bout + Wc . c' exactly */
    memset(cnf_flow_params(f[k]), 0, sizeof(cnf_real) * cnf_flow_num_params(f[k]));
    mlp_view v = view_of(f[k]);
    v.bout[0] = bias[k];
    for (int j = 0; j < NC; j++)
      v.wc[j] = wc[k][j];
    assert_int_equal(cnf_flow_params_changed(f[k]), 0);
  }
  double c[N * NC], pred[N], member[K * N];
  draw_layers(N, c, 3);
  assert_int_equal(cnf_regress_predict(f, K, N, c, pred, member), 0);
  for (int i = 0; i < N; i++) {
    double mean = 0;
    for (int k = 0; k < K; k++) {
      double m = bias[k];
      for (int j = 0; j < NC; j++)
        m += wc[k][j] * c[i * NC + j] / 100.0;
      const double e = 10.0 * pow(10.0, m); /* GeV */
      assert_close(member[k * N + i], e, 1e-12, 0);
      mean += e / K;
    }
    assert_close(pred[i], mean, 1e-12, 0); /* the mean in E space, not of log10 E */
  }
  /* the density of the raw E: log N(t - m) - ln(E ln 10), t = log10(E / 10 GeV) */
  double E[N], lp[N];
  for (int i = 0; i < N; i++)
    E[i] = 1.0 + 11.0 * i;
  assert_int_equal(cnf_flow_log_prob(f[0], N, E, c, lp), 0);
  for (int i = 0; i < N; i++) {
    double m = bias[0];
    for (int j = 0; j < NC; j++)
      m += wc[0][j] * c[i * NC + j] / 100.0;
    const double r = log10(E[i] / 10.0) - m;
    assert_close(lp[i], -0.5 * r * r - 0.5 * log(2 * M_PI) - log(E[i] * M_LN10), 1e-12, 1e-12);
  }
  for (int k = 0; k < K; k++)
    cnf_flow_free(&f[k]);
}

static void test_mlp_of_the_conditions_and_model_file(void **state) {
  (void)state;
  enum { N = 6 };
  cnf_flow *f = regress_flow(11);
  mlp_view v = view_of(f);
  /* the target column of W0 is masked: no hidden unit sees E (D = 1) */
  for (int k = 0; k < H; k++) {
    v.w0[(size_t)k * (1 + NC)] = 1.0;
  }
  assert_int_equal(cnf_flow_params_changed(f), 0);
  for (int k = 0; k < H; k++)
    assert_true(v.w0[(size_t)k * (1 + NC)] == 0.0);
  /* a visibly non-trivial MLP: bigger output weights */
  for (int k = 0; k < H; k++)
    v.wout[k] *= 20;
  v.bout[0] = 0.1;
  assert_int_equal(cnf_flow_params_changed(f), 0);
  double c[N * NC], pred[N];
  draw_layers(N, c, 4);
  assert_int_equal(cnf_regress_predict(&f, 1, N, c, pred, NULL), 0);
  double spread = 0;
  for (int i = 0; i < N; i++) {
    const double m = mlp_m(&v, c + i * NC);
    assert_close(pred[i], 10.0 * pow(10.0, m), 1e-10, 0);
    spread = fmax(spread, fabs(m - mlp_m(&v, c)));
  }
  assert_true(spread > 0.01); /* the prediction depends on the layers */
  /* the model file keeps the shift block and gives the same predictions */
  const char *path = testutil_tmp_path("regress_model.h5");
  cnf_model_provenance prov;
  memset(&prov, 0, sizeof prov);
  snprintf(prov.dataset, sizeof prov.dataset, "prep=regress\n");
  assert_int_equal(cnf_flow_save(f, path, &prov), 0);
  cnf_flow *g = NULL;
  assert_int_equal(cnf_flow_load(path, &g, &prov), 0);
  assert_int_equal(cnf_flow_bijector(g, 2)->spec.scale_kind, CNF_AFFINE_SCALE_SHIFT);
  double pred2[N];
  assert_int_equal(cnf_regress_predict(&g, 1, N, c, pred2, NULL), 0);
  for (int i = 0; i < N; i++)
    assert_true(pred2[i] == pred[i]);
  unlink(path);
  /* a non-regression (2-D) member is refused */
  cnf_flow *h = NULL;
  assert_int_equal(cnf_flow_create_preset("toy", 0, 0, 1, &h), 0);
  assert_int_equal(cnf_regress_predict(&h, 1, 1, c, pred, NULL), CNF_ERR_ARG);
  cnf_flow_free(&h);
  cnf_flow_free(&g);
  cnf_flow_free(&f);
}

int main(int argc, char **argv) {
  if (PetscInitialize(&argc, &argv, NULL, NULL) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shift_block_gradients_fd),
      cmocka_unit_test(test_prediction_with_hand_set_parameters),
      cmocka_unit_test(test_mlp_of_the_conditions_and_model_file),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  PetscFinalize();
  return rc;
}
