/* Joint fits of shared conditions (cnf_fit_joint, include/cnflow/infer.h), double precision,
 * against closed forms.
 *
 * A linear-Gaussian response is represented EXACTLY by one affine MAF block whose MADE output
 * layer is zero and whose direct condition term Wc and bias are set:
 *   x_d | theta ~ N(m0_d + sum_j A_dj theta_j, sigma_d^2),  d = 0, 1,  theta = (c_0, c_1)
 * (a third condition, the "energy", has zero weight).  For N showers the maximum-likelihood
 * estimate and its covariance are closed forms:
 *   theta_hat = A^-1 (xbar - m0),   cov = (N A^T S^-1 A)^-1,  S = diag(sigma^2). */
#include "testutil.h"

#include "cnflow/infer.h"

#include <math.h>
#include <petscsys.h>
#include <stdlib.h>

enum { D = 2, C = 3, P = 2 };

static cnf_flow *linear_gaussian_flow(const double A[D][P], const double m0[D],
                                      const double sigma[D]) {
  cnf_bijector_spec spec = {.kind = CNF_BIJ_MAF_AFFINE, .hidden = 4, .n_hidden = 1,
                            .scale_kind = CNF_AFFINE_SCALE_EXP};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(D, C, 1, &spec, &f), 0);
  assert_int_equal(cnf_flow_init_params(f, 7, 1), 0); /* identity: output layer and Wc zero */
  cnf_real *w = cnf_flow_params(f);
  const size_t n = cnf_flow_num_params(f), nc = (size_t)D * 2 * C, nb = (size_t)D * 2;
  cnf_real *bout = w + n - nc - nb, *wc = w + n - nc; /* row d*P + p: p0 = shift, p1 = u */
  for (int d = 0; d < D; d++) {
    bout[d * 2 + 0] = (cnf_real)m0[d];
    bout[d * 2 + 1] = (cnf_real)log(sigma[d]);
    for (int j = 0; j < P; j++)
      wc[(size_t)(d * 2 + 0) * C + j] = (cnf_real)A[d][j];
  }
  assert_int_equal(cnf_flow_params_changed(f), 0);
  return f;
}

static double logp_closed(const double *x, const double *theta, const double A[D][P],
                          const double m0[D], const double sigma[D]) {
  double s = 0;
  for (int d = 0; d < D; d++) {
    double mu = m0[d] + A[d][0] * theta[0] + A[d][1] * theta[1];
    double z = (x[d] - mu) / sigma[d];
    s += -0.5 * z * z - 0.5 * log(2 * M_PI) - log(sigma[d]);
  }
  return s;
}

/* showers drawn from the response at theta_true (energy column: junk the fit must carry) */
static void draw(int N, const double theta_true[P], const double A[D][P], const double m0[D],
                 const double sigma[D], cnf_real *x, cnf_real *c, double xbar[D]) {
  cnf_rng r;
  cnf_rng_init(&r, 99, 0, 0);
  xbar[0] = xbar[1] = 0;
  for (int i = 0; i < N; i++) {
    for (int d = 0; d < D; d++) {
      double mu = m0[d] + A[d][0] * theta_true[0] + A[d][1] * theta_true[1];
      x[i * D + d] = (cnf_real)(mu + sigma[d] * cnf_rng_normal(&r));
      xbar[d] += (double)x[i * D + d] / N;
    }
    c[i * C + 0] = -5; /* overwritten by the fit */
    c[i * C + 1] = 1e3;
    c[i * C + 2] = 40 + i;
  }
}

static void test_linear_gaussian_closure(void **state) {
  (void)state;
  const double A[D][P] = {{2.0, 0.05}, {0.7, -0.03}}, m0[D] = {1.0, -0.5};
  const double sigma[D] = {0.4, 0.25}, theta_true[P] = {1.1, 70.0};
  cnf_flow *f = linear_gaussian_flow(A, m0, sigma);
  enum { N = 300 };
  cnf_real x[N * D], c[N * C];
  double xbar[D];
  draw(N, theta_true, A, m0, sigma, x, c, xbar);
  /* closed forms */
  const double det = A[0][0] * A[1][1] - A[0][1] * A[1][0];
  const double r0 = xbar[0] - m0[0], r1 = xbar[1] - m0[1];
  const double th[P] = {(A[1][1] * r0 - A[0][1] * r1) / det, (-A[1][0] * r0 + A[0][0] * r1) / det};
  double F[P][P] = {{0}}; /* N A^T S^-1 A */
  for (int a = 0; a < P; a++)
    for (int b = 0; b < P; b++)
      for (int d = 0; d < D; d++)
        F[a][b] += N * A[d][a] * A[d][b] / (sigma[d] * sigma[d]);
  const double fdet = F[0][0] * F[1][1] - F[0][1] * F[1][0];
  const double cov[P][P] = {{F[1][1] / fdet, -F[0][1] / fdet}, {-F[1][0] / fdet, F[0][0] / fdet}};

  cnf_fit_conf conf;
  cnf_fit_conf_default(&conf);
  conf.n_par = P;
  conf.cond_index[0] = 0;
  conf.cond_index[1] = 1;
  conf.lo[0] = 0.5;
  conf.hi[0] = 1.5;
  conf.lo[1] = 50;
  conf.hi[1] = 90;
  conf.block = 64; /* several batches, the last one partial */
  double *grid = malloc(sizeof(double) * 21 * 21);
  cnf_fit_result r;
  assert_int_equal(cnf_fit_joint(&f, 1, &conf, MPI_COMM_SELF, N, x, c, grid, &r), 0);
  assert_int_equal(r.n_showers, N);
  assert_int_equal(r.flags, 0);
  assert_close(r.best[0], th[0], 1e-6, 0);
  assert_close(r.best[1], th[1], 1e-6, 0);
  for (int a = 0; a < P; a++)
    for (int b = 0; b < P; b++)
      assert_close(r.cov[a * P + b], cov[a][b], 1e-5, 1e-12 * fabs(cov[0][0]));
  assert_close(r.sigma[1], sqrt(cov[1][1]), 1e-5, 0);
  /* the estimate is within a few sigma of the truth (statistics, not numerics) */
  assert_true(fabs(r.best[0] - theta_true[0]) < 4 * r.sigma[0]);
  assert_true(fabs(r.best[1] - theta_true[1]) < 4 * r.sigma[1]);
  /* log L at the maximum and on a grid point equal the closed-form sums */
  double lmax = 0, lg = 0, tg[P] = {0.5 + 1.0 * 7 / 20, 50 + 40.0 * 13 / 20};
  for (int i = 0; i < N; i++) {
    double xi[D] = {(double)x[i * D], (double)x[i * D + 1]};
    lmax += logp_closed(xi, r.best, A, m0, sigma);
    lg += logp_closed(xi, tg, A, m0, sigma);
  }
  assert_close(r.logl_max, lmax, 1e-10, 0);
  assert_close(grid[7 * 21 + 13], lg, 1e-10, 0); /* row-major, last axis fastest */
  /* grid only: the best grid point, within half a grid step of the closed form */
  conf.refine = 0;
  cnf_fit_result g;
  assert_int_equal(cnf_fit_joint(&f, 1, &conf, MPI_COMM_SELF, N, x, c, NULL, &g), 0);
  assert_true(fabs(g.best[0] - th[0]) <= 0.5 * 1.0 / 20 + 1e-12);
  assert_true(fabs(g.best[1] - th[1]) <= 0.5 * 40.0 / 20 + 1e-12);
  free(grid);
  cnf_flow_free(&f);
}

/* Two members with different offsets: the fit maximises sum_i log mean_k p_k, not a mean of
 * member fits.  At the optimum the closed-form gradient of that sum vanishes. */
static void test_ensemble_maximum(void **state) {
  (void)state;
  const double A[D][P] = {{2.0, 0.05}, {0.7, -0.03}}, sigma[D] = {0.4, 0.25};
  const double m0a[D] = {1.0, -0.5}, m0b[D] = {1.3, -0.2}, theta_true[P] = {0.9, 60.0};
  cnf_flow *f[2] = {linear_gaussian_flow(A, m0a, sigma), linear_gaussian_flow(A, m0b, sigma)};
  enum { N = 200 };
  cnf_real x[N * D], c[N * C];
  double xbar[D];
  draw(N, theta_true, A, m0a, sigma, x, c, xbar);
  cnf_fit_conf conf;
  cnf_fit_conf_default(&conf);
  conf.n_par = P;
  conf.cond_index[0] = 0;
  conf.cond_index[1] = 1;
  conf.lo[0] = 0.5;
  conf.hi[0] = 1.5;
  conf.lo[1] = 40;
  conf.hi[1] = 90;
  cnf_fit_result r;
  assert_int_equal(cnf_fit_joint(f, 2, &conf, MPI_COMM_SELF, N, x, c, NULL, &r), 0);
  /* closed-form ensemble log L and its central-difference gradient at the fitted point */
  double h[P] = {1e-5, 1e-3}, grad[P], lmax = 0;
  for (int p = 0; p < P; p++) {
    double sum[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
      double t[P] = {r.best[0], r.best[1]};
      t[p] += s ? -h[p] : h[p];
      for (int i = 0; i < N; i++) {
        double xi[D] = {(double)x[i * D], (double)x[i * D + 1]};
        double a = logp_closed(xi, t, A, m0a, sigma), b = logp_closed(xi, t, A, m0b, sigma);
        double m = fmax(a, b);
        sum[s] += m + log(0.5 * (exp(a - m) + exp(b - m)));
      }
    }
    grad[p] = (sum[0] - sum[1]) / (2 * h[p]);
  }
  for (int i = 0; i < N; i++) {
    double xi[D] = {(double)x[i * D], (double)x[i * D + 1]};
    double a = logp_closed(xi, r.best, A, m0a, sigma), b = logp_closed(xi, r.best, A, m0b, sigma);
    double m = fmax(a, b);
    lmax += m + log(0.5 * (exp(a - m) + exp(b - m)));
  }
  assert_close(r.logl_max, lmax, 1e-10, 0);
  /* stationary: |grad| * sigma (the change of log L over one error) is tiny */
  for (int p = 0; p < P; p++)
    assert_true(fabs(grad[p]) * r.sigma[p] < 1e-3);
  assert_true(r.sigma[0] > 0 && r.sigma[1] > 0);
  cnf_flow_free(&f[0]);
  cnf_flow_free(&f[1]);
}

static void test_maximum_on_the_edge_and_bad_configuration(void **state) {
  (void)state;
  const double A[D][P] = {{2.0, 0.05}, {0.7, -0.03}}, m0[D] = {1.0, -0.5};
  const double sigma[D] = {0.4, 0.25}, theta_true[P] = {1.1, 70.0};
  cnf_flow *f = linear_gaussian_flow(A, m0, sigma);
  enum { N = 50 };
  cnf_real x[N * D], c[N * C];
  double xbar[D];
  draw(N, theta_true, A, m0, sigma, x, c, xbar);
  cnf_fit_conf conf;
  cnf_fit_conf_default(&conf);
  conf.n_par = P;
  conf.cond_index[0] = 0;
  conf.cond_index[1] = 1;
  conf.lo[0] = 0.5;
  conf.hi[0] = 0.9; /* the truth 1.1 lies outside: the maximum sits on the edge, flagged */
  conf.lo[1] = 50;
  conf.hi[1] = 90;
  cnf_fit_result r;
  assert_int_equal(cnf_fit_joint(&f, 1, &conf, MPI_COMM_SELF, N, x, c, NULL, &r), 0);
  assert_true(r.flags & CNF_FIT_AT_BOUNDARY);
  assert_close(r.best[0], 0.9, 1e-9, 0);
  cnf_fit_conf bad = conf;
  bad.cond_index[1] = 0; /* fitted twice */
  assert_int_equal(cnf_fit_joint(&f, 1, &bad, MPI_COMM_SELF, N, x, c, NULL, &r), CNF_ERR_ARG);
  bad = conf;
  bad.cond_index[1] = C; /* out of range */
  assert_int_equal(cnf_fit_joint(&f, 1, &bad, MPI_COMM_SELF, N, x, c, NULL, &r), CNF_ERR_ARG);
  bad = conf;
  bad.lo[1] = bad.hi[1];
  assert_int_equal(cnf_fit_joint(&f, 1, &bad, MPI_COMM_SELF, N, x, c, NULL, &r), CNF_ERR_ARG);
  bad = conf;
  bad.n_grid = 2;
  assert_int_equal(cnf_fit_joint(&f, 1, &bad, MPI_COMM_SELF, N, x, c, NULL, &r), CNF_ERR_ARG);
  cnf_flow_free(&f);
}

int main(int argc, char **argv) {
  if (PetscInitialize(&argc, &argv, NULL, NULL) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear_gaussian_closure),
      cmocka_unit_test(test_ensemble_maximum),
      cmocka_unit_test(test_maximum_on_the_edge_and_bad_configuration),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  PetscFinalize();
  return rc;
}
