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
