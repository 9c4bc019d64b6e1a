/* `cnflow bias`: scan files -> bias (KDE mode of E_pred/E_true) and resolution table.
 * Rank 0 reads and checks every file (serial HDF5) and broadcasts the ratios; the (file,
 * resample) pairs are dealt round-robin over the ranks, each resample drawing from the stream
 * (seed, file, resample) (cnflow/stats.h), and the values are reduced to rank 0 by index, so
 * bias.h5 does not depend on the number of ranks.  Rank 0 writes <o>.tmp and renames it. */
#include "cli.h"
#include "cnflow/data.h"
#include "cnflow/stats.h"

#include "../data/h5util.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bias_file {
  char *path;
  char method[32], prior[64];
  double e_min, e_max;   /* prior range of the scan (NaN if absent) */
  cnf_bias_row row;
  double *r, *rs;        /* (row.n_used) ratios in file order, and ascending */
} bias_file;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* "<file>: <message>" from the message just recorded (copied: it is the format argument). */
static int file_error(const char *path, int rc) {
  char msg[768];
  snprintf(msg, sizeof msg, "%s", cnf_error_message());
  return cnf_error_set(rc, "%s: %s", path, msg);
}

/* ---- reading one scan file (rank 0) ------------------------------------------------------- */
static int read_attr_double(hid_t f, const char *name, double *v) {
  *v = NAN;
  htri_t e = H5Aexists(f, name);
  if (e <= 0)
    return e < 0 ? h5u_fail(CNF_ERR_IO, "cannot query attribute '%s'", name) : 0;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  int rc = a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0
               ? h5u_fail(CNF_ERR_FORMAT, "attribute '%s' is not a number", name) : 0;
  if (a >= 0)
    H5Aclose(a);
  return rc;
}

/* A 1-D dataset /scan/<name> of n values (n = 0: take its length) read as `mem` (a float or
 * integer class, as `cls`). */
static int read_column(hid_t f, const char *name, H5T_class_t cls, hid_t mem, size_t *n,
                       void **buf) {
  char path[64];
  snprintf(path, sizeof path, "/scan/%s", name);
  htri_t e = H5Lexists(f, "/scan", H5P_DEFAULT);
  if (e > 0)
    e = H5Lexists(f, path, H5P_DEFAULT);
  if (e <= 0)
    return e < 0 ? h5u_fail(CNF_ERR_IO, "cannot look up %s", path)
                 : cnf_error_set(CNF_ERR_FORMAT, "missing dataset %s", path);
  hid_t d = H5Dopen2(f, path, H5P_DEFAULT), s = -1, t = -1;
  int rc = 0;
  if (d < 0 || (s = H5Dget_space(d)) < 0 || (t = H5Dget_type(d)) < 0) {
    rc = h5u_fail(CNF_ERR_IO, "cannot open %s", path);
    goto done;
  }
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_ndims(s);
  if (nd != 1 || H5Sget_simple_extent_dims(s, dims, NULL) != 1 || H5Tget_class(t) != cls) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: expected a 1-D %s dataset", path,
                       cls == H5T_FLOAT ? "float" : "integer");
    goto done;
  }
  if (*n && dims[0] != *n) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s has %llu values, /scan/e_true %zu", path,
                       (unsigned long long)dims[0], *n);
    goto done;
  }
  if (dims[0] == 0) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: no showers", path);
    goto done;
  }
  *n = (size_t)dims[0];
  *buf = cnf_malloc(*n * 8);
  if (!*buf) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  if (H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) < 0)
    rc = h5u_fail(CNF_ERR_IO, "cannot read %s", path);
done:
  if (t >= 0)
    H5Tclose(t);
  if (s >= 0)
    H5Sclose(s);
  if (d >= 0)
    H5Dclose(d);
  return rc;
}

static int read_scan(hid_t f, bias_file *bf) {
  char fmt[64] = "";
  int rc = h5u_attr_read_string(f, "format", fmt, sizeof fmt);
  CNF_CALL(rc);
  if (rc == 1 || strcmp(fmt, "cnflow-scan") != 0)
    return cnf_error_set(CNF_ERR_FORMAT, "not a scan file (format attribute '%s', expected "
                         "'cnflow-scan')", rc == 1 ? "(none)" : fmt);
  int version = 0;
  htri_t e = H5Aexists(f, "format_version");
  hid_t a = e > 0 ? H5Aopen(f, "format_version", H5P_DEFAULT) : -1;
  int ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT, &version) >= 0;
  if (a >= 0)
    H5Aclose(a);
  if (!ok || version != 1)
    return cnf_error_set(CNF_ERR_FORMAT, "format_version %s%d, expected 1", ok ? "" : "missing ",
                         version);
  rc = h5u_attr_read_string(f, "method", bf->method, sizeof bf->method);
  CNF_CALL(rc);
  if (rc == 1 || (strcmp(bf->method, "flow") != 0 && strcmp(bf->method, "regression") != 0))
    return cnf_error_set(CNF_ERR_FORMAT, "method attribute '%s': expected flow or regression",
                         rc == 1 ? "(none)" : bf->method);
  rc = h5u_attr_read_string(f, "prior", bf->prior, sizeof bf->prior);
  CNF_CALL(rc);
  if (rc == 1)
    bf->prior[0] = '\0';
  CNF_CALL(read_attr_double(f, "e_min", &bf->e_min));
  CNF_CALL(read_attr_double(f, "e_max", &bf->e_max));

  size_t n = 0;
  double *et = NULL, *ep = NULL, *lo = NULL, *hi = NULL;
  int32_t *fl = NULL;
  rc = read_column(f, "e_true", H5T_FLOAT, H5T_NATIVE_DOUBLE, &n, (void **)&et);
  if (rc == 0) rc = read_column(f, "e_pred", H5T_FLOAT, H5T_NATIVE_DOUBLE, &n, (void **)&ep);
  if (rc == 0) rc = read_column(f, "e_lo", H5T_FLOAT, H5T_NATIVE_DOUBLE, &n, (void **)&lo);
  if (rc == 0) rc = read_column(f, "e_hi", H5T_FLOAT, H5T_NATIVE_DOUBLE, &n, (void **)&hi);
  if (rc == 0) rc = read_column(f, "flags", H5T_INTEGER, H5T_NATIVE_INT32, &n, (void **)&fl);
  if (rc == 0) {
    bf->r = cnf_malloc(n * sizeof *bf->r);
    rc = bf->r ? 0 : CNF_ERR_NOMEM;
  }
  if (rc == 0) {
    cnf_bias_columns c = {n, et, ep, lo, hi, fl};
    rc = cnf_bias_prepare(&c, &bf->row, bf->r);
  }
  free(et), free(ep), free(lo), free(hi), free(fl);
  return rc;
}

static int read_file(bias_file *bf) {
  if (access(bf->path, R_OK) != 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot read: %s", bf->path, strerror(errno));
  h5u_quiet q;
  h5u_quiet_begin(&q);
  int rc = 0;
  hid_t f = H5Fopen(bf->path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    rc = h5u_fail(CNF_ERR_IO, "cannot open as HDF5");
  } else {
    rc = read_scan(f, bf);
    if (H5Fclose(f) < 0 && rc == 0)
      rc = h5u_fail(CNF_ERR_IO, "cannot close");
  }
  h5u_quiet_end(&q);
  return rc < 0 ? file_error(bf->path, rc) : 0;
}

/* ---- writing bias.h5 (rank 0) ------------------------------------------------------------- */
static int write_dset(hid_t g, const char *name, hid_t type, int nd, const hsize_t *dims,
                      const void *buf) {
  hid_t s = H5Screate_simple(nd, dims, NULL);
  hid_t d = s < 0 ? -1 : H5Dcreate2(g, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int ok = d >= 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
  if (d >= 0)
    H5Dclose(d);
  if (s >= 0)
    H5Sclose(s);
  return ok ? 0 : h5u_fail(CNF_ERR_IO, "cannot write /bias/%s", name);
}

static int write_strings(hid_t g, const char *name, int n, const char **v) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    if (t >= 0)
      H5Tclose(t);
    return h5u_fail(CNF_ERR_IO, "cannot describe /bias/%s", name);
  }
  hsize_t dim = (hsize_t)n;
  int rc = write_dset(g, name, t, 1, &dim, v);
  H5Tclose(t);
  return rc;
}

static int write_scalar_attr(hid_t obj, const char *name, hid_t type, const void *v) {
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = s < 0 ? -1 : H5Acreate2(obj, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
  int ok = a >= 0 && H5Awrite(a, type, v) >= 0;
  if (a >= 0)
    H5Aclose(a);
  if (s >= 0)
    H5Sclose(s);
  return ok ? 0 : h5u_fail(CNF_ERR_IO, "cannot write attribute '%s'", name);
}

/* One float64 column of the rows: field at byte offset `off` of cnf_bias_row. */
static int write_row_double(hid_t g, const char *name, const bias_file *files, int nf,
                            size_t off, double *tmp) {
  for (int i = 0; i < nf; i++)
    memcpy(&tmp[i], (const char *)&files[i].row + off, sizeof(double));
  hsize_t dim = (hsize_t)nf;
  return write_dset(g, name, H5T_NATIVE_DOUBLE, 1, &dim, tmp);
}

static int write_bias(const char *tmp_path, const bias_file *files, int nf,
                      const cnf_bias_conf *conf) {
  hid_t f = H5Fcreate(tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0)
    return h5u_fail(CNF_ERR_IO, "%s: cannot create", tmp_path);
  hid_t g = H5Gcreate2(f, "bias", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = g < 0 ? h5u_fail(CNF_ERR_IO, "cannot create group /bias") : 0;
  int version = 1, n_boot = conf->n_boot;
  int64_t n_grid = (int64_t)conf->n_grid, seed = (int64_t)conf->seed;
  if (rc == 0) rc = h5u_attr_write_string(f, "format", "cnflow-bias");
  if (rc == 0) rc = write_scalar_attr(f, "format_version", H5T_NATIVE_INT32, &version);
  if (rc == 0) rc = write_scalar_attr(f, "n_boot", H5T_NATIVE_INT32, &n_boot);
  if (rc == 0) rc = write_scalar_attr(f, "n_grid", H5T_NATIVE_INT64, &n_grid);
  if (rc == 0) rc = write_scalar_attr(f, "seed", H5T_NATIVE_INT64, &seed);
  if (rc == 0) rc = h5u_attr_write_string(f, "git_rev", cnf_git_rev());
  double *td = cnf_malloc((size_t)nf * (CNF_BIAS_ASYM_BINS + 1) * sizeof *td);
  int64_t *ti = cnf_malloc((size_t)nf * CNF_BIAS_ASYM_BINS * sizeof *ti);
  const char **ts = cnf_malloc((size_t)nf * sizeof *ts);
  if (rc == 0 && (!td || !ti || !ts))
    rc = CNF_ERR_NOMEM;
  static const struct { const char *name; size_t off; } dcols[] = {
      {"e_true_mean", offsetof(cnf_bias_row, e_true_mean)},
      {"mode", offsetof(cnf_bias_row, mode)},
      {"mode_err", offsetof(cnf_bias_row, mode_err)},
      {"res_full", offsetof(cnf_bias_row, res_full)},
      {"res_full_err", offsetof(cnf_bias_row, res_full_err)},
      {"res_shower_mean", offsetof(cnf_bias_row, res_shower_mean)},
      {"res_shower_std", offsetof(cnf_bias_row, res_shower_std)},
      {"asym_median", offsetof(cnf_bias_row, asym_median)},
  };
  for (size_t k = 0; rc == 0 && k < sizeof dcols / sizeof dcols[0]; k++)
    rc = write_row_double(g, dcols[k].name, files, nf, dcols[k].off, td);
  hsize_t dim1 = (hsize_t)nf, dims2[2] = {(hsize_t)nf, CNF_BIAS_ASYM_BINS};
  if (rc == 0) {
    for (int i = 0; i < nf; i++)
      td[i] = files[i].e_min;
    rc = write_dset(g, "e_min", H5T_NATIVE_DOUBLE, 1, &dim1, td);
  }
  if (rc == 0) {
    for (int i = 0; i < nf; i++)
      td[i] = files[i].e_max;
    rc = write_dset(g, "e_max", H5T_NATIVE_DOUBLE, 1, &dim1, td);
  }
  static const struct { const char *name; size_t off; } icols[] = {
      {"n_showers", offsetof(cnf_bias_row, n_showers)},
      {"n_used", offsetof(cnf_bias_row, n_used)},
      {"n_intervals", offsetof(cnf_bias_row, n_intervals)},
  };
  for (size_t k = 0; rc == 0 && k < sizeof icols / sizeof icols[0]; k++) {
    for (int i = 0; i < nf; i++)
      memcpy(&ti[i], (const char *)&files[i].row + icols[k].off, sizeof(int64_t));
    rc = write_dset(g, icols[k].name, H5T_NATIVE_INT64, 1, &dim1, ti);
  }
  if (rc == 0) {
    hsize_t d[2] = {(hsize_t)nf, CNF_BIAS_N_FLAGS};
    for (int i = 0; i < nf; i++)
      memcpy(ti + (size_t)i * CNF_BIAS_N_FLAGS, files[i].row.flag_counts,
             sizeof files[i].row.flag_counts);
    rc = write_dset(g, "flag_counts", H5T_NATIVE_INT64, 2, d, ti);
  }
  if (rc == 0) {
    for (int i = 0; i < nf; i++)
      memcpy(ti + (size_t)i * CNF_BIAS_ASYM_BINS, files[i].row.asym_hist,
             sizeof files[i].row.asym_hist);
    rc = write_dset(g, "asym_hist", H5T_NATIVE_INT64, 2, dims2, ti);
  }
  if (rc == 0) {
    hsize_t ne = CNF_BIAS_ASYM_BINS + 1;
    for (int k = 0; k <= CNF_BIAS_ASYM_BINS; k++)
      td[k] = cnf_bias_asym_edge(k);
    rc = write_dset(g, "asym_edges", H5T_NATIVE_DOUBLE, 1, &ne, td);
  }
  if (rc == 0) {
    for (int i = 0; i < nf; i++)
      ts[i] = files[i].path;
    rc = write_strings(g, "file", nf, ts);
  }
  if (rc == 0) {
    for (int i = 0; i < nf; i++)
      ts[i] = files[i].method;
    rc = write_strings(g, "method", nf, ts);
  }
  if (rc == 0) {
    for (int i = 0; i < nf; i++)
      ts[i] = files[i].prior;
    rc = write_strings(g, "prior", nf, ts);
  }
  free(td), free(ti), free(ts);
  if (g >= 0)
    H5Gclose(g);
  if (H5Fclose(f) < 0 && rc == 0)
    rc = h5u_fail(CNF_ERR_IO, "%s: closing failed", tmp_path);
  return rc;
}

static int write_output(const char *out, const bias_file *files, int nf,
                        const cnf_bias_conf *conf) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp)
    return cnf_error_set(CNF_ERR_ARG, "-o: path too long");
  h5u_quiet q;
  h5u_quiet_begin(&q);
  int rc = write_bias(tmp, files, nf, conf);
  h5u_quiet_end(&q);
  if (rc == 0 && rename(tmp, out) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot rename %s to it: %s", out, tmp, strerror(errno));
  if (rc < 0) {
    unlink(tmp);
    if (strncmp(cnf_error_message(), out, strlen(out)) != 0)
      rc = file_error(out, rc);
  }
  return rc;
}

/* ---- table (rank 0) ---------------------------------------------------------------------- */
static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static void print_table(const bias_file *files, int nf) {
  printf("%-24s %-10s %-10s %8s %21s %21s %9s %7s %s\n", "file", "method", "prior", "E_true",
         "mode +- err", "full res +- err", "res/shwr", "asym", "flags b0/b1/b2/b3 (of N)");
  for (int i = 0; i < nf; i++) {
    const cnf_bias_row *w = &files[i].row;
    char m[32], r[32], fl[80];
    snprintf(m, sizeof m, "%.4f +- %.4f", w->mode, w->mode_err);
    snprintf(r, sizeof r, "%.4f +- %.4f", w->res_full, w->res_full_err);
    snprintf(fl, sizeof fl, "%lld/%lld/%lld/%lld (%lld)", (long long)w->flag_counts[0],
             (long long)w->flag_counts[1], (long long)w->flag_counts[2],
             (long long)w->flag_counts[3], (long long)w->n_showers);
    printf("%-24s %-10s %-10s %8.2f %21s %21s %9.4f %7.3f %s\n", base_name(files[i].path),
           files[i].method, files[i].prior[0] ? files[i].prior : "-", w->e_true_mean, m, r,
           w->res_shower_mean, w->asym_median, fl);
  }
  fflush(stdout);
}

/* ---- the command -------------------------------------------------------------------------- */
static int split_list(char *list, bias_file **files, int *nf) {
  int n = 0;
  for (char *p = list; *p; p++)
    n += *p == ',';
  *files = cnf_calloc((size_t)n + 1, sizeof **files);
  if (!*files)
    return CNF_ERR_NOMEM;
  n = 0;
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
    if (*tok)
      (*files)[n++].path = tok;
  *nf = n;
  return n > 0 ? 0 : cnf_error_set(CNF_ERR_ARG, "-scan: give one or more scan files "
                                   "(-scan a.h5,b.h5)");
}

static int mpi_ok(int err, const char *what) {
  return err == MPI_SUCCESS ? 0 : cnf_error_set(CNF_ERR_MPI, "bias: %s failed", what);
}

/* Broadcast rows and ratios from rank 0; the other ranks allocate. */
static int share_ratios(bias_file *files, int nf, int rank) {
  for (int i = 0; i < nf; i++) {
    CNF_CALL(mpi_ok(MPI_Bcast(&files[i].row, (int)sizeof files[i].row, MPI_BYTE, 0,
                              MPI_COMM_WORLD), "MPI_Bcast"));
    size_t n = (size_t)files[i].row.n_used;
    if (n > (size_t)1 << 30)
      return cnf_error_set(CNF_ERR_ARG, "%s: %zu showers: at most 2^30 per file", files[i].path, n);
    if (rank != 0 && !(files[i].r = cnf_malloc(n * sizeof(double))))
      return CNF_ERR_NOMEM;
    files[i].rs = cnf_malloc(n * sizeof(double));
    if (!files[i].rs)
      return CNF_ERR_NOMEM;
    CNF_CALL(mpi_ok(MPI_Bcast(files[i].r, (int)n, MPI_DOUBLE, 0, MPI_COMM_WORLD), "MPI_Bcast"));
    memcpy(files[i].rs, files[i].r, n * sizeof(double));
    qsort(files[i].rs, n, sizeof(double), cmp_double);
  }
  return 0;
}

int cmd_bias(int argc, char **argv) {
  static char list[65536];
  char out[4096];
  int64_t seed = 1;
  cnf_bias_conf conf;
  cnf_bias_conf_default(&conf);
  int n_grid = 0;
  cli_help_header("cnflow bias -scan a.h5,b.h5,... [-o bias.h5] [options]",
                  "Bias (bootstrap KDE mode of E_pred/E_true) and resolution of each scan file\n"
                  "(one fixed-true-energy sample each), one row per file, into bias.h5 and a table.\n"
                  "The (file, resample) pairs are spread over the ranks; the result does not\n"
                  "depend on the number of ranks.");
  CNF_CALL(cli_get_string("scan", "", "comma list of scan.h5 files [required]", list,
                          sizeof list));
  CNF_CALL(cli_get_string("o", "bias.h5", "output file", out, sizeof out));
  CNF_CALL(cli_get_int("bias_boot", 20, "bootstrap resamples per file", &conf.n_boot));
  CNF_CALL(cli_get_int("bias_grid", 10000, "KDE grid points over [min, max] of E_pred/E_true",
                       &n_grid));
  CNF_CALL(cli_get_int64("seed", 1, "resample b of file f uses the stream (seed, f, b)", &seed));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  if (!list[0])
    return cnf_error_set(CNF_ERR_ARG, "-scan is required: a comma list of scan.h5 files");
  if (conf.n_boot < 1 || conf.n_boot > 100000)
    return cnf_error_set(CNF_ERR_ARG, "-bias_boot must be in [1, 100000], got %d", conf.n_boot);
  if (n_grid < 2)
    return cnf_error_set(CNF_ERR_ARG, "-bias_grid must be >= 2, got %d", n_grid);
  if (!out[0])
    return cnf_error_set(CNF_ERR_ARG, "-o: empty output file name");
  conf.n_grid = (size_t)n_grid;
  conf.seed = (uint64_t)seed;

  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  bias_file *files = NULL;
  int nf = 0;
  int rc = split_list(list, &files, &nf);
  if (rc < 0)
    return rc;
  for (int i = 0; i < nf && rank == 0 && rc == 0; i++)
    rc = read_file(&files[i]);
  rc = cnf_sync_status(MPI_COMM_WORLD, rc);
  if (rc == 0)
    rc = cnf_sync_status(MPI_COMM_WORLD, share_ratios(files, nf, rank));

  size_t nb = (size_t)conf.n_boot, npairs = (size_t)nf * nb;
  double *vals = rc == 0 ? cnf_calloc(2 * npairs, sizeof *vals) : NULL; /* modes, then res */
  double *sum = rc == 0 && rank == 0 ? cnf_calloc(2 * npairs, sizeof *sum) : NULL;
  if (rc == 0 && (!vals || (rank == 0 && !sum)))
    rc = CNF_ERR_NOMEM;
  rc = cnf_sync_status(MPI_COMM_WORLD, rc);
  const double t0 = cnf_time_now();
  if (rc == 0) {
    int lrc = 0;
    for (size_t k = (size_t)rank; k < npairs && lrc == 0; k += (size_t)size) {
      const bias_file *bf = &files[k / nb];
      lrc = cnf_bias_boot_one(bf->r, bf->rs, (size_t)bf->row.n_used, conf.n_grid, conf.seed,
                              k / nb, (uint32_t)(k % nb), &vals[k], &vals[npairs + k]);
      if (lrc < 0)
        lrc = file_error(bf->path, lrc);
    }
    rc = cnf_sync_status(MPI_COMM_WORLD, lrc);
  }
  /* one rank computed each entry, the others hold 0: the sum is exact in any order */
  if (rc == 0)
    rc = cnf_sync_status(MPI_COMM_WORLD, mpi_ok(MPI_Reduce(vals, sum, (int)(2 * npairs), MPI_DOUBLE,
                                                    MPI_SUM, 0, MPI_COMM_WORLD), "MPI_Reduce"));
  if (rc == 0 && rank == 0) {
    for (int i = 0; i < nf; i++)
      cnf_bias_boot_finish(sum + (size_t)i * nb, sum + npairs + (size_t)i * nb, conf.n_boot,
                           &files[i].row);
    cnf_log_info("bias: %d file(s) x %d resamples on %d rank(s) in %.2f s", nf, conf.n_boot,
                 size, cnf_time_now() - t0);
    rc = write_output(out, files, nf, &conf);
    if (rc == 0)
      print_table(files, nf);
  }
  rc = cnf_sync_status(MPI_COMM_WORLD, rc);
  if (rc == 0)
    cnf_log_info("wrote %s", out);
  for (int i = 0; i < nf; i++)
    free(files[i].r), free(files[i].rs);
  free(files), free(vals), free(sum);
  return rc;
}
