/* One rule set for bijector hyper-parameters (issue 11): every bad spec is refused by
 * cnf_flow_create and by the kind's own constructor, with the same problem text (the flow adds
 * only "bijector 0 (kind): " in front of the constructor's "kind: "), and every good one --
 * including the edges of the RQS rule 0 < min, K * min < 1, 0 < min_derivative < 1 -- is
 * accepted by both.  Float library: a constant that rounds to a float 0 is refused too. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../src/flow/bijector_impl.h"

#define D 4
#define C 2

static int construct_direct(const cnf_bijector_spec *s, int dim, int cond_dim) {
  cnf_bijector b;
  memset(&b, 0, sizeof b);
  b.spec = *s;
  b.dim = dim;
  b.cond_dim = cond_dim;
  int rc;
  switch (s->kind) {
  case CNF_BIJ_MAF_AFFINE:
  case CNF_BIJ_MAF_RQS: rc = cnf_bij_maf_create(&b); break;
  case CNF_BIJ_COUPLING_RQS: rc = cnf_bij_coupling_create(&b); break;
  default: rc = cnf_bij_elementwise_create(&b); break;
  }
  if (rc == 0 && b.ops && b.ops->destroy)
    b.ops->destroy(&b);
  return rc;
}

/* The spec must be refused by both entry points with the problem text `problem`. */
static void expect_refused(const cnf_bijector_spec *s, const char *problem) {
  char via_ctor[1024], via_flow[1024], want[1024];
  const char *kind = cnf_bijector_kind_name(s->kind);
  assert_int_equal(construct_direct(s, D, C), CNF_ERR_ARG);
  snprintf(via_ctor, sizeof via_ctor, "%s", cnf_error_message());
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(D, C, 1, s, &f), CNF_ERR_ARG);
  assert_null(f);
  snprintf(via_flow, sizeof via_flow, "%s", cnf_error_message());
  snprintf(want, sizeof want, "%s: %s", kind, problem);
  if (strcmp(via_ctor, want) != 0)
    fail_msg("constructor said '%s', expected '%s'", via_ctor, want);
  snprintf(want, sizeof want, "bijector 0 (%s): %s", kind, problem);
  if (strcmp(via_flow, want) != 0)
    fail_msg("cnf_flow_create said '%s', expected '%s'", via_flow, want);
}

static void expect_accepted(const cnf_bijector_spec *s) {
  if (construct_direct(s, D, C) != 0)
    fail_msg("constructor refused a good %s spec: %s", cnf_bijector_kind_name(s->kind),
             cnf_error_message());
  cnf_flow *f = NULL;
  if (cnf_flow_create(D, C, 1, s, &f) != 0)
    fail_msg("cnf_flow_create refused a good %s spec: %s", cnf_bijector_kind_name(s->kind),
             cnf_error_message());
  cnf_flow_free(&f);
}

static cnf_bijector_spec rqs_spec(cnf_bijector_kind kind) {
  return (cnf_bijector_spec){.kind = kind, .hidden = 8, .n_hidden = 1, .bins = 8,
                             .tail_bound = 3, .min_bin_width = 1e-3, .min_bin_height = 1e-3,
                             .min_derivative = 1e-3, .tails = CNF_TAILS_ELEMENT};
}

static void test_rqs_constants(void **state) {
  (void)state;
  const cnf_bijector_kind kinds[2] = {CNF_BIJ_MAF_RQS, CNF_BIJ_COUPLING_RQS};
  for (int i = 0; i < 2; i++) {
    cnf_bijector_spec s = rqs_spec(kinds[i]);
    expect_accepted(&s);
    /* K * min just below 1, and the smallest sensible minimum: both legal */
    s.min_bin_width = s.min_bin_height = 0.124;
    expect_accepted(&s);
    s = rqs_spec(kinds[i]);
    s.min_bin_width = s.min_bin_height = s.min_derivative = 1e-6;
    expect_accepted(&s);
    s.min_derivative = 0.999;
    expect_accepted(&s);

    /* widths: 0 < min_w < 1/K (the MAF used to take 0, the coupling layer did not) */
    const double bad_w[] = {0.0, -1e-3, 0.125, 0.2, NAN, 1e-60};
    for (int j = 0; j < (int)(sizeof bad_w / sizeof bad_w[0]); j++) {
      char problem[200];
      s = rqs_spec(kinds[i]);
      s.min_bin_width = bad_w[j];
      snprintf(problem, sizeof problem, "min_bin_width = %g must be in (0, 1/bins = %g)",
               bad_w[j], 0.125);
      expect_refused(&s, problem);
      s = rqs_spec(kinds[i]);
      s.min_bin_height = bad_w[j];
      snprintf(problem, sizeof problem, "min_bin_height = %g must be in (0, 1/bins = %g)",
               bad_w[j], 0.125);
      expect_refused(&s, problem);
    }
    /* the ratio depends on K: 0.2 is fine for 4 bins, not for 5 */
    s = rqs_spec(kinds[i]);
    s.bins = 4;
    s.min_bin_width = 0.2;
    expect_accepted(&s);
    s.bins = 5;
    expect_refused(&s, "min_bin_width = 0.2 must be in (0, 1/bins = 0.2)");

    const double bad_d[] = {0.0, -0.5, 1.0, 2.0, INFINITY, 1e-60};
    for (int j = 0; j < (int)(sizeof bad_d / sizeof bad_d[0]); j++) {
      char problem[200];
      s = rqs_spec(kinds[i]);
      s.min_derivative = bad_d[j];
      snprintf(problem, sizeof problem, "min_derivative = %g must be in (0, 1)", bad_d[j]);
      expect_refused(&s, problem);
    }

    s = rqs_spec(kinds[i]);
    s.bins = 1;
    expect_refused(&s, "bins = 1 must be in [2, 64]");
    s.bins = 65;
    expect_refused(&s, "bins = 65 must be in [2, 64]");
    s.bins = 64;
    s.min_bin_width = s.min_bin_height = 1e-3;
    expect_accepted(&s);
    s = rqs_spec(kinds[i]);
    s.tail_bound = 0;
    expect_refused(&s, "tail_bound = 0 must be > 0");
    s.tail_bound = INFINITY;
    expect_refused(&s, "tail_bound = inf must be > 0");
    s = rqs_spec(kinds[i]);
    s.hidden = 0;
    expect_refused(&s, "hidden = 0 and n_hidden = 1 must be >= 1");
  }
  cnf_bijector_spec s = rqs_spec(CNF_BIJ_COUPLING_RQS);
  s.tails = (cnf_coupling_tails)7;
  expect_refused(&s, "unknown tails 7");
}

static void test_other_kinds(void **state) {
  (void)state;
  cnf_bijector_spec s = {.kind = CNF_BIJ_MAF_AFFINE, .hidden = 8, .n_hidden = 1,
                         .scale_kind = CNF_AFFINE_SCALE_EXP};
  expect_accepted(&s);
  s.scale_kind = (cnf_affine_scale)9;
  expect_refused(&s, "unknown scale_kind 9");

  int perm[D] = {3, 1, 2, 0};
  s = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = perm};
  expect_accepted(&s);
  perm[2] = 1;
  expect_refused(&s, "entry 2 = 1 makes it not a permutation of 0..3");
  perm[2] = 4;
  expect_refused(&s, "entry 2 = 4 makes it not a permutation of 0..3");
  s.perm = NULL;
  expect_refused(&s, "no permutation given");

  double shift[D] = {0, 1, 2, 3}, scale[D] = {1, -2, 0.5, 4};
  s = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = shift, .scale = scale};
  expect_accepted(&s);
  scale[1] = 0;
  expect_refused(&s, "dimension 1 has shift 1, scale 0 (need finite values and a non-zero "
                     "scale)");
  s.scale = NULL;
  expect_refused(&s, "shift and scale required");

  s = (cnf_bijector_spec){.kind = CNF_BIJ_LOGIT, .alpha = 0.05};
  expect_accepted(&s);
  s.alpha = 0.5;
  expect_refused(&s, "alpha = 0.5 must be in [0, 0.5)");
  s = (cnf_bijector_spec){.kind = CNF_BIJ_LOG, .eps = 0};
  expect_accepted(&s);
  s.eps = -1e-9;
  expect_refused(&s, "eps = -1e-09 must be finite and >= 0");
  s = (cnf_bijector_spec){.kind = CNF_BIJ_COND_SCALE, .cond_index = C - 1, .cond_a = 1};
  expect_accepted(&s);
  s.cond_index = C;
  expect_refused(&s, "condition index 2 outside [0, 2)");
  s.cond_index = 0;
  s.cond_b = NAN;
  expect_refused(&s, "cond_a = 1, cond_b = nan must be finite");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rqs_constants),
      cmocka_unit_test(test_other_kinds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
