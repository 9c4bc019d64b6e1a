#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

double testutil_log_abs_det(int n, double *A) {
  double s = 0;
  for (int k = 0; k < n; k++) {
    int piv = k;
    for (int i = k + 1; i < n; i++)
      if (fabs(A[i * n + k]) > fabs(A[piv * n + k]))
        piv = i;
    for (int j = 0; j < n && piv != k; j++) {
      double t = A[k * n + j];
      A[k * n + j] = A[piv * n + j];
      A[piv * n + j] = t;
    }
    s += log(fabs(A[k * n + k]));
    for (int i = k + 1; i < n; i++) {
      double m = A[i * n + k] / A[k * n + k];
      for (int j = k; j < n; j++)
        A[i * n + j] -= m * A[k * n + j];
    }
  }
  return s;
}

double *testutil_alloc_normal(cnf_rng *r, size_t count, double scale) {
  double *a = malloc((count ? count : 1) * sizeof *a);
  assert_non_null(a);
  for (size_t i = 0; i < count; i++)
    a[i] = scale * cnf_rng_normal(r);
  return a;
}

void testutil_check_fd(const char *what, double analytic, double fd, double scale,
                       const char *file, int line) {
  if (!(fabs(analytic - fd) <= 1e-6 * fabs(fd) + 1e-8 * scale)) {
    print_error("%s:%d: %s: analytic %.12g vs finite difference %.12g\n", file, line, what,
                analytic, fd);
    _fail(file, line);
  }
}
