/* Per-shower likelihood scans over an ensemble (include/cnflow/infer.h): grid over the whole
 * prior range in large batched flow evaluations, TAO refinement with the exact condition
 * gradient, Brent roots of -2 delta log L = 1 for the 68 % interval. */
#include "cnflow/infer.h"
#include "cnflow/optim.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One shower's (or one interval side's) lockstep iteration, in t = ln E */
typedef struct lockstep_state {
  double a, b;        /* bracket: maximum: d log L/dt > 0 at a, < 0 at b; root: h(a), h(b) of
                       * opposite signs */
  double ha, hb;      /* root search: h at the bracket ends (Illinois-scaled) */
  double t, tp, gp;   /* current point; previous point and its derivative (maximum search) */
  double t_best, f_best, kappa; /* best point seen, its log L; curvature -f''(t) (> 0 or 0) */
  int shower, side, it, last; /* side: -1 lower / +1 upper end; last: end kept last (Illinois) */
  int best;                   /* the shower's best grid point (maximum search) */
  int done;
} lockstep_state;

struct cnf_scanner {
  cnf_flow *const *members;
  int K, D, C, max_showers;
  cnf_scan_conf conf;
  double *grid;        /* (G) log-spaced energies */
  cnf_real *xb, *cb;   /* (max_showers * G, D), (max_showers * G, C) batch of (shower, E) rows */
  cnf_real *lp;        /* (max_showers * G) one member's log p */
  double *logl;        /* (max_showers * G) ensemble log L */
  cnf_real *dcb;       /* (2 max_showers, C) condition gradients d log p / dc */
  double *pt, *pll, *pdll; /* (2 max_showers) lockstep points (ln E), their log L, d log L/d ln E */
  int *pshower;            /* (2 max_showers) the shower of each lockstep point */
  struct lockstep_state *st; /* (3 max_showers) solver states: maxima, then interval ends */
  uint64_t n_logp, n_grad;   /* rows evaluated per member: log p only, log p + gradient */
  double *lpk, *dk;    /* (K) per-member log p and d log p / dE at one point */
  cnf_real x1[256], c1[64], dc1[64]; /* one shower's row for the point evaluations */
};

void cnf_scan_conf_default(cnf_scan_conf *conf) {
  memset(conf, 0, sizeof *conf);
  conf->e_min = 1.0;
  conf->e_max = 100.0;
  conf->n_grid = 48;
  conf->cond_index = 0;
  /* a float flow's log-density carries ~1e-7 relative rounding noise, so E is only defined to
   * ~1e-5 relative by it: asking for more makes TAO and Brent iterate on noise */
  conf->rel_tol = CNF_REAL_IS_DOUBLE ? 1e-7 : 1e-5;
  conf->refine = 1;
  conf->method = CNF_SCAN_LOCKSTEP;
}

void cnf_scanner_free(cnf_scanner **ps) {
  if (!ps || !*ps)
    return;
  cnf_scanner *s = *ps;
  free(s->grid);
  free(s->xb);
  free(s->cb);
  free(s->lp);
  free(s->logl);
  free(s->lpk);
  free(s->dk);
  free(s->dcb);
  free(s->pt);
  free(s->pll);
  free(s->pdll);
  free(s->pshower);
  free(s->st);
  free(s);
  *ps = NULL;
}

int cnf_scanner_create(cnf_flow *const *members, int K, const cnf_scan_conf *conf,
                       int max_showers, cnf_scanner **out) {
  *out = NULL;
  if (K < 1 || !members)
    return cnf_error_set(CNF_ERR_ARG, "scan: no ensemble members");
  if (!(conf->e_min > 0) || !(conf->e_max > conf->e_min) || !isfinite(conf->e_max))
    return cnf_error_set(CNF_ERR_ARG, "scan: prior range [%g, %g] must satisfy 0 < min < max",
                         conf->e_min, conf->e_max);
  if (conf->n_grid < 3)
    return cnf_error_set(CNF_ERR_ARG, "scan: %d grid points (at least 3)", conf->n_grid);
  if (!(conf->rel_tol > 0 && conf->rel_tol < 0.1))
    return cnf_error_set(CNF_ERR_ARG, "scan: relative tolerance %g outside (0, 0.1)",
                         conf->rel_tol);
  const int D = cnf_flow_dim(members[0]), C = cnf_flow_cond_dim(members[0]);
  for (int k = 1; k < K; k++)
    if (cnf_flow_dim(members[k]) != D || cnf_flow_cond_dim(members[k]) != C)
      return cnf_error_set(CNF_ERR_ARG, "scan: member %d has %d targets / %d conditions, member "
                           "0 %d / %d", k, cnf_flow_dim(members[k]),
                           cnf_flow_cond_dim(members[k]), D, C);
  if (C < 1 || conf->cond_index < 0 || conf->cond_index >= C)
    return cnf_error_set(CNF_ERR_ARG, "scan: condition %d to scan, the flows have %d",
                         conf->cond_index, C);
  if (D > 256 || C > 64)
    return cnf_error_set(CNF_ERR_ARG, "scan: %d targets / %d conditions (at most 256 / 64)", D, C);
  if (max_showers < 1)
    return cnf_error_set(CNF_ERR_ARG, "scan: batch of %d showers", max_showers);
  if (conf->method != CNF_SCAN_LOCKSTEP && conf->method != CNF_SCAN_TAO)
    return cnf_error_set(CNF_ERR_ARG, "scan: unknown refinement method %d", conf->method);
  cnf_scanner *s = cnf_calloc(1, sizeof *s);
  if (!s)
    return CNF_ERR_NOMEM;
  const size_t G = (size_t)conf->n_grid, rows = (size_t)max_showers * G;
  s->members = members;
  s->K = K;
  s->D = D;
  s->C = C;
  s->max_showers = max_showers;
  s->conf = *conf;
  s->grid = cnf_malloc(sizeof(double) * G);
  s->xb = cnf_malloc(sizeof(cnf_real) * rows * D);
  s->cb = cnf_malloc(sizeof(cnf_real) * rows * C);
  s->lp = cnf_malloc(sizeof(cnf_real) * rows);
  s->logl = cnf_malloc(sizeof(double) * rows);
  s->lpk = cnf_malloc(sizeof(double) * K);
  s->dk = cnf_malloc(sizeof(double) * K);
  const size_t P = 2 * (size_t)max_showers; /* lockstep points: both interval sides at once */
  s->dcb = cnf_malloc(sizeof(cnf_real) * P * C);
  s->pt = cnf_malloc(sizeof(double) * P);
  s->pll = cnf_malloc(sizeof(double) * P);
  s->pdll = cnf_malloc(sizeof(double) * P);
  s->pshower = cnf_malloc(sizeof(int) * P);
  s->st = cnf_malloc(sizeof(*s->st) * 3 * (size_t)max_showers);
  if (!s->grid || !s->xb || !s->cb || !s->lp || !s->logl || !s->lpk || !s->dk || !s->dcb ||
      !s->pt || !s->pll || !s->pdll || !s->pshower || !s->st) {
    cnf_scanner_free(&s);
    return CNF_ERR_NOMEM;
  }
  const double l0 = log(conf->e_min), l1 = log(conf->e_max);
  for (size_t g = 0; g < G; g++)
    s->grid[g] = exp(l0 + (l1 - l0) * (double)g / (double)(G - 1));
  s->grid[0] = conf->e_min; /* exact ends: the boundary tests compare with them */
  s->grid[G - 1] = conf->e_max;
  *out = s;
  return 0;
}

/* log((1/K) sum exp(a_k)) and the softmax weights (into w, may be NULL) */
static double log_mean_exp(const double *a, int K, double *w) {
  double m = -INFINITY;
  for (int k = 0; k < K; k++)
    if (a[k] > m)
      m = a[k];
  if (!isfinite(m)) {
    if (w)
      for (int k = 0; k < K; k++)
        w[k] = 1.0 / K;
    return m;
  }
  double sum = 0;
  for (int k = 0; k < K; k++)
    sum += exp(a[k] - m);
  if (w)
    for (int k = 0; k < K; k++)
      w[k] = exp(a[k] - m) / sum;
  return m + log(sum) - log((double)K);
}

int cnf_scanner_logl(cnf_scanner *s, const cnf_real *x, const cnf_real *c, double E, double *logl,
                     double *dlogl) {
  const int D = s->D, C = s->C, j = s->conf.cond_index;
  memcpy(s->x1, x, sizeof(cnf_real) * D);
  memcpy(s->c1, c, sizeof(cnf_real) * C);
  s->c1[j] = (cnf_real)E;
  for (int k = 0; k < s->K; k++) {
    cnf_flow *f = s->members[k];
    cnf_real lp = 0;
    if (k == 0)
      s->n_logp += dlogl ? 0 : 1, s->n_grad += dlogl ? 1 : 0;
    if (dlogl) {
      CNF_CALL(cnf_flow_cond_gradient(f, 1, s->x1, s->c1, &lp, s->dc1));
      s->dk[k] = (double)s->dc1[j];
    } else {
      CNF_CALL(cnf_flow_log_prob(f, 1, s->x1, s->c1, &lp));
    }
    s->lpk[k] = (double)lp;
  }
  double *w = dlogl ? s->lpk : NULL; /* weights overwrite the log p once the mean is taken */
  double ll = log_mean_exp(s->lpk, s->K, w);
  if (dlogl) {
    double d = 0;
    for (int k = 0; k < s->K; k++)
      d += w[k] * s->dk[k];
    *dlogl = d;
  }
  *logl = ll;
  return 0;
}

/* ---- refinement and interval ---------------------------------------------------------------- */
typedef struct point_ctx {
  cnf_scanner *s;
  const cnf_real *x, *c;
  double logl_max;
  int rc;
} point_ctx;

/* TAO minimises -log L(E) */
static int neg_logl_fg(void *p, int n, const double *E, double *f, double *g) {
  (void)n;
  point_ctx *pc = p;
  double ll = 0, d = 0;
  CNF_CALL(cnf_scanner_logl(pc->s, pc->x, pc->c, E[0], &ll, &d));
  *f = -ll;
  g[0] = -d;
  return 0;
}

/* h(E) = -2 (log L(E) - log L_max) - 1: negative inside the 68 % interval */
static double interval_h(double E, void *p) {
  point_ctx *pc = p;
  double ll = 0;
  int rc = cnf_scanner_logl(pc->s, pc->x, pc->c, E, &ll, NULL);
  if (rc < 0) {
    pc->rc = rc;
    return GSL_NAN;
  }
  return -2.0 * (ll - pc->logl_max) - 1.0;
}

static int brent_root(point_ctx *pc, double a, double b, double rel_tol, double *root) {
  gsl_function F = {interval_h, pc};
  gsl_root_fsolver *sol = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
  if (!sol)
    return CNF_ERR_NOMEM;
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  int status = gsl_root_fsolver_set(sol, &F, a < b ? a : b, a < b ? b : a);
  for (int it = 0; status == GSL_SUCCESS && it < 200; it++) {
    status = gsl_root_fsolver_iterate(sol);
    if (status != GSL_SUCCESS)
      break;
    double lo = gsl_root_fsolver_x_lower(sol), hi = gsl_root_fsolver_x_upper(sol);
    status = gsl_root_test_interval(lo, hi, 0, rel_tol);
    if (status == GSL_SUCCESS)
      break;
    status = status == GSL_CONTINUE ? GSL_SUCCESS : status;
  }
  *root = gsl_root_fsolver_root(sol);
  gsl_root_fsolver_free(sol);
  gsl_set_error_handler(old);
  if (pc->rc < 0)
    return pc->rc;
  if (status != GSL_SUCCESS)
    return cnf_error_set(CNF_ERR_NUMERIC, "scan: interval root search failed in [%g, %g] (%s)",
                         a, b, gsl_strerror(status));
  return 0;
}

/* The grid part of a shower's result: the best grid point (returned; -1 if log L is nowhere
 * finite, then r is complete), the number of local maxima, and for grid-only scans everything. */
static int grid_summary(const cnf_scanner *s, const double *ll, cnf_scan_result *r) {
  const int G = s->conf.n_grid;
  const double *E = s->grid;
  memset(r, 0, sizeof *r);
  int best = -1;
  for (int g = 0; g < G; g++)
    if (isfinite(ll[g]) && (best < 0 || ll[g] > ll[best]))
      best = g;
  if (best < 0) {
    r->e_pred = r->e_lo = r->e_hi = r->logl_max = NAN;
    r->flags = CNF_SCAN_FAILED;
    return -1;
  }
  /* local maxima of the grid curve (plateaus count once, at their left end) */
  for (int g = 0; g < G; g++) {
    double left = g > 0 ? ll[g - 1] : -INFINITY, right = g + 1 < G ? ll[g + 1] : -INFINITY;
    if (isfinite(ll[g]) && ll[g] > left && ll[g] >= right)
      r->n_maxima++;
  }
  if (r->n_maxima > 1)
    r->flags |= CNF_SCAN_MULTI_MAXIMA;
  if (!s->conf.refine) { /* grid only: the grid maximum, no interval */
    r->e_pred = E[best];
    r->logl_max = ll[best];
    r->e_lo = r->e_hi = NAN;
    if (best == 0 || best == G - 1)
      r->flags |= CNF_SCAN_AT_BOUNDARY;
  }
  return best;
}

/* the first grid point beyond e on side dir (-1 below, +1 above) where h > 0, or -1 */
static int grid_crossing(const cnf_scanner *s, const double *ll, int best, double e, double lmax,
                         int dir) {
  for (int g = best; g >= 0 && g < s->conf.n_grid; g += dir)
    if ((dir < 0 ? s->grid[g] < e : s->grid[g] > e) && isfinite(ll[g]) &&
        -2.0 * (ll[g] - lmax) - 1.0 > 0)
      return g;
  return -1;
}

static int scan_one(cnf_scanner *s, const cnf_real *x, const cnf_real *c, const double *ll,
                    cnf_scan_result *r) {
  const int G = s->conf.n_grid;
  const double *E = s->grid, tol = s->conf.rel_tol;
  const int best = grid_summary(s, ll, r);
  if (best < 0 || !s->conf.refine)
    return 0;
  /* refine between the grid neighbours of the best grid point */
  point_ctx pc = {s, x, c, 0, 0};
  double lo = E[best > 0 ? best - 1 : 0], hi = E[best + 1 < G ? best + 1 : G - 1];
  double e = E[best], fmin = -ll[best];
  cnf_tao_conf tc = {.type = NULL, .prefix = "scan_", .gatol = 0, .grtol = 0, .max_it = 100};
  /* Stop when the gradient says E is within tol * E of the maximum: |g| ~ curvature * dE, the
   * curvature estimated from the grid's second difference around the best point (a fixed
   * absolute tolerance would either stop early on sharp peaks or iterate on rounding noise). */
  double curv = 0;
  if (best > 0 && best + 1 < G && isfinite(ll[best - 1]) && isfinite(ll[best + 1])) {
    double h1 = E[best] - E[best - 1], h2 = E[best + 1] - E[best];
    curv = -2.0 * (h1 * ll[best + 1] - (h1 + h2) * ll[best] + h2 * ll[best - 1]) /
           (h1 * h2 * (h1 + h2));
  }
  if (!(curv > 0))
    curv = 1.0 / ((hi - lo) * (hi - lo));
  tc.gatol = 0.3 * curv * tol * E[best];
  int reason = 0;
  CNF_CALL(cnf_tao_minimize_bounded(&tc, 1, neg_logl_fg, &pc, &lo, &hi, &e, &fmin, &reason));
  if (!(-fmin >= ll[best])) { /* never worse than the grid point */
    e = E[best];
    fmin = -ll[best];
  }
  r->e_pred = e;
  r->logl_max = -fmin;
  pc.logl_max = r->logl_max;
  if (e <= s->conf.e_min * (1 + 10 * tol) || e >= s->conf.e_max * (1 - 10 * tol))
    r->flags |= CNF_SCAN_AT_BOUNDARY;
  const int jl = grid_crossing(s, ll, best, e, r->logl_max, -1);
  const int ju = grid_crossing(s, ll, best, e, r->logl_max, +1);
  if (jl >= 0) {
    CNF_CALL(brent_root(&pc, E[jl], e, tol, &r->e_lo));
  } else {
    r->e_lo = s->conf.e_min;
    r->flags |= CNF_SCAN_OPEN_INTERVAL;
  }
  if (ju >= 0) {
    CNF_CALL(brent_root(&pc, e, E[ju], tol, &r->e_hi));
  } else {
    r->e_hi = s->conf.e_max;
    r->flags |= CNF_SCAN_OPEN_INTERVAL;
  }
  return 0;
}

/* ---- lockstep refinement: the showers of a batch iterate together ---------------------------- */

/* Ensemble log L (pll) and, with grad, d log L / d ln E (pdll) at the n points (pshower[i],
 * E = exp(pt[i])) of the batch x, c: one batched flow evaluation per member.  The members are
 * combined online against the running maximum (log L = log mean exp lp_k, derivative = the
 * softmax-weighted mean of the members' derivatives), so nothing is exponentiated raw. */
static int lockstep_eval(cnf_scanner *s, int n, const cnf_real *x, const cnf_real *c, int grad) {
  const int D = s->D, C = s->C, j = s->conf.cond_index;
  for (int i = 0; i < n; i++) {
    const size_t sh = (size_t)s->pshower[i];
    memcpy(s->xb + (size_t)i * D, x + sh * D, sizeof(cnf_real) * D);
    memcpy(s->cb + (size_t)i * C, c + sh * C, sizeof(cnf_real) * C);
    s->cb[(size_t)i * C + j] = (cnf_real)exp(s->pt[i]);
    s->pll[i] = -INFINITY;
    s->pdll[i] = 0;
  }
  if (grad)
    s->n_grad += (uint64_t)n;
  else
    s->n_logp += (uint64_t)n;
  for (int k = 0; k < s->K; k++) {
    cnf_flow *f = s->members[k];
    if (grad) {
      /* d log p / dc per row, no parameter gradients */
      CNF_CALL(cnf_flow_cond_gradient(f, n, s->xb, s->cb, s->lp, s->dcb));
    } else {
      CNF_CALL(cnf_flow_log_prob(f, n, s->xb, s->cb, s->lp));
    }
    for (int i = 0; i < n; i++) {
      const double a = (double)s->lp[i], b = s->pll[i];
      const double da = grad ? (double)s->dcb[(size_t)i * C + j] * (double)s->cb[(size_t)i * C + j]
                             : 0; /* d / d ln E = E d / dE */
      if (a == -INFINITY || isnan(b))
        continue;
      if (!isfinite(a)) {
        s->pll[i] = NAN;
        continue;
      }
      if (b == -INFINITY) {
        s->pll[i] = a;
        s->pdll[i] = da;
        continue;
      }
      const double hi = a > b ? a : b, wa = exp(a - hi), wb = exp(b - hi);
      s->pll[i] = hi + log(wa + wb);
      s->pdll[i] = (wb * s->pdll[i] + wa * da) / (wa + wb);
    }
  }
  for (int i = 0; i < n; i++)
    s->pll[i] -= log((double)s->K);
  return 0;
}

/* Maximum search of one shower after an evaluation (f, g) at st->t: update the bracket, propose
 * the next point (Newton-secant on g, the first slope from the grid's curvature; bisection when
 * the step leaves the bracket; the prior edge itself when the likelihood rises towards it).
 * Returns 1 when converged. */
static int lockstep_max_step(lockstep_state *st, double f, double g, double t_lo, double t_hi,
                             double tol) {
  if (f > st->f_best) {
    st->f_best = f;
    st->t_best = st->t;
  }
  if (!isfinite(f) || !isfinite(g) || g == 0 || ++st->it > 60)
    return 1;
  if ((st->t >= t_hi && g > 0) || (st->t <= t_lo && g < 0))
    return 1; /* the maximum is on the prior edge */
  if (g > 0)
    st->a = st->t > st->a ? st->t : st->a;
  else
    st->b = st->t < st->b ? st->t : st->b;
  double slope = st->it > 1 && st->t != st->tp ? (g - st->gp) / (st->t - st->tp) : -st->kappa;
  double tn = slope < 0 ? st->t - g / slope : NAN;
  if (slope < 0 && slope > -INFINITY)
    st->kappa = -slope;
  if (!(tn > st->a && tn < st->b)) {
    if (tn >= st->b && st->b >= t_hi && st->t < t_hi)
      tn = t_hi;
    else if (tn <= st->a && st->a <= t_lo && st->t > t_lo)
      tn = t_lo;
    else
      tn = 0.5 * (st->a + st->b);
  }
  if (fabs(tn - st->t) <= 0.5 * tol || st->b - st->a <= tol)
    return 1;
  st->tp = st->t;
  st->gp = g;
  st->t = tn;
  return 0;
}

/* Interval end search after an evaluation h at st->t (Illinois false position on the bracket
 * [a, b] with h(a), h(b) of opposite signs).  Returns 1 when converged (root in st->t). */
static int lockstep_root_step(lockstep_state *st, double h, double tol) {
  if (!isfinite(h) || ++st->it > 100)
    return 1;
  if (h == 0)
    return 1;
  /* keep the end whose sign differs from h; halve its h when it is kept twice (Illinois) */
  if ((h > 0) == (st->ha > 0)) {
    st->a = st->t;
    st->ha = h;
    if (st->last == 2)
      st->hb *= 0.5;
    st->last = 2;
  } else {
    st->b = st->t;
    st->hb = h;
    if (st->last == 1)
      st->ha *= 0.5;
    st->last = 1;
  }
  const double tn = (st->a * st->hb - st->b * st->ha) / (st->hb - st->ha);
  const int done = fabs(st->b - st->a) <= tol || fabs(tn - st->t) <= 0.25 * tol;
  st->t = tn;
  return done;
}

static int lockstep_batch(cnf_scanner *s, int m, const cnf_real *x, const cnf_real *c,
                          cnf_scan_result *out) {
  const int G = s->conf.n_grid;
  const double tol = s->conf.rel_tol, t_lo = log(s->conf.e_min), t_hi = log(s->conf.e_max);
  const double hgrid = (t_hi - t_lo) / (G - 1);
  lockstep_state *st = s->st;
  int n = 0;
  /* 1. the maximum: start at the vertex of the parabola through the best grid point and its
   * neighbours, bracketed by the neighbours */
  for (int i = 0; i < m; i++) {
    const double *ll = s->logl + (size_t)i * G;
    const int best = grid_summary(s, ll, &out[i]);
    if (best < 0 || !s->conf.refine)
      continue;
    lockstep_state *q = &st[n++];
    memset(q, 0, sizeof *q);
    q->shower = i;
    q->best = best;
    q->a = log(s->grid[best > 0 ? best - 1 : 0]);
    q->b = log(s->grid[best + 1 < G ? best + 1 : G - 1]);
    q->t = q->t_best = log(s->grid[best]);
    q->f_best = ll[best];
    if (best > 0 && best + 1 < G && isfinite(ll[best - 1]) && isfinite(ll[best + 1])) {
      const double d2 = ll[best + 1] - 2 * ll[best] + ll[best - 1];
      if (d2 < 0) {
        q->kappa = -d2 / (hgrid * hgrid);
        q->t += 0.5 * hgrid * (ll[best - 1] - ll[best + 1]) / d2;
      }
    }
  }
  for (int active = n; active > 0;) {
    int p = 0;
    for (int k = 0; k < n; k++)
      if (!st[k].done) {
        s->pshower[p] = st[k].shower;
        s->pt[p++] = st[k].t;
      }
    CNF_CALL(lockstep_eval(s, p, x, c, 1));
    int q = 0;
    active = 0;
    for (int k = 0; k < n; k++) {
      if (st[k].done)
        continue;
      if (lockstep_max_step(&st[k], s->pll[q], s->pdll[q], t_lo, t_hi, tol))
        st[k].done = 1;
      else
        active++;
      q++;
    }
  }
  /* 2. the interval ends: brackets from the grid crossings, first guess t* -+ 1/sqrt(kappa) of
   * the quadratic model, both sides of every shower iterating together */
  int nr = 0;
  lockstep_state *rs = st + s->max_showers; /* second half: the root states */
  for (int k = 0; k < n; k++) {
    const int i = st[k].shower;
    const double *ll = s->logl + (size_t)i * G;
    cnf_scan_result *r = &out[i];
    const double e = exp(st[k].t_best), lmax = st[k].f_best;
    const int best = st[k].best;
    r->e_pred = e;
    r->logl_max = lmax;
    if (e <= s->conf.e_min * (1 + 10 * tol) || e >= s->conf.e_max * (1 - 10 * tol))
      r->flags |= CNF_SCAN_AT_BOUNDARY;
    for (int dir = -1; dir <= 1; dir += 2) {
      const int jg = grid_crossing(s, ll, best, e, lmax, dir);
      if (jg < 0) {
        if (dir < 0)
          r->e_lo = s->conf.e_min;
        else
          r->e_hi = s->conf.e_max;
        r->flags |= CNF_SCAN_OPEN_INTERVAL;
        continue;
      }
      lockstep_state *z = &rs[nr++];
      memset(z, 0, sizeof *z);
      z->shower = i;
      z->side = dir;
      z->f_best = lmax;
      z->a = log(s->grid[jg]); /* outside: h > 0 */
      z->ha = -2.0 * (ll[jg] - lmax) - 1.0;
      z->b = st[k].t_best; /* the maximum: h = -1 */
      z->hb = -1.0;
      const double guess = st[k].kappa > 0 ? z->b + dir / sqrt(st[k].kappa) : NAN;
      z->t = (guess - z->a) * (guess - z->b) < 0 ? guess
                                                 : (z->a * z->hb - z->b * z->ha) / (z->hb - z->ha);
    }
  }
  for (int active = nr; active > 0;) {
    int p = 0;
    for (int k = 0; k < nr; k++)
      if (!rs[k].done) {
        s->pshower[p] = rs[k].shower;
        s->pt[p++] = rs[k].t;
      }
    CNF_CALL(lockstep_eval(s, p, x, c, 0));
    int q = 0;
    active = 0;
    for (int k = 0; k < nr; k++) {
      if (rs[k].done)
        continue;
      const double h = -2.0 * (s->pll[q++] - rs[k].f_best) - 1.0;
      if (lockstep_root_step(&rs[k], h, tol))
        rs[k].done = 1;
      else
        active++;
    }
  }
  for (int k = 0; k < nr; k++) {
    cnf_scan_result *r = &out[rs[k].shower];
    if (!isfinite(rs[k].t))
      return cnf_error_set(CNF_ERR_NUMERIC, "scan: interval search of shower %d failed",
                           rs[k].shower);
    if (rs[k].side < 0)
      r->e_lo = exp(rs[k].t);
    else
      r->e_hi = exp(rs[k].t);
  }
  return 0;
}

void cnf_scanner_counts(const cnf_scanner *s, uint64_t *logp_rows, uint64_t *grad_rows) {
  *logp_rows = s->n_logp;
  *grad_rows = s->n_grad;
}

int cnf_scanner_run(cnf_scanner *s, int n, const cnf_real *x, const cnf_real *c,
                    cnf_scan_result *out) {
  const int D = s->D, C = s->C, G = s->conf.n_grid, j = s->conf.cond_index;
  for (int s0 = 0; s0 < n; s0 += s->max_showers) {
    const int m = n - s0 < s->max_showers ? n - s0 : s->max_showers;
    const size_t rows = (size_t)m * G;
    /* (shower, grid point) rows: the shower's x repeated, its conditions with c[j] = E_g */
    for (int i = 0; i < m; i++)
      for (int g = 0; g < G; g++) {
        size_t r = (size_t)i * G + g;
        memcpy(s->xb + r * D, x + (size_t)(s0 + i) * D, sizeof(cnf_real) * D);
        memcpy(s->cb + r * C, c + (size_t)(s0 + i) * C, sizeof(cnf_real) * C);
        s->cb[r * C + j] = (cnf_real)s->grid[g];
      }
    for (size_t r = 0; r < rows; r++)
      s->logl[r] = 0;
    s->n_logp += rows;
    /* log L = log mean_k exp(lp_k): a running log-sum-exp over the members */
    for (int k = 0; k < s->K; k++) {
      CNF_CALL(cnf_flow_log_prob(s->members[k], (int)rows, s->xb, s->cb, s->lp));
      for (size_t r = 0; r < rows; r++) {
        double a = (double)s->lp[r];
        if (k == 0) {
          s->logl[r] = a;
          continue;
        }
        double b = s->logl[r], hi = a > b ? a : b;
        s->logl[r] = isfinite(hi) ? hi + log1p(exp(-fabs(a - b))) : hi;
      }
    }
    for (size_t r = 0; r < rows; r++)
      s->logl[r] -= log((double)s->K);
    if (s->conf.method == CNF_SCAN_LOCKSTEP) {
      CNF_CALL(lockstep_batch(s, m, x + (size_t)s0 * D, c + (size_t)s0 * C, out + s0));
      continue;
    }
    for (int i = 0; i < m; i++)
      CNF_CALL(scan_one(s, x + (size_t)(s0 + i) * D, c + (size_t)(s0 + i) * C,
                        s->logl + (size_t)i * G, &out[s0 + i]));
  }
  return 0;
}
