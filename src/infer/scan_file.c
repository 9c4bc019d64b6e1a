/* `cnflow scan` over a dataset file: each rank reads a contiguous block of the showers
 * (collective hyperslab reads), loads every ensemble member once, scans its showers in batches
 * of `block` showers x n_grid energies, and writes its rows of scan.h5 with collective hyperslab
 * writes into a temporary file that is renamed once complete. */
#include "cnflow/data.h"
#include "cnflow/infer.h"
#include "../data/h5util.h"
#include "scan_out.h"
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
  job->n_grid = 48;
  job->block = 32;
  job->refine = 1;
  job->method = CNF_SCAN_LOCKSTEP;
  job->progress_s = 10;
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

int cnf_infer_load_ensemble(const char *path, cnf_flow **f, int max, int *K,
                            cnf_model_provenance *prov0) {
  *K = 0;
  size_t n = strlen(path);
  cnf_model_provenance prov;
  if (n > 4 && strcmp(path + n - 4, ".txt") == 0) {
    cnf_ensemble e;
    CNF_CALL(cnf_ensemble_read(path, &e));
    if (e.members > max)
      return cnf_error_set(CNF_ERR_ARG, "%s: %d members, at most %d are supported", path,
                           e.members, max);
    for (int k = 0; k < e.members; k++) {
      CNF_CALL(cnf_flow_load(e.path[k], &f[k], &prov));
      *K = k + 1;
      if (k == 0 && prov0)
        *prov0 = prov;
      /* the manifest must describe the files it lists: a member replaced or retrained behind
       * its back (another seed, epoch or score) would silently change every later result */
      const double ds = fabs(prov.val_score - e.score[k]);
      if (prov.seed != e.seed[k] || prov.epoch != e.best_epoch[k] ||
          !(ds <= 1e-9 * fabs(e.score[k]) || (isnan(prov.val_score) && isnan(e.score[k]))))
        return cnf_error_set(CNF_ERR_FORMAT, "%s: member %d (%s) disagrees with the manifest: "
                             "the file has seed %llu, epoch %d, score %.10g; the manifest seed "
                             "%llu, best epoch %d, score %.10g", path, k, e.path[k],
                             (unsigned long long)prov.seed, prov.epoch, prov.val_score,
                             (unsigned long long)e.seed[k], e.best_epoch[k], e.score[k]);
      if (k > 0 && (cnf_flow_dim(f[k]) != cnf_flow_dim(f[0]) ||
                    cnf_flow_cond_dim(f[k]) != cnf_flow_cond_dim(f[0])))
        return cnf_error_set(CNF_ERR_FORMAT, "%s: member %d (%s) has %d targets / %d conditions, "
                             "member 0 %d / %d", path, k, e.path[k], cnf_flow_dim(f[k]),
                             cnf_flow_cond_dim(f[k]), cnf_flow_dim(f[0]),
                             cnf_flow_cond_dim(f[0]));
    }
    return 0;
  }
  CNF_CALL(cnf_flow_load(path, &f[0], prov0));
  *K = 1;
  return 0;
}

/* ---- output: the one scan.h5 writer (scan_out.h), also used by regress.c ---------------- */
/* The output is created up front with every dataset allocated (no metadata changes later),
 * each block of showers is written collectively as soon as it is scanned, then its flag in
 * /scan/block_done, then the file is flushed: a preempted scan keeps every finished block, and
 * -resume skips them.  The file has its final name only once every block is done. */
const char *const cnf_scan_cols[CNF_SCAN_NCOLS] = {"e_true", "e_pred", "e_lo", "e_hi",
                                                   "logl_max", "flags", "n_maxima"};

hid_t cnf_scan_col_type(int k) { return k >= 5 ? H5T_NATIVE_INT : H5T_NATIVE_DOUBLE; }

void cnf_scan_out_init(cnf_scan_out *o) {
  o->file = o->group = o->done = o->dxpl = -1;
  for (int k = 0; k < CNF_SCAN_NCOLS; k++)
    o->dset[k] = -1;
  o->flush = 0;
}

void cnf_scan_out_close(cnf_scan_out *o) {
  for (int k = 0; k < CNF_SCAN_NCOLS; k++)
    if (o->dset[k] >= 0)
      H5Dclose(o->dset[k]);
  if (o->done >= 0)
    H5Dclose(o->done);
  if (o->dxpl >= 0)
    H5Pclose(o->dxpl);
  if (o->group >= 0)
    H5Gclose(o->group);
  if (o->file >= 0)
    H5Fclose(o->file);
  cnf_scan_out_init(o);
}

static int scan_out_attrs(hid_t f, const cnf_scan_out_header *h) {
  const hid_t I = H5T_NATIVE_INT, R = H5T_NATIVE_DOUBLE, L = H5T_NATIVE_INT64;
  const int one = 1;
  /* attributes are collective: every rank writes the same values */
  CNF_CALL(h5u_attr_write_fixed_string(f, "format", "cnflow-scan"));
  CNF_CALL(h5u_attr_write_scalar(f, "format_version", I, I, &one));
  CNF_CALL(h5u_attr_write_fixed_string(f, "method", h->method));
  CNF_CALL(h5u_attr_write_fixed_string(f, "prior", h->prior));
  CNF_CALL(h5u_attr_write_scalar(f, "e_min", R, R, &h->e_min));
  CNF_CALL(h5u_attr_write_scalar(f, "e_max", R, R, &h->e_max));
  CNF_CALL(h5u_attr_write_fixed_string(f, "input", h->input));
  CNF_CALL(h5u_attr_write_fixed_string(f, "split", h->split));
  CNF_CALL(h5u_attr_write_fixed_string(f, "ensemble", h->ensemble));
  CNF_CALL(h5u_attr_write_scalar(f, "members", I, I, &h->members));
  CNF_CALL(h5u_attr_write_scalar(f, "n_grid", I, I, &h->n_grid));
  if (h->cnflow_version)
    CNF_CALL(h5u_attr_write_fixed_string(f, "cnflow_version", h->cnflow_version));
  CNF_CALL(h5u_attr_write_fixed_string(f, "git_rev", cnf_git_rev()));
  if (h->resume_fingerprint)
    CNF_CALL(h5u_attr_write_fixed_string(f, "resume_fingerprint", h->resume_fingerprint));
  if (h->parts > 0) { /* where this part belongs: checked by cnf_scan_merge */
    CNF_CALL(h5u_attr_write_scalar(f, "part", I, I, &h->part));
    CNF_CALL(h5u_attr_write_scalar(f, "parts", I, I, &h->parts));
    CNF_CALL(h5u_attr_write_scalar(f, "part_first", L, L, &h->part_first));
    CNF_CALL(h5u_attr_write_scalar(f, "part_showers_total", L, L, &h->part_showers_total));
    CNF_CALL(h5u_attr_write_scalar(f, "part_block", I, I, &h->part_block));
  }
  return 0;
}

int cnf_scan_out_create(MPI_Comm comm, const char *tmp, uint64_t N, uint64_t n_blocks,
                        const cnf_scan_out_header *h, cnf_scan_out *o) {
  const int rep = h->reproducible;
  hid_t fapl, fcpl = H5P_DEFAULT;
  if (rep) {
    fapl = h5u_fapl(comm);
    fcpl = h5u_gcpl_untimed(H5P_FILE_CREATE);
    if (fapl < 0 || fcpl < 0) {
      if (fapl >= 0)
        H5Pclose(fapl);
      if (fcpl >= 0)
        H5Pclose(fcpl);
      return cnf_error_set(CNF_ERR_IO, "%s: cannot set up the HDF5 property lists", tmp);
    }
  } else {
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  }
  /* a failure is reported as one line below, not as HDF5's error stack on every rank */
  h5u_quiet q;
  h5u_quiet_begin(&q);
  o->file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
  h5u_quiet_end(&q);
  H5Pclose(fapl);
  if (rep)
    H5Pclose(fcpl);
  if (o->file < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create the output file (permissions, or a "
                         "full disk?)", tmp);
  o->flush = h->resume_fingerprint != NULL;
  if (rep) {
    hid_t gcpl = h5u_gcpl_untimed(H5P_GROUP_CREATE);
    o->group = gcpl < 0 ? -1 : H5Gcreate2(o->file, "scan", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0)
      H5Pclose(gcpl);
  } else {
    o->group = H5Gcreate2(o->file, "scan", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  }
  if (o->group < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create group /scan", tmp);
  CNF_CALL(scan_out_attrs(o->file, h));
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  if (rep)
    H5Pset_obj_track_times(dcpl, 0);
  hsize_t dims[1] = {N}, bdims[1] = {n_blocks};
  hid_t sp = H5Screate_simple(1, dims, NULL), bsp = H5Screate_simple(1, bdims, NULL);
  for (int k = 0; k < CNF_SCAN_NCOLS; k++)
    o->dset[k] = H5Dcreate2(o->group, cnf_scan_cols[k], cnf_scan_col_type(k), sp, H5P_DEFAULT,
                            dcpl, H5P_DEFAULT);
  /* block_done is filled with zeros at allocation: nothing done yet */
  hid_t bcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_alloc_time(bcpl, H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(bcpl, H5D_FILL_TIME_ALLOC);
  if (rep)
    H5Pset_obj_track_times(bcpl, 0);
  o->done = H5Dcreate2(o->group, "block_done", H5T_NATIVE_UCHAR, bsp, H5P_DEFAULT, bcpl,
                       H5P_DEFAULT);
  H5Pclose(bcpl);
  H5Pclose(dcpl);
  H5Sclose(sp);
  H5Sclose(bsp);
  for (int k = 0; k < CNF_SCAN_NCOLS; k++)
    if (o->dset[k] < 0)
      return cnf_error_set(CNF_ERR_IO, "%s: cannot create /scan/%s", tmp, cnf_scan_cols[k]);
  if (o->done < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create /scan/block_done", tmp);
  return 0;
}

/* The file's size is known up front (storage allocated at creation): 5 float64 and 2 int32
 * columns of N rows, a byte per block, the string attributes (the resume fingerprint is up to
 * 8 KiB), plus a margin for HDF5's metadata.  Checked before the file exists because a parallel
 * HDF5 close that hits a full disk does not fail cleanly (the ranks can wait in different
 * collectives for ever). */
uint64_t cnf_scan_out_bytes(uint64_t N, uint64_t n_blocks, uint64_t attr_bytes) {
  const uint64_t need = N * (5 * sizeof(double) + 2 * sizeof(int32_t)) + n_blocks + attr_bytes;
  return need + need / 100 + (256u << 10);
}

int cnf_scan_out_check_space(MPI_Comm comm, const char *out, uint64_t N, uint64_t n_blocks,
                             const cnf_scan_out_header *h) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  int rc = 0;
  if (rank == 0) {
    uint64_t attr = 0;
    const char *s[] = {h->method, h->prior, h->input, h->split, h->ensemble, h->cnflow_version,
                       h->resume_fingerprint};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++)
      attr += s[i] ? strlen(s[i]) : 0;
    rc = cnf_check_free_space(out, cnf_scan_out_bytes(N, n_blocks, attr));
  }
  return cnf_sync_status(comm, rc);
}

/* Everything a partial file must agree with to be continued. */
static void scan_fingerprint(const cnf_scan_job *job, uint64_t N, int K, char *buf, size_t len) {
  snprintf(buf, len, "input=%s|split=%s|target=%s:%s|cond=%s:%s|scan=%s|ensemble=%s|members=%d|"
           "range=%.17g,%.17g|grid=%d|refine=%d|method=%d|block=%d|showers=%llu", job->data, job->split,
           job->target, job->target_columns, job->cond, job->cond_columns, job->scan_column,
           job->ensemble, K, job->e_min_gev, job->e_max_gev, job->n_grid, job->refine, job->method, job->block,
           (unsigned long long)N);
  if (job->parts > 0) { /* a part of a job array: resumable on its own, merged by the base */
    const size_t l = strlen(buf);
    snprintf(buf + l, len > l ? len - l : 0, "|part=%d/%d", job->part, job->parts);
  }
}

/* The scan's header; part_pos: {first row of this part in the whole scan, showers of the whole
 * scan} (parts > 0).  COLLECTIVE. */
static int scan_out_create(MPI_Comm comm, const cnf_scan_job *job, const char *tmp, uint64_t N,
                           uint64_t n_blocks, int K, const char *fp, const uint64_t part_pos[2],
                           cnf_scan_out *o) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  CNF_CALL(cnf_sync_status(comm, rank == 0 ? cnf_mkdir_parent(job->out) : 0));
  const cnf_scan_out_header h = {.method = "flow",
                                 .prior = job->prior,
                                 .input = job->data,
                                 .split = job->split,
                                 .ensemble = job->ensemble,
                                 .e_min = job->e_min_gev,
                                 .e_max = job->e_max_gev,
                                 .members = K,
                                 .n_grid = job->n_grid,
                                 .resume_fingerprint = fp,
                                 .parts = job->parts,
                                 .part = job->part,
                                 .part_block = job->block,
                                 .part_first = (int64_t)part_pos[0],
                                 .part_showers_total = (int64_t)part_pos[1]};
  CNF_CALL(cnf_scan_out_check_space(comm, job->out, N, n_blocks, &h));
  return cnf_scan_out_create(comm, tmp, N, n_blocks, &h, o);
}

/* Reopen a partial output of the same job; done (n_blocks) receives its block record. */
static int scan_out_reopen(MPI_Comm comm, const char *tmp, uint64_t n_blocks, const char *fp,
                           unsigned char *done, cnf_scan_out *o) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  o->file = H5Fopen(tmp, H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  o->flush = 1; /* a resumed scan is as resumable as the first attempt */
  if (o->file < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot open the partial output to resume", tmp);
  char have[8192] = "";
  hid_t a = H5Aexists(o->file, "resume_fingerprint") > 0
                ? H5Aopen(o->file, "resume_fingerprint", H5P_DEFAULT) : -1;
  if (a >= 0) {
    hid_t t = H5Aget_type(a);
    size_t sz = H5Tget_size(t);
    if (sz < sizeof have)
      H5Aread(a, t, have);
    H5Tclose(t);
    H5Aclose(a);
  }
  if (strcmp(have, fp) != 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: the partial output was made by a different scan "
                         "(input, ensemble, range, grid or block differ): remove it or rerun "
                         "without -resume", tmp);
  o->group = H5Gopen2(o->file, "scan", H5P_DEFAULT);
  for (int k = 0; k < CNF_SCAN_NCOLS; k++)
    o->dset[k] = o->group >= 0 ? H5Dopen2(o->group, cnf_scan_cols[k], H5P_DEFAULT) : -1;
  o->done = o->group >= 0 ? H5Dopen2(o->group, "block_done", H5P_DEFAULT) : -1;
  if (o->done < 0 || o->dset[CNF_SCAN_NCOLS - 1] < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: the partial output lacks its datasets", tmp);
  hid_t sp = H5Dget_space(o->done);
  hssize_t nb = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  if (nb != (hssize_t)n_blocks ||
      H5Dread(o->done, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, done) < 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: cannot read its block record", tmp);
  return 0;
}

int cnf_scan_out_write(cnf_scan_out *o, uint64_t first, uint64_t n, int64_t b,
                       const void *const cols[CNF_SCAN_NCOLS]) {
  if (o->dxpl < 0) {
    o->dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(o->dxpl, H5FD_MPIO_COLLECTIVE);
  }
  int ok = 1;
  for (int k = 0; k <= CNF_SCAN_NCOLS && ok; k++) {
    hid_t d = k < CNF_SCAN_NCOLS ? o->dset[k] : o->done;
    hsize_t off[1] = {k < CNF_SCAN_NCOLS ? first : (hsize_t)(b >= 0 ? b : 0)};
    hsize_t cnt[1] = {k < CNF_SCAN_NCOLS ? n : (b >= 0 ? 1 : 0)};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, cnt[0] ? cnt : (hsize_t[]){1}, NULL);
    if (cnt[0] == 0) {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    } else {
      ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0;
    }
    const unsigned char one = 1;
    const void *buf = k < CNF_SCAN_NCOLS ? cols[k] : (const void *)&one;
    hid_t type = k < CNF_SCAN_NCOLS ? cnf_scan_col_type(k) : H5T_NATIVE_UCHAR;
    ok = ok && H5Dwrite(d, type, ms, fs, o->dxpl, buf) >= 0;
    H5Sclose(ms);
    H5Sclose(fs);
  }
  if (o->flush)
    ok = ok && H5Fflush(o->file, H5F_SCOPE_LOCAL) >= 0;
  return ok ? 0 : cnf_error_set(CNF_ERR_IO, "writing scan rows %llu..%llu failed",
                                (unsigned long long)first, (unsigned long long)(first + n));
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
  struct {
    double *e_true, *e_pred, *e_lo, *e_hi, *logl;
    int *flags, *nmax;
  } rows = {0};
  cnf_scan_out o;
  cnf_scan_out_init(&o);
  int o_started = 0;
  unsigned char *done = NULL;
  int K = 0, D = 0, C = 0, tcols[256], ccols[64], jscan = 0;
  uint64_t first = 0, count = 0, pfirst = 0, pcount = 0;
  double gev = 1;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", job->out);

  int rc = cnf_data_open(job->data, comm, &file);
  if (rc == 0) rc = cnf_data_dset_open(file, job->target, 0, &dt);
  if (rc == 0) rc = cnf_data_dset_open(file, job->cond, 0, &dc);
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  rc = cnf_data_dset_resolve_columns(dt, job->target_columns, 256, tcols, &D);
  if (rc == 0)
    rc = cnf_data_dset_resolve_columns(dc, job->cond_columns, 64, ccols, &C);
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
  /* -part i -parts n: the i-th of n contiguous runs of whole blocks, so every block (and so
   * every result) is the one a single-job scan computes */
  uint64_t part_pos[2] = {0, count};
  if (rc == 0 && job->parts > 0) {
    const uint64_t B0 = (uint64_t)job->block, nb = (count + B0 - 1) / B0;
    uint64_t b0 = 0, bn = 0;
    if (job->part < 0 || job->part >= job->parts)
      rc = cnf_error_set(CNF_ERR_ARG, "scan: -part %d is not in [0, -parts %d)", job->part,
                         job->parts);
    else if ((uint64_t)job->parts > nb)
      rc = cnf_error_set(CNF_ERR_ARG, "%s: -parts %d is more than the %llu blocks of %d showers "
                         "(fewer parts or a smaller -scan_block)", job->data, job->parts,
                         (unsigned long long)nb, job->block);
    if (rc == 0) {
      cnf_partition(nb, job->parts, job->part, &b0, &bn);
      const uint64_t end = (b0 + bn) * B0 < count ? (b0 + bn) * B0 : count;
      part_pos[0] = b0 * B0;
      first += part_pos[0];
      count = end - part_pos[0];
    }
  }
  /* every rank loads every member (serial HDF5 reads of small files) */
  if (rc == 0)
    rc = cnf_infer_load_ensemble(job->ensemble, members, 64, &K, NULL);
  if (rc == 0 && (cnf_flow_dim(members[0]) != D || cnf_flow_cond_dim(members[0]) != C))
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: '%s' / '%s' give %d targets / %d conditions, the "
                       "model %s has %d / %d (a model for other data?)", job->data, job->target,
                       job->cond, D, C, job->ensemble, cnf_flow_dim(members[0]),
                       cnf_flow_cond_dim(members[0]));
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  /* whole blocks per rank (contiguous), so the block record means the same on any rank count */
  const uint64_t B = (uint64_t)job->block, n_blocks = (count + B - 1) / B;
  uint64_t bfirst = 0, bcount = 0;
  cnf_partition(n_blocks, size, rank, &bfirst, &bcount);
  pfirst = bfirst * B;
  pcount = bcount ? ((bfirst + bcount) * B < count ? (bfirst + bcount) * B : count) - pfirst : 0;
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
    done = cnf_calloc(n_blocks ? n_blocks : 1, 1);
    rc = (!x || !c || !res || !rows.e_true || !rows.e_pred || !rows.e_lo || !rows.e_hi ||
          !rows.logl || !rows.flags || !rows.nmax || !done) ? CNF_ERR_NOMEM : 0;
  }
  rc = cnf_sync_status(comm, rc);
  if (rc == 0)
    rc = cnf_data_read(dt, first + pfirst, pcount, D, tcols, CNF_DTYPE_REAL, x);
  if (rc == 0)
    rc = cnf_data_read(dc, first + pfirst, pcount, C, ccols, CNF_DTYPE_REAL, c);
  for (uint64_t i = 0; rc == 0 && i < pcount * (uint64_t)D; i++)
    if (!isfinite((double)x[i]))
      rc = cnf_error_set(CNF_ERR_NUMERIC, "%s: '%s' row %llu is not finite", job->data,
                         job->target, (unsigned long long)(first + pfirst + i / D));
  /* the conditions must be finite, and the scanned one (the true energy, which bias divides
   * by) positive */
  for (uint64_t i = 0; rc == 0 && i < pcount * (uint64_t)C; i++)
    if (!isfinite((double)c[i]) || ((int)(i % C) == jscan && !(c[i] > 0)))
      rc = cnf_error_set(CNF_ERR_NUMERIC, "%s: '%s' row %llu column %s = %g (conditions must be "
                         "finite, the scanned energy positive)", job->data, job->cond,
                         (unsigned long long)(first + pfirst + i / C),
                         cnf_data_dset_column(dc, ccols[i % C]), (double)c[i]);
  if (rc == 0) {
    cnf_scan_conf conf;
    cnf_scan_conf_default(&conf);
    conf.e_min = job->e_min_gev / gev;
    conf.e_max = job->e_max_gev / gev;
    conf.n_grid = job->n_grid;
    conf.cond_index = jscan;
    conf.refine = job->refine;
    conf.method = job->method;
    rc = cnf_scanner_create(members, K, &conf, job->block, &sc);
  }
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  char fp[8192];
  scan_fingerprint(job, part_pos[1], K, fp, sizeof fp);
  {
    int have_tmp = 0;
    if (rank == 0) {
      FILE *t = job->resume ? fopen(tmp, "rb") : NULL;
      have_tmp = t != NULL;
      if (t)
        fclose(t);
    }
    MPI_Bcast(&have_tmp, 1, MPI_INT, 0, comm);
    rc = have_tmp ? scan_out_reopen(comm, tmp, n_blocks, fp, done, &o)
                  : scan_out_create(comm, job, tmp, count, n_blocks, K, fp, part_pos, &o);
    rc = cnf_sync_status(comm, rc);
    if (rc < 0) {
      if (have_tmp)
        o_started = 1; /* never delete a partial output we failed to continue */
      goto out;
    }
    o_started = 1;
    uint64_t n_done = 0;
    for (uint64_t b = 0; b < n_blocks; b++)
      n_done += done[b];
    if (have_tmp)
      cnf_log_info("scan: resuming %s: %llu of %llu blocks of %d showers already done", tmp,
                   (unsigned long long)n_done, (unsigned long long)n_blocks, job->block);
  }

  const double t0 = cnf_time_now();
  double t_last = t0;
  uint64_t max_bcount = bcount, scanned = 0;
  double t_wait = 0, t_write = 0; /* waiting for the slowest rank of a round; collective writes */
  MPI_Allreduce(MPI_IN_PLACE, &max_bcount, 1, MPI_UINT64_T, MPI_MAX, comm);
  for (uint64_t t = 0; t < max_bcount; t++) {
    /* every rank takes part in every round's collective write, with or without rows */
    const int mine = t < bcount && !done[bfirst + t];
    const uint64_t r0 = t * B, m = t < bcount ? (pcount - r0 < B ? pcount - r0 : B) : 0;
    rc = cnf_fault(CNF_FAULT_SCAN_BLOCK, tmp); /* testing aid (CNFLOW_FAULT) */
    if (mine && rc == 0) {
      rc = cnf_scanner_run(sc, (int)m, x + r0 * D, c + r0 * C, res + r0);
      for (uint64_t i = r0; rc == 0 && i < r0 + m; i++) {
        rows.e_true[i] = (double)c[i * C + jscan] * gev;
        rows.e_pred[i] = res[i].e_pred * gev;
        rows.e_lo[i] = res[i].e_lo * gev;
        rows.e_hi[i] = res[i].e_hi * gev;
        rows.logl[i] = res[i].logl_max;
        rows.flags[i] = res[i].flags;
        rows.nmax[i] = res[i].n_maxima;
      }
      scanned += m;
    }
    const double t_wait0 = cnf_time_now();
    rc = cnf_sync_status(comm, rc);
    t_wait += cnf_time_now() - t_wait0;
    if (rc < 0)
      goto out;
    const double t_write0 = cnf_time_now();
    const void *cols[CNF_SCAN_NCOLS] = {rows.e_true + r0, rows.e_pred + r0, rows.e_lo + r0,
                                    rows.e_hi + r0, rows.logl + r0, rows.flags + r0,
                                    rows.nmax + r0};
    rc = cnf_sync_status(comm, cnf_scan_out_write(&o, pfirst + r0, mine ? m : 0,
                                        mine ? (int64_t)(bfirst + t) : -1, cols));
    if (rc < 0)
      goto out;
    t_write += cnf_time_now() - t_write0;
    if (mine)
      done[bfirst + t] = 1;
    cnf_watchdog_beat("a scan block");
    /* SIGTERM / SIGUSR1 (SLURM before the time limit): stop after this block, all together */
    int stop = cnf_train_stop_requested() ||
               (job->interrupt_after_blocks > 0 && (int64_t)t + 1 >= job->interrupt_after_blocks);
    MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, comm);
    if (stop && t + 1 < max_bcount) {
      rc = cnf_error_set(CNF_ERR_INTERRUPTED, "scan: interrupted after %llu of %llu rounds of "
                         "blocks; finished blocks are in %s: continue with -resume",
                         (unsigned long long)(t + 1), (unsigned long long)max_bcount, tmp);
      goto out;
    }
    double now = cnf_time_now();
    if (rank == 0 && job->progress_s > 0 && now - t_last >= job->progress_s && scanned > 0) {
      double rate = (double)scanned / (now - t0), left = (double)(pcount - (r0 + m));
      cnf_log_info("scan: %llu of %llu showers on rank 0, %.1f showers/s per rank, ETA %.0f s",
                   (unsigned long long)(r0 + m), (unsigned long long)pcount, rate, left / rate);
      t_last = now;
    }
  }
  const double seconds = cnf_time_now() - t0;
  cnf_log_debug("scan: %llu rounds of blocks in %.3f s: waiting for the slowest rank %.3f s, "
                "collective writes %.3f s", (unsigned long long)max_bcount, seconds, t_wait,
                t_write);
  /* flags over the whole file (resumed blocks included): read back this rank's rows */
  uint64_t flagged[4] = {0, 0, 0, 0};
  {
    hsize_t off[1] = {pfirst}, cnt[1] = {pcount};
    hid_t fs = H5Dget_space(o.dset[5]), ms = H5Screate_simple(1, pcount ? cnt : (hsize_t[]){1},
                                                              NULL);
    if (pcount == 0) {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    } else {
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    }
    if (H5Dread(o.dset[5], H5T_NATIVE_INT, ms, fs, o.dxpl, rows.flags) < 0)
      rc = cnf_error_set(CNF_ERR_IO, "%s: reading the flags back failed", tmp);
    H5Sclose(ms);
    H5Sclose(fs);
    for (uint64_t i = 0; rc == 0 && i < pcount; i++)
      for (int b = 0; b < 4; b++)
        flagged[b] += (rows.flags[i] >> b) & 1;
  }
  cnf_scan_out_close(&o);
  rc = cnf_sync_status(comm, rc);
  if (rc == 0 && rank == 0 && rename(tmp, job->out) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot rename the finished output into place", job->out);
  rc = cnf_sync_status(comm, rc);
  if (rc == 0) {
    MPI_Allreduce(MPI_IN_PLACE, flagged, 4, MPI_UINT64_T, MPI_SUM, comm);
    double tt = seconds;
    uint64_t sc_all = scanned;
    MPI_Allreduce(MPI_IN_PLACE, &tt, 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &sc_all, 1, MPI_UINT64_T, MPI_SUM, comm);
    uint64_t ev[2] = {0, 0};
    if (sc)
      cnf_scanner_counts(sc, &ev[0], &ev[1]);
    MPI_Allreduce(MPI_IN_PLACE, ev, 2, MPI_UINT64_T, MPI_SUM, comm);
    sum->logp_per_shower = sc_all ? (double)ev[0] / (double)sc_all : 0;
    sum->grad_per_shower = sc_all ? (double)ev[1] / (double)sc_all : 0;
    sum->showers = count;
    sum->scanned = sc_all;
    sum->seconds = tt;
    sum->showers_per_s = tt > 0 ? (double)sc_all / tt : 0;
    memcpy(sum->flagged, flagged, sizeof flagged);
  }
out:
  cnf_scan_out_close(&o);
  /* a bad input leaves nothing; an interrupted or failed scan keeps its finished blocks */
  if (rc < 0 && rank == 0 && !o_started)
    remove(tmp);
  free(done);
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
