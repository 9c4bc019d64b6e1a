/* Data layer on 2 ranks: sharded split reads cover every row exactly once and equal the
 * generator's own events, column subsets, CaloChallenge-style files, and every failure
 * (missing / truncated / non-HDF5 file, wrong schema, failures on one rank only) returns the
 * same error on both ranks without hanging. */
#include "testutil.h"

#include "cnflow/data.h"

#include <dirent.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_ROWS 1237
static char g_path[256];
static int g_rank, g_size;
static const double g_fractions[3] = {0.7, 0.2, 0.1};
static const int64_t g_seed = 99;

/* ---- helpers ------------------------------------------------------------------------------- */

/* A scratch name chosen on rank 0 (pids differ between ranks). */
static void shared_path(char *buf, size_t len, const char *name) {
  if (g_rank == 0)
    snprintf(buf, len, "%s", testutil_tmp_path(name));
  MPI_Bcast(buf, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
}

/* Both ranks returned `code`, with a message containing `words`. */
static void expect_shared_error(int rc, int code, const char *words) {
  int lo, hi;
  MPI_Allreduce(&rc, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&rc, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (lo != code || hi != code)
    fail_msg("rank %d: codes %d..%d, expected %d (%s)", g_rank, lo, hi, code, cnf_error_message());
  if (!strstr(cnf_error_message(), words))
    fail_msg("rank %d: message '%s' lacks '%s'", g_rank, cnf_error_message(), words);
  assert_null(strchr(cnf_error_message(), '\n'));
}

static void testgen_opts(cnf_testgen_opts *o) {
  cnf_gen_testgen.opts_default(o);
  o->seed = g_seed;
}

static void event_rows(uint64_t index, double truth[3], double cond[1], double meta[2]) {
  cnf_testgen_opts o;
  testgen_opts(&o);
  double *rows[3] = {truth, cond, meta};
  assert_int_equal(cnf_gen_testgen.event(&o, NULL, index, rows), 0);
}

static int group_setup(void **state) {
  shared_path(g_path, sizeof g_path, "mpi2_data.h5");
  cnf_testgen_opts o;
  testgen_opts(&o);
  cnf_data_gen_config cfg;
  cnf_data_gen_config_default(&cfg);
  cfg.path = g_path;
  cfg.seed = g_seed;
  cfg.n_events = N_ROWS;
  cfg.batch_rows = 100;
  cfg.progress_interval_s = 0;
  memcpy(cfg.split_fractions, g_fractions, sizeof g_fractions);
  cnf_data_gen_report rep;
  int rc = cnf_data_generate(&cnf_gen_testgen, &o, &cfg, MPI_COMM_WORLD, &rep);
  if (rc < 0)
    fprintf(stderr, "rank %d: generate failed: %s\n", g_rank, cnf_error_message());
  else if (rep.independent_writes != 0 || rep.n_events != N_ROWS)
    fprintf(stderr, "rank %d: %llu independent writes, %llu rows\n", g_rank,
            (unsigned long long)rep.independent_writes, (unsigned long long)rep.n_events);
  return rc < 0 || rep.independent_writes != 0 || rep.n_events != N_ROWS ? -1 : 0;
}

static int group_teardown(void **state) {
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0)
    remove(g_path);
  return 0;
}

/* ---- sharded reads -------------------------------------------------------------------------- */

static void check_split_coverage(cnf_data_file *f, const char *split, uint64_t sfirst,
                                 uint64_t scount) {
  cnf_data_dset *truth, *cond, *meta;
  assert_int_equal(cnf_data_dset_open(f, "truth", 3, &truth), 0);
  assert_int_equal(cnf_data_dset_open(f, "cond", 1, &cond), 0);
  assert_int_equal(cnf_data_dset_open(f, "aux/meta", 2, &meta), 0);
  uint64_t first, count, pfirst, pcount;
  assert_int_equal(cnf_data_shard(truth, split, &first, &count), 0);
  cnf_partition(scount, g_size, g_rank, &pfirst, &pcount);
  assert_int_equal(first, sfirst + pfirst);
  assert_int_equal(count, pcount);

  double *t = malloc((count + 1) * 3 * sizeof(double)), *m = malloc((count + 1) * 2 * sizeof(double));
  float *c = malloc((count + 1) * sizeof(float));
  assert_int_equal(cnf_data_read_split(truth, split, 0, NULL, CNF_DTYPE_F64, t), 0);
  assert_int_equal(cnf_data_read_split(cond, split, 0, NULL, CNF_DTYPE_F32, c), 0);
  assert_int_equal(cnf_data_read_split(meta, split, 0, NULL, CNF_DTYPE_F64, m), 0);
  int *ids = malloc((count + 1) * sizeof(int));
  for (uint64_t i = 0; i < count; i++) {
    double want[3], wc[1], wm[2];
    ids[i] = (int)t[3 * i];
    event_rows((uint64_t)ids[i], want, wc, wm);
    assert_memory_equal(t + 3 * i, want, sizeof want);
    assert_true(c[i] == (float)wc[0]);
    assert_true(m[2 * i] == wm[0] && m[2 * i + 1] == wm[1]);
  }
  /* gather every rank's row ids: each row of the split exactly once */
  int n = (int)count, counts[2], displs[2] = {0, 0}, total = 0;
  MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
  int *all = NULL;
  if (g_rank == 0) {
    for (int r = 0; r < g_size; r++) {
      displs[r] = total;
      total += counts[r];
    }
    all = malloc(((size_t)total + 1) * sizeof(int));
  }
  MPI_Gatherv(ids, n, MPI_INT, all, counts, displs, MPI_INT, 0, MPI_COMM_WORLD);
  if (g_rank == 0) {
    assert_int_equal(total, scount);
    int *seen = calloc(N_ROWS, sizeof(int));
    for (int i = 0; i < total; i++) {
      assert_true(all[i] >= (int)sfirst && all[i] < (int)(sfirst + scount));
      seen[all[i]]++;
    }
    for (uint64_t i = sfirst; i < sfirst + scount; i++)
      assert_int_equal(seen[i], 1);
    free(seen);
    free(all);
  }
  free(ids);
  free(t);
  free(c);
  free(m);
  cnf_data_dset_close(meta);
  cnf_data_dset_close(cond);
  cnf_data_dset_close(truth);
}

static void test_split_shards_cover_each_row_once(void **state) {
  cnf_data_file *f;
  assert_int_equal(cnf_data_open(g_path, MPI_COMM_WORLD, &f), 0);
  assert_int_equal(cnf_data_expect_generator(f, "testgen"), 0);
  uint64_t first[3], count[3], next = 0;
  assert_int_equal(cnf_data_split_ranges(N_ROWS, g_fractions, first, count), 0);
  for (int k = 0; k < CNF_N_SPLITS; k++) {
    uint64_t sf, sc;
    assert_int_equal(cnf_data_split(f, cnf_split_names[k], &sf, &sc), 0);
    assert_int_equal(sf, next);
    assert_int_equal(sf, first[k]);
    assert_int_equal(sc, count[k]);
    next += sc;
    check_split_coverage(f, cnf_split_names[k], sf, sc);
  }
  assert_int_equal(next, N_ROWS);
  check_split_coverage(f, "all", 0, N_ROWS);
  cnf_data_close(f);
}

static void test_column_subset(void **state) {
  cnf_data_file *f;
  cnf_data_dset *truth;
  assert_int_equal(cnf_data_open(g_path, MPI_COMM_WORLD, &f), 0);
  assert_int_equal(cnf_data_dset_open(f, "truth", 0, &truth), 0);
  const int cols[2] = {cnf_data_dset_find_column(truth, "u"),
                       cnf_data_dset_find_column(truth, "event_id")};
  assert_int_equal(cols[0], 2);
  assert_int_equal(cols[1], 0);
  expect_shared_error(cnf_data_dset_find_column(truth, "nope"), CNF_ERR_FORMAT, "no column 'nope'");
  uint64_t first, count;
  assert_int_equal(cnf_data_shard(truth, "val", &first, &count), 0);
  float *v = malloc((count + 1) * 2 * sizeof(float));
  double *x = malloc((count + 1) * sizeof(double));
  assert_int_equal(cnf_data_read_split(truth, "val", 2, cols, CNF_DTYPE_F32, v), 0);
  const int col_x = 1;
  assert_int_equal(cnf_data_read(truth, first, count, 1, &col_x, CNF_DTYPE_F64, x), 0);
  for (uint64_t i = 0; i < count; i++) {
    double want[3], wc[1], wm[2];
    event_rows(first + i, want, wc, wm);
    assert_true(v[2 * i] == (float)want[2]);
    assert_true(v[2 * i + 1] == (float)want[0]);
    assert_true(x[i] == want[1]);
  }
  free(v);
  free(x);
  cnf_data_dset_close(truth);
  cnf_data_close(f);
}

/* ---- failures shared by both ranks ---------------------------------------------------------- */

static void test_schema_and_argument_errors(void **state) {
  cnf_data_file *f;
  cnf_data_dset *d = NULL;
  assert_int_equal(cnf_data_open(g_path, MPI_COMM_WORLD, &f), 0);
  expect_shared_error(cnf_data_expect_generator(f, "hgg"), CNF_ERR_FORMAT, "expected 'hgg'");
  expect_shared_error(cnf_data_dset_open(f, "truth", 4, &d), CNF_ERR_FORMAT,
                      "has 3 columns, expected 4");
  assert_null(d);
  expect_shared_error(cnf_data_dset_open(f, "showers", 0, &d), CNF_ERR_FORMAT, "no dataset 'showers'");
  expect_shared_error(cnf_data_dset_open(f, "aux/nope", 0, &d), CNF_ERR_FORMAT, "no dataset");
  expect_shared_error(cnf_data_dset_open(f, "nogroup/x", 0, &d), CNF_ERR_FORMAT, "no dataset");
  expect_shared_error(cnf_data_dset_open(f, "aux", 0, &d), CNF_ERR_FORMAT, "not a dataset");
  uint64_t a, b;
  expect_shared_error(cnf_data_split(f, "validation", &a, &b), CNF_ERR_ARG, "unknown split");

  assert_int_equal(cnf_data_dset_open(f, "truth", 3, &d), 0);
  double buf[30];
  /* only rank 1 asks for rows past the end: rank 0 must not be left in the collective read */
  uint64_t first = g_rank == 1 ? N_ROWS - 2 : 0;
  expect_shared_error(cnf_data_read(d, first, 5, 0, NULL, CNF_DTYPE_F64, buf), CNF_ERR_ARG,
                      "out of range");
  const int dup[2] = {1, 1}, bad[1] = {3};
  expect_shared_error(cnf_data_read(d, 0, 5, 2, g_rank == 0 ? dup : (const int[2]){0, 1},
                                    CNF_DTYPE_F64, buf),
                      CNF_ERR_ARG, "requested twice");
  expect_shared_error(cnf_data_read(d, 0, 5, 1, bad, CNF_DTYPE_F64, buf), CNF_ERR_ARG,
                      "out of range");
  expect_shared_error(cnf_data_read(d, 0, 5, 0, NULL, CNF_DTYPE_I32, buf), CNF_ERR_ARG,
                      "float or double");
  /* the handle still works after shared failures */
  assert_int_equal(cnf_data_read(d, (uint64_t)g_rank * 5, 5, 0, NULL, CNF_DTYPE_F64, buf), 0);
  assert_true(buf[0] == (double)(g_rank * 5));
  cnf_data_dset_close(d);
  cnf_data_close(f);
}

static void test_open_errors(void **state) {
  char missing[256], text[256], trunc[256], empty[256];
  shared_path(missing, sizeof missing, "mpi2_missing.h5");
  shared_path(text, sizeof text, "mpi2_text.h5");
  shared_path(trunc, sizeof trunc, "mpi2_trunc.h5");
  shared_path(empty, sizeof empty, "mpi2_empty.h5");
  if (g_rank == 0) {
    FILE *t = fopen(text, "w");
    fputs("event_id,x,u\n0,0.5,0.25\n", t);
    fclose(t);
    fclose(fopen(empty, "w"));
    FILE *in = fopen(g_path, "rb"), *out = fopen(trunc, "wb");
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, in), (size_t)n);
    fwrite(buf, 1, (size_t)n / 2, out); /* half the bytes */
    free(buf);
    fclose(in);
    fclose(out);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  cnf_data_file *f = NULL;
  expect_shared_error(cnf_data_open(missing, MPI_COMM_WORLD, &f), CNF_ERR_IO, "No such file");
  expect_shared_error(cnf_data_open(text, MPI_COMM_WORLD, &f), CNF_ERR_IO, "not an HDF5 file");
  expect_shared_error(cnf_data_open(empty, MPI_COMM_WORLD, &f), CNF_ERR_IO, "not an HDF5 file");
  expect_shared_error(cnf_data_open(trunc, MPI_COMM_WORLD, &f), CNF_ERR_IO, "truncated");
  assert_null(f);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) {
    remove(text);
    remove(trunc);
    remove(empty);
  }
}

static int tmp_left(const char *path) {
  char prefix[600];
  snprintf(prefix, sizeof prefix, "%s.tmp.", path);
  DIR *dir = opendir(".");
  int found = 0;
  for (struct dirent *e; dir && (e = readdir(dir));)
    found |= strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  if (dir)
    closedir(dir);
  return found;
}

static void test_generate_failure_on_one_rank(void **state) {
  char path[256];
  shared_path(path, sizeof path, "mpi2_fail.h5");
  cnf_testgen_opts o;
  testgen_opts(&o);
  cnf_data_gen_config cfg;
  cnf_data_gen_config_default(&cfg);
  cfg.path = path;
  cfg.n_events = N_ROWS;
  cfg.batch_rows = 50;
  cfg.progress_interval_s = 0;
  o.fail_event = 1000; /* in rank 1's block [619, 1237), after some collective writes */
  expect_shared_error(cnf_data_generate(&cnf_gen_testgen, &o, &cfg, MPI_COMM_WORLD, NULL),
                      CNF_ERR_NUMERIC, "injected failure at event 1000");
  struct stat st;
  assert_int_not_equal(stat(path, &st), 0);
  assert_false(tmp_left(path));
  o.fail_event = -1;
  o.fail_setup = 10; /* rank 0's block only */
  expect_shared_error(cnf_data_generate(&cnf_gen_testgen, &o, &cfg, MPI_COMM_WORLD, NULL),
                      CNF_ERR_STATE, "injected setup failure");
  assert_int_not_equal(stat(path, &st), 0);
  assert_false(tmp_left(path));
}

/* ---- CaloChallenge layout --------------------------------------------------------------------- */

#define CALO_N 701 /* enough rows for reads larger than the reader's 8 MiB staging block */
#define CALO_VOX 6480 /* CaloChallenge dataset 2 width: wider than CNF_MAX_COLS */

static void write_calo_file(const char *path) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t d1 = CALO_N, d2[2] = {CALO_N, CALO_VOX}, d3[3] = {2, 2, 2};
  double e[CALO_N];
  float *s = malloc(sizeof(float) * CALO_N * CALO_VOX), cube[8] = {0};
  for (int i = 0; i < CALO_N; i++) {
    e[i] = 1000.0 + i;
    for (int j = 0; j < CALO_VOX; j++)
      s[i * CALO_VOX + j] = (float)(10 * i + j);
  }
  hid_t sp1 = H5Screate_simple(1, &d1, NULL), sp2 = H5Screate_simple(2, d2, NULL),
        sp3 = H5Screate_simple(3, d3, NULL);
  hid_t a = H5Dcreate2(f, "incident_energies", H5T_IEEE_F64LE, sp1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t b = H5Dcreate2(f, "showers", H5T_IEEE_F32LE, sp2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t c = H5Dcreate2(f, "cube", H5T_IEEE_F32LE, sp3, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(a >= 0 && b >= 0 && c >= 0);
  assert_true(H5Dwrite(a, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, e) >= 0);
  assert_true(H5Dwrite(b, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) >= 0);
  assert_true(H5Dwrite(c, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, cube) >= 0);
  H5Dclose(c);
  H5Dclose(b);
  H5Dclose(a);
  H5Sclose(sp3);
  H5Sclose(sp2);
  H5Sclose(sp1);
  H5Fclose(f);
  free(s);
}

static void test_calochallenge_layout(void **state) {
  char path[256];
  shared_path(path, sizeof path, "mpi2_calo.h5");
  if (g_rank == 0)
    write_calo_file(path);
  MPI_Barrier(MPI_COMM_WORLD);
  cnf_data_file *f;
  cnf_data_dset *e, *s, *bad = NULL;
  assert_int_equal(cnf_data_open(path, MPI_COMM_WORLD, &f), 0);
  assert_string_equal(cnf_data_generator(f), "");
  expect_shared_error(cnf_data_expect_generator(f, "calo-photon"), CNF_ERR_FORMAT, "(none)");
  assert_int_equal(cnf_data_dset_open(f, "incident_energies", 1, &e), 0);
  assert_int_equal(cnf_data_dset_open(f, "showers", CALO_VOX, &s), 0);
  expect_shared_error(cnf_data_dset_open(f, "cube", 0, &bad), CNF_ERR_FORMAT, "3 dimensions");
  assert_string_equal(cnf_data_dset_column(s, 6), "c6");
  assert_int_equal(cnf_data_dset_find_column(s, "c6479"), CALO_VOX - 1);
  uint64_t first, count;
  expect_shared_error(cnf_data_shard(s, "train", &first, &count), CNF_ERR_FORMAT, "no split record");
  assert_int_equal(cnf_data_shard(s, NULL, &first, &count), 0);
  assert_int_equal(count, g_rank == 0 ? 351 : 350);
  double ev[CALO_N], *full = malloc(sizeof(double) * CALO_N * CALO_VOX);
  float sv[CALO_N * 2];
  const int cols[2] = {CALO_VOX - 1, 0};
  assert_int_equal(cnf_data_read_split(e, NULL, 0, NULL, CNF_DTYPE_F64, ev), 0);
  assert_int_equal(cnf_data_read_split(s, "all", 2, cols, CNF_DTYPE_F32, sv), 0);
  assert_int_equal(cnf_data_read_split(s, NULL, 0, NULL, CNF_DTYPE_F64, full), 0);
  for (uint64_t i = 0; i < count; i++) {
    assert_true(ev[i] == 1000.0 + (double)(first + i));
    assert_true(sv[2 * i] == (float)(10 * (first + i) + CALO_VOX - 1));
    assert_true(sv[2 * i + 1] == (float)(10 * (first + i)));
    for (int j = 0; j < CALO_VOX; j++)
      if (full[i * CALO_VOX + j] != (double)(10 * (first + i) + j))
        fail_msg("showers[%llu][%d] = %g", (unsigned long long)(first + i), j,
                 full[i * CALO_VOX + j]);
  }
  /* uneven ranges: rank 0 needs two staging blocks, rank 1 one (matching collectives) */
  uint64_t r0 = g_rank == 0 ? 0 : 500, rn = g_rank == 0 ? 500 : 20;
  assert_int_equal(cnf_data_read(s, r0, rn, 0, NULL, CNF_DTYPE_F64, full), 0);
  for (uint64_t i = 0; i < rn; i++)
    for (int j = 0; j < CALO_VOX; j += 97)
      assert_true(full[i * CALO_VOX + j] == (double)(10 * (r0 + i) + j));
  free(full);
  cnf_data_dset_close(s);
  cnf_data_dset_close(e);
  cnf_data_close(f);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0)
    remove(path);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  cnf_log_set_rank(g_rank, g_size);
  cnf_log_set_level(CNF_LOG_QUIET);
  if (g_size != 2) {
    fprintf(stderr, "mpi2_data needs exactly 2 ranks\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_shards_cover_each_row_once),
      cmocka_unit_test(test_column_subset),
      cmocka_unit_test(test_schema_and_argument_errors),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_generate_failure_on_one_rank),
      cmocka_unit_test(test_calochallenge_layout),
  };
  int failed = cmocka_run_group_tests_name(g_rank == 0 ? "mpi2_data_rank0" : "mpi2_data_rank1",
                                           tests, group_setup, group_teardown);
  int worst = 0;
  MPI_Allreduce(&failed, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
