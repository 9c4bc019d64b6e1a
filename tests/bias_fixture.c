/* usage: bias_fixture DIR
 * Writes scan.h5 files (the layout of include/cnflow/infer.h, serial HDF5) for
 * check_bias.sh:
 *   e10.h5   flow, uniform prior,     E = 10 GeV, r ~ N(1.02, 0.05^2), intervals, some flags
 *   e50.h5   flow, loguniform prior,  E = 50 GeV, r ~ N(0.99, 0.03^2), 2 % failed showers
 *   reg.h5   regression, prior "",    E = 30 GeV, r ~ N(1.00, 0.08^2), NaN intervals, float32
 *            e_pred, vlen-string attributes
 *   bad_format.h5 (format "cnflow-train"), bad_version.h5, bad_missing.h5 (no /scan/e_hi),
 *   bad_length.h5 (e_pred one short), bad_flagged.h5 (all failed), bad_nan.h5 (e_true[5] NaN)
 * Showers are counter-based: shower i of file k uses the stream (k, i). */
#include "cnflow/core.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                   \
  do {                                                             \
    if ((x) < 0) {                                                 \
      fprintf(stderr, "bias_fixture: %s failed (line %d)\n", #x, __LINE__); \
      exit(1);                                                     \
    }                                                              \
  } while (0)

static void attr_fixed_string(hid_t f, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
  CHECK(H5Tset_size(t, strlen(v) + 1));
  hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(a);
  CHECK(H5Awrite(a, t, v));
  H5Aclose(a), H5Sclose(s), H5Tclose(t);
}

static void attr_vlen_string(hid_t f, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
  CHECK(H5Tset_size(t, H5T_VARIABLE));
  hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(a);
  CHECK(H5Awrite(a, t, &v));
  H5Aclose(a), H5Sclose(s), H5Tclose(t);
}

static void attr_num(hid_t f, const char *name, hid_t type, const void *v) {
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(a);
  CHECK(H5Awrite(a, type, v));
  H5Aclose(a), H5Sclose(s);
}

static void column(hid_t g, const char *name, hid_t file_type, hid_t mem_type, size_t n,
                   const void *v) {
  hsize_t dim = n;
  hid_t s = H5Screate_simple(1, &dim, NULL);
  hid_t d = H5Dcreate2(g, name, file_type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(d);
  CHECK(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
  H5Dclose(d), H5Sclose(s);
}

typedef struct spec {
  const char *name, *method, *prior, *format;
  int version;
  size_t n;
  double e, mu, sd, fail_frac;
  int intervals, float_pred, vlen_attrs, drop_e_hi, short_pred, all_failed, nan_true;
} spec;

static void write_scan(const char *dir, int k, const spec *s) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, s->name);
  size_t n = s->n;
  double *et = malloc(n * sizeof *et), *ep = malloc(n * sizeof *ep);
  double *lo = malloc(n * sizeof *lo), *hi = malloc(n * sizeof *hi);
  int32_t *fl = malloc(n * sizeof *fl);
  for (size_t i = 0; i < n; i++) {
    cnf_rng g;
    cnf_rng_init(&g, (uint64_t)k + 1, i, 0);
    et[i] = s->e;
    ep[i] = s->e * (s->mu + s->sd * cnf_rng_normal(&g));
    /* asymmetric interval: Delta_L = a w, Delta_U = w with a in [0.3, 2.7] */
    double w = s->e * s->sd * (0.5 + cnf_rng_uniform(&g)), a = 0.3 + 2.4 * cnf_rng_uniform(&g);
    lo[i] = s->intervals ? ep[i] - a * w : NAN;
    hi[i] = s->intervals ? ep[i] + w : NAN;
    uint32_t u = cnf_rng_u32(&g);
    fl[i] = s->intervals ? (int32_t)(u & 7u) & (int32_t)((u >> 3) & 7u) : 0; /* ~1/8 per bit */
    if (s->all_failed || cnf_rng_uniform(&g) < s->fail_frac) {
      fl[i] |= 8;
      ep[i] = lo[i] = hi[i] = NAN;
    }
  }
  if (s->nan_true)
    et[5] = NAN;
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(f);
  void (*str)(hid_t, const char *, const char *) = s->vlen_attrs ? attr_vlen_string
                                                                 : attr_fixed_string;
  double e_min = 1.0, e_max = 100.0;
  str(f, "format", s->format ? s->format : "cnflow-scan");
  attr_num(f, "format_version", H5T_NATIVE_INT32, &s->version);
  str(f, "method", s->method);
  str(f, "prior", s->prior);
  attr_num(f, "e_min", H5T_NATIVE_DOUBLE, &e_min);
  attr_num(f, "e_max", H5T_NATIVE_DOUBLE, &e_max);
  hid_t g = H5Gcreate2(f, "scan", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(g);
  column(g, "e_true", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, et);
  column(g, "e_pred", s->float_pred ? H5T_IEEE_F32LE : H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
         s->short_pred ? n - 1 : n, ep);
  column(g, "e_lo", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, lo);
  if (!s->drop_e_hi)
    column(g, "e_hi", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, hi);
  column(g, "flags", H5T_STD_I32LE, H5T_NATIVE_INT32, n, fl);
  H5Gclose(g);
  CHECK(H5Fclose(f));
  free(et), free(ep), free(lo), free(hi), free(fl);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: bias_fixture DIR\n");
    return 2;
  }
  const spec good[] = {
      {.name = "e10.h5", .method = "flow", .prior = "uniform", .version = 1, .n = 3000,
       .e = 10.0, .mu = 1.02, .sd = 0.05, .fail_frac = 0.0, .intervals = 1},
      {.name = "e50.h5", .method = "flow", .prior = "loguniform", .version = 1, .n = 2000,
       .e = 50.0, .mu = 0.99, .sd = 0.03, .fail_frac = 0.02, .intervals = 1},
      {.name = "reg.h5", .method = "regression", .prior = "", .version = 1, .n = 1500,
       .e = 30.0, .mu = 1.0, .sd = 0.08, .float_pred = 1, .vlen_attrs = 1},
      {.name = "bad_format.h5", .method = "flow", .prior = "uniform", .format = "cnflow-train",
       .version = 1, .n = 100, .e = 10.0, .mu = 1.0, .sd = 0.1, .intervals = 1},
      {.name = "bad_version.h5", .method = "flow", .prior = "uniform", .version = 2, .n = 100,
       .e = 10.0, .mu = 1.0, .sd = 0.1, .intervals = 1},
      {.name = "bad_missing.h5", .method = "flow", .prior = "uniform", .version = 1, .n = 100,
       .e = 10.0, .mu = 1.0, .sd = 0.1, .intervals = 1, .drop_e_hi = 1},
      {.name = "bad_length.h5", .method = "flow", .prior = "uniform", .version = 1, .n = 100,
       .e = 10.0, .mu = 1.0, .sd = 0.1, .intervals = 1, .short_pred = 1},
      {.name = "bad_flagged.h5", .method = "flow", .prior = "uniform", .version = 1, .n = 100,
       .e = 10.0, .mu = 1.0, .sd = 0.1, .intervals = 1, .all_failed = 1},
      {.name = "bad_nan.h5", .method = "flow", .prior = "uniform", .version = 1, .n = 100,
       .e = 10.0, .mu = 1.0, .sd = 0.1, .intervals = 1, .nan_true = 1},
  };
  for (int k = 0; k < (int)(sizeof good / sizeof good[0]); k++)
    write_scan(argv[1], k, &good[k]);
  return 0;
}
