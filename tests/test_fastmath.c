/* The float library's inline exp/log/log1p/sqrt (src/flow/fastmath.h) against libm in double:
 * ~1 ulp over the ranges the element loops use, and libm's answers at the special values
 * (log 0 = -inf, log of a negative or NaN = NaN, subnormals scaled correctly), so an underflowed
 * or invalid quantity surfaces as -inf/NaN instead of a finite log-density. */
#include "testutil.h"

#include "../src/flow/fastmath.h"

#include <float.h>
#include <math.h>

static void check_ulps(const char *what, float got, double want, double max_ulps) {
  const double ulp = nextafterf((float)fabs(want), INFINITY) - (float)fabs(want);
  if (fabs((double)got - want) > max_ulps * ulp)
    fail_msg("%s: got %.9g, libm %.9g (%.2f ulp, allowed %.1f)", what, (double)got, want,
             fabs((double)got - want) / ulp, max_ulps);
}

static void test_log_accuracy_and_special_values(void **state) {
  (void)state;
  /* normal range, including values just above 0.5/0.707 branch points and near 1 */
  for (double v = 1e-30; v < 1e30; v *= 1.0137) {
    char what[64];
    snprintf(what, sizeof what, "log(%g)", v);
    check_ulps(what, cnf_fm_log((float)v), log((double)(float)v), 2.0);
  }
  for (int k = -200; k <= 200; k++) {
    float v = 1.0f + (float)k * FLT_EPSILON;
    check_ulps("log near 1", cnf_fm_log(v), log((double)v), 2.0);
  }
  /* subnormals: scaled by 2^23 before the polynomial */
  const float subs[4] = {1e-39f, 1e-42f, 1.4e-45f, FLT_MIN * 0.5f};
  for (int i = 0; i < 4; i++)
    check_ulps("log(subnormal)", cnf_fm_log(subs[i]), log((double)subs[i]), 2.0);
  assert_true(isinf(cnf_fm_log(0.0f)) && cnf_fm_log(0.0f) < 0);
  assert_true(isinf(cnf_fm_log(-0.0f)) && cnf_fm_log(-0.0f) < 0);
  assert_true(isnan(cnf_fm_log(-1.0f)));
  assert_true(isnan(cnf_fm_log(-1e-40f)));
  assert_true(isnan(cnf_fm_log(NAN)));
  assert_true(isinf(cnf_fm_log(INFINITY)) && cnf_fm_log(INFINITY) > 0);
}

static void test_log1p_exp_sqrt(void **state) {
  (void)state;
  for (double v = -0.999; v < 1e6; v = v < 0 ? v * 0.9 + 1e-9 : v * 1.05 + 1e-7) {
    if (fabs(v) < 1e-30)
      continue;
    char what[64];
    snprintf(what, sizeof what, "log1p(%g)", v);
    check_ulps(what, cnf_fm_log1p((float)v), log1p((double)(float)v), 3.0);
  }
  assert_true(isinf(cnf_fm_log1p(-1.0f)) && cnf_fm_log1p(-1.0f) < 0);
  assert_true(isnan(cnf_fm_log1p(-2.0f)));
  for (double v = -87.0; v <= 88.0; v += 0.0173) {
    char what[64];
    snprintf(what, sizeof what, "exp(%g)", v);
    check_ulps(what, cnf_fm_exp((float)v), exp((double)(float)v), 2.0);
  }
  assert_true(isnan(cnf_fm_exp(NAN)));
  for (double v = 1e-30; v < 1e30; v *= 1.0371)
    check_ulps("sqrt", cnf_fm_sqrt((float)v), sqrt((double)(float)v), 1.5);
  assert_true(cnf_fm_sqrt(0.0f) == 0.0f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_accuracy_and_special_values),
      cmocka_unit_test(test_log1p_exp_sqrt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
