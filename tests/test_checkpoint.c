/* Training checkpoints (src/train/checkpoint.c): write -> read restores parameters, Adam moments,
 * best parameters and the loop state exactly; the configuration fingerprint is compared whole,
 * however long (long file paths and column lists), so a resume never fails to recognise its own
 * checkpoint and never accepts one whose fingerprint differs only near its end. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/train/train_impl.h"
#include "cnflow/flow.h"

static cnf_flow *make_flow(void) {
  static int perm[3] = {2, 0, 1};
  cnf_bijector_spec s[2];
  memset(s, 0, sizeof s);
  s[0] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = perm};
  s[1] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 5, .n_hidden = 1,
                             .bins = 4, .tail_bound = 5.0, .min_bin_width = 1e-3,
                             .min_bin_height = 1e-3, .min_derivative = 1e-3,
                             .tails = CNF_TAILS_ELEMENT};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(3, 1, 2, s, &f), 0);
  assert_int_equal(cnf_flow_init_params(f, 3, 0), 0);
  return f;
}

/* A fingerprint of len characters, deterministic, with the given last character. */
static char *long_fingerprint(size_t len, char last) {
  char *fp = malloc(len + 1);
  assert_non_null(fp);
  for (size_t i = 0; i < len; i++)
    fp[i] = (char)('a' + (int)(i * 7 % 26));
  fp[len - 1] = last;
  fp[len] = '\0';
  return fp;
}

static void fill(cnf_real *v, size_t n, double base) {
  for (size_t i = 0; i < n; i++)
    v[i] = (cnf_real)(base + 0.001 * (double)i);
}

static void roundtrip(size_t fp_len) {
  const char *path = testutil_tmp_path("ckpt.h5");
  cnf_flow *f = make_flow(), *g = make_flow();
  const size_t n = cnf_flow_num_params(f);
  cnf_adam a, b;
  cnf_adam_conf ac = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
  assert_int_equal(cnf_adam_init(&a, n, &ac), 0);
  assert_int_equal(cnf_adam_init(&b, n, &ac), 0);
  fill(cnf_flow_params(f), n, 0.5);
  assert_int_equal(cnf_flow_params_changed(f), 0);
  fill(a.m, n, -0.25);
  fill(a.v, n, 0.125);
  a.t = 17;
  cnf_real *best = calloc(n, sizeof *best), *best_read = calloc(n, sizeof *best_read);
  assert_non_null(best);
  assert_non_null(best_read);
  fill(best, n, 2.0);
  double hist[2 * TRAIN_HIST_COLS], hist_read[2 * TRAIN_HIST_COLS] = {0};
  for (int i = 0; i < 2 * TRAIN_HIST_COLS; i++)
    hist[i] = 1.5 * i;
  train_state st = {.epoch = 2, .step_in_epoch = 5, .global_step = 41, .loss_sum = -3.5,
                    .seconds = 9.25, .best_epoch = 1, .best_score = -1.75, .n_hist = 2,
                    .hist = hist};
  train_state rd = {.hist = hist_read};

  char *fp = long_fingerprint(fp_len, 'x');
  assert_int_equal(train_checkpoint_write(path, fp, f, &a, best, &st), 0);
  int rrc = train_checkpoint_read(path, fp, g, &b, best_read, &rd, 10);
  if (rrc != 0)
    fprintf(stderr, "read: %s\n", cnf_error_message());
  assert_int_equal(rrc, 0);
  assert_memory_equal(cnf_flow_params(g), cnf_flow_params(f), n * sizeof(cnf_real));
  assert_memory_equal(b.m, a.m, n * sizeof(cnf_real));
  assert_memory_equal(b.v, a.v, n * sizeof(cnf_real));
  assert_memory_equal(best_read, best, n * sizeof(cnf_real));
  assert_int_equal(b.t, 17);
  assert_int_equal(rd.epoch, 2);
  assert_int_equal(rd.step_in_epoch, 5);
  assert_int_equal(rd.global_step, 41);
  assert_int_equal(rd.best_epoch, 1);
  assert_int_equal(rd.n_hist, 2);
  assert_memory_equal(hist_read, hist, sizeof hist);

  /* differs only in its last character: another configuration */
  char *other = long_fingerprint(fp_len, 'y');
  assert_true(train_checkpoint_read(path, other, g, &b, best_read, &rd, 10) < 0);
  assert_non_null(strstr(cnf_error_message(), "another configuration"));
  /* a prefix of the stored fingerprint is another configuration too */
  other[fp_len / 2] = '\0';
  assert_true(train_checkpoint_read(path, other, g, &b, best_read, &rd, 10) < 0);

  free(other);
  free(fp);
  free(best);
  free(best_read);
  cnf_adam_free(&a);
  cnf_adam_free(&b);
  cnf_flow_free(&f);
  cnf_flow_free(&g);
  unlink(path);
}

static void test_short_fingerprint(void **state) {
  (void)state;
  roundtrip(40);
}

/* longer than the 4 KiB the reader once held: two 1 KiB paths plus 2 KiB of column names */
static void test_long_fingerprint(void **state) {
  (void)state;
  roundtrip(TRAIN_FINGERPRINT_MAX - 1);
}

static void test_missing_checkpoint(void **state) {
  (void)state;
  cnf_flow *f = make_flow();
  cnf_adam a;
  cnf_adam_conf ac = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
  assert_int_equal(cnf_adam_init(&a, cnf_flow_num_params(f), &ac), 0);
  cnf_real best[64];
  double hist[TRAIN_HIST_COLS];
  train_state rd = {.hist = hist};
  assert_int_equal(train_checkpoint_read("no-such-checkpoint.h5", "fp", f, &a, best, &rd, 1), 1);
  cnf_adam_free(&a);
  cnf_flow_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_short_fingerprint),
      cmocka_unit_test(test_long_fingerprint),
      cmocka_unit_test(test_missing_checkpoint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
