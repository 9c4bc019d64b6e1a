/* `cnflow regress`: the calibration study's direct-regression baseline (flows-reference.md
 * 5.6) applied to a dataset file.  The regressor is a 1-D conditional flow trained by
 * `cnflow train -prep regress` (src/train/prep.c): [log, affine_fixed, shift-only maf_affine],
 * z = log10(E / 10 GeV) - m(c), so the NLL is MSE/2 + const and the inverse at z = 0 is the
 * member's prediction E = 10 GeV * 10^m(c) in the target's raw unit.  The ensemble prediction
 * is the mean of the members' predictions in E space, as the study averages them.
 *
 * Parallel: the showers are cut into blocks of `block` rows (global multiples of the block
 * size); each rank owns a contiguous run of whole blocks, and every block is one flow call on
 * any number of ranks, so the rows of scan.h5 do not depend on the rank count (a float flow
 * evaluation is reproducible only for the same batch).  Each round every rank reads its next
 * block and writes its rows with collective hyperslab writes into <out>.tmp, renamed when
 * complete.  The file is byte-identical on any rank count: no timestamps (obj_track_times off),
 * the same collective metadata operations on every rank, storage allocated at creation.  No resume: a whole file of 100 k showers takes about a second. */
#include "cnflow/data.h"
#include "cnflow/infer.h"

#include "../data/h5util.h"
#include "scan_out.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cnf_regress_job_default(cnf_regress_job *job) {
  memset(job, 0, sizeof *job);
  snprintf(job->split, sizeof job->split, "test");
  snprintf(job->out, sizeof job->out, "scan.h5");
  job->block = 4096;
  job->progress_s = 10;
}

int cnf_regress_predict(cnf_flow *const *members, int K, int n, const cnf_real *c,
                        double *e_pred, double *member_pred) {
  if (K < 1 || n < 0)
    return cnf_error_set(CNF_ERR_ARG, "regress: need at least one member (K = %d, n = %d)", K, n);
  for (int k = 0; k < K; k++)
    if (cnf_flow_dim(members[k]) != 1)
      return cnf_error_set(CNF_ERR_ARG, "regress: member %d models %d targets: a regression "
                           "member is a 1-D flow (cnflow train -prep regress)", k,
                           cnf_flow_dim(members[k]));
  if (n == 0)
    return 0;
  cnf_real *z = cnf_calloc((size_t)n, sizeof(cnf_real)), *x = cnf_malloc(sizeof(cnf_real) * n);
  int rc = z && x ? 0 : CNF_ERR_NOMEM;
  for (int i = 0; i < n && rc == 0; i++)
    e_pred[i] = 0;
  for (int k = 0; k < K && rc == 0; k++) {
    /* z = 0 is the shift itself: x = exp(ln10 * (m + log10(10 GeV / unit))) */
    rc = cnf_flow_inverse(members[k], n, z, c, x, NULL);
    for (int i = 0; i < n && rc == 0; i++) {
      e_pred[i] += (double)x[i];
      if (member_pred)
        member_pred[(size_t)k * n + i] = (double)x[i];
    }
  }
  for (int i = 0; i < n && rc == 0; i++)
    e_pred[i] /= K;
  free(z);
  free(x);
  return rc;
}

/* ---- setup -------------------------------------------------------------------------------- */
/* GeV per unit of the energy column ("" = MeV, the CaloChallenge convention) */
static int gev_per_unit(const char *unit, const char *what, double *out) {
  if (strcmp(unit, "GeV") == 0)
    *out = 1.0;
  else if (!unit[0] || strcmp(unit, "MeV") == 0)
    *out = 1e-3;
  else if (strcmp(unit, "TeV") == 0)
    *out = 1e3;
  else if (strcmp(unit, "keV") == 0)
    *out = 1e-6;
  else
    return cnf_error_set(CNF_ERR_FORMAT, "%s has unit '%s': an energy in keV, MeV, GeV or TeV "
                         "is needed", what, unit);
  return 0;
}

/* The members must be regression models; the empty bindings of the job come from member 0's
 * provenance (the regressor's target is the true energy, its conditions the layer energies). */
static int regress_bind(const cnf_regress_job *in, cnf_flow *const *f, int K,
                        const cnf_model_provenance *prov, cnf_regress_job *job) {
  *job = *in;
  char prep[32] = "";
  CNF_CALL(cnf_model_binding(prov, "prep", prep, sizeof prep));
  if (cnf_flow_dim(f[0]) != 1 || (prep[0] && strcmp(prep, "regress") != 0))
    return cnf_error_set(CNF_ERR_FORMAT, "%s: not a regression ensemble (%d-D model, "
                         "preprocessing '%s'; train one with -prep regress, or use cnflow scan "
                         "for a flow)", in->ensemble, cnf_flow_dim(f[0]), prep[0] ? prep : "none");
  for (int k = 1; k < K; k++)
    if (cnf_flow_dim(f[k]) != 1 || cnf_flow_cond_dim(f[k]) != cnf_flow_cond_dim(f[0]))
      return cnf_error_set(CNF_ERR_FORMAT, "%s: member %d is %d-D with %d inputs, member 0 1-D "
                           "with %d", in->ensemble, k, cnf_flow_dim(f[k]),
                           cnf_flow_cond_dim(f[k]), cnf_flow_cond_dim(f[0]));
  struct { const char *key, *def; char *dst; size_t len; } fill[] = {
      {"target", "incident_energies", job->target, sizeof job->target},
      {"target_columns", "", job->target_columns, sizeof job->target_columns},
      {"cond", "layers", job->cond, sizeof job->cond},
      {"cond_columns", "", job->cond_columns, sizeof job->cond_columns},
  };
  for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++)
    if (!fill[i].dst[0]) {
      int found = cnf_model_binding(prov, fill[i].key, fill[i].dst, fill[i].len);
      CNF_CALL(found);
      if (!found)
        snprintf(fill[i].dst, fill[i].len, "%s", fill[i].def);
    }
  return 0;
}

/* ---- output: the scan.h5 layout of include/cnflow/infer.h, written by scan_out.h's writer ---- */
/* COLLECTIVE.  No search range and no grid: e_min / e_max NaN, n_grid 0; no resume record (a
 * regression is rerun, not resumed); byte-reproducible property lists. */
static int reg_out_create(MPI_Comm comm, const cnf_regress_job *job, const char *tmp, uint64_t N,
                          uint64_t n_blocks, int K, cnf_scan_out *o) {
  const cnf_scan_out_header h = {.method = "regression",
                                 .prior = job->prior,
                                 .input = job->data,
                                 .split = job->split,
                                 .ensemble = job->ensemble,
                                 .e_min = NAN,
                                 .e_max = NAN,
                                 .members = K,
                                 .n_grid = 0,
                                 .cnflow_version = CNFLOW_VERSION,
                                 .reproducible = 1};
  CNF_CALL(cnf_scan_out_check_space(comm, job->out, N, n_blocks, &h));
  return cnf_scan_out_create(comm, tmp, N, n_blocks, &h, o);
}

/* ---- the stage ---------------------------------------------------------------------------- */
#define REG_MAX_MEMBERS 64

int cnf_regress_file(const cnf_regress_job *job_in, MPI_Comm comm, cnf_regress_summary *sum) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  memset(sum, 0, sizeof *sum);
  cnf_regress_job job;
  cnf_flow *members[REG_MAX_MEMBERS] = {0};
  cnf_model_provenance prov;
  memset(&prov, 0, sizeof prov);
  cnf_data_file *file = NULL;
  cnf_data_dset *dt = NULL, *dc = NULL;
  cnf_real *c = NULL;
  struct {
    double *e_true, *e_pred, *nan;
    int *flags, *zero;
  } rows = {0};
  cnf_scan_out o;
  cnf_scan_out_init(&o);
  int K = 0, C = 0, D = 0, tcol = 0, ccols[64];
  uint64_t first = 0, count = 0;
  double gev = 1;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", job_in->out);
  int o_started = 0;

  /* every rank loads every member (serial HDF5 reads of small files) */
  int rc = job_in->block >= 1 ? 0 : cnf_error_set(CNF_ERR_ARG, "regress: -block must be >= 1");
  if (rc == 0)
    rc = cnf_infer_load_ensemble(job_in->ensemble, members, REG_MAX_MEMBERS, &K, &prov);
  if (rc == 0)
    rc = regress_bind(job_in, members, K, &prov, &job);
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  rc = cnf_data_open(job.data, comm, &file);
  if (rc == 0) rc = cnf_data_dset_open(file, job.target, 0, &dt);
  if (rc == 0) rc = cnf_data_dset_open(file, job.cond, 0, &dc);
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  rc = cnf_data_dset_resolve_columns(dt, job.target_columns, 1, &tcol, &D);
  if (rc == 0)
    rc = cnf_data_dset_resolve_columns(dc, job.cond_columns, 64, ccols, &C);
  if (rc == 0 && C != cnf_flow_cond_dim(members[0]))
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: '%s' gives %d input columns, the regression model "
                       "%s has %d (a model for other data?)", job.data, job.cond, C,
                       job.ensemble, cnf_flow_cond_dim(members[0]));
  if (rc == 0)
    rc = gev_per_unit(cnf_data_dset_unit(dt, tcol), job.target, &gev);
  if (rc == 0) {
    if (strcmp(job.split, "all") == 0) {
      first = 0;
      count = cnf_data_dset_rows(dt);
    } else if (cnf_data_split(file, job.split, &first, &count) < 0) {
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: no split '%s' recorded in the file (-split all "
                         "takes every row)", job.data, job.split);
    }
  }
  if (rc == 0 && cnf_data_dset_rows(dc) != cnf_data_dset_rows(dt))
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: '%s' and '%s' have different row counts", job.data,
                       job.target, job.cond);
  if (rc == 0 && job.max_showers > 0 && (uint64_t)job.max_showers < count)
    count = (uint64_t)job.max_showers;
  if (rc == 0 && count == 0)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: split '%s' has no showers", job.data, job.split);
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;

  /* whole blocks per rank (contiguous): each block is the same flow call on any rank count */
  const uint64_t B = (uint64_t)job.block, n_blocks = (count + B - 1) / B;
  uint64_t bfirst = 0, bcount = 0;
  cnf_partition(n_blocks, size, rank, &bfirst, &bcount);
  const uint64_t pfirst = bfirst * B;
  const uint64_t pcount =
      bcount ? ((bfirst + bcount) * B < count ? (bfirst + bcount) * B : count) - pfirst : 0;
  c = cnf_malloc(sizeof(cnf_real) * B * (size_t)C);
  rows.e_true = cnf_malloc(sizeof(double) * B);
  rows.e_pred = cnf_malloc(sizeof(double) * B);
  rows.nan = cnf_malloc(sizeof(double) * B);
  rows.flags = cnf_malloc(sizeof(int) * B);
  rows.zero = cnf_calloc(B, sizeof(int));
  rc = c && rows.e_true && rows.e_pred && rows.nan && rows.flags && rows.zero ? 0 : CNF_ERR_NOMEM;
  for (uint64_t i = 0; rc == 0 && i < B; i++)
    rows.nan[i] = NAN;
  if (rc == 0 && rank == 0)
    rc = cnf_mkdir_parent(job.out);
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  rc = cnf_sync_status(comm, reg_out_create(comm, &job, tmp, count, n_blocks, K, &o));
  o_started = 1; /* from here a failure removes the partial output */
  if (rc < 0)
    goto out;

  uint64_t max_bcount = bcount, done = 0, failed = 0;
  double ratio_sum = 0;
  MPI_Allreduce(MPI_IN_PLACE, &max_bcount, 1, MPI_UINT64_T, MPI_MAX, comm);
  const double t0 = cnf_time_now();
  double t_last = t0;
  for (uint64_t t = 0; t < max_bcount; t++) {
    /* every rank takes part in every round's collective read and write, with or without rows */
    const uint64_t r0 = t * B, m = t < bcount ? (pcount - r0 < B ? pcount - r0 : B) : 0;
    const uint64_t row0 = first + pfirst + r0;
    rc = cnf_data_read(dt, m ? row0 : first, m, 1, &tcol, CNF_DTYPE_F64, rows.e_true);
    if (rc == 0)
      rc = cnf_data_read(dc, m ? row0 : first, m, C, ccols, CNF_DTYPE_REAL, c);
    for (uint64_t i = 0; rc == 0 && i < m; i++) {
      const double e = rows.e_true[i];
      if (!isfinite(e) || !(e > 0))
        rc = cnf_error_set(CNF_ERR_NUMERIC, "%s: '%s' row %llu = %g (the true energy must be "
                           "finite and positive)", job.data, job.target,
                           (unsigned long long)(row0 + i), e);
      for (int j = 0; j < C && rc == 0; j++)
        if (!isfinite((double)c[i * C + j]))
          rc = cnf_error_set(CNF_ERR_NUMERIC, "%s: '%s' row %llu column %s is not finite",
                             job.data, job.cond, (unsigned long long)(row0 + i),
                             cnf_data_dset_column(dc, ccols[j]));
    }
    if (rc == 0)
      rc = cnf_regress_predict(members, K, (int)m, c, rows.e_pred, NULL);
    for (uint64_t i = 0; rc == 0 && i < m; i++) {
      rows.e_true[i] *= gev;
      const double e = rows.e_pred[i] * gev;
      const int ok = isfinite(e);
      rows.e_pred[i] = ok ? e : NAN;
      rows.flags[i] = ok ? 0 : CNF_SCAN_FAILED;
      failed += !ok;
      if (ok)
        ratio_sum += e / rows.e_true[i];
    }
    rc = cnf_sync_status(comm, rc);
    if (rc < 0)
      goto out;
    const void *cols[CNF_SCAN_NCOLS] = {rows.e_true, rows.e_pred, rows.nan, rows.nan, rows.nan,
                                   rows.flags, rows.zero};
    rc = cnf_sync_status(comm, cnf_scan_out_write(&o, pfirst + r0, m, m ? (int64_t)(bfirst + t) : -1,
                                             cols));
    if (rc < 0)
      goto out;
    done += m;
    cnf_watchdog_beat("a regression block");
    const double now = cnf_time_now();
    if (rank == 0 && job.progress_s > 0 && now - t_last >= job.progress_s && done > 0) {
      const double rate = (double)done / (now - t0);
      cnf_log_info("regress: %llu of %llu showers on rank 0, %.0f showers/s per rank, ETA %.0f s",
                   (unsigned long long)done, (unsigned long long)pcount, rate,
                   (double)(pcount - done) / rate);
      t_last = now;
    }
  }
  const double seconds = cnf_time_now() - t0;
  cnf_scan_out_close(&o);
  rc = cnf_sync_status(comm, rc);
  if (rc == 0 && rank == 0 && rename(tmp, job.out) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot rename the finished output into place", job.out);
  rc = cnf_sync_status(comm, rc);
  if (rc == 0) {
    double tt = seconds;
    MPI_Allreduce(MPI_IN_PLACE, &tt, 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_UINT64_T, MPI_SUM, comm);
    MPI_Allreduce(MPI_IN_PLACE, &ratio_sum, 1, MPI_DOUBLE, MPI_SUM, comm);
    sum->showers = count;
    sum->failed = failed;
    sum->members = K;
    sum->seconds = tt;
    sum->showers_per_s = tt > 0 ? (double)count / tt : 0;
    sum->mean_ratio = count > failed ? ratio_sum / (double)(count - failed) : NAN;
  }
out:
  cnf_scan_out_close(&o);
  /* nothing half-written is left behind: the output only exists once complete */
  if (rc < 0 && rank == 0 && o_started)
    remove(tmp);
  for (int k = 0; k < REG_MAX_MEMBERS; k++)
    cnf_flow_free(&members[k]);
  cnf_data_dset_close(dc);
  cnf_data_dset_close(dt);
  cnf_data_close(file);
  free(c);
  free(rows.e_true);
  free(rows.e_pred);
  free(rows.nan);
  free(rows.flags);
  free(rows.zero);
  return rc;
}
