#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

void testutil_assert_close(double a, double b, double rtol, double atol, const char *as,
                           const char *bs, const char *file, int line) {
  double tol = atol + rtol * fabs(b);
  if (!(fabs(a - b) <= tol)) {
    print_error("%s:%d: %s = %.10g not close to %s = %.10g (|diff| %.3g > tol %.3g)\n", file,
                line, as, a, bs, b, fabs(a - b), tol);
    _fail(file, line);
  }
}

void testutil_check_array(const char *label, size_t n, const double *got, const double *want,
                          double rtol, double atol, const char *file, int line) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    double tol = atol + rtol * fabs(want[i]);
    if (!(fabs(got[i] - want[i]) <= tol)) {
      if (bad < 5)
        print_error("%s[%zu]: got %.10g want %.10g (diff %.3g, tol %.3g)\n", label, i, got[i],
                    want[i], fabs(got[i] - want[i]), tol);
      bad++;
    }
  }
  if (bad) {
    print_error("%s: %zu of %zu entries mismatch\n", label, bad, n);
    _fail(file, line);
  }
}

const char *testutil_tmp_path(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s.%ld", name, (long)getpid());
  return buf;
}
