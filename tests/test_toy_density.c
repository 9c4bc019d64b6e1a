/* The toy density (stats.h) and the basic trainer (train.h) on it:
 *   1. the sampler agrees with the closed-form moments and the closed-form density integrates
 *      to 1 (so the "true NLL" reference is right);
 *   2. the "toy" flow trained with cnf_train_basic reaches a held-out NLL within 0.05 nats of
 *      the true NLL, and its samples at two fixed conditions have the closed-form mean and
 *      covariance within statistical tolerance.
 * Serial (MPI_COMM_SELF); main() initialises MPI because the trainer is collective. */
#include "testutil.h"

#include "cnflow/flow.h"
#include "cnflow/stats.h"
#include "cnflow/train.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>

/* Sample mean (2) and covariance (4) of n 2-D points, plus the standard errors of each. */
static void sample_moments(int n, const cnf_real *x, double *mean, double *cov, double *se_mean,
                           double *se_cov) {
  double m[2] = {0, 0};
  for (int i = 0; i < n; i++)
    for (int a = 0; a < 2; a++)
      m[a] += x[2 * i + a];
  for (int a = 0; a < 2; a++)
    m[a] /= n;
  double s[4] = {0}, s4[4] = {0};
  for (int i = 0; i < n; i++) {
    double d[2] = {x[2 * i] - m[0], x[2 * i + 1] - m[1]};
    for (int a = 0; a < 2; a++)
      for (int b = 0; b < 2; b++) {
        double p = d[a] * d[b];
        s[2 * a + b] += p;
        s4[2 * a + b] += p * p;
      }
  }
  for (int k = 0; k < 4; k++) {
    cov[k] = s[k] / n;
    se_cov[k] = sqrt(fmax(s4[k] / n - cov[k] * cov[k], 0.0) / n); /* sd of a mean of products */
  }
  for (int a = 0; a < 2; a++) {
    mean[a] = m[a];
    se_mean[a] = sqrt(cov[3 * a] / n);
  }
}

/* Moments of n points against the closed form at c: |diff| <= nsig * SE + allowance. */
static void check_moments(int n, const cnf_real *x, double c, double nsig, double allowance) {
  double mean[2], cov[4], se_m[2], se_c[4], tm[2], tc[4];
  sample_moments(n, x, mean, cov, se_m, se_c);
  cnf_toy_moments(c, tm, tc);
  print_message("c = %+.2f: mean (%.4f, %.4f) vs (%.4f, %.4f); cov (%.4f %.4f %.4f) vs "
                "(%.4f %.4f %.4f)\n", c, mean[0], mean[1], tm[0], tm[1], cov[0], cov[1], cov[3],
                tc[0], tc[1], tc[3]);
  for (int a = 0; a < 2; a++)
    assert_close(mean[a], tm[a], 0, nsig * se_m[a] + allowance);
  for (int k = 0; k < 4; k++)
    assert_close(cov[k], tc[k], 0, nsig * se_c[k] + allowance);
}

static void test_toy_sampler_matches_closed_form(void **state) {
  const int n = 200000;
  const double cs[2] = {-0.6, 0.9};
  cnf_real *x = malloc(sizeof(cnf_real) * 2 * n), *c = malloc(sizeof(cnf_real) * n);
  assert_non_null(x);
  assert_non_null(c);
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < n; i++)
      c[i] = (cnf_real)cs[k];
    cnf_toy_sample_given(11, 0, n, c, x);
    check_moments(n, x, cs[k], 5.0, 0.0);
  }
  /* drawn conditions are uniform on [-1, 1] */
  cnf_toy_sample(12, 0, n, x, c);
  double sc = 0, scc = 0;
  for (int i = 0; i < n; i++) {
    assert_true(c[i] >= -1 && c[i] <= 1);
    sc += c[i];
    scc += (double)c[i] * c[i];
  }
  assert_close(sc / n, 0.0, 0, 5 * sqrt(1.0 / 3 / n));
  assert_close(scc / n, 1.0 / 3, 0, 5 * sqrt(4.0 / 45 / n));
  free(x);
  free(c);
}

static void test_toy_density_normalised(void **state) {
  /* midpoint rule over [-6, 6] x [-5, 5] (the tails beyond are < 1e-12) */
  const int m = 600;
  const double c = 0.3, hx = 12.0 / m, hy = 10.0 / m;
  double sum = 0, mx = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      double x[2] = {-6 + (i + 0.5) * hx, -5 + (j + 0.5) * hy};
      double p = exp(cnf_toy_log_prob(x, c));
      sum += p;
      mx += p * x[0] * x[0];
    }
  double tm[2], tc[4];
  cnf_toy_moments(c, tm, tc);
  assert_close(sum * hx * hy, 1.0, 0, 1e-6);
  assert_close(mx * hx * hy, tc[0], 1e-5, 0); /* E[x0^2] = Var x0 since E[x0] = 0 */
}

static void test_toy_flow_learns_density(void **state) {
  const int n_train = 30000, n_val = 10000, n_test = 10000;
  const uint64_t seed = 3;
  cnf_real *x = malloc(sizeof(cnf_real) * 2 * (n_train + n_val + n_test));
  cnf_real *c = malloc(sizeof(cnf_real) * (n_train + n_val + n_test));
  assert_non_null(x);
  assert_non_null(c);
  cnf_toy_sample(seed, 0, n_train + n_val + n_test, x, c);
  const cnf_real *xv = x + 2 * n_train, *cv = c + n_train;
  const cnf_real *xt = xv + 2 * n_val, *ct = cv + n_val;

  cnf_flow *f = NULL;
  if (cnf_flow_create_preset("toy", 0, 0, seed, &f) < 0 || cnf_flow_init_params(f, seed, 0) < 0)
    fail_msg("toy flow: %s", cnf_error_message());
  cnf_train_conf conf = cnf_train_conf_default();
  conf.epochs = 10;
  conf.batch = 512;
  conf.schedule.lr = 3e-3;
  conf.log_epochs = 0;
  cnf_train_result res;
  int rc = cnf_train_basic(f, MPI_COMM_SELF, n_train, x, c, n_val, xv, cv, &conf, &res);
  if (rc < 0)
    fail_msg("cnf_train_basic: %s", cnf_error_message());

  double nll_flow, nll_true = 0;
  assert_int_equal(cnf_train_mean_nll(f, MPI_COMM_SELF, n_test, xt, ct, &nll_flow), 0);
  for (int i = 0; i < n_test; i++) {
    double xi[2] = {xt[2 * i], xt[2 * i + 1]};
    nll_true -= cnf_toy_log_prob(xi, ct[i]) / n_test;
  }
  print_message("held-out NLL flow %.4f, true %.4f, gap %+.4f (best epoch %d, %.0f ev/s)\n",
                nll_flow, nll_true, nll_flow - nll_true, res.best_epoch + 1, res.events_per_s);
  /* the gap is the KL excess (>= 0 up to the test-set noise, ~0.01 here) */
  assert_true(nll_flow - nll_true < 0.05);
  assert_true(nll_flow - nll_true > -0.03);

  /* samples at fixed conditions: closed-form moments within 5 standard errors plus 0.03
   * (the remaining model error of a 0.05-nat fit) */
  const int ns = 20000;
  const double cs[2] = {-0.5, 0.8};
  cnf_real *xs = malloc(sizeof(cnf_real) * 2 * ns), *cc = malloc(sizeof(cnf_real) * ns);
  assert_non_null(xs);
  assert_non_null(cc);
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < ns; i++)
      cc[i] = (cnf_real)cs[k];
    assert_int_equal(cnf_flow_sample(f, ns, cc, 77, (uint64_t)k * ns, xs, NULL), 0);
    check_moments(ns, xs, cs[k], 5.0, 0.03);
  }
  free(xs);
  free(cc);
  cnf_flow_free(&f);
  free(x);
  free(c);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_toy_sampler_matches_closed_form),
      cmocka_unit_test(test_toy_density_normalised),
      cmocka_unit_test(test_toy_flow_learns_density),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return failed;
}
