/* Data layer, one process: splits, option tables, the test generator against closed forms,
 * write -> read round trip, byte identity across batch sizes and time, failure cleanup. */
#include "testutil.h"

#include "cnflow/data.h"

#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* 1 if some "<path>.tmp.*" file is left in the working directory. */
static int tmp_left(const char *path) {
  char prefix[600];
  snprintf(prefix, sizeof prefix, "%s.tmp.", path);
  DIR *dir = opendir(".");
  assert_non_null(dir);
  int found = 0;
  for (struct dirent *e; (e = readdir(dir));)
    found |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(dir);
  return found;
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc(*n);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, *n, f), *n);
  fclose(f);
  return buf;
}

static cnf_data_gen_config quiet_config(const char *path, int64_t n, int64_t batch) {
  cnf_data_gen_config cfg;
  cnf_data_gen_config_default(&cfg);
  cfg.path = path;
  cfg.n_events = n;
  cfg.batch_rows = batch;
  cfg.progress_interval_s = 0;
  cfg.seed = 17;
  return cfg;
}

/* ---- splits ------------------------------------------------------------------------------- */

static void test_split_ranges_closed_form(void **state) {
  const double f[3] = {0.8, 0.1, 0.1};
  uint64_t first[3], count[3];
  assert_int_equal(cnf_data_split_ranges(10, f, first, count), 0);
  assert_int_equal(first[0], 0); assert_int_equal(count[0], 8);
  assert_int_equal(first[1], 8); assert_int_equal(count[1], 1);
  assert_int_equal(first[2], 9); assert_int_equal(count[2], 1);
  /* n = 7: boundaries floor(5.6 + .5) = 6 and floor(6.3 + .5) = 6 */
  assert_int_equal(cnf_data_split_ranges(7, f, first, count), 0);
  assert_int_equal(count[0], 6); assert_int_equal(count[1], 0); assert_int_equal(count[2], 1);
  assert_int_equal(first[2], 6);
  for (uint64_t n = 0; n < 2000; n += 37) {
    const double g[3] = {0.33, 0.33, 0.34};
    assert_int_equal(cnf_data_split_ranges(n, g, first, count), 0);
    assert_int_equal(first[0], 0);
    assert_int_equal(first[1], count[0]);
    assert_int_equal(first[2], count[0] + count[1]);
    assert_int_equal(count[0] + count[1] + count[2], n);
    assert_true(llabs((long long)count[0] - (long long)(0.33 * n)) <= 1);
  }
  const double neg[3] = {1.1, -0.1, 0.0}, sum[3] = {0.5, 0.5, 0.5};
  assert_int_equal(cnf_data_split_ranges(10, neg, first, count), CNF_ERR_ARG);
  assert_int_equal(cnf_data_split_ranges(10, sum, first, count), CNF_ERR_ARG);
  assert_non_null(strstr(cnf_error_message(), "sum to 1"));
}

static void test_parse_fractions(void **state) {
  double f[3];
  assert_int_equal(cnf_data_parse_fractions("0.7,0.2,0.1", f), 0);
  assert_close(f[0], 0.7, 0, 0); assert_close(f[1], 0.2, 0, 0); assert_close(f[2], 0.1, 0, 0);
  assert_int_equal(cnf_data_parse_fractions("0.8,0.2", f), CNF_ERR_ARG);
  assert_int_equal(cnf_data_parse_fractions("a,b,c", f), CNF_ERR_ARG);
  assert_int_equal(cnf_data_parse_fractions("0.8,0.1,0.1x", f), CNF_ERR_ARG);
  assert_int_equal(cnf_data_parse_fractions("0.5,0.6,0.1", f), CNF_ERR_ARG);
  assert_int_equal(cnf_data_split_index("val"), CNF_SPLIT_VAL);
  assert_int_equal(cnf_data_split_index("validation"), CNF_ERR_ARG);
}

/* ---- option tables ------------------------------------------------------------------------ */

typedef struct fake_opts {
  int n_events;
  int64_t seed;
  int flag;
  double x;
  char label[CNF_OPT_STRLEN];
} fake_opts;

static const cnf_option fake_options[] = {
    {"n_events", CNF_OPT_INT, offsetof(fake_opts, n_events), "events"},
    {"hgg_seed", CNF_OPT_INT64, offsetof(fake_opts, seed), "seed"},
    {"hgg_flag", CNF_OPT_BOOL, offsetof(fake_opts, flag), "a flag"},
    {"hgg_x", CNF_OPT_REAL, offsetof(fake_opts, x), "a real"},
    {"hgg_label", CNF_OPT_STRING, offsetof(fake_opts, label), "a string"},
};
static const cnf_generator fake_gen = {.name = "fake", .opts_size = sizeof(fake_opts),
                                       .n_options = 5, .options = fake_options};

static void test_option_table_roles_and_text(void **state) {
  assert_ptr_equal(cnf_gen_seed_option(&fake_gen), &fake_options[1]);
  assert_ptr_equal(cnf_gen_nevents_option(&fake_gen), &fake_options[0]);
  const cnf_generator no_seed = {.name = "ns", .n_options = 1, .options = fake_options};
  assert_null(cnf_gen_seed_option(&no_seed));

  fake_opts o = {.n_events = 5, .seed = -3, .flag = 1, .x = 0.1, .label = "ggF"};
  assert_int_equal(cnf_option_set_int64(&fake_options[0], &o, 123), 0);
  assert_int_equal(o.n_events, 123);
  assert_int_equal(cnf_option_set_int64(&fake_options[0], &o, 5000000000LL), CNF_ERR_ARG);
  assert_int_equal(cnf_option_set_int64(&fake_options[3], &o, 1), CNF_ERR_ARG);
  assert_int_equal(cnf_option_set_int64(&fake_options[1], &o, 1LL << 40), 0);
  assert_int_equal(cnf_option_get_int64(&fake_options[1], &o), 1LL << 40);

  char *text = cnf_gen_options_string(&fake_gen, &o);
  assert_non_null(text);
  assert_string_equal(text, "n_events=123\nhgg_seed=1099511627776\nhgg_flag=true\n"
                            "hgg_x=0.10000000000000001\nhgg_label=ggF\n");
  /* reals are printed so that they read back exactly */
  assert_true(strtod(strstr(text, "hgg_x=") + 6, NULL) == 0.1);
  free(text);
  char small[8];
  assert_int_equal(cnf_option_format(&fake_options[4], &o, small, sizeof small), CNF_ERR_ARG);
}

/* ---- the test generator against closed forms ------------------------------------------------ */

static void test_testgen_moments(void **state) {
  cnf_testgen_opts o;
  cnf_gen_testgen.opts_default(&o);
  o.sigma = 2.0;
  o.cut = 3.0;
  cnf_sim_desc desc;
  void *st = NULL;
  assert_int_equal(cnf_gen_testgen.setup(&o, 0, 0, &desc, &st), 0);
  assert_int_equal(desc.n_datasets, 3);
  const int n = 200000;
  double truth[3], cond[1], meta[2], again[3], again_c[1], again_m[2];
  double *rows[3] = {truth, cond, meta}, *rows2[3] = {again, again_c, again_m};
  double sa = 0, sx = 0, sxx = 0, su = 0;
  for (int i = 0; i < n; i++) {
    assert_int_equal(cnf_gen_testgen.event(&o, st, (uint64_t)i, rows), 0);
    assert_true(fabs(truth[1]) < o.cut);
    assert_close(truth[0], i, 0, 0);
    assert_close(meta[1], i % 10, 0, 0);
    assert_close(cond[0], 1 + 99 * truth[2], 1e-15, 0);
    sa += meta[0];
    sx += truth[1];
    sxx += truth[1] * truth[1];
    su += truth[2];
  }
  /* pure function of (seed, index) */
  assert_int_equal(cnf_gen_testgen.event(&o, st, 777, rows2), 0);
  assert_int_equal(cnf_gen_testgen.event(&o, st, 777, rows), 0);
  assert_memory_equal(truth, again, sizeof truth);
  /* acceptance p = P(|X| < c) = erf(a / sqrt 2), a = c / sigma: E[attempts] = 1/p (geometric);
   * truncated normal: Var = sigma^2 (1 - 2 a phi(a) / p) */
  double a = o.cut / o.sigma, p = erf(a / sqrt(2.0)), phi = exp(-a * a / 2) / sqrt(2 * M_PI);
  double var = o.sigma * o.sigma * (1 - 2 * a * phi / p);
  assert_close(sa / n, 1 / p, 0, 5 * sqrt((1 - p) / (p * p) / n));
  assert_close(sx / n, 0, 0, 5 * sqrt(var / n));
  assert_close(sxx / n, var, 0.01, 0);
  assert_close(su / n, 0.5, 0, 5 * sqrt(1.0 / 12 / n));
  cnf_gen_testgen.teardown(st);
}

/* ---- write -> read ------------------------------------------------------------------------- */

static void test_generate_read_round_trip(void **state) {
  char path[256];
  snprintf(path, sizeof path, "%s.h5", testutil_tmp_path("test_data_rt"));
  cnf_testgen_opts o;
  cnf_gen_testgen.opts_default(&o);
  cnf_data_gen_config cfg = quiet_config(path, 5003, 333);
  cnf_data_gen_report rep;
  assert_int_equal(cnf_data_generate(&cnf_gen_testgen, &o, &cfg, MPI_COMM_WORLD, &rep), 0);
  assert_int_equal(rep.n_events, 5003);
  assert_int_equal(rep.bytes, 5003 * (3 * 8 + 4 + 2 * 4));
  assert_false(tmp_left(path));

  cnf_data_file *f;
  cnf_data_dset *truth, *cond, *meta;
  assert_int_equal(cnf_data_open(path, MPI_COMM_WORLD, &f), 0);
  assert_string_equal(cnf_data_generator(f), "testgen");
  assert_int_equal(cnf_data_expect_generator(f, "testgen"), 0);
  uint64_t first, count, want_first[3], want_count[3];
  assert_int_equal(cnf_data_split_ranges(5003, cfg.split_fractions, want_first, want_count), 0);
  for (int k = 0; k < 3; k++) {
    assert_int_equal(cnf_data_split(f, cnf_split_names[k], &first, &count), 0);
    assert_int_equal(first, want_first[k]);
    assert_int_equal(count, want_count[k]);
  }
  assert_int_equal(cnf_data_dset_open(f, "truth", 3, &truth), 0);
  assert_int_equal(cnf_data_dset_open(f, "cond", 1, &cond), 0);
  assert_int_equal(cnf_data_dset_open(f, "aux/meta", 2, &meta), 0);
  assert_int_equal(cnf_data_dset_rows(truth), 5003);
  assert_string_equal(cnf_data_dset_column(truth, 1), "x");
  assert_string_equal(cnf_data_dset_unit(cond, 0), "GeV");
  assert_int_equal(cnf_data_dset_find_column(meta, "fold"), 1);

  double *t = malloc(5003 * 3 * sizeof(double)), *m = malloc(5003 * 2 * sizeof(double));
  float *c = malloc(5003 * sizeof(float));
  assert_int_equal(cnf_data_read(truth, 0, 5003, 0, NULL, CNF_DTYPE_F64, t), 0);
  assert_int_equal(cnf_data_read(cond, 0, 5003, 0, NULL, CNF_DTYPE_F32, c), 0);
  assert_int_equal(cnf_data_read(meta, 0, 5003, 0, NULL, CNF_DTYPE_F64, m), 0);
  o.seed = cfg.seed; /* the writer sets the seed in its copy of the options */
  double want[3], wc[1], wm[2], *rows[3] = {want, wc, wm};
  for (int i = 0; i < 5003; i++) {
    assert_int_equal(cnf_gen_testgen.event(&o, NULL, (uint64_t)i, rows), 0);
    assert_memory_equal(t + 3 * i, want, sizeof want); /* f64 stored exactly */
    assert_true(c[i] == (float)wc[0]);
    assert_true(m[2 * i] == wm[0] && m[2 * i + 1] == wm[1]);
  }
  free(t);
  free(c);
  free(m);
  cnf_data_dset_close(meta);
  cnf_data_dset_close(cond);
  cnf_data_dset_close(truth);
  cnf_data_close(f);
  remove(path);
}

/* Neither the batching nor the wall clock may change a byte. */
static void test_generate_bytes_independent_of_batch_and_time(void **state) {
  char a[256], b[256];
  snprintf(a, sizeof a, "%s.h5", testutil_tmp_path("test_data_ba"));
  snprintf(b, sizeof b, "%s.h5", testutil_tmp_path("test_data_bb"));
  cnf_testgen_opts o;
  cnf_gen_testgen.opts_default(&o);
  cnf_data_gen_config ca = quiet_config(a, 70001, 97), cb = quiet_config(b, 70001, 70001);
  assert_int_equal(cnf_data_generate(&cnf_gen_testgen, &o, &ca, MPI_COMM_WORLD, NULL), 0);
  sleep(1);
  assert_int_equal(cnf_data_generate(&cnf_gen_testgen, &o, &cb, MPI_COMM_WORLD, NULL), 0);
  size_t na, nb;
  unsigned char *ba = slurp(a, &na), *bb = slurp(b, &nb);
  assert_int_equal(na, nb);
  assert_memory_equal(ba, bb, na);
  /* a different seed must change the file (the comparison above can fail) */
  cb.seed = 18;
  assert_int_equal(cnf_data_generate(&cnf_gen_testgen, &o, &cb, MPI_COMM_WORLD, NULL), 0);
  free(bb);
  bb = slurp(b, &nb);
  assert_true(na != nb || memcmp(ba, bb, na) != 0);
  free(ba);
  free(bb);
  remove(a);
  remove(b);
}

/* ---- failures ------------------------------------------------------------------------------ */

typedef struct bad_opts {
  int64_t seed;
  int64_t bad_index;
  int make_int_overflow;
} bad_opts;
static const cnf_option bad_options[] = {{"seed", CNF_OPT_INT64, offsetof(bad_opts, seed), "s"}};
static const char *const bad_cols[] = {"v"};

static int bad_setup(const void *opts, uint64_t first, uint64_t count, cnf_sim_desc *desc,
                     void **state) {
  const bad_opts *o = opts;
  *state = NULL;
  *desc = (cnf_sim_desc){.n_datasets = 1, .n_events = 100};
  desc->datasets[0] = (cnf_dataset_schema){"v", 1, o->make_int_overflow ? CNF_DTYPE_I32 : CNF_DTYPE_F32,
                                           bad_cols, NULL, "bad values"};
  return 0;
}

static int bad_event(const void *opts, void *state, uint64_t index, double *const *rows) {
  const bad_opts *o = opts;
  rows[0][0] = (int64_t)index == o->bad_index ? (o->make_int_overflow ? 3e9 : NAN) : 1.0;
  return 0;
}

static const cnf_generator bad_gen = {.name = "bad", .opts_size = sizeof(bad_opts),
                                      .n_options = 1, .options = bad_options,
                                      .setup = bad_setup, .event = bad_event};

static void expect_failure_leaves_nothing(const cnf_generator *gen, const void *opts,
                                          const cnf_data_gen_config *cfg, int code,
                                          const char *words) {
  cnf_error_clear();
  assert_int_equal(cnf_data_generate(gen, opts, cfg, MPI_COMM_WORLD, NULL), code);
  if (!strstr(cnf_error_message(), words))
    fail_msg("message '%s' lacks '%s'", cnf_error_message(), words);
  assert_null(strchr(cnf_error_message(), '\n'));
  assert_false(file_exists(cfg->path));
  assert_false(tmp_left(cfg->path));
}

static void test_generate_failures_leave_nothing(void **state) {
  char path[256];
  snprintf(path, sizeof path, "%s.h5", testutil_tmp_path("test_data_fail"));
  cnf_testgen_opts o;
  cnf_gen_testgen.opts_default(&o);
  o.fail_event = 640;
  cnf_data_gen_config cfg = quiet_config(path, 1000, 100);
  expect_failure_leaves_nothing(&cnf_gen_testgen, &o, &cfg, CNF_ERR_NUMERIC, "event 640");
  o.fail_event = -1;
  o.n = 0; /* generator default 0 and no -n */
  cfg.n_events = 0;
  expect_failure_leaves_nothing(&cnf_gen_testgen, &o, &cfg, CNF_ERR_ARG, "0 events");
  cfg = quiet_config(path, 10, 100);
  cfg.split_fractions[0] = 0.95;
  expect_failure_leaves_nothing(&cnf_gen_testgen, &o, &cfg, CNF_ERR_ARG, "sum to 1");

  bad_opts b = {.seed = 1, .bad_index = 42};
  cfg = quiet_config(path, 0, 16);
  expect_failure_leaves_nothing(&bad_gen, &b, &cfg, CNF_ERR_NUMERIC, "event 42: dataset 'v'");
  b.make_int_overflow = 1;
  expect_failure_leaves_nothing(&bad_gen, &b, &cfg, CNF_ERR_NUMERIC, "does not fit int32");
  const cnf_generator no_seed = {.name = "noseed", .opts_size = sizeof(bad_opts),
                                 .setup = bad_setup, .event = bad_event};
  expect_failure_leaves_nothing(&no_seed, &b, &cfg, CNF_ERR_STATE, "no seed option");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  cnf_log_set_level(CNF_LOG_QUIET);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_ranges_closed_form),
      cmocka_unit_test(test_parse_fractions),
      cmocka_unit_test(test_option_table_roles_and_text),
      cmocka_unit_test(test_testgen_moments),
      cmocka_unit_test(test_generate_read_round_trip),
      cmocka_unit_test(test_generate_bytes_independent_of_batch_and_time),
      cmocka_unit_test(test_generate_failures_leave_nothing),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return failed;
}
