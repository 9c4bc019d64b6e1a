/* `cnflow scan` over a dataset file: each rank reads a contiguous block of the showers
 * (collective hyperslab reads), loads every ensemble member once, scans its showers in batches
 * of `block` showers x n_grid energies, and writes its rows of scan.h5 with collective hyperslab
 * writes into a temporary file that is renamed once complete. */
#include "cnflow/data.h"
#include "cnflow/infer.h"
#include "cnflow/train.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cnf_scan_job_default(cnf_scan_job *job) {
  memset(job, 0, sizeof *job);
  snprintf(job->split, sizeof job->split, "test");
  snprintf(job->out, sizeof job->out, "scan.h5");
  job->e_min_gev = 1.0;
  job->e_max_gev = 100.0;
  job->n_grid = 200;
  job->block = 32;
  job->progress_s = 10;
}

/* Every rank leaves with the lowest failing rank's message. */
static int scan_sync(MPI_Comm comm, int rc) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int mine = rc < 0 ? rank : size, lowest = size;
  if (MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "scan: MPI_Allreduce of the status failed");
  if (lowest == size)
    return rc;
  struct {
    int code;
    char msg[1000];
  } m = {rc, ""};
  if (rank == lowest)
    snprintf(m.msg, sizeof m.msg, "%s", cnf_error_message());
  MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, lowest, comm);
  return cnf_error_set(m.code, "%s", m.msg);
}

/* "a,b" -> column indices of d ("" = all columns) */
static int columns(const cnf_data_dset *d, const char *list, int max, int *cols, int *n) {
  *n = 0;
  if (!list[0]) {
    *n = cnf_data_dset_cols(d);
    if (*n > max)
      return cnf_error_set(CNF_ERR_ARG, "dataset has %d columns, at most %d supported", *n, max);
    for (int j = 0; j < *n; j++)
      cols[j] = j;
    return 0;
  }
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
    if (*n >= max)
      return cnf_error_set(CNF_ERR_ARG, "more than %d columns in '%s'", max, list);
    int j = cnf_data_dset_find_column(d, t);
    if (j < 0)
      return j;
    cols[(*n)++] = j;
  }
  return 0;
}

/* GeV per unit of the scanned column ("" = MeV, the CaloChallenge convention) */
static int gev_per_unit(const char *unit, const char *what, double *out) {
  if (strcmp(unit, "GeV") == 0)
    *out = 1.0;
  else if (!unit[0] || strcmp(unit, "MeV") == 0)
    *out = 1e-3;
  else if (strcmp(unit, "TeV") == 0)
    *out = 1e3;
  else
    return cnf_error_set(CNF_ERR_FORMAT, "%s has unit '%s': an energy in MeV, GeV or TeV is "
                         "needed", what, unit);
  return 0;
}

static int load_members(const char *path, cnf_flow **f, int *K) {
  *K = 0;
  size_t n = strlen(path);
  if (n > 4 && strcmp(path + n - 4, ".txt") == 0) {
    cnf_ensemble e;
    CNF_CALL(cnf_ensemble_read(path, &e));
    for (int k = 0; k < e.members; k++) {
      CNF_CALL(cnf_flow_load(e.path[k], &f[k], NULL));
      *K = k + 1;
    }
    return 0;
  }
  CNF_CALL(cnf_flow_load(path, &f[0], NULL));
  *K = 1;
  return 0;
}

/* ---- output ----------------------------------------------------------------------------- */
static int attr_str(hid_t loc, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
  H5Tset_size(t, strlen(v) + 1);
  hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  int ok = a >= 0 && H5Awrite(a, t, v) >= 0;
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  return ok ? 0 : cnf_error_set(CNF_ERR_IO, "cannot write attribute '%s'", name);
}

static int attr_num(hid_t loc, const char *name, hid_t type, const void *v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  int ok = a >= 0 && H5Awrite(a, type, v) >= 0;
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(sp);
  return ok ? 0 : cnf_error_set(CNF_ERR_IO, "cannot write attribute '%s'", name);
}

/* one (N) column: this rank writes rows [first, first + n) collectively */
static int write_column(hid_t g, const char *name, hid_t type, uint64_t N, uint64_t first,
                        uint64_t n, const void *data) {
  hsize_t dims[1] = {N}, off[1] = {first}, cnt[1] = {n};
  hid_t fs = H5Screate_simple(1, dims, NULL);
  hid_t d = H5Dcreate2(g, name, type, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t ms = H5Screate_simple(1, cnt, NULL), x = H5Pcreate(H5P_DATASET_XFER);
  int ok = d >= 0 && x >= 0 && H5Pset_dxpl_mpio(x, H5FD_MPIO_COLLECTIVE) >= 0;
  if (ok && n == 0) {
    H5Sselect_none(fs);
    H5Sselect_none(ms);
  } else if (ok) {
    ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0;
  }
  ok = ok && H5Dwrite(d, type, ms, fs, x, data) >= 0;
  if (d >= 0)
    H5Dclose(d);
  H5Pclose(x);
  H5Sclose(ms);
  H5Sclose(fs);
  return ok ? 0 : cnf_error_set(CNF_ERR_IO, "cannot write dataset '%s'", name);
}

typedef struct scan_rows {
  double *e_true, *e_pred, *e_lo, *e_hi, *logl;
  int *flags, *nmax;
} scan_rows;

static int write_scan(MPI_Comm comm, const cnf_scan_job *job, const char *tmp, uint64_t N,
                      uint64_t first, uint64_t n, int K, const scan_rows *r) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create the output file", job->out);
  int rc = 0, one = 1, kk = K, ng = job->n_grid;
  hid_t g = H5Gcreate2(f, "scan", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot create group /scan", job->out);
  /* attributes are collective: every rank writes the same values */
  if (rc == 0) rc = attr_str(f, "format", "cnflow-scan");
  if (rc == 0) rc = attr_num(f, "format_version", H5T_NATIVE_INT, &one);
  if (rc == 0) rc = attr_str(f, "method", "flow");
  if (rc == 0) rc = attr_str(f, "prior", job->prior);
  if (rc == 0) rc = attr_num(f, "e_min", H5T_NATIVE_DOUBLE, &job->e_min_gev);
  if (rc == 0) rc = attr_num(f, "e_max", H5T_NATIVE_DOUBLE, &job->e_max_gev);
  if (rc == 0) rc = attr_str(f, "input", job->data);
  if (rc == 0) rc = attr_str(f, "split", job->split);
  if (rc == 0) rc = attr_str(f, "ensemble", job->ensemble);
  if (rc == 0) rc = attr_num(f, "members", H5T_NATIVE_INT, &kk);
  if (rc == 0) rc = attr_num(f, "n_grid", H5T_NATIVE_INT, &ng);
  if (rc == 0) rc = attr_str(f, "git_rev", cnf_git_rev());
  if (rc == 0) rc = write_column(g, "e_true", H5T_NATIVE_DOUBLE, N, first, n, r->e_true);
  if (rc == 0) rc = write_column(g, "e_pred", H5T_NATIVE_DOUBLE, N, first, n, r->e_pred);
  if (rc == 0) rc = write_column(g, "e_lo", H5T_NATIVE_DOUBLE, N, first, n, r->e_lo);
  if (rc == 0) rc = write_column(g, "e_hi", H5T_NATIVE_DOUBLE, N, first, n, r->e_hi);
  if (rc == 0) rc = write_column(g, "logl_max", H5T_NATIVE_DOUBLE, N, first, n, r->logl);
  if (rc == 0) rc = write_column(g, "flags", H5T_NATIVE_INT, N, first, n, r->flags);
  if (rc == 0) rc = write_column(g, "n_maxima", H5T_NATIVE_INT, N, first, n, r->nmax);
  if (g >= 0)
    H5Gclose(g);
  if (H5Fclose(f) < 0 && rc == 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: closing the output file failed", job->out);
  return rc;
}

/* ---- the stage ---------------------------------------------------------------------------- */
int cnf_scan_file(const cnf_scan_job *job, MPI_Comm comm, cnf_scan_summary *sum) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  memset(sum, 0, sizeof *sum);
  cnf_data_file *file = NULL;
  cnf_data_dset *dt = NULL, *dc = NULL;
  cnf_flow *members[64] = {0};
  cnf_scanner *sc = NULL;
  cnf_real *x = NULL, *c = NULL;
  cnf_scan_result *res = NULL;
  scan_rows rows = {0};
  int K = 0, D = 0, C = 0, tcols[256], ccols[64], jscan = 0;
  uint64_t first = 0, count = 0, pfirst = 0, pcount = 0;
  double gev = 1;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", job->out);

  int rc = cnf_data_open(job->data, comm, &file);
  if (rc == 0) rc = cnf_data_dset_open(file, job->target, 0, &dt);
  if (rc == 0) rc = cnf_data_dset_open(file, job->cond, 0, &dc);
  rc = scan_sync(comm, rc);
  if (rc < 0)
    goto out;
  rc = columns(dt, job->target_columns, 256, tcols, &D);
  if (rc == 0)
    rc = columns(dc, job->cond_columns, 64, ccols, &C);
  if (rc == 0) {
    jscan = -1;
    for (int j = 0; j < C; j++)
      if (!job->scan_column[0] ? C == 1 : strcmp(cnf_data_dset_column(dc, ccols[j]),
                                                 job->scan_column) == 0)
        jscan = j;
    if (jscan < 0)
      rc = cnf_error_set(CNF_ERR_ARG, "%s: which condition to scan? -scan_column %s is not one "
                         "of the %d condition columns", job->data,
                         job->scan_column[0] ? job->scan_column : "(none)", C);
  }
  if (rc == 0)
    rc = gev_per_unit(cnf_data_dset_unit(dc, ccols[jscan]), job->cond, &gev);
  if (rc == 0) {
    if (strcmp(job->split, "all") == 0) {
      first = 0;
      count = cnf_data_dset_rows(dt);
    } else if (cnf_data_split(file, job->split, &first, &count) < 0) {
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: no split '%s' recorded in the file (-split all "
                         "scans every row)", job->data, job->split);
    }
  }
  if (rc == 0 && cnf_data_dset_rows(dc) != cnf_data_dset_rows(dt))
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: '%s' and '%s' have different row counts", job->data,
                       job->target, job->cond);
  if (rc == 0 && job->max_showers > 0 && (uint64_t)job->max_showers < count)
    count = (uint64_t)job->max_showers;
  if (rc == 0 && count == 0)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: split '%s' has no showers", job->data, job->split);
  /* every rank loads every member (serial HDF5 reads of small files) */
  if (rc == 0)
    rc = load_members(job->ensemble, members, &K);
  if (rc == 0 && (cnf_flow_dim(members[0]) != D || cnf_flow_cond_dim(members[0]) != C))
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: the model has %d targets / %d conditions, the data "
                       "(%s, %s) %d / %d", job->ensemble, cnf_flow_dim(members[0]),
                       cnf_flow_cond_dim(members[0]), job->target, job->cond, D, C);
  rc = scan_sync(comm, rc);
  if (rc < 0)
    goto out;
  cnf_partition(count, size, rank, &pfirst, &pcount);
  {
    size_t nn = pcount ? pcount : 1;
    x = cnf_malloc(sizeof(cnf_real) * nn * D);
    c = cnf_malloc(sizeof(cnf_real) * nn * C);
    res = cnf_calloc(nn, sizeof *res);
    rows.e_true = cnf_malloc(sizeof(double) * nn);
    rows.e_pred = cnf_malloc(sizeof(double) * nn);
    rows.e_lo = cnf_malloc(sizeof(double) * nn);
    rows.e_hi = cnf_malloc(sizeof(double) * nn);
    rows.logl = cnf_malloc(sizeof(double) * nn);
    rows.flags = cnf_malloc(sizeof(int) * nn);
    rows.nmax = cnf_malloc(sizeof(int) * nn);
    rc = (!x || !c || !res || !rows.e_true || !rows.e_pred || !rows.e_lo || !rows.e_hi ||
          !rows.logl || !rows.flags || !rows.nmax) ? CNF_ERR_NOMEM : 0;
  }
  rc = scan_sync(comm, rc);
  if (rc == 0)
    rc = cnf_data_read(dt, first + pfirst, pcount, D, tcols, CNF_DTYPE_REAL, x);
  if (rc == 0)
    rc = cnf_data_read(dc, first + pfirst, pcount, C, ccols, CNF_DTYPE_REAL, c);
  for (uint64_t i = 0; rc == 0 && i < pcount * (uint64_t)D; i++)
    if (!isfinite((double)x[i]))
      rc = cnf_error_set(CNF_ERR_NUMERIC, "%s: '%s' row %llu is not finite", job->data,
                         job->target, (unsigned long long)(first + pfirst + i / D));
  if (rc == 0) {
    cnf_scan_conf conf;
    cnf_scan_conf_default(&conf);
    conf.e_min = job->e_min_gev / gev;
    conf.e_max = job->e_max_gev / gev;
    conf.n_grid = job->n_grid;
    conf.cond_index = jscan;
    rc = cnf_scanner_create(members, K, &conf, job->block, &sc);
  }
  rc = scan_sync(comm, rc);
  if (rc < 0)
    goto out;

  const double t0 = cnf_time_now();
  double t_last = t0;
  for (uint64_t s0 = 0; s0 < pcount && rc == 0; s0 += (uint64_t)job->block) {
    int m = (int)(pcount - s0 < (uint64_t)job->block ? pcount - s0 : (uint64_t)job->block);
    rc = cnf_scanner_run(sc, m, x + s0 * D, c + s0 * C, res + s0);
    double now = cnf_time_now();
    if (rank == 0 && job->progress_s > 0 && now - t_last >= job->progress_s) {
      double done = (double)(s0 + m), rate = done / (now - t0);
      cnf_log_info("scan: %.0f of %llu showers on rank 0, %.1f showers/s per rank, ETA %.0f s",
                   done, (unsigned long long)pcount, rate, (pcount - done) / rate);
      t_last = now;
    }
  }
  rc = scan_sync(comm, rc);
  if (rc < 0)
    goto out;
  uint64_t flagged[4] = {0, 0, 0, 0};
  for (uint64_t i = 0; i < pcount; i++) {
    rows.e_true[i] = (double)c[i * C + jscan] * gev;
    rows.e_pred[i] = res[i].e_pred * gev;
    rows.e_lo[i] = res[i].e_lo * gev;
    rows.e_hi[i] = res[i].e_hi * gev;
    rows.logl[i] = res[i].logl_max;
    rows.flags[i] = res[i].flags;
    rows.nmax[i] = res[i].n_maxima;
    for (int b = 0; b < 4; b++)
      flagged[b] += (res[i].flags >> b) & 1;
  }
  const double seconds = cnf_time_now() - t0;
  rc = scan_sync(comm, write_scan(comm, job, tmp, count, pfirst, pcount, K, &rows));
  if (rc == 0 && rank == 0 && rename(tmp, job->out) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot rename the finished output into place", job->out);
  rc = scan_sync(comm, rc);
  if (rc == 0) {
    MPI_Allreduce(MPI_IN_PLACE, flagged, 4, MPI_UINT64_T, MPI_SUM, comm);
    double t = seconds;
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
    sum->showers = count;
    sum->seconds = t;
    sum->showers_per_s = t > 0 ? (double)count / t : 0;
    memcpy(sum->flagged, flagged, sizeof flagged);
  }
out:
  if (rc < 0 && rank == 0)
    remove(tmp);
  cnf_scanner_free(&sc);
  for (int k = 0; k < 64; k++)
    cnf_flow_free(&members[k]);
  cnf_data_dset_close(dc);
  cnf_data_dset_close(dt);
  cnf_data_close(file);
  free(x);
  free(c);
  free(res);
  free(rows.e_true);
  free(rows.e_pred);
  free(rows.e_lo);
  free(rows.e_hi);
  free(rows.logl);
  free(rows.flags);
  free(rows.nmax);
  return rc;
}
