/* `cnflow evaluate`: the studies' comparisons of generated against reference events, from one
 * samples.h5 (cnflow sample) into metrics.h5.  Rank 0 reads the file and computes everything
 * (the metrics sort whole columns; a few hundred thousand events take seconds); the other ranks
 * only share the status.  Every binned quantity is stored with its statistical error and, per
 * ensemble member, the same quantity for that member's events, so that analysis/ can draw the
 * spread over members as a band on every figure.
 *
 * Layout of metrics.h5 (README "cnflow evaluate" has the full list):
 *   /                 attrs format = "cnflow-metrics", format_version, samples, kind, n_events,
 *                           members, w1_mean, sep_mean, [auc, auc_err, w_mean, w_std, w_max]
 *   /marginals/<col>  one comparison group per target column (see compare_1d)
 *   /cnf/...          hgg: resolution in bins of ET, |eta|, mu; m_gg, pT_gg; correlations; tails
 *   /images/...       images: average images, shower shapes inclusive and per d / b bin, grids
 */
#include "cnflow/data.h"
#include "cnflow/infer.h"
#include "cnflow/stats.h"

#include "../data/h5util.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EV_MAX_MEMBERS 64
#define EV_RES_BINS 6    /* equal-population bins of the resolution's binning variables */
#define EV_MAT_BINS 4    /* the ParaFlow study's four d and four b bins */

void cnf_eval_job_default(cnf_eval_job *job) {
  memset(job, 0, sizeof *job);
  snprintf(job->out, sizeof job->out, "metrics.h5");
  job->n_bins = 50;
  job->core_k = 2.0;
  job->image_rows = 16;
  job->image_cols = 8;
  job->classifier = 1;
  cnf_classifier_conf_default(&job->clf);
  job->clf.max_train = 100000;
}

/* ---- input -------------------------------------------------------------------------------- */
typedef struct ev_data {
  size_t n;
  int D, C, K, has_reco;
  double *gen, *ref, *cond, *greco, *rreco; /* (n, D), (n, D), (n, C), (n, D), (n, D) */
  int *member;
  char tnames[CNF_MAX_COLS][64], cnames[64][64], rnames[64][64];
  char prep[32];
} ev_data;

static void ev_data_free(ev_data *d) {
  free(d->gen); free(d->ref); free(d->cond); free(d->greco); free(d->rreco); free(d->member);
}

static int read_dset(cnf_data_file *f, const char *path, size_t n, int want_cols, int *ncols,
                     char (*names)[64], int max_names, cnf_dtype type, void **out) {
  cnf_data_dset *d = NULL;
  CNF_CALL(cnf_data_dset_open(f, path, want_cols, &d));
  const int nc = cnf_data_dset_cols(d);
  if (ncols)
    *ncols = nc;
  for (int j = 0; names && j < nc && j < max_names; j++)
    snprintf(names[j], 64, "%s", cnf_data_dset_column(d, j));
  const size_t elem = sizeof(double);
  *out = malloc(elem * (n ? n : 1) * (size_t)nc);
  int rc = *out ? cnf_data_read(d, 0, n, 0, NULL, type, *out)
                : cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory reading %s", path);
  cnf_data_dset_close(d);
  return rc;
}

/* "" when the attribute is absent or not a string. */
static int root_attr_string(const char *path, const char *name, char *buf, size_t len) {
  buf[0] = '\0';
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot open", path);
  if (h5u_attr_read_string(f, name, buf, len) != 0)
    buf[0] = '\0';
  H5Fclose(f);
  return 0;
}

static int ev_read(const cnf_eval_job *job, ev_data *d) {
  memset(d, 0, sizeof *d);
  cnf_data_file *f = NULL;
  CNF_CALL(cnf_data_open(job->samples, MPI_COMM_SELF, &f));
  int rc = 0;
  if (strcmp(cnf_data_generator(f), "sample") != 0)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: not a samples file of `cnflow sample` (generator "
                       "'%s')", job->samples, cnf_data_generator(f));
  cnf_data_dset *g = NULL;
  if (rc == 0)
    rc = cnf_data_dset_open(f, "generated/target", 0, &g);
  if (rc == 0) {
    d->n = cnf_data_dset_rows(g);
    if (job->max_events > 0 && (uint64_t)job->max_events < d->n)
      d->n = (size_t)job->max_events;
  }
  cnf_data_dset_close(g);
  if (rc == 0 && d->n < 8)
    rc = cnf_error_set(CNF_ERR_ARG, "%s: %zu events, at least 8 are needed", job->samples, d->n);
  if (rc == 0)
    rc = read_dset(f, "generated/target", d->n, 0, &d->D, d->tnames, CNF_MAX_COLS, CNF_DTYPE_F64,
                   (void **)&d->gen);
  if (rc == 0)
    rc = read_dset(f, "reference/target", d->n, d->D, NULL, NULL, 0, CNF_DTYPE_F64,
                   (void **)&d->ref);
  if (rc == 0)
    rc = read_dset(f, "conditions", d->n, 0, &d->C, d->cnames, 64, CNF_DTYPE_F64,
                   (void **)&d->cond);
  double *member = NULL; /* the reader returns float or double: members converted here */
  if (rc == 0)
    rc = read_dset(f, "generated/member", d->n, 1, NULL, NULL, 0, CNF_DTYPE_F64,
                   (void **)&member);
  if (rc == 0) {
    d->member = malloc(sizeof(int) * (d->n ? d->n : 1));
    if (!d->member)
      rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
    for (size_t i = 0; rc == 0 && i < d->n; i++)
      d->member[i] = (int)member[i];
  }
  free(member);
  if (rc == 0 && d->C > 64)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: %d conditions, at most 64 supported", job->samples,
                       d->C);
  /* reco only when the sampler wrote it (the hgg layout); probing it must not be an error */
  if (rc == 0 && d->D <= 64) {
    cnf_data_dset *r = NULL;
    if (cnf_data_dset_open(f, "generated/reco", d->D, &r) == 0) {
      cnf_data_dset_close(r);
      d->has_reco = 1;
      rc = read_dset(f, "generated/reco", d->n, d->D, NULL, d->rnames, 64, CNF_DTYPE_F64,
                     (void **)&d->greco);
      if (rc == 0)
        rc = read_dset(f, "reference/reco", d->n, d->D, NULL, NULL, 0, CNF_DTYPE_F64,
                       (void **)&d->rreco);
    } else {
      cnf_error_clear();
    }
  }
  cnf_data_close(f);
  if (rc == 0)
    rc = root_attr_string(job->samples, "prep", d->prep, sizeof d->prep);
  for (size_t i = 0; rc == 0 && i < d->n; i++) {
    if (d->member[i] < 0 || d->member[i] >= EV_MAX_MEMBERS)
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: event %zu has member %d", job->samples, i,
                         d->member[i]);
    else if (d->member[i] + 1 > d->K)
      d->K = d->member[i] + 1;
  }
  for (size_t i = 0; rc == 0 && i < d->n * (size_t)d->D; i++)
    if (!isfinite(d->gen[i]) || !isfinite(d->ref[i]))
      rc = cnf_error_set(CNF_ERR_NUMERIC, "%s: a non-finite target value at event %zu",
                         job->samples, i / (size_t)d->D);
  return rc;
}

/* ---- output helpers (serial HDF5 on rank 0) ------------------------------------------------ */
static int put(hid_t loc, const char *name, int rank, const hsize_t *dims, const double *v) {
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
  if (ds >= 0)
    H5Dclose(ds);
  H5Sclose(sp);
  return ok ? 0 : cnf_error_set(CNF_ERR_IO, "evaluate: cannot write dataset '%s'", name);
}
static int put1(hid_t loc, const char *name, size_t n, const double *v) {
  hsize_t dims[1] = {n};
  return put(loc, name, 1, dims, v);
}
static hid_t group(hid_t loc, const char *name) {
  return H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

/* ---- small statistics ---------------------------------------------------------------------- */
static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
/* numpy.quantile (linear) of a sorted array */
static double quantile_sorted(const double *s, size_t n, double q) {
  const double pos = q * (double)(n - 1);
  const size_t i = (size_t)pos;
  return i + 1 < n ? s[i] + (pos - (double)i) * (s[i + 1] - s[i]) : s[n - 1];
}
static void mean_sd(const double *x, size_t n, double *mean, double *sd) {
  double m = 0, v = 0;
  for (size_t i = 0; i < n; i++)
    m += x[i];
  m = n ? m / (double)n : NAN;
  for (size_t i = 0; i < n; i++)
    v += (x[i] - m) * (x[i] - m);
  *mean = m;
  *sd = n > 1 ? sqrt(v / (double)(n - 1)) : NAN;
}

/* One 1-D comparison into group `name`: the reference range [q 0.5 %, q 99.5 %] widened by 5 %
 * (or [lo, hi] when lo < hi), n_bins bins.  Datasets edges (nb + 1), density_gen, density_ref,
 * err_gen, err_ref (nb: counts / (N width), errors sqrt(counts) / (N width)), density_members
 * (K, nb); attrs w1 (unbinned, all events), w1_members_sd (spread of the members' W1), w1_floor
 * (W1 of the reference's even vs odd events: the finite-sample floor), sep, sep_err,
 * mean_gen, mean_ref, sd_gen, sd_ref.  out (may be NULL): {w1, sep, sep_err}. */
typedef struct ev_col {
  const double *gen, *ref; /* strided columns */
  size_t n, stride;
  const int *member;
  int K;
} ev_col;

static int compare_1d(hid_t loc, const char *name, const ev_col *c, int nb, double lo, double hi,
                      double *out) {
  cnf_watchdog_beat("an evaluate metric");
  const size_t n = c->n;
  double *g = malloc(sizeof(double) * n), *r = malloc(sizeof(double) * n);
  double *rs = malloc(sizeof(double) * n), *mk = malloc(sizeof(double) * n);
  double *hg = calloc((size_t)nb, sizeof(double)), *hr = calloc((size_t)nb, sizeof(double));
  double *hm = calloc((size_t)nb * c->K, sizeof(double)), *buf = malloc(sizeof(double) * (nb + 1) * 2);
  double *half_a = malloc(sizeof(double) * (n / 2 + 1)), *half_b = malloc(sizeof(double) * (n / 2 + 1));
  int rc = 0;
  if (!g || !r || !rs || !mk || !hg || !hr || !hm || !buf || !half_a || !half_b) {
    rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
    goto out;
  }
  /* non-finite values (e.g. the width of an empty image) take no part; members follow g */
  int *gm = malloc(sizeof(int) * (n ? n : 1));
  size_t ng = 0, nr = 0;
  if (!gm) {
    rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const double a = c->gen[i * c->stride], b = c->ref[i * c->stride];
    if (isfinite(a)) {
      gm[ng] = c->member[i];
      g[ng++] = a;
    }
    if (isfinite(b))
      r[nr++] = b;
  }
  if (ng < 2 || nr < 2) {
    free(gm);
    rc = cnf_error_set(CNF_ERR_NUMERIC, "evaluate: '%s' has fewer than 2 finite values", name);
    goto out;
  }
  if (!(lo < hi)) {
    memcpy(rs, r, sizeof(double) * nr);
    qsort(rs, nr, sizeof(double), cmp_double);
    lo = quantile_sorted(rs, nr, 0.005);
    hi = quantile_sorted(rs, nr, 0.995);
    const double w = hi - lo > 0 ? hi - lo : fmax(1e-12, fabs(lo) * 1e-6);
    lo -= 0.05 * w;
    hi += 0.05 * w;
  }
  rc = cnf_hist_fill(g, ng, lo, hi, nb, hg, NULL);
  if (rc == 0) rc = cnf_hist_fill(r, nr, lo, hi, nb, hr, NULL);
  double sep = NAN, sep_err = NAN;
  /* every generated value outside the reference's range: no binned comparison (NaN), the
   * unbinned W1 still says how far off it is */
  if (rc == 0 && cnf_separation_power(hg, hr, nb, &sep, &sep_err) < 0) {
    cnf_error_clear();
    sep = sep_err = NAN;
  }
  if (rc < 0) {
    free(gm);
    goto out;
  }
  const double w1 = cnf_w1_1d(g, ng, r, nr);
  /* members: their events' histograms and W1 against the whole reference */
  double w1m_s = 0, w1m_s2 = 0;
  for (int k = 0; k < c->K; k++) {
    size_t m = 0;
    for (size_t i = 0; i < ng; i++)
      if (gm[i] == k)
        mk[m++] = g[i];
    double *h = hm + (size_t)k * nb;
    if ((rc = cnf_hist_fill(mk, m, lo, hi, nb, h, NULL)) < 0) {
      free(gm);
      goto out;
    }
    const double bw = (hi - lo) / nb;
    for (int b = 0; b < nb; b++)
      h[b] = m ? h[b] / ((double)m * bw) : NAN;
    const double wk = m ? cnf_w1_1d(mk, m, r, nr) : NAN;
    w1m_s += wk;
    w1m_s2 += wk * wk;
  }
  const double w1m_mean = w1m_s / c->K;
  const double w1m_sd = c->K > 1 ? sqrt(fmax(0, (w1m_s2 - c->K * w1m_mean * w1m_mean) / (c->K - 1))) : 0;
  size_t na = 0, nbb = 0;
  free(gm);
  for (size_t i = 0; i < nr; i++) {
    if (i % 2)
      half_b[nbb++] = r[i];
    else
      half_a[na++] = r[i];
  }
  const double w1_floor = cnf_w1_1d(half_a, na, half_b, nbb);
  hid_t gr = group(loc, name);
  if (gr < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "evaluate: cannot create group '%s'", name);
    goto out;
  }
  const double bw = (hi - lo) / nb;
  double *edges = buf, *tmp = buf + nb + 1;
  for (int b = 0; b <= nb; b++)
    edges[b] = lo + (hi - lo) * b / nb;
  rc = put1(gr, "edges", (size_t)nb + 1, edges);
  const double *hs[2] = {hg, hr};
  const char *dn[2] = {"density_gen", "density_ref"}, *en[2] = {"err_gen", "err_ref"};
  for (int s = 0; s < 2 && rc == 0; s++) {
    const double ns = (double)(s ? nr : ng);
    for (int b = 0; b < nb; b++)
      tmp[b] = hs[s][b] / (ns * bw);
    rc = put1(gr, dn[s], (size_t)nb, tmp);
    for (int b = 0; b < nb && rc == 0; b++)
      tmp[b] = sqrt(hs[s][b]) / (ns * bw);
    if (rc == 0) rc = put1(gr, en[s], (size_t)nb, tmp);
  }
  hsize_t md[2] = {(hsize_t)c->K, (hsize_t)nb};
  if (rc == 0) rc = put(gr, "density_members", 2, md, hm);
  double mg, sg, mr, sr;
  mean_sd(g, ng, &mg, &sg);
  mean_sd(r, nr, &mr, &sr);
  if (rc == 0) rc = h5u_attr_write_double(gr, "w1", w1);
  if (rc == 0) rc = h5u_attr_write_double(gr, "w1_members_sd", w1m_sd);
  if (rc == 0) rc = h5u_attr_write_double(gr, "w1_floor", w1_floor);
  if (rc == 0) rc = h5u_attr_write_double(gr, "sep", sep);
  if (rc == 0) rc = h5u_attr_write_double(gr, "sep_err", sep_err);
  if (rc == 0) rc = h5u_attr_write_double(gr, "mean_gen", mg);
  if (rc == 0) rc = h5u_attr_write_double(gr, "mean_ref", mr);
  if (rc == 0) rc = h5u_attr_write_double(gr, "sd_gen", sg);
  if (rc == 0) rc = h5u_attr_write_double(gr, "sd_ref", sr);
  H5Gclose(gr);
  if (out) {
    out[0] = w1;
    out[1] = sep;
    out[2] = sep_err;
  }
out:
  free(g); free(r); free(rs); free(mk); free(hg); free(hr); free(hm); free(buf);
  free(half_a); free(half_b);
  return rc;
}

static int find_name(char (*names)[64], int n, const char *want) {
  for (int j = 0; j < n; j++)
    if (strcmp(names[j], want) == 0)
      return j;
  return -1;
}

/* ---- the CNF (hgg) study's figures ---------------------------------------------------------- */
/* Core width (cnf_core_width, +-k sigma) of target column j over the events in idx. */
static void core_of(const double *x, int D, int j, const size_t *idx, size_t m, double k,
                    double *buf, double *sigma, double *err) {
  for (size_t i = 0; i < m; i++)
    buf[i] = x[idx[i] * D + j];
  cnf_core_fit fit;
  if (m >= 20 && cnf_core_width(buf, m, k, &fit) == 0) {
    *sigma = fit.sigma;
    *err = fit.sigma_err;
  } else {
    cnf_error_clear();
    *sigma = *err = NAN;
  }
}

static int eval_cnf(hid_t file, const cnf_eval_job *job, const ev_data *d, cnf_eval_summary *sum) {
  (void)sum;
  const int D = d->D, K = d->K;
  const size_t n = d->n;
  hid_t g = group(file, "cnf");
  if (g < 0)
    return cnf_error_set(CNF_ERR_IO, "evaluate: cannot create group /cnf");
  int rc = 0;
  size_t *idx = malloc(sizeof(size_t) * n), *idm = malloc(sizeof(size_t) * n);
  double *buf = malloc(sizeof(double) * n), *sorted = malloc(sizeof(double) * n);
  double *res = malloc(sizeof(double) * (size_t)D * EV_RES_BINS * 4);
  double *resm = malloc(sizeof(double) * (size_t)K * D * EV_RES_BINS);
  if (!idx || !idm || !buf || !sorted || !res || !resm) {
    rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
    goto out;
  }
  /* 1. resolution (core width of each response) in equal-population bins of the photon's own
   *    truth ET and |eta| and of mu, target vs generated, and per member */
  hid_t gres = group(g, "resolution");
  if (rc == 0 && gres >= 0)
    rc = h5u_attr_write_double(gres, "core_k", job->core_k);
  const char *vars[3] = {"et", "abs_eta", "mu"};
  for (int v = 0; v < 3 && rc == 0; v++) {
    hid_t gv = group(gres, vars[v]);
    double edges_all[2][EV_RES_BINS + 1];
    for (int j = 0; j < D && rc == 0; j++) {
      /* the binning column: et<p> / eta<p> of the target's photon p (its name's last digit) */
      const char *tn = d->tnames[j];
      char want[64];
      if (v == 2)
        snprintf(want, sizeof want, "mu");
      else
        snprintf(want, sizeof want, "%s%c", v == 0 ? "et" : "eta", tn[strlen(tn) - 1]);
      const int cj = find_name((char (*)[64])d->cnames, d->C, want);
      if (cj < 0) {
        for (int b = 0; b < EV_RES_BINS; b++) {
          for (int q = 0; q < 4; q++)
            res[((size_t)q * D + j) * EV_RES_BINS + b] = NAN;
          for (int k = 0; k < K; k++)
            resm[((size_t)k * D + j) * EV_RES_BINS + b] = NAN;
        }
        continue;
      }
      for (size_t i = 0; i < n; i++) {
        const double c = d->cond[i * d->C + cj];
        sorted[i] = v == 1 ? fabs(c) : c;
      }
      double *edges = edges_all[j < D / 2 ? 0 : 1];
      memcpy(buf, sorted, sizeof(double) * n);
      qsort(buf, n, sizeof(double), cmp_double);
      for (int b = 0; b <= EV_RES_BINS; b++)
        edges[b] = quantile_sorted(buf, n, (double)b / EV_RES_BINS);
      for (int b = 0; b < EV_RES_BINS; b++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
          if (sorted[i] >= edges[b] && (sorted[i] < edges[b + 1] || (b == EV_RES_BINS - 1 && sorted[i] <= edges[b + 1])))
            idx[m++] = i;
        double *o = res + (size_t)j * EV_RES_BINS + b;
        const size_t plane = (size_t)D * EV_RES_BINS;
        core_of(d->gen, D, j, idx, m, job->core_k, buf, &o[0], &o[plane]);
        core_of(d->ref, D, j, idx, m, job->core_k, buf, &o[2 * plane], &o[3 * plane]);
        for (int k = 0; k < K; k++) {
          size_t mm = 0;
          for (size_t q = 0; q < m; q++)
            if (d->member[idx[q]] == k)
              idm[mm++] = idx[q];
          double e;
          core_of(d->gen, D, j, idm, mm, job->core_k, buf,
                  &resm[((size_t)k * D + j) * EV_RES_BINS + b], &e);
        }
      }
      /* restore the sorted binning column for the next target */
    }
    hsize_t dims[2] = {(hsize_t)D, EV_RES_BINS}, dm[3] = {(hsize_t)K, (hsize_t)D, EV_RES_BINS};
    hsize_t de[2] = {2, EV_RES_BINS + 1};
    const size_t plane = (size_t)D * EV_RES_BINS;
    if (rc == 0) rc = put(gv, "edges", 2, de, &edges_all[0][0]); /* row p: photon p+1 (mu: same) */
    if (rc == 0) rc = put(gv, "sigma_gen", 2, dims, res);
    if (rc == 0) rc = put(gv, "sigma_gen_err", 2, dims, res + plane);
    if (rc == 0) rc = put(gv, "sigma_ref", 2, dims, res + 2 * plane);
    if (rc == 0) rc = put(gv, "sigma_ref_err", 2, dims, res + 3 * plane);
    if (rc == 0) rc = put(gv, "sigma_members", 3, dm, resm);
    H5Gclose(gv);
  }
  if (gres >= 0)
    H5Gclose(gres);
  /* 2. m_gg and pT_gg of the reco photons (massless): m^2 = 2 ET1 ET2 (cosh deta - cos dphi) */
  if (rc == 0 && d->has_reco) {
    const int e1 = find_name((char (*)[64])d->rnames, D, "et1"), h1 = find_name((char (*)[64])d->rnames, D, "eta1"),
              p1 = find_name((char (*)[64])d->rnames, D, "phi1"), e2 = find_name((char (*)[64])d->rnames, D, "et2"),
              h2 = find_name((char (*)[64])d->rnames, D, "eta2"), p2 = find_name((char (*)[64])d->rnames, D, "phi2");
    if (e1 >= 0 && h1 >= 0 && p1 >= 0 && e2 >= 0 && h2 >= 0 && p2 >= 0) {
      double *mg = malloc(sizeof(double) * n * 4);
      if (!mg) {
        rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
        goto out;
      }
      for (int s = 0; s < 2; s++) {
        const double *x = s ? d->rreco : d->greco;
        for (size_t i = 0; i < n; i++) {
          const double *r = x + i * D;
          const double m2 = 2 * r[e1] * r[e2] * (cosh(r[h1] - r[h2]) - cos(r[p1] - r[p2]));
          mg[(size_t)s * n + i] = sqrt(fmax(0, m2));
          const double px = r[e1] * cos(r[p1]) + r[e2] * cos(r[p2]);
          const double py = r[e1] * sin(r[p1]) + r[e2] * sin(r[p2]);
          mg[(size_t)(2 + s) * n + i] = sqrt(px * px + py * py);
        }
      }
      ev_col cm = {mg, mg + n, n, 1, d->member, K}, cp = {mg + 2 * n, mg + 3 * n, n, 1, d->member, K};
      rc = compare_1d(g, "m_gg", &cm, job->n_bins, 105, 145, NULL);
      if (rc == 0) rc = compare_1d(g, "pt_gg", &cp, job->n_bins, 0, 0, NULL);
      /* mean and SD of m_gg in [120, 130] GeV, with their errors */
      hid_t gm = rc == 0 ? H5Gopen2(g, "m_gg", H5P_DEFAULT) : -1;
      for (int s = 0; s < 2 && rc == 0; s++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
          const double v = mg[(size_t)s * n + i];
          if (v >= 120 && v <= 130)
            buf[m++] = v;
        }
        double mean, sd;
        mean_sd(buf, m, &mean, &sd);
        const char *tag = s ? "ref" : "gen";
        char nm[64];
        snprintf(nm, sizeof nm, "window_mean_%s", tag);
        rc = h5u_attr_write_double(gm, nm, mean);
        snprintf(nm, sizeof nm, "window_mean_err_%s", tag);
        if (rc == 0) rc = h5u_attr_write_double(gm, nm, sd / sqrt((double)m));
        snprintf(nm, sizeof nm, "window_sd_%s", tag);
        if (rc == 0) rc = h5u_attr_write_double(gm, nm, sd);
        snprintf(nm, sizeof nm, "window_sd_err_%s", tag);
        if (rc == 0) rc = h5u_attr_write_double(gm, nm, sd / sqrt(2.0 * (double)(m - 1)));
        snprintf(nm, sizeof nm, "window_events_%s", tag);
        if (rc == 0) rc = h5u_attr_write_double(gm, nm, (double)m);
      }
      if (gm >= 0)
        H5Gclose(gm);
      free(mg);
    }
  }
  /* 3. the response correlation matrices (Pearson), generated, reference and per member */
  if (rc == 0) {
    const int nm = K + 2;
    double *corr = malloc(sizeof(double) * (size_t)nm * D * D);
    double *mean = malloc(sizeof(double) * D), *sd = malloc(sizeof(double) * D);
    if (!corr || !mean || !sd) {
      free(corr); free(mean); free(sd);
      rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
      goto out;
    }
    for (int s = 0; s < nm; s++) {
      const double *x = s == 1 ? d->ref : d->gen;
      const int kk = s - 2; /* member, or -1 for all */
      size_t m = 0;
      for (int a = 0; a < D; a++)
        mean[a] = sd[a] = 0;
      for (size_t i = 0; i < n; i++)
        if (s < 2 || d->member[i] == kk) {
          m++;
          for (int a = 0; a < D; a++)
            mean[a] += x[i * D + a];
        }
      for (int a = 0; a < D; a++)
        mean[a] /= (double)(m ? m : 1);
      double *cv = corr + (size_t)s * D * D;
      memset(cv, 0, sizeof(double) * D * D);
      for (size_t i = 0; i < n; i++)
        if (s < 2 || d->member[i] == kk)
          for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
              cv[a * D + b] += (x[i * D + a] - mean[a]) * (x[i * D + b] - mean[b]);
      for (int a = 0; a < D; a++)
        sd[a] = sqrt(cv[a * D + a]);
      for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++)
          cv[a * D + b] = sd[a] > 0 && sd[b] > 0 ? cv[a * D + b] / (sd[a] * sd[b]) : NAN;
    }
    hsize_t dd[2] = {(hsize_t)D, (hsize_t)D}, dm[3] = {(hsize_t)K, (hsize_t)D, (hsize_t)D};
    rc = put(g, "corr_gen", 2, dd, corr);
    if (rc == 0) rc = put(g, "corr_ref", 2, dd, corr + (size_t)D * D);
    if (rc == 0) rc = put(g, "corr_members", 3, dm, corr + 2 * (size_t)D * D);
    free(corr); free(mean); free(sd);
  }
  /* 4. the asymmetric tail: fraction of events below the reference core mean - 3 core sigma,
   *    per target column (binomial errors) */
  if (rc == 0) {
    double *tail = malloc(sizeof(double) * (size_t)D * 4);
    if (!tail) {
      rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
      goto out;
    }
    for (int j = 0; j < D; j++) {
      for (size_t i = 0; i < n; i++)
        buf[i] = d->ref[i * D + j];
      cnf_core_fit fit;
      if (cnf_core_width(buf, n, job->core_k, &fit) < 0) {
        cnf_error_clear();
        for (int q = 0; q < 4; q++)
          tail[q * D + j] = NAN;
        continue;
      }
      const double cut = fit.mean - 3 * fit.sigma;
      for (int s = 0; s < 2; s++) {
        const double *x = s ? d->ref : d->gen;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
          m += x[i * D + j] < cut;
        const double f = (double)m / (double)n;
        tail[(2 * s) * D + j] = f;
        tail[(2 * s + 1) * D + j] = sqrt(f * (1 - f) / (double)n);
      }
    }
    rc = put1(g, "tail_fraction_gen", (size_t)D, tail);
    if (rc == 0) rc = put1(g, "tail_fraction_gen_err", (size_t)D, tail + D);
    if (rc == 0) rc = put1(g, "tail_fraction_ref", (size_t)D, tail + 2 * D);
    if (rc == 0) rc = put1(g, "tail_fraction_ref_err", (size_t)D, tail + 3 * D);
    free(tail);
  }
out:
  free(idx); free(idm); free(buf); free(sorted); free(res); free(resm);
  H5Gclose(g);
  return rc;
}

/* ---- the ParaFlow study's figures ------------------------------------------------------------ */
#define EV_N_SHAPES 6
static const char *const shape_names[EV_N_SHAPES] = {"e_total", "e_max1", "e_max2", "width",
                                                     "r9", "n_clusters"};

static int eval_images(hid_t file, const cnf_eval_job *job, const ev_data *d) {
  const int D = d->D, R = job->image_rows, W = job->image_cols, K = d->K;
  const size_t n = d->n;
  hid_t g = group(file, "images");
  if (g < 0)
    return cnf_error_set(CNF_ERR_IO, "evaluate: cannot create group /images");
  int rc = h5u_attr_write_double(g, "rows", R);
  if (rc == 0) rc = h5u_attr_write_double(g, "cols", W);
  /* average images and their relative difference */
  double *avg = calloc((size_t)D * 3, sizeof(double));
  double *shape = malloc(sizeof(double) * n * EV_N_SHAPES * 2); /* (2, n, S) */
  if (!avg || !shape) {
    free(avg); free(shape);
    H5Gclose(g);
    return cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
  }
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      avg[j] += d->gen[i * D + j] / (double)n;
      avg[D + j] += d->ref[i * D + j] / (double)n;
    }
  for (int j = 0; j < D; j++)
    avg[2 * D + j] = avg[D + j] != 0 ? (avg[j] - avg[D + j]) / avg[D + j] : NAN;
  hsize_t di[2] = {(hsize_t)R, (hsize_t)W};
  if (rc == 0) rc = put(g, "mean_gen", 2, di, avg);
  if (rc == 0) rc = put(g, "mean_ref", 2, di, avg + D);
  if (rc == 0) rc = put(g, "rel_diff", 2, di, avg + 2 * D);
  /* shower shapes of every image */
  cnf_shower_conf sc;
  cnf_shower_conf_default(&sc);
  if (rc == 0) rc = h5u_attr_write_double(g, "cluster_e_min", sc.cluster_e_min);
  if (rc == 0) rc = h5u_attr_write_double(g, "cluster_eps", sc.cluster_eps);
  if (rc == 0) rc = h5u_attr_write_double(g, "cluster_min_pts", sc.cluster_min_pts);
  for (int s = 0; s < 2 && rc == 0; s++)
    for (size_t i = 0; i < n && rc == 0; i++) {
      cnf_shower_shape sh;
      rc = cnf_shower_shape_compute((s ? d->ref : d->gen) + i * D, R, W, &sc, &sh);
      double *o = shape + ((size_t)s * n + i) * EV_N_SHAPES;
      o[0] = sh.e_total, o[1] = sh.e_max1, o[2] = sh.e_max2, o[3] = sh.width, o[4] = sh.r9;
      o[5] = sh.n_clusters;
    }
  hid_t gs = rc == 0 ? group(g, "shapes") : -1;
  /* conditions of the material bins: d (thickness) and b (distance), four equal-width bins over
   * their range in the file, as the study's figures */
  const int cd = find_name((char (*)[64])d->cnames, d->C, "thickness");
  const int cb = find_name((char (*)[64])d->cnames, d->C, "distance");
  double *vals = malloc(sizeof(double) * n * 2);
  int *member = malloc(sizeof(int) * n);
  int *bin_d = malloc(sizeof(int) * n), *bin_b = malloc(sizeof(int) * n);
  double ed[EV_MAT_BINS + 1], eb[EV_MAT_BINS + 1];
  if (!vals || !member || !bin_d || !bin_b)
    rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
  const int have_mat = cd >= 0 && cb >= 0;
  if (rc == 0 && have_mat) {
    const int cols[2] = {cd, cb};
    double *edges[2] = {ed, eb};
    int *bins[2] = {bin_d, bin_b};
    for (int q = 0; q < 2; q++) {
      double lo = INFINITY, hi = -INFINITY;
      for (size_t i = 0; i < n; i++) {
        const double v = d->cond[i * d->C + cols[q]];
        lo = fmin(lo, v);
        hi = fmax(hi, v);
      }
      for (int b = 0; b <= EV_MAT_BINS; b++)
        edges[q][b] = lo + (hi - lo) * b / EV_MAT_BINS;
      for (size_t i = 0; i < n; i++) {
        const double v = d->cond[i * d->C + cols[q]];
        int b = hi > lo ? (int)((v - lo) / (hi - lo) * EV_MAT_BINS) : 0;
        bins[q][i] = b < 0 ? 0 : b >= EV_MAT_BINS ? EV_MAT_BINS - 1 : b;
      }
    }
    if (gs >= 0) rc = put1(gs, "thickness_edges", EV_MAT_BINS + 1, ed);
    if (rc == 0) rc = put1(gs, "distance_edges", EV_MAT_BINS + 1, eb);
  }
  for (int q = 0; q < EV_N_SHAPES && rc == 0; q++) {
    cnf_watchdog_beat("an evaluate shower shape");
    for (size_t i = 0; i < n; i++) {
      vals[i] = shape[i * EV_N_SHAPES + q];
      vals[n + i] = shape[(n + i) * EV_N_SHAPES + q];
    }
    double lo = 0, hi = 0;
    int nb = job->n_bins;
    if (q == 5) { /* cluster counts: one bin per integer */
      double mx = 0;
      for (size_t i = 0; i < 2 * n; i++)
        mx = fmax(mx, vals[i]);
      mx = fmin(mx, 30);
      lo = -0.5;
      hi = mx + 0.5;
      nb = (int)mx + 1;
    }
    ev_col c = {vals, vals + n, n, 1, d->member, K};
    rc = compare_1d(gs, shape_names[q], &c, nb, lo, hi, NULL);
    if (rc < 0 || !have_mat)
      continue;
    /* per material bin: the same comparison on the bin's events, and the (d, b) grid means */
    hid_t gq = H5Gopen2(gs, shape_names[q], H5P_DEFAULT);
    const int *bins[2] = {bin_d, bin_b};
    const char *bn[2] = {"thickness", "distance"};
    double *sub = malloc(sizeof(double) * 2 * n);
    for (int a = 0; a < 2 && rc == 0; a++)
      for (int b = 0; b < EV_MAT_BINS && rc == 0; b++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
          if (bins[a][i] == b) {
            sub[m] = vals[i];
            sub[n + m] = vals[n + i];
            member[m] = d->member[i];
            m++;
          }
        if (m < 8)
          continue;
        /* the bin's comparison shares the inclusive range, so the panels line up */
        hid_t ge = H5Dopen2(gq, "edges", H5P_DEFAULT);
        double *edges = malloc(sizeof(double) * (nb + 1));
        H5Dread(ge, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, edges);
        H5Dclose(ge);
        /* compact the generated values next to the reference ones */
        memmove(sub + m, sub + n, sizeof(double) * m);
        ev_col cb2 = {sub, sub + m, m, 1, member, K};
        char nm[64];
        snprintf(nm, sizeof nm, "%s_bin%d", bn[a], b);
        rc = compare_1d(gq, nm, &cb2, nb, edges[0], edges[nb], NULL);
        free(edges);
        memmove(sub + n, sub + m, sizeof(double) * m);
      }
    double grid[2][EV_MAT_BINS * EV_MAT_BINS], cnt[EV_MAT_BINS * EV_MAT_BINS];
    memset(grid, 0, sizeof grid);
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++) {
      const int cell = bin_d[i] * EV_MAT_BINS + bin_b[i];
      grid[0][cell] += vals[i];
      grid[1][cell] += vals[n + i];
      cnt[cell] += 1;
    }
    for (int cell = 0; cell < EV_MAT_BINS * EV_MAT_BINS; cell++)
      for (int s = 0; s < 2; s++)
        grid[s][cell] = cnt[cell] > 0 ? grid[s][cell] / cnt[cell] : NAN;
    hsize_t dg[2] = {EV_MAT_BINS, EV_MAT_BINS};
    if (rc == 0) rc = put(gq, "grid_mean_gen", 2, dg, grid[0]); /* [d bin][b bin] */
    if (rc == 0) rc = put(gq, "grid_mean_ref", 2, dg, grid[1]);
    if (rc == 0) rc = put(gq, "grid_events", 2, dg, cnt);
    free(sub);
    H5Gclose(gq);
  }
  if (gs >= 0)
    H5Gclose(gs);
  free(vals); free(member); free(bin_d); free(bin_b); free(avg); free(shape);
  H5Gclose(g);
  return rc;
}

/* ---- the classifier's features --------------------------------------------------------------- */
static int eval_classifier(hid_t file, const cnf_eval_job *job, const ev_data *d, int images,
                           cnf_eval_summary *sum) {
  const int D = d->D, C = d->C, F = D + C;
  const size_t n = d->n;
  double *fg = malloc(sizeof(double) * n * F), *fr = malloc(sizeof(double) * n * F);
  if (!fg || !fr) {
    free(fg); free(fr);
    return cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory for the classifier features");
  }
  /* targets (images: log10(1 + E/MeV), the scale on which showers differ) and conditions */
  for (size_t i = 0; i < n; i++) {
    for (int j = 0; j < D; j++) {
      const double a = d->gen[i * D + j], b = d->ref[i * D + j];
      fg[i * F + j] = images ? log10(1 + fmax(a, 0)) : a;
      fr[i * F + j] = images ? log10(1 + fmax(b, 0)) : b;
    }
    for (int j = 0; j < C; j++)
      fg[i * F + D + j] = fr[i * F + D + j] = d->cond[i * C + j];
  }
  cnf_classifier_result r;
  int rc = cnf_classifier_test(fg, n, fr, n, F, &job->clf, &r);
  free(fg);
  free(fr);
  if (rc < 0)
    return rc;
  hid_t g = group(file, "classifier");
  rc = h5u_attr_write_double(g, "auc", r.auc);
  if (rc == 0) rc = h5u_attr_write_double(g, "auc_err", r.auc_err);
  if (rc == 0) rc = h5u_attr_write_double(g, "w_mean", r.w_mean);
  if (rc == 0) rc = h5u_attr_write_double(g, "w_std", r.w_std);
  if (rc == 0) rc = h5u_attr_write_double(g, "w_max", r.w_max);
  if (rc == 0) rc = h5u_attr_write_double(g, "n_train", (double)r.n_train);
  if (rc == 0) rc = h5u_attr_write_double(g, "n_test", (double)r.n_test);
  if (rc == 0) rc = h5u_attr_write_double(g, "hidden", job->clf.hidden);
  if (rc == 0) rc = h5u_attr_write_double(g, "n_hidden", job->clf.n_hidden);
  if (rc == 0) rc = h5u_attr_write_double(g, "epochs", job->clf.epochs);
  if (rc == 0) rc = h5u_attr_write_string(g, "features", images ? "log10(1 + pixel/MeV), conditions"
                                                  : "targets, conditions");
  H5Gclose(g);
  sum->auc = r.auc;
  sum->auc_err = r.auc_err;
  return rc;
}

/* metrics.h5's size from what will be written: per 1-D comparison its edges, 2 densities, 2
 * errors and K member densities of at most max(n_bins, 31) bins (31: the cluster counts) plus
 * ~8 KiB of HDF5 objects (a group, 6 datasets, 9 attributes); the images' averages and (d, b)
 * grids, the hgg resolution, correlation and tail tables; plus the margin the other writers
 * use.  An upper bound rather than exact: the point is to refuse a disk that cannot hold it. */
static uint64_t eval_file_bytes(const cnf_eval_job *job, const ev_data *d, int images) {
  const uint64_t D = (uint64_t)d->D, K = (uint64_t)d->K, R = EV_RES_BINS;
  const uint64_t nb = (uint64_t)(job->n_bins > 31 ? job->n_bins : 31);
  uint64_t n_cmp = images ? EV_N_SHAPES * (1 + 2 * EV_MAT_BINS) : D;
  uint64_t vals = 0, objects = 4; /* other groups and datasets: the root, marginals, classifier */
  if (images) { /* 3 averages, the groups, 2 edges, 3 grids per shape */
    vals += 3 * D + EV_N_SHAPES * 3 * EV_MAT_BINS * EV_MAT_BINS + 2 * (EV_MAT_BINS + 1);
    objects += 3 + 2 + 2 + EV_N_SHAPES * 3;
  }
  if (d->has_reco) { /* resolution (3 groups of 6), correlations, tails, m_gg and pt_gg */
    n_cmp += 2;
    vals += 3 * (2 * (R + 1) + 4 * D * R + K * D * R) + (2 + K) * D * D + 4 * D;
    objects += 3 * 7 + 3 + 4 + 4;
  }
  vals += n_cmp * ((nb + 1) + (4 + K) * nb);
  uint64_t need = vals * sizeof(double) + strlen(job->samples);
  need += need / 100 + (256u << 10) + (n_cmp + objects) * (8u << 10);
  return need;
}

static int eval_rank0(const cnf_eval_job *job, cnf_eval_summary *sum) {
  ev_data d;
  int rc = ev_read(job, &d);
  if (rc < 0) {
    ev_data_free(&d);
    return rc;
  }
  const int images = d.D == job->image_rows * job->image_cols &&
                     (strcmp(d.prep, "paraflow") == 0 || d.D == 128);
  snprintf(sum->kind, sizeof sum->kind, "%s", d.has_reco ? "hgg" : images ? "images" : "generic");
  sum->events = d.n;
  sum->members = d.K;
  sum->dims = d.D;
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", job->out);
  /* before the temporary file exists (and before the seconds of computing the metrics): a full
   * disk leaves the previous metrics file and nothing else */
  rc = cnf_check_free_space(job->out, eval_file_bytes(job, &d, images));
  if (rc < 0) {
    ev_data_free(&d);
    return rc;
  }
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    ev_data_free(&d);
    return cnf_error_set(CNF_ERR_IO, "%s: cannot create the output file", tmp);
  }
  rc = h5u_attr_write_string(file, "format", "cnflow-metrics");
  if (rc == 0) rc = h5u_attr_write_double(file, "format_version", 1);
  if (rc == 0) rc = h5u_attr_write_string(file, "samples", job->samples);
  if (rc == 0) rc = h5u_attr_write_string(file, "kind", sum->kind);
  if (rc == 0) rc = h5u_attr_write_double(file, "n_events", (double)d.n);
  if (rc == 0) rc = h5u_attr_write_double(file, "members", d.K);
  if (rc == 0) rc = h5u_attr_write_string(file, "git_rev", cnf_git_rev());
  /* per-variable marginals: every target column (images: the shapes stand in for pixels) */
  double w1_sum = 0, sep_sum = 0;
  int n_marg = 0;
  hid_t gm = rc == 0 ? group(file, "marginals") : -1;
  if (!images)
    for (int j = 0; j < d.D && rc == 0; j++) {
      ev_col c = {d.gen + j, d.ref + j, d.n, (size_t)d.D, d.member, d.K};
      double o[3];
      rc = compare_1d(gm, d.tnames[j], &c, job->n_bins, 0, 0, o);
      w1_sum += o[0];
      sep_sum += o[1];
      n_marg++;
    }
  else
    for (int j = 0; j < d.D && rc == 0; j++) { /* pixels: the distances only (no histograms) */
      double *a = malloc(sizeof(double) * d.n * 2);
      if (!a) {
        rc = cnf_error_set(CNF_ERR_NOMEM, "evaluate: out of memory");
        break;
      }
      for (size_t i = 0; i < d.n; i++) {
        a[i] = d.gen[i * d.D + j];
        a[d.n + i] = d.ref[i * d.D + j];
      }
      w1_sum += cnf_w1_1d(a, d.n, a + d.n, d.n);
      n_marg++;
      free(a);
    }
  if (gm >= 0)
    H5Gclose(gm);
  sum->w1_mean = n_marg ? w1_sum / n_marg : NAN;
  sum->sep_mean = n_marg && !images ? sep_sum / n_marg : NAN;
  if (rc == 0) rc = h5u_attr_write_double(file, "w1_mean", sum->w1_mean);
  if (rc == 0) rc = h5u_attr_write_double(file, "sep_mean", sum->sep_mean);
  if (rc == 0 && d.has_reco)
    rc = eval_cnf(file, job, &d, sum);
  if (rc == 0 && images)
    rc = eval_images(file, job, &d);
  sum->auc = sum->auc_err = NAN;
  if (rc == 0 && job->classifier)
    rc = eval_classifier(file, job, &d, images, sum);
  if (rc == 0) rc = h5u_attr_write_double(file, "auc", sum->auc);
  if (rc == 0) rc = h5u_attr_write_double(file, "auc_err", sum->auc_err);
  if (H5Fclose(file) < 0 && rc == 0)
    rc = cnf_error_set(CNF_ERR_IO, "%s: cannot close (full disk?)", tmp);
  ev_data_free(&d);
  if (rc == 0 && rename(tmp, job->out) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "cannot rename %s to %s", tmp, job->out);
  if (rc < 0)
    remove(tmp);
  return rc;
}

int cnf_eval_file(const cnf_eval_job *job, MPI_Comm comm, cnf_eval_summary *sum) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  memset(sum, 0, sizeof *sum);
  const double t0 = cnf_time_now();
  int rc = 0;
  if (rank == 0) {
    rc = cnf_mkdir_parent(job->out);
    if (rc == 0)
      rc = eval_rank0(job, sum);
  }
  rc = cnf_sync_status(comm, rc);
  MPI_Bcast(sum, (int)sizeof *sum, MPI_BYTE, 0, comm);
  sum->seconds = cnf_time_now() - t0;
  sum->events_per_s = sum->seconds > 0 ? (double)sum->events / sum->seconds : 0;
  return rc;
}
