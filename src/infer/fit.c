/* Joint maximum-likelihood fit of condition columns shared by a set of showers (ParaFlow's
 * upstream material: thickness d and distance b), include/cnflow/infer.h.
 *
 *   log L(theta) = sum_i log( (1/K) sum_k p_k(x_i | c_i with c_i[j_p] = theta_p) )
 *
 * The showers are spread over the ranks of comm; every evaluation of log L is one flow pass
 * over each rank's showers and one MPI_Allreduce, so all ranks see the same numbers and drive
 * identical (deterministic) TAO iterations.  A rank that fails still joins the reduction with a
 * failure count, so no rank is left waiting in a collective. */
#include "cnflow/data.h"
#include "cnflow/infer.h"
#include "cnflow/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cnf_fit_conf_default(cnf_fit_conf *conf) {
  memset(conf, 0, sizeof *conf);
  conf->n_grid = 21;
  conf->refine = 1;
  conf->block = 256;
}

struct fit_eval {
  cnf_flow *const *members;
  int K, D, C, P, block;
  const int *jc;      /* (P) condition indices */
  MPI_Comm comm;
  int n;              /* local showers */
  const cnf_real *x, *c;
  cnf_real *cb;       /* (block, C) conditions with theta written in */
  cnf_real *lp;       /* (K, block) log p */
  cnf_real *dc;       /* (K, block, C) d log p / dc */
  long n_evals;
};

/* log L(theta) summed over every rank's showers and (grad != NULL) its gradient.  COLLECTIVE. */
static int fit_logl(struct fit_eval *e, const double *theta, double *logl, double *grad) {
  const int K = e->K, C = e->C, P = e->P, B = e->block;
  double acc[1 + CNF_FIT_MAX_PAR + 1]; /* log L, gradient, failures */
  memset(acc, 0, sizeof acc);
  int rc = 0;
  for (int i0 = 0; rc == 0 && i0 < e->n; i0 += B) {
    const int m = e->n - i0 < B ? e->n - i0 : B;
    memcpy(e->cb, e->c + (size_t)i0 * C, sizeof(cnf_real) * (size_t)m * C);
    for (int i = 0; i < m; i++)
      for (int p = 0; p < P; p++)
        e->cb[(size_t)i * C + e->jc[p]] = (cnf_real)theta[p];
    const cnf_real *xb = e->x + (size_t)i0 * e->D;
    for (int k = 0; rc == 0 && k < K; k++) {
      cnf_real *lpk = e->lp + (size_t)k * B;
      if (grad) {
        /* d log p_i / dc_i row by row, no parameter gradients */
        rc = cnf_flow_cond_gradient(e->members[k], m, xb, e->cb, lpk, e->dc + (size_t)k * B * C);
      } else {
        rc = cnf_flow_log_prob(e->members[k], m, xb, e->cb, lpk);
      }
    }
    for (int i = 0; rc == 0 && i < m; i++) {
      /* log mean_k exp(lp_k) and the members' softmax weights */
      double mx = -INFINITY;
      for (int k = 0; k < K; k++)
        if ((double)e->lp[(size_t)k * B + i] > mx)
          mx = (double)e->lp[(size_t)k * B + i];
      if (!isfinite(mx)) {
        acc[0] = -INFINITY;
        continue;
      }
      double s = 0;
      for (int k = 0; k < K; k++)
        s += exp((double)e->lp[(size_t)k * B + i] - mx);
      acc[0] += mx + log(s) - log((double)K);
      if (grad)
        for (int k = 0; k < K; k++) {
          const double w = exp((double)e->lp[(size_t)k * B + i] - mx) / s;
          const cnf_real *dck = e->dc + ((size_t)k * B + i) * C;
          for (int p = 0; p < P; p++)
            acc[1 + p] += w * (double)dck[e->jc[p]];
        }
    }
  }
  acc[1 + P] = rc < 0 ? 1.0 : 0.0;
  MPI_Allreduce(MPI_IN_PLACE, acc, 2 + P, MPI_DOUBLE, MPI_SUM, e->comm);
  e->n_evals++;
  if (rc < 0)
    return rc;
  if (acc[1 + P] > 0)
    return cnf_error_set(CNF_ERR_NUMERIC, "fit: the flow evaluation failed on another rank");
  *logl = acc[0];
  if (grad)
    for (int p = 0; p < P; p++)
      grad[p] = acc[1 + p];
  return 0;
}

/* TAO minimises -log L */
static int neg_logl_fg(void *ctx, int n, const double *theta, double *f, double *g) {
  double ll = 0;
  CNF_CALL(fit_logl(ctx, theta, &ll, g));
  *f = -ll;
  for (int p = 0; p < n; p++)
    g[p] = -g[p];
  return 0;
}

/* In-place inverse of a symmetric positive-definite P x P matrix by Cholesky; 0 or -1 if it is
 * not positive definite. */
static int spd_inverse(int P, double *a) {
  double l[CNF_FIT_MAX_PAR * CNF_FIT_MAX_PAR] = {0}, inv[CNF_FIT_MAX_PAR * CNF_FIT_MAX_PAR];
  for (int i = 0; i < P; i++)
    for (int j = 0; j <= i; j++) {
      double s = a[i * P + j];
      for (int k = 0; k < j; k++)
        s -= l[i * P + k] * l[j * P + k];
      if (i == j) {
        if (!(s > 0))
          return -1;
        l[i * P + i] = sqrt(s);
      } else {
        l[i * P + j] = s / l[j * P + j];
      }
    }
  for (int col = 0; col < P; col++) { /* solve L L^T x = e_col */
    double y[CNF_FIT_MAX_PAR];
    for (int i = 0; i < P; i++) {
      double s = i == col ? 1.0 : 0.0;
      for (int k = 0; k < i; k++)
        s -= l[i * P + k] * y[k];
      y[i] = s / l[i * P + i];
    }
    for (int i = P - 1; i >= 0; i--) {
      double s = y[i];
      for (int k = i + 1; k < P; k++)
        s -= l[k * P + i] * inv[k * P + col];
      inv[i * P + col] = s / l[i * P + i];
    }
  }
  memcpy(a, inv, sizeof(double) * P * P);
  return 0;
}

int cnf_fit_joint(cnf_flow *const *members, int K, const cnf_fit_conf *conf, MPI_Comm comm,
                  int n, const cnf_real *x, const cnf_real *c, double *grid_logl,
                  cnf_fit_result *res) {
  memset(res, 0, sizeof *res);
  const int P = conf->n_par, G = conf->n_grid;
  int rc = 0;
  if (K < 1 || !members)
    rc = cnf_error_set(CNF_ERR_ARG, "fit: no ensemble members");
  else if (P < 1 || P > CNF_FIT_MAX_PAR)
    rc = cnf_error_set(CNF_ERR_ARG, "fit: %d fitted conditions (1..%d)", P, CNF_FIT_MAX_PAR);
  else if (G < 3 || pow((double)G, (double)P) > 1e6)
    rc = cnf_error_set(CNF_ERR_ARG, "fit: %d grid points per axis (at least 3, at most 1e6 in "
                       "all)", G);
  else if (conf->block < 1)
    rc = cnf_error_set(CNF_ERR_ARG, "fit: batch of %d showers", conf->block);
  const int D = rc == 0 ? cnf_flow_dim(members[0]) : 0;
  const int C = rc == 0 ? cnf_flow_cond_dim(members[0]) : 0;
  double *own_grid = NULL;
  for (int k = 1; rc == 0 && k < K; k++)
    if (cnf_flow_dim(members[k]) != D || cnf_flow_cond_dim(members[k]) != C)
      rc = cnf_error_set(CNF_ERR_ARG, "fit: member %d has %d targets / %d conditions, member 0 "
                         "%d / %d", k, cnf_flow_dim(members[k]), cnf_flow_cond_dim(members[k]),
                         D, C);
  for (int p = 0; rc == 0 && p < P; p++) {
    if (conf->cond_index[p] < 0 || conf->cond_index[p] >= C)
      rc = cnf_error_set(CNF_ERR_ARG, "fit: condition %d to fit, the flows have %d",
                         conf->cond_index[p], C);
    else if (!(conf->lo[p] < conf->hi[p]) || !isfinite(conf->lo[p]) || !isfinite(conf->hi[p]))
      rc = cnf_error_set(CNF_ERR_ARG, "fit: range [%g, %g] of condition %d", conf->lo[p],
                         conf->hi[p], conf->cond_index[p]);
    for (int q = 0; rc == 0 && q < p; q++)
      if (conf->cond_index[q] == conf->cond_index[p])
        rc = cnf_error_set(CNF_ERR_ARG, "fit: condition %d fitted twice", conf->cond_index[p]);
  }
  struct fit_eval e = {members, K, D, C, P, conf->block, conf->cond_index, comm, n, x, c,
                       NULL, NULL, NULL, 0};
  if (rc == 0) {
    const size_t B = (size_t)conf->block;
    e.cb = cnf_malloc(sizeof(cnf_real) * B * C);
    e.lp = cnf_malloc(sizeof(cnf_real) * B * K);
    e.dc = cnf_malloc(sizeof(cnf_real) * B * K * C);
    if (!e.cb || !e.lp || !e.dc)
      rc = CNF_ERR_NOMEM;
    if (rc == 0 && !grid_logl) /* the curvature estimates below need the grid values */
      grid_logl = own_grid = cnf_malloc(sizeof(double) * (size_t)pow((double)G, (double)P));
    if (rc == 0 && !grid_logl)
      rc = CNF_ERR_NOMEM;
  }
  rc = cnf_sync_status(comm, rc);
  if (rc < 0)
    goto out;
  long long n_all = n;
  MPI_Allreduce(MPI_IN_PLACE, &n_all, 1, MPI_LONG_LONG, MPI_SUM, comm);
  res->n_showers = n_all;

  /* 1. the grid over the whole box: the basin of the maximum, never a window from the truth */
  long total = 1;
  for (int p = 0; p < P; p++)
    total *= G;
  long best = -1;
  double best_ll = -INFINITY, theta[CNF_FIT_MAX_PAR];
  for (long g = 0; g < total; g++) {
    long r = g;
    for (int p = P - 1; p >= 0; p--) { /* last axis fastest */
      const int ip = (int)(r % G);
      r /= G;
      theta[p] = conf->lo[p] + (conf->hi[p] - conf->lo[p]) * ip / (G - 1);
    }
    double ll = 0;
    CNF_CALL_GOTO(rc, out, fit_logl(&e, theta, &ll, NULL));
    grid_logl[g] = ll;
    if (isfinite(ll) && ll > best_ll) {
      best_ll = ll;
      best = g;
    }
  }
  if (best < 0) {
    rc = cnf_error_set(CNF_ERR_NUMERIC, "fit: log L is not finite anywhere on the grid");
    goto out;
  }
  int ib[CNF_FIT_MAX_PAR];
  {
    long r = best;
    for (int p = P - 1; p >= 0; p--) {
      ib[p] = (int)(r % G);
      r /= G;
      theta[p] = conf->lo[p] + (conf->hi[p] - conf->lo[p]) * ib[p] / (G - 1);
    }
  }
  /* curvature of -log L along each axis from the grid's second difference at the best point
   * (1 / step^2 where the point is on the edge or the difference is not concave) */
  double step[CNF_FIT_MAX_PAR], curv[CNF_FIT_MAX_PAR];
  for (int p = 0; p < P; p++) {
    step[p] = (conf->hi[p] - conf->lo[p]) / (G - 1);
    curv[p] = 1.0 / (step[p] * step[p]);
    if (ib[p] > 0 && ib[p] < G - 1) {
      long stride = 1;
      for (int q = P - 1; q > p; q--)
        stride *= G;
      const double a = grid_logl[best - stride], b = grid_logl[best + stride];
      const double c2 = -(a - 2.0 * best_ll + b) / (step[p] * step[p]);
      if (c2 > 0 && isfinite(c2))
        curv[p] = c2;
    }
  }
  memcpy(res->best, theta, sizeof(double) * P);
  res->logl_max = best_ll;

  /* 2. TAO (BLMVM) between the grid neighbours of the best point, exact gradient */
  if (conf->refine) {
    double lo[CNF_FIT_MAX_PAR], hi[CNF_FIT_MAX_PAR], t[CNF_FIT_MAX_PAR], fmin = -best_ll;
    double gatol = INFINITY;
    for (int p = 0; p < P; p++) {
      lo[p] = ib[p] > 0 ? theta[p] - step[p] : theta[p];
      hi[p] = ib[p] < G - 1 ? theta[p] + step[p] : theta[p];
      t[p] = theta[p];
      /* gradient tolerance: stop when theta is within 1e-3 of the likelihood width
       * 1/sqrt(curvature) of the maximum, |g| ~ curvature * d theta */
      const double g_tol = 1e-3 * sqrt(curv[p]);
      if (g_tol < gatol)
        gatol = g_tol;
    }
    cnf_tao_conf tc = {.type = NULL, .prefix = "fit_", .gatol = gatol, .grtol = 0,
                       .max_it = 200};
    int reason = 0;
    CNF_CALL_GOTO(rc, out, cnf_tao_minimize_bounded(&tc, P, neg_logl_fg, &e, lo, hi, t, &fmin,
                                                    &reason));
    if (-fmin >= best_ll) { /* never worse than the grid point */
      memcpy(res->best, t, sizeof(double) * P);
      res->logl_max = -fmin;
    }
    res->tao_reason = reason;
  }
  for (int p = 0; p < P; p++) {
    const double tol = 1e-6 * (conf->hi[p] - conf->lo[p]);
    if (res->best[p] <= conf->lo[p] + tol || res->best[p] >= conf->hi[p] - tol)
      res->flags |= CNF_FIT_AT_BOUNDARY;
  }

  /* 3. covariance: inverse of the Hessian of -log L, central differences of the exact
   * gradient with steps of a fifth of the likelihood width (at most half a grid step) */
  {
    double H[CNF_FIT_MAX_PAR * CNF_FIT_MAX_PAR], gp[CNF_FIT_MAX_PAR], gm[CNF_FIT_MAX_PAR];
    double t[CNF_FIT_MAX_PAR], ll = 0;
    for (int p = 0; p < P; p++) {
      double h = 0.2 / sqrt(curv[p]);
      if (h > 0.5 * step[p])
        h = 0.5 * step[p];
      memcpy(t, res->best, sizeof(double) * P);
      t[p] = res->best[p] + h;
      CNF_CALL_GOTO(rc, out, fit_logl(&e, t, &ll, gp));
      t[p] = res->best[p] - h;
      CNF_CALL_GOTO(rc, out, fit_logl(&e, t, &ll, gm));
      for (int q = 0; q < P; q++)
        H[q * P + p] = -(gp[q] - gm[q]) / (2.0 * h);
    }
    for (int p = 0; p < P; p++)
      for (int q = 0; q < p; q++)
        H[p * P + q] = H[q * P + p] = 0.5 * (H[p * P + q] + H[q * P + p]);
    memcpy(res->hessian, H, sizeof(double) * P * P);
    if (spd_inverse(P, H) == 0) {
      memcpy(res->cov, H, sizeof(double) * P * P);
      for (int p = 0; p < P; p++)
        res->sigma[p] = sqrt(H[p * P + p]);
    } else {
      res->flags |= CNF_FIT_NOT_CONVEX;
      for (int p = 0; p < P; p++)
        res->sigma[p] = NAN;
      for (int q = 0; q < P * P; q++)
        res->cov[q] = NAN;
    }
  }
  res->n_evals = e.n_evals;
out:
  free(own_grid);
  free(e.cb);
  free(e.lp);
  free(e.dc);
  return rc;
}
