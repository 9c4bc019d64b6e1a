/* `cnflow fit` over a dataset file: every rank reads its shard of the split (collective
 * hyperslab reads), loads the ensemble, and the showers are fitted jointly (cnf_fit_joint);
 * rank 0 writes fit.h5 (small) through a temporary name. */
#include "cnflow/data.h"
#include "cnflow/infer.h"
#include "../data/h5util.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cnf_fit_job_default(cnf_fit_job *job) {
  memset(job, 0, sizeof *job);
  snprintf(job->split, sizeof job->split, "test");
  snprintf(job->target, sizeof job->target, "showers");
  snprintf(job->cond, sizeof job->cond, "conditions");
  snprintf(job->fit_columns, sizeof job->fit_columns, "thickness,distance");
  snprintf(job->out, sizeof job->out, "fit.h5");
  /* the calo-photon generator's default material ranges: d in X0, b in cm */
  job->lo[0] = 0.5;
  job->hi[0] = 1.5;
  job->lo[1] = 50;
  job->hi[1] = 90;
  job->n_lo = job->n_hi = 2;
  job->n_grid = 21;
  job->refine = 1;
  job->block = 256;
  job->noise = -1;
  job->seed = 1;
}

/* "noise=<v>" from the data binding `cnflow train` stores in a model's provenance; 0 absent */
static double provenance_noise(const cnf_model_provenance *prov) {
  const char *p = strstr(prov->dataset, "noise=");
  while (p && p != prov->dataset && p[-1] != '\n')
    p = strstr(p + 1, "noise=");
  return p ? strtod(p + 6, NULL) : 0.0;
}

static int write_1d(hid_t loc, const char *name, int n, const double *v) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t sp = H5Screate_simple(1, dims, NULL);
  hid_t d = H5Dcreate2(loc, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
  if (d >= 0)
    H5Dclose(d);
  H5Sclose(sp);
  return ok ? 0 : cnf_error_set(CNF_ERR_IO, "cannot write dataset '%s'", name);
}

static int write_nd(hid_t loc, const char *name, int rank, const hsize_t *dims, const double *v) {
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(loc, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
  if (d >= 0)
    H5Dclose(d);
  H5Sclose(sp);
  return ok ? 0 : cnf_error_set(CNF_ERR_IO, "cannot write dataset '%s'", name);
}

/* rank 0 only: the whole fit.h5 into tmp */
static int write_fit(const char *tmp, const cnf_fit_job *job, int K, int P, const char *cols,
                     const cnf_fit_conf *conf, const cnf_fit_result *r, const double *tmean,
                     const double *tstd, const double *grid) {
  CNF_CALL(cnf_mkdir_parent(job->out));
  h5u_quiet q; /* one line below, not HDF5's error stack */
  h5u_quiet_begin(&q);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  h5u_quiet_end(&q);
  if (f < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create the output file (permissions, or a "
                         "full disk?)", tmp);
  int rc = 0;
  hid_t g = H5Gcreate2(f, "fit", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot create group /fit", tmp);
  if (rc == 0) rc = h5u_attr_write_fixed_string(f, "format", "cnflow-fit");
  const long long version = 1, members = K, showers = r->n_showers;
  const hid_t LL = H5T_NATIVE_LLONG;
  if (rc == 0) rc = h5u_attr_write_scalar(f, "format_version", LL, LL, &version);
  if (rc == 0) rc = h5u_attr_write_fixed_string(f, "input", job->data);
  if (rc == 0) rc = h5u_attr_write_fixed_string(f, "split", job->split);
  if (rc == 0) rc = h5u_attr_write_fixed_string(f, "ensemble", job->ensemble);
  if (rc == 0) rc = h5u_attr_write_scalar(f, "members", LL, LL, &members);
  if (rc == 0) rc = h5u_attr_write_scalar(f, "showers", LL, LL, &showers);
  if (rc == 0) rc = h5u_attr_write_fixed_string(f, "columns", cols);
  if (rc == 0) rc = h5u_attr_write_fixed_string(f, "git_rev", cnf_git_rev());
  double lo[CNF_FIT_MAX_PAR], hi[CNF_FIT_MAX_PAR], one[3] = {r->logl_max, (double)r->flags,
                                                            (double)r->n_evals};
  for (int p = 0; p < P; p++) {
    lo[p] = conf->lo[p];
    hi[p] = conf->hi[p];
  }
  if (rc == 0) rc = write_1d(g, "best", P, r->best);
  if (rc == 0) rc = write_1d(g, "sigma", P, r->sigma);
  if (rc == 0) rc = write_1d(g, "lo", P, lo);
  if (rc == 0) rc = write_1d(g, "hi", P, hi);
  if (rc == 0) rc = write_1d(g, "truth_mean", P, tmean);
  if (rc == 0) rc = write_1d(g, "truth_std", P, tstd);
  hsize_t pp[2] = {(hsize_t)P, (hsize_t)P}, gd[CNF_FIT_MAX_PAR];
  if (rc == 0) rc = write_nd(g, "cov", 2, pp, r->cov);
  if (rc == 0) rc = write_nd(g, "hessian", 2, pp, r->hessian);
  if (rc == 0) rc = write_1d(g, "logl_max", 1, &one[0]);
  if (rc == 0) rc = write_1d(g, "flags", 1, &one[1]);
  if (rc == 0) rc = write_1d(g, "n_evals", 1, &one[2]);
  double axis[4096];
  for (int p = 0; rc == 0 && p < P; p++) {
    char name[32];
    snprintf(name, sizeof name, "axis_%d", p);
    for (int i = 0; i < conf->n_grid && i < 4096; i++)
      axis[i] = conf->lo[p] + (conf->hi[p] - conf->lo[p]) * i / (conf->n_grid - 1);
    rc = write_1d(g, name, conf->n_grid, axis);
    gd[p] = (hsize_t)conf->n_grid;
  }
  if (rc == 0) rc = write_nd(g, "grid_logl", P, gd, grid);
  if (g >= 0)
    H5Gclose(g);
  if (H5Fclose(f) < 0 && rc == 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: closing the output failed", tmp);
  return rc;
}

int cnf_fit_file(const cnf_fit_job *job, MPI_Comm comm, cnf_fit_result *res) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  memset(res, 0, sizeof *res);
  cnf_data_file *file = NULL;
  cnf_data_dset *dt = NULL, *dc = NULL;
  cnf_flow *members[64] = {0};
  cnf_real *x = NULL, *c = NULL;
  double *grid = NULL;
  int K = 0, D = 0, C = 0, P = 0, tcols[256], ccols[64], fcols[CNF_FIT_MAX_PAR];
  uint64_t first = 0, count = 0, pfirst = 0, pcount = 0;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", job->out);
  cnf_fit_conf conf;
  cnf_fit_conf_default(&conf);

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
    /* the fitted columns, as indices among the selected condition columns */
    int idx[CNF_FIT_MAX_PAR + 1];
    rc = cnf_data_dset_resolve_columns(dc, job->fit_columns, CNF_FIT_MAX_PAR, idx, &P);
    if (rc == 0 && (P < 1 || !job->fit_columns[0]))
      rc = cnf_error_set(CNF_ERR_ARG, "fit: -fit_columns names no column of '%s'", job->cond);
    for (int p = 0; rc == 0 && p < P; p++) {
      fcols[p] = -1;
      for (int j = 0; j < C; j++)
        if (ccols[j] == idx[p])
          fcols[p] = j;
      if (fcols[p] < 0)
        rc = cnf_error_set(CNF_ERR_ARG, "fit: fitted column '%s' is not among the flows' "
                           "conditions (-cond_columns)", cnf_data_dset_column(dc, idx[p]));
    }
  }
  if (rc == 0 && (job->n_lo != P || job->n_hi != P))
    rc = cnf_error_set(CNF_ERR_ARG, "fit: %d fitted columns (%s) need %d values in -fit_lo and "
                       "-fit_hi (got %d and %d)", P, job->fit_columns, P, job->n_lo, job->n_hi);
  if (rc == 0) {
    if (strcmp(job->split, "all") == 0) {
      first = 0;
      count = cnf_data_dset_rows(dt);
    } else if (cnf_data_split(file, job->split, &first, &count) < 0) {
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: no split '%s' recorded in the file (-split all "
                         "fits every row)", job->data, job->split);
    }
  }
  if (rc == 0 && cnf_data_dset_rows(dc) != cnf_data_dset_rows(dt))
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: '%s' and '%s' have different row counts", job->data,
                       job->target, job->cond);
  if (rc == 0 && job->max_showers > 0 && (uint64_t)job->max_showers < count)
    count = (uint64_t)job->max_showers;
  if (rc == 0 && count == 0)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: split '%s' has no showers", job->data, job->split);
  cnf_model_provenance prov;
  memset(&prov, 0, sizeof prov);
  if (rc == 0)
    rc = cnf_infer_load_ensemble(job->ensemble, members, 64, &K, &prov);
  if (rc == 0 && (cnf_flow_dim(members[0]) != D || cnf_flow_cond_dim(members[0]) != C))
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: '%s' / '%s' give %d targets / %d conditions, the "
                       "model %s has %d / %d (a model for other data?)", job->data, job->target,
                       job->cond, D, C, job->ensemble, cnf_flow_dim(members[0]),
                       cnf_flow_cond_dim(members[0]));
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  int size = 1;
  MPI_Comm_size(comm, &size);
  cnf_partition(count, size, rank, &pfirst, &pcount);
  {
    size_t nn = pcount ? pcount : 1, ng = 1;
    for (int p = 0; p < P; p++)
      ng *= (size_t)job->n_grid;
    x = cnf_malloc(sizeof(cnf_real) * nn * D);
    c = cnf_malloc(sizeof(cnf_real) * nn * C);
    grid = cnf_malloc(sizeof(double) * (job->n_grid >= 3 && ng <= 1000000 ? ng : 1));
    rc = (!x || !c || !grid) ? CNF_ERR_NOMEM : 0;
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
  for (uint64_t i = 0; rc == 0 && i < pcount * (uint64_t)C; i++)
    if (!isfinite((double)c[i]))
      rc = cnf_error_set(CNF_ERR_NUMERIC, "%s: '%s' row %llu is not finite", job->data,
                         job->cond, (unsigned long long)(first + pfirst + i / C));
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  /* A model trained on dequantised targets (x + U[0, noise), ParaFlow) is a density of noised
   * showers: raw showers (pixels of a few keV) lie where it never saw data.  Each shower gets
   * one fixed noise draw from its own counter-based stream (seed, shower index), the same for
   * every theta, so log L(theta) stays smooth and does not depend on the rank count. */
  const double noise = job->noise >= 0 ? job->noise : provenance_noise(&prov);
  if (noise > 0)
    for (uint64_t i = 0; i < pcount; i++) {
      cnf_rng r;
      cnf_rng_init(&r, job->seed, first + pfirst + i, 0);
      for (int j = 0; j < D; j++)
        x[i * D + j] += (cnf_real)(noise * cnf_rng_uniform(&r));
    }
  /* the fitted columns' values in the file (the truth, when the file was generated at one
   * material): mean and standard deviation over every rank's showers */
  double tmean[CNF_FIT_MAX_PAR], tstd[CNF_FIT_MAX_PAR];
  {
    double acc[2 * CNF_FIT_MAX_PAR] = {0};
    for (uint64_t i = 0; i < pcount; i++)
      for (int p = 0; p < P; p++) {
        const double v = (double)c[i * C + fcols[p]];
        acc[p] += v;
        acc[CNF_FIT_MAX_PAR + p] += v * v;
      }
    MPI_Allreduce(MPI_IN_PLACE, acc, 2 * CNF_FIT_MAX_PAR, MPI_DOUBLE, MPI_SUM, comm);
    for (int p = 0; p < P; p++) {
      tmean[p] = acc[p] / (double)count;
      const double var = acc[CNF_FIT_MAX_PAR + p] / (double)count - tmean[p] * tmean[p];
      tstd[p] = var > 0 ? sqrt(var) : 0;
    }
  }
  conf.n_par = P;
  for (int p = 0; p < P; p++) {
    conf.cond_index[p] = fcols[p];
    conf.lo[p] = job->lo[p];
    conf.hi[p] = job->hi[p];
  }
  conf.n_grid = job->n_grid;
  conf.refine = job->refine;
  conf.block = job->block;
  cnf_log_info("fit: %llu showers of %s (%s), %d member%s, %d^%d grid over %s, "
               "dequantisation noise U[0, %g)", (unsigned long long)count, job->data, job->split,
               K, K == 1 ? "" : "s", job->n_grid, P, job->fit_columns, noise);
  const double t0 = cnf_time_now();
  rc = cnf_fit_joint(members, K, &conf, comm, (int)pcount, x, c, grid, res);
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  cnf_log_info("fit: %ld log L evaluations in %.1f s", res->n_evals, cnf_time_now() - t0);
  if (rank == 0)
    rc = write_fit(tmp, job, K, P, job->fit_columns, &conf, res, tmean, tstd, grid);
  if (rc == 0 && rank == 0 && rename(tmp, job->out) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot rename the finished output into place", job->out);
  if (rc < 0 && rank == 0)
    remove(tmp);
  rc = cnf_sync_status(comm, rc);
out:
  for (int k = 0; k < 64; k++)
    cnf_flow_free(&members[k]);
  cnf_data_dset_close(dc);
  cnf_data_dset_close(dt);
  cnf_data_close(file);
  free(x);
  free(c);
  free(grid);
  return rc;
}
