/* Shared helpers for cmocka tests.  Include order required by cmocka 1.1.5. */
#pragma once
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cnflow/core.h"

/* Fails the test (with both values printed) unless |a - b| <= atol + rtol * |b|. */
#define assert_close(a, b, rtol, atol) \
  testutil_assert_close((double)(a), (double)(b), (rtol), (atol), #a, #b, __FILE__, __LINE__)
void testutil_assert_close(double a, double b, double rtol, double atol, const char *as,
                           const char *bs, const char *file, int line);

/* Element-wise comparison of two arrays; prints the first 5 mismatches, then fails. */
void testutil_check_array(const char *label, size_t n, const double *got, const double *want,
                          double rtol, double atol, const char *file, int line);
#define check_array(label, n, got, want, rtol, atol) \
  testutil_check_array((label), (n), (got), (want), (rtol), (atol), __FILE__, __LINE__)

/* Path of a scratch file under the test's working directory: "<name>.<pid>" (static buffer). */
const char *testutil_tmp_path(const char *name);

/* log|det A| of a small dense (n, n) row-major matrix by Gaussian elimination with partial
 * pivoting (A is destroyed).  Used to check log-dets against numerical Jacobians. */
double testutil_log_abs_det(int n, double *A);

/* count values scale * N(0,1) from the stream (caller frees). */
double *testutil_alloc_normal(cnf_rng *r, size_t count, double scale);

/* Finite-difference gradient check of one component: fails unless
 * |analytic - fd| <= 1e-6 |fd| + 1e-8 scale (scale: the gradient's typical magnitude). */
#define check_fd(what, analytic, fd, scale) \
  testutil_check_fd((what), (analytic), (fd), (scale), __FILE__, __LINE__)
void testutil_check_fd(const char *what, double analytic, double fd, double scale,
                       const char *file, int line);
