/* The classifier test (src/infer/classifier.c): AUC ~ 0.5 and weights ~ 1 for two samples of
 * one distribution, AUC ~ 1 for disjoint samples, and in between the AUC of the best possible
 * classifier for two Gaussians (Phi(delta / sqrt 2)), which a trained MLP must approach from
 * below within its error. */
#include "cnflow/infer.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

static double *draw(uint64_t seed, size_t n, int d, double shift) {
  double *x = malloc(sizeof(double) * n * d);
  for (size_t i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, seed, i, 0);
    for (int j = 0; j < d; j++)
      x[i * d + j] = cnf_rng_normal(&r) + (j == 0 ? shift : 0);
  }
  return x;
}

static void run(double shift, cnf_classifier_result *res) {
  const size_t n = 8000;
  const int d = 3;
  double *a = draw(11, n, d, shift), *b = draw(12, n, d, 0);
  cnf_classifier_conf conf;
  cnf_classifier_conf_default(&conf);
  conf.epochs = 8;
  assert_int_equal(cnf_classifier_test(a, n, b, n, d, &conf, res), 0);
  free(a);
  free(b);
}

static void test_same_distribution(void **state) {
  (void)state;
  cnf_classifier_result r;
  run(0, &r);
  assert_int_equal(r.n_test, 8000);
  assert_true(r.auc_err > 0.003 && r.auc_err < 0.01);
  /* a chance-level classifier: within 4 sigma of 0.5 */
  assert_true(fabs(r.auc - 0.5) < 4 * r.auc_err);
  assert_true(fabs(r.w_mean - 1) < 0.05);
}

static void test_disjoint(void **state) {
  (void)state;
  cnf_classifier_result r;
  run(12, &r);
  assert_true(r.auc > 0.999);
}

static void test_gaussian_optimum(void **state) {
  (void)state;
  cnf_classifier_result r;
  run(1.0, &r); /* best AUC = Phi(1/sqrt(2)) = 0.7602 */
  const double best = 0.5 * erfc(-1.0 / 2.0);
  assert_true(r.auc < best + 4 * r.auc_err);
  assert_true(r.auc > best - 0.02);
}

static void test_bad_input(void **state) {
  (void)state;
  double x[8] = {0};
  cnf_classifier_conf conf;
  cnf_classifier_conf_default(&conf);
  cnf_classifier_result r;
  assert_true(cnf_classifier_test(x, 2, x, 2, 1, &conf, &r) < 0);
  double y[16] = {0};
  y[5] = NAN;
  assert_int_equal(cnf_classifier_test(y, 8, y, 8, 2, &conf, &r), CNF_ERR_NUMERIC);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_distribution),
      cmocka_unit_test(test_disjoint),
      cmocka_unit_test(test_gaussian_optimum),
      cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
