/* Core: counter-based RNG streams (reproducible, independent of draw batching, correct
 * moments), the GSL adaptor, partitioning, error messages and the free-space pre-check. */
#include "testutil.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

static void test_rng_reproducible_and_stream_distinct(void **state) {
  cnf_rng a, b, c;
  cnf_rng_init(&a, 42, 7, 0);
  cnf_rng_init(&b, 42, 7, 0);
  cnf_rng_init(&c, 42, 8, 0);
  int same_ac = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t va = cnf_rng_u32(&a), vb = cnf_rng_u32(&b), vc = cnf_rng_u32(&c);
    assert_int_equal(va, vb);
    same_ac += (va == vc);
  }
  assert_true(same_ac < 3);
}

static void test_rng_uniform_normal_moments(void **state) {
  cnf_rng r;
  cnf_rng_init(&r, 1, 0, 0);
  const int n = 400000;
  double su = 0, suu = 0, sn = 0, snn = 0, sn4 = 0;
  for (int i = 0; i < n; i++) {
    double u = cnf_rng_uniform(&r);
    assert_true(u > 0.0 && u < 1.0);
    su += u;
    suu += u * u;
    double z = cnf_rng_normal(&r);
    sn += z;
    snn += z * z;
    sn4 += z * z * z * z;
  }
  /* closed forms: E[U]=1/2, Var[U]=1/12, E[Z]=0, E[Z^2]=1, E[Z^4]=3; tolerance 5 sigma */
  assert_close(su / n, 0.5, 0, 5 * sqrt(1.0 / 12 / n));
  assert_close(suu / n - (su / n) * (su / n), 1.0 / 12, 0, 5 * sqrt(1.0 / 180 / n));
  assert_close(sn / n, 0.0, 0, 5 / sqrt(n));
  assert_close(snn / n, 1.0, 0, 5 * sqrt(2.0 / n));
  assert_close(sn4 / n, 3.0, 0, 5 * sqrt(96.0 / n));
}

static void test_rng_gsl_adaptor_gamma(void **state) {
  gsl_rng *g = cnf_rng_gsl_alloc(3, 11, 0);
  assert_non_null(g);
  const int n = 200000;
  const double k = 2.5, theta = 1.5;
  double s = 0, ss = 0;
  for (int i = 0; i < n; i++) {
    double v = gsl_ran_gamma(g, k, theta);
    s += v;
    ss += v * v;
  }
  double mean = s / n, var = ss / n - mean * mean;
  assert_close(mean, k * theta, 0, 5 * sqrt(k * theta * theta / n));
  assert_close(var, k * theta * theta, 0.03, 0);
  /* same stream again gives the same first draw */
  cnf_rng_gsl_reset(g, 3, 11, 0);
  double first = gsl_ran_gamma(g, k, theta);
  cnf_rng_gsl_reset(g, 3, 11, 0);
  assert_true(first == gsl_ran_gamma(g, k, theta));
  cnf_rng_gsl_free(g);
}

static void test_partition_covers_exactly_once(void **state) {
  for (int size = 1; size <= 5; size++) {
    uint64_t next = 0;
    for (int rank = 0; rank < size; rank++) {
      uint64_t first, count;
      cnf_partition(17, size, rank, &first, &count);
      assert_int_equal(first, next);
      next = first + count;
    }
    assert_int_equal(next, 17);
  }
}

static void test_permutation_is_bijection(void **state) {
  cnf_rng r;
  cnf_rng_init(&r, 9, 0, 0);
  int perm[128], seen[128] = {0};
  cnf_rng_permutation(&r, 128, perm);
  for (int i = 0; i < 128; i++)
    seen[perm[i]]++;
  for (int i = 0; i < 128; i++)
    assert_int_equal(seen[i], 1);
}

/* cnf_perm: a bijection of [0, n) for awkward n (1, 2, odd, just above a power of 4), keyed by
 * the stream, and as well mixed as a random permutation: the number of i < n/2 mapped below n/2
 * is hypergeometric with mean n/4 and variance n/16 (large n), and fixed points are Poisson(1). */
static void test_feistel_permutation(void **state) {
  (void)state;
  const uint64_t sizes[] = {1, 2, 3, 7, 16, 17, 1000, 4097, 100003};
  for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
    uint64_t n = sizes[t];
    unsigned char *hit = calloc(n, 1);
    assert_non_null(hit);
    cnf_perm p;
    cnf_perm_init(&p, n, 42, 3, 2);
    for (uint64_t i = 0; i < n; i++) {
      uint64_t y = cnf_perm_at(&p, i);
      assert_true(y < n);
      assert_int_equal(hit[y], 0);
      hit[y] = 1;
    }
    free(hit);
  }
  const uint64_t n = 100003;
  double low_sum = 0, fixed_sum = 0, same_as_other_key = 0;
  const int reps = 20;
  for (int k = 0; k < reps; k++) {
    cnf_perm p, q;
    cnf_perm_init(&p, n, 7, (uint64_t)k, 2);
    cnf_perm_init(&q, n, 8, (uint64_t)k, 2);
    uint64_t low = 0, fixed = 0, same = 0;
    for (uint64_t i = 0; i < n; i++) {
      uint64_t y = cnf_perm_at(&p, i);
      low += i < n / 2 && y < n / 2;
      fixed += y == i;
      same += y == cnf_perm_at(&q, i);
    }
    /* one permutation: within 5 sigma of the hypergeometric mean */
    assert_true(fabs((double)low - n / 4.0) < 5.0 * sqrt(n / 16.0));
    low_sum += (double)low;
    fixed_sum += (double)fixed;
    same_as_other_key += (double)same;
  }
  assert_true(fabs(low_sum / reps - n / 4.0) < 5.0 * sqrt(n / 16.0 / reps));
  /* 20 Poisson(1) counts: mean 1, standard error 1/sqrt(20) */
  assert_true(fabs(fixed_sum / reps - 1.0) < 5.0 / sqrt((double)reps));
  assert_true(same_as_other_key / reps < 1.0 + 5.0 / sqrt((double)reps));
}

static void test_error_messages(void **state) {
  int rc = cnf_error_set(CNF_ERR_FORMAT, "file %s has wrong shape", "x.h5");
  assert_int_equal(rc, CNF_ERR_FORMAT);
  assert_string_equal(cnf_error_message(), "file x.h5 has wrong shape");
  int list[4];
  assert_int_equal(cnf_parse_int_list("3,1,2", list, 4), 3);
  assert_int_equal(list[2], 2);
  assert_true(cnf_parse_int_list("3,x", list, 4) < 0);
  assert_true(cnf_parse_int_list("1,2,3,4,5", list, 4) < 0);
  /* fits a long (LP64) but not an int: refused, not truncated to 1 */
  assert_true(cnf_parse_int_list("4294967297", list, 4) < 0);
  assert_true(cnf_parse_int_list("-2147483648,2147483647", list, 4) == 2);
}

/* The directory part statvfs looks at ("." for a bare name, "/" for a file in /), the message,
 * and 0 where the directory does not exist (the create reports that). */
static void test_check_free_space(void **state) {
  (void)state;
  const uint64_t huge = (uint64_t)1 << 62; /* 4 EiB: no file system has that free */
  assert_int_equal(cnf_check_free_space("x.h5", 0), 0);
  assert_int_equal(cnf_check_free_space("x.h5", huge), CNF_ERR_IO);
  const char *m = cnf_error_message();
  assert_non_null(strstr(m, "x.h5: not enough space on the file system of '.': the file needs "));
  assert_non_null(strstr(m, " MB are free"));
  assert_int_equal(cnf_check_free_space("/x.h5", huge), CNF_ERR_IO);
  assert_non_null(strstr(cnf_error_message(), "/x.h5: not enough space on the file system of '/':"));
  assert_int_equal(cnf_check_free_space("/tmp/x.h5", huge), CNF_ERR_IO);
  assert_non_null(strstr(cnf_error_message(), "on the file system of '/tmp':"));
  cnf_error_clear();
  assert_int_equal(cnf_check_free_space("./no_such_dir_cnf/sub/x.h5", huge), 0);
  assert_int_equal(cnf_check_free_space("/tmp/x.h5", 1), 0);
}

/* Known answers of Philox4x32-10 from Random123's kat_vectors file (Salmon et al., SC'11),
 * through cnf_rng's own mapping: key = seed (low word first), counter = (draw block, sub,
 * stream low, stream high).  Catches a wrong round count, key/counter order or word order. */
static void test_rng_philox_known_answers(void **state) {
  (void)state;
  static const struct {
    uint32_t ctr[4], key[2], out[4];
  } kat[3] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (int t = 0; t < 3; t++) {
    cnf_rng r;
    const uint64_t seed = (uint64_t)kat[t].key[1] << 32 | kat[t].key[0];
    const uint64_t stream = (uint64_t)kat[t].ctr[3] << 32 | kat[t].ctr[2];
    cnf_rng_init(&r, seed, stream, kat[t].ctr[1]);
    r.ctr[0] = kat[t].ctr[0]; /* the draw-block counter: start at the vector's value */
    for (int i = 0; i < 4; i++)
      assert_int_equal(cnf_rng_u32(&r), kat[t].out[i]);
  }
  /* stream 0 of seed 0 starts with the first vector: the counter starts at 0 */
  cnf_rng r;
  cnf_rng_init(&r, 0, 0, 0);
  assert_int_equal(cnf_rng_u32(&r), 0x6627e8d5u);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rng_reproducible_and_stream_distinct),
      cmocka_unit_test(test_rng_philox_known_answers),
      cmocka_unit_test(test_rng_uniform_normal_moments),
      cmocka_unit_test(test_rng_gsl_adaptor_gamma),
      cmocka_unit_test(test_partition_covers_exactly_once),
      cmocka_unit_test(test_permutation_is_bijection),
      cmocka_unit_test(test_feistel_permutation),
      cmocka_unit_test(test_error_messages),
      cmocka_unit_test(test_check_free_space),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
