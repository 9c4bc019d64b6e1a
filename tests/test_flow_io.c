/* Model files: save -> load gives a bit-identical flow (parameters and log-densities), the
 * architecture comes from the file, and broken files (missing, garbage, truncated, foreign
 * format/version, wrong parameter count) fail with a clear error instead of crashing. */
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnflow/flow.h"

enum { NEV = 16 };

/* Flow "A": D=4, C=2 with every elementwise kind, ActNorm, couplings and (when built) MAFs */
static cnf_flow *make_flow_a(void) {
  static double shift[4] = {0.1, -0.2, 0.0, 0.05}, scale[4] = {2.0, 1.5, 1.25, 3.0};
  static int rev[4] = {3, 2, 1, 0}, swap[4] = {2, 3, 0, 1};
  cnf_bijector_spec s[9];
  memset(s, 0, sizeof s);
  s[0] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = shift, .scale = scale};
  s[1] = (cnf_bijector_spec){.kind = CNF_BIJ_TANH};
  s[2] = (cnf_bijector_spec){.kind = CNF_BIJ_ACTNORM};
  s[3] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 8, .n_hidden = 2,
                             .bins = 5, .tail_bound = 4.0, .min_bin_width = 1e-3,
                             .min_bin_height = 1e-3, .min_derivative = 1e-3,
                             .tails = CNF_TAILS_EVENT};
  s[4] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = rev};
  s[5] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 8, .n_hidden = 2,
                             .scale_kind = CNF_AFFINE_SCALE_EXP_TANH};
  s[6] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = swap};
  s[7] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_RQS, .hidden = 8, .n_hidden = 1, .bins = 4,
                             .tail_bound = 5.0, .min_bin_width = 1e-3, .min_bin_height = 1e-3,
                             .min_derivative = 1e-3};
  s[8] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 6, .n_hidden = 1,
                             .bins = 3, .tail_bound = 6.0, .min_bin_width = 1e-2,
                             .min_bin_height = 1e-2, .min_derivative = 1e-2,
                             .tails = CNF_TAILS_ELEMENT};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(4, 2, 9, s, &f), 0);
  cnf_cond_map map[2] = {CNF_COND_LOG10, CNF_COND_IDENTITY};
  double cs[2] = {1.0, -0.5}, cc[2] = {0.5, 2.0};
  assert_int_equal(cnf_flow_set_cond_transform(f, map, cs, cc), 0);
  assert_int_equal(cnf_flow_init_params(f, 5, 0), 0);
  /* move every parameter off its initial value so the file carries non-trivial numbers */
  cnf_rng r;
  cnf_rng_init(&r, 99, 0, 0);
  cnf_real *p = cnf_flow_params(f);
  for (size_t i = 0; i < cnf_flow_num_params(f); i++)
    p[i] += (cnf_real)(0.05 * cnf_rng_normal(&r));
  assert_int_equal(cnf_flow_params_changed(f), 0);
  return f;
}

/* Flow "B": D=3, C=1, a different architecture */
static cnf_flow *make_flow_b(void) {
  static int perm[3] = {1, 2, 0};
  cnf_bijector_spec s[3];
  memset(s, 0, sizeof s);
  s[0] = (cnf_bijector_spec){.kind = CNF_BIJ_LOGIT, .alpha = 1e-6};
  s[1] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = perm};
  s[2] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 5, .n_hidden = 2,
                             .bins = 6, .tail_bound = 14.0, .min_bin_width = 1e-3,
                             .min_bin_height = 1e-3, .min_derivative = 1e-3,
                             .tails = CNF_TAILS_ELEMENT};
  cnf_flow *f = NULL;
  assert_int_equal(cnf_flow_create(3, 1, 3, s, &f), 0);
  assert_int_equal(cnf_flow_init_params(f, 8, 0), 0);
  cnf_rng r;
  cnf_rng_init(&r, 100, 0, 0);
  cnf_real *p = cnf_flow_params(f);
  for (size_t i = 0; i < cnf_flow_num_params(f); i++)
    p[i] += (cnf_real)(0.1 * cnf_rng_normal(&r));
  assert_int_equal(cnf_flow_params_changed(f), 0);
  return f;
}

/* Events inside every domain: x in (0.05, 0.95) (tanh and logit), c > 0 (log10 map). */
static void make_events(int D, int C, cnf_real *x, cnf_real *c) {
  cnf_rng r;
  cnf_rng_init(&r, 1, 0, 0);
  for (int e = 0; e < NEV * D; e++)
    x[e] = (cnf_real)(0.05 + 0.9 * cnf_rng_uniform(&r));
  for (int e = 0; e < NEV * C; e++)
    c[e] = (cnf_real)(0.2 + 3.0 * cnf_rng_uniform(&r));
}

static void log_probs(cnf_flow *f, cnf_real *logp) {
  cnf_real x[NEV * 8], c[NEV * 8];
  make_events(cnf_flow_dim(f), cnf_flow_cond_dim(f), x, c);
  assert_int_equal(cnf_flow_log_prob(f, NEV, x, c, logp), 0);
  for (int i = 0; i < NEV; i++)
    assert_true(isfinite(logp[i]));
}

static void assert_same_flow(cnf_flow *a, cnf_flow *b) {
  assert_int_equal(cnf_flow_dim(a), cnf_flow_dim(b));
  assert_int_equal(cnf_flow_cond_dim(a), cnf_flow_cond_dim(b));
  assert_int_equal(cnf_flow_num_bijectors(a), cnf_flow_num_bijectors(b));
  assert_int_equal(cnf_flow_num_params(a), cnf_flow_num_params(b));
  for (int k = 0; k < cnf_flow_num_bijectors(a); k++)
    assert_int_equal(cnf_flow_bijector(a, k)->spec.kind, cnf_flow_bijector(b, k)->spec.kind);
  assert_memory_equal(cnf_flow_params(a), cnf_flow_params(b),
                      cnf_flow_num_params(a) * sizeof(cnf_real));
  cnf_real la[NEV], lb[NEV];
  log_probs(a, la);
  log_probs(b, lb);
  assert_memory_equal(la, lb, sizeof la); /* bit for bit */
}

static void test_round_trip_bit_identical(void **state) {
  cnf_flow *f = make_flow_a();
  char path[600];
  snprintf(path, sizeof path, "%s.h5", testutil_tmp_path("flow_io_a"));
  cnf_model_provenance prov;
  memset(&prov, 0, sizeof prov);
  snprintf(prov.options, sizeof prov.options, "-preset test -epochs 3");
  prov.seed = 0x123456789abcULL;
  prov.epoch = 42;
  prov.val_score = -1.25;
  snprintf(prov.git_rev, sizeof prov.git_rev, "abc1234");
  assert_int_equal(cnf_flow_save(f, path, &prov), 0);
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  assert_int_not_equal(access(tmp, F_OK), 0); /* renamed, nothing left behind */

  cnf_flow *g = NULL;
  cnf_model_provenance back;
  assert_int_equal(cnf_flow_load(path, &g, &back), 0);
  assert_same_flow(f, g);
  /* the permutation and affine constants came from the file, not from shared memory */
  assert_int_equal(cnf_flow_bijector(g, 4)->spec.perm[0], 3);
  assert_true(cnf_flow_bijector(g, 0)->spec.scale[3] == 3.0);
  assert_string_equal(back.options, prov.options);
  assert_true(back.seed == prov.seed);
  assert_int_equal(back.epoch, 42);
  assert_true(back.val_score == -1.25);
  assert_string_equal(back.git_rev, "abc1234");
  /* the condition transform is part of the model: log10 of a non-positive c is refused */
  cnf_real x[4] = {0.5f, 0.5f, 0.5f, 0.5f}, c[2] = {-1.0f, 0.0f}, lp;
  assert_int_equal(cnf_flow_log_prob(g, 1, x, c, &lp), CNF_ERR_NUMERIC);
  /* ... and reads back exactly as it was set */
  const cnf_cond_map want_map[2] = {CNF_COND_LOG10, CNF_COND_IDENTITY};
  const double want_shift[2] = {1.0, -0.5}, want_scale[2] = {0.5, 2.0};
  for (int j = 0; j < 2; j++) {
    cnf_cond_map m;
    double sh, sc;
    assert_int_equal(cnf_flow_get_cond_transform(g, j, &m, &sh, &sc), 0);
    assert_int_equal(m, want_map[j]);
    assert_true(sh == want_shift[j] && sc == want_scale[j]);
  }
  assert_int_equal(cnf_flow_get_cond_transform(g, 2, NULL, NULL, NULL), CNF_ERR_ARG);
  cnf_flow_free(&g);
  cnf_flow_free(&f);
  remove(path);
}

static void test_other_architecture_comes_from_the_file(void **state) {
  cnf_flow *a = make_flow_a(), *b = make_flow_b();
  char pa[600], pb[600];
  snprintf(pa, sizeof pa, "%s.h5", testutil_tmp_path("flow_io_arch_a"));
  snprintf(pb, sizeof pb, "%s.h5", testutil_tmp_path("flow_io_arch_b"));
  assert_int_equal(cnf_flow_save(a, pa, NULL), 0);
  assert_int_equal(cnf_flow_save(b, pb, NULL), 0);
  cnf_flow *lb = NULL, *la = NULL;
  assert_int_equal(cnf_flow_load(pb, &lb, NULL), 0);
  assert_int_equal(cnf_flow_load(pa, &la, NULL), 0);
  assert_same_flow(b, lb);
  assert_same_flow(a, la);
  assert_int_equal(cnf_flow_bijector(lb, 0)->spec.kind, CNF_BIJ_LOGIT);
  assert_true(cnf_flow_bijector(lb, 0)->spec.alpha == 1e-6);
  /* saving over an existing file replaces it */
  assert_int_equal(cnf_flow_save(a, pb, NULL), 0);
  cnf_flow_free(&lb);
  assert_int_equal(cnf_flow_load(pb, &lb, NULL), 0);
  assert_same_flow(a, lb);
  cnf_flow_free(&la);
  cnf_flow_free(&lb);
  cnf_flow_free(&a);
  cnf_flow_free(&b);
  remove(pa);
  remove(pb);
}

static void test_missing_and_garbage_files(void **state) {
  cnf_flow *g = NULL;
  assert_int_equal(cnf_flow_load("/nonexistent/dir/model.h5", &g, NULL), CNF_ERR_IO);
  assert_null(g);
  assert_non_null(strstr(cnf_error_message(), "/nonexistent/dir/model.h5"));

  const char *path = testutil_tmp_path("flow_io_garbage");
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  cnf_rng r;
  cnf_rng_init(&r, 4, 0, 0);
  for (int i = 0; i < 5000; i++)
    fputc((int)(cnf_rng_u32(&r) & 0xff), fp);
  fclose(fp);
  assert_int_equal(cnf_flow_load(path, &g, NULL), CNF_ERR_FORMAT);
  assert_null(g);
  assert_non_null(strstr(cnf_error_message(), "not an HDF5 file"));
  remove(path);
}

static void test_truncated_file(void **state) {
  cnf_flow *f = make_flow_a();
  char path[600], half[700];
  snprintf(path, sizeof path, "%s.h5", testutil_tmp_path("flow_io_full"));
  snprintf(half, sizeof half, "%s.half.h5", path);
  assert_int_equal(cnf_flow_save(f, path, NULL), 0);
  FILE *in = fopen(path, "rb");
  assert_non_null(in);
  fseek(in, 0, SEEK_END);
  long size = ftell(in);
  fseek(in, 0, SEEK_SET);
  char *buf = malloc((size_t)size);
  assert_int_equal(fread(buf, 1, (size_t)size, in), (size_t)size);
  fclose(in);
  FILE *out = fopen(half, "wb");
  assert_int_equal(fwrite(buf, 1, (size_t)size / 2, out), (size_t)size / 2);
  fclose(out);
  free(buf);
  cnf_flow *g = NULL;
  int rc = cnf_flow_load(half, &g, NULL);
  assert_true(rc == CNF_ERR_IO || rc == CNF_ERR_FORMAT);
  assert_null(g);
  assert_true(strlen(cnf_error_message()) > 0);
  assert_null(strchr(cnf_error_message(), '\n')); /* one line */
  cnf_flow_free(&f);
  remove(path);
  remove(half);
}

/* Write a string attribute with the raw HDF5 API (to forge foreign files). */
static void forge_attr_str(hid_t obj, const char *name, const char *val) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(val) + 1);
  hid_t sp = H5Screate(H5S_SCALAR);
  if (H5Aexists(obj, name) > 0)
    H5Adelete(obj, name);
  hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(a >= 0);
  assert_true(H5Awrite(a, t, val) >= 0);
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
}

static void test_foreign_format_version_and_size(void **state) {
  cnf_flow *f = make_flow_a(), *g = NULL;
  char path[600];
  snprintf(path, sizeof path, "%s.h5", testutil_tmp_path("flow_io_forged"));

  /* an HDF5 file that is not a model */
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(file >= 0);
  forge_attr_str(file, "format", "cnflow-dataset");
  H5Fclose(file);
  assert_int_equal(cnf_flow_load(path, &g, NULL), CNF_ERR_FORMAT);
  assert_non_null(strstr(cnf_error_message(), "cnflow-dataset"));

  /* a model from a future format version (fixed-length string attrs are read too) */
  assert_int_equal(cnf_flow_save(f, path, NULL), 0);
  file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  forge_attr_str(file, "format", "cnflow-model");
  H5Adelete(file, "format_version");
  int v = 2;
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(file, "format_version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT, &v);
  H5Aclose(a);
  H5Sclose(sp);
  H5Fclose(file);
  assert_int_equal(cnf_flow_load(path, &g, NULL), CNF_ERR_FORMAT);
  assert_non_null(strstr(cnf_error_message(), "format_version 2"));

  /* parameters of the wrong length for the stored architecture */
  assert_int_equal(cnf_flow_save(f, path, NULL), 0);
  file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  assert_true(H5Ldelete(file, "/model/params", H5P_DEFAULT) >= 0);
  hsize_t n = cnf_flow_num_params(f) - 1;
  sp = H5Screate_simple(1, &n, NULL);
  hid_t d = H5Dcreate2(file, "/model/params", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT);
  float *zeros = calloc(n, sizeof(float));
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
  free(zeros);
  H5Dclose(d);
  H5Sclose(sp);
  H5Fclose(file);
  assert_int_equal(cnf_flow_load(path, &g, NULL), CNF_ERR_FORMAT);
  assert_non_null(strstr(cnf_error_message(), "params"));
  assert_null(g);
  cnf_flow_free(&f);
  remove(path);
}

/* Replace attribute `name` of obj by a 1-D array of n values of type t (forged files). */
static void forge_attr_array(hid_t obj, const char *name, hid_t t, hsize_t n, const void *vals) {
  if (H5Aexists(obj, name) > 0)
    assert_true(H5Adelete(obj, name) >= 0);
  hid_t sp = H5Screate_simple(1, &n, NULL);
  hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(a >= 0);
  assert_true(H5Awrite(a, t, vals) >= 0);
  H5Aclose(a);
  H5Sclose(sp);
}

/* Attributes the loader reads as one value but that hold arrays (h5py writes a list as an
 * array attribute): a clear error, not a write of every element into a one-value buffer. */
static void test_array_attributes_rejected(void **state) {
  cnf_flow *f = make_flow_a(), *g = NULL;
  char path[600];
  snprintf(path, sizeof path, "%s.h5", testutil_tmp_path("flow_io_array_attr"));
  int64_t dims[64];
  for (int i = 0; i < 64; i++)
    dims[i] = 4;
  const char *formats[4] = {"cnflow-model", "cnflow-model", "cnflow-model", "cnflow-model"};
  char kinds[8][16] = {"tanh", "tanh", "tanh", "tanh", "tanh", "tanh", "tanh", "tanh"};
  hid_t vstr = H5Tcopy(H5T_C_S1), fstr = H5Tcopy(H5T_C_S1);
  H5Tset_size(vstr, H5T_VARIABLE);
  H5Tset_size(fstr, sizeof kinds[0]);
  for (int which = 0; which < 3; which++) {
    assert_int_equal(cnf_flow_save(f, path, NULL), 0);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(file >= 0);
    if (which == 0) { /* numeric */
      hid_t model = H5Gopen2(file, "model", H5P_DEFAULT);
      forge_attr_array(model, "dim", H5T_NATIVE_INT64, 64, dims);
      H5Gclose(model);
    } else if (which == 1) { /* variable-length strings */
      forge_attr_array(file, "format", vstr, 4, formats);
    } else { /* fixed-length strings */
      hid_t b0 = H5Gopen2(file, "model/bijectors/000", H5P_DEFAULT);
      forge_attr_array(b0, "kind", fstr, 8, kinds);
      H5Gclose(b0);
    }
    H5Fclose(file);
    assert_int_equal(cnf_flow_load(path, &g, NULL), CNF_ERR_FORMAT);
    assert_null(g);
    assert_non_null(strstr(cnf_error_message(), "single value"));
  }
  H5Tclose(vstr);
  H5Tclose(fstr);

  /* an int32 setting stored as int64 beyond its range: refused, not truncated (2^32 + 8 -> 8) */
  assert_int_equal(cnf_flow_save(f, path, NULL), 0);
  hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t b0 = H5Gopen2(file, "model/bijectors/000", H5P_DEFAULT);
  const int64_t huge = ((int64_t)1 << 32) + 8;
  forge_attr_array(b0, "bins", H5T_NATIVE_INT64, 1, &huge);
  H5Gclose(b0);
  H5Fclose(file);
  assert_int_equal(cnf_flow_load(path, &g, NULL), CNF_ERR_FORMAT);
  assert_null(g);
  assert_non_null(strstr(cnf_error_message(), "'bins' = 4294967304 is out of range"));
  cnf_flow_free(&f);
  remove(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_bit_identical),
      cmocka_unit_test(test_other_architecture_comes_from_the_file),
      cmocka_unit_test(test_missing_and_garbage_files),
      cmocka_unit_test(test_truncated_file),
      cmocka_unit_test(test_foreign_format_version_and_size),
      cmocka_unit_test(test_array_attributes_rejected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
