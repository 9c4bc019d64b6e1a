/* Masked autoregressive flow blocks (Papamakarios et al. 2017): a conditional MADE
 * (src/nn/made.c) gives P parameters per dimension, theta_d = MADE(x_{<d}, c), and an
 * elementwise monotone map z_d = f(x_d; theta_d) is applied:
 *   maf_affine: theta_d = (m, u), s = u or tanh(u), z_d = (x_d - m) exp(-s), log|dz_d/dx_d| = -s;
 *               scale kind "shift": theta_d = m only (P = 1), z_d = x_d - m, log-det 0, so the
 *               NLL of a 1-D block is MSE/2 + const (the regression baseline of `cnflow regress`)
 *   maf_rqs:    theta_d = the 3K-1 raw spline parameters of the rqs.c kernel.
 * The density direction is one MADE pass.  The sampling direction inverts dimension by
 * dimension with the MADE's sequential mode (only the newly determined hidden units are
 * computed at each step), on row tiles that keep the activations in cache.
 */
#include "bijector_impl.h"
#include "fastmath.h"
#include "cnflow/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if CNF_REAL_IS_DOUBLE
#define MAF_EXP exp
/* the double library serves the finite-difference tests: libm is exact enough there */
static inline double maf_exp_fast(double v) { return exp(v); }
static inline double maf_tanh_fast(double v) { return tanh(v); }
#else
#define MAF_EXP expf
/* exp for the affine element loops of the float library (fastmath.h): unlike expf it
 * vectorises.  Arguments are clamped to [-87, 88]. */
static inline float maf_exp_fast(float v) { return cnf_fm_exp(v); }

/* tanh from the same exp, (1 - e^{-2|u|}) / (1 + e^{-2|u|}) with the sign of u: absolute error
 * ~1e-7, which is what its uses need (a log-det term and the exponent of the scale). */
static inline float maf_tanh_fast(float u) {
  const float a = u < 0 ? -u : u;
  const float t = maf_exp_fast(-2.0f * a);
  const float r = (1.0f - t) / (1.0f + t);
  return u < 0 ? -r : r;
}
#endif

/* Rows per tile of the sequential (sampling) pass: L * TILE * H activations stay in L2. */
#define MAF_SEQ_TILE 128

typedef struct maf_impl {
  cnf_made *made;
  int P, rqs;        /* rqs: 1 for maf_rqs, 0 for maf_affine */
  int shift;         /* maf_affine with scale kind SHIFT: P = 1, no log-scale parameter */
  cnf_rqs_conf conf; /* maf_rqs */
  int nmax;
  cnf_real *theta;   /* (nmax, D*P) MADE output of the last forward */
  cnf_real *dtheta;  /* (nmax, D*P) backward scratch */
  cnf_real *e1, *e2; /* (nmax, D) per-element scratch */
  cnf_real *seq_theta;                 /* (TILE, P) */
  cnf_real *seq_y, *seq_x, *seq_ld;    /* (TILE) */
} maf_impl;

static maf_impl *maf_of(cnf_bijector *b) { return (maf_impl *)b->impl; }
static const char *maf_name(const cnf_bijector *b) {
  return b->spec.kind == CNF_BIJ_MAF_RQS ? "maf_rqs" : "maf_affine";
}

static void maf_free_buffers(maf_impl *im) {
  free(im->theta);
  free(im->dtheta);
  free(im->e1);
  free(im->e2);
  im->theta = im->dtheta = im->e1 = im->e2 = NULL;
  im->nmax = 0;
}

static int maf_reserve(cnf_bijector *b, int nmax) {
  maf_impl *im = maf_of(b);
  if (nmax < 0)
    return cnf_error_set(CNF_ERR_ARG, "%s: negative batch size %d", maf_name(b), nmax);
  CNF_CALL(cnf_made_reserve(im->made, nmax));
  if (nmax <= im->nmax)
    return 0;
  maf_free_buffers(im);
  const size_t nd = (size_t)nmax * b->dim;
  im->theta = cnf_aligned_alloc(sizeof(cnf_real) * nd * im->P);
  im->dtheta = cnf_aligned_alloc(sizeof(cnf_real) * nd * im->P);
  im->e1 = cnf_aligned_alloc(sizeof(cnf_real) * nd);
  im->e2 = cnf_aligned_alloc(sizeof(cnf_real) * nd);
  if (!im->theta || !im->dtheta || !im->e1 || !im->e2) {
    maf_free_buffers(im);
    return CNF_ERR_NOMEM;
  }
  im->nmax = nmax;
  return 0;
}

/* ---- affine element map ---------------------------------------------------------------------- */
/* s and ds/du for the raw log-scale u. */
static inline cnf_real maf_scale(cnf_affine_scale kind, cnf_real u) {
  /* both computed, then selected: a branch would keep the element loops from vectorising */
  const cnf_real t = maf_tanh_fast(u);
  return kind == CNF_AFFINE_SCALE_EXP_TANH ? t : u;
}
/* ds/du from s = maf_scale(kind, u) */
static inline cnf_real maf_scale_deriv(cnf_affine_scale kind, cnf_real s) {
  return kind == CNF_AFFINE_SCALE_EXP_TANH ? 1 - s * s : 1;
}

/* ---- density direction ----------------------------------------------------------------------- */
/* The element part of the affine forward pass: z = (x - m) e^{-s}, s (nd) WRITTEN.  Called with a
 * constant kind, so that the inlined loop carries no unused tanh; restrict lets it vectorise
 * without run-time alias checks. */
static inline void maf_affine_forward_elems(cnf_affine_scale kind, size_t nd,
                                            const cnf_real *restrict th,
                                            const cnf_real *restrict x, cnf_real *restrict z,
                                            cnf_real *restrict s) {
  for (size_t e = 0; e < nd; e++) {
    s[e] = maf_scale(kind, th[2 * e + 1]);
    z[e] = (x[e] - th[2 * e]) * maf_exp_fast(-s[e]);
  }
}

static int maf_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                       cnf_real *z, cnf_real *logdet) {
  maf_impl *im = maf_of(b);
  const int D = b->dim;
  if (b->cond_dim > 0 && !c && n > 0)
    return cnf_error_set(CNF_ERR_ARG, "%s: %d conditions expected but c is NULL", maf_name(b),
                         b->cond_dim);
  CNF_CALL(maf_reserve(b, n));
  CNF_CALL(cnf_made_forward(im->made, b->params, n, x, c, im->theta));
  if (im->rqs) {
    cnf_rqs_forward(&im->conf, n * D, x, im->theta, z, im->e1);
    for (int i = 0; i < n; i++) {
      cnf_real ld = 0;
      for (int d = 0; d < D; d++)
        ld += im->e1[(size_t)i * D + d];
      logdet[i] += ld;
    }
    return 0;
  }
  /* flat loops over the n*D elements vectorise (the scale kind is loop-invariant) */
  const cnf_affine_scale kind = b->spec.scale_kind;
  cnf_real *sc = im->e1;
  const size_t nd = (size_t)n * D;
  if (im->shift) { /* z = x - m: unit Jacobian, logdet unchanged */
    for (size_t e = 0; e < nd; e++)
      z[e] = x[e] - im->theta[e];
    return 0;
  }
  if (kind == CNF_AFFINE_SCALE_EXP)
    maf_affine_forward_elems(CNF_AFFINE_SCALE_EXP, nd, im->theta, x, z, sc);
  else
    maf_affine_forward_elems(CNF_AFFINE_SCALE_EXP_TANH, nd, im->theta, x, z, sc);
  for (int i = 0; i < n; i++) {
    cnf_real ld = 0;
    for (int d = 0; d < D; d++)
      ld -= sc[(size_t)i * D + d];
    logdet[i] += ld;
  }
  return 0;
}

/* The element part of the affine backward pass (constant kind and restrict as in the forward
 * pass): dtheta (nd, 2) WRITTEN without the log-det seed term, direct (nd) = dz e^{-s},
 * dsd (nd) = ds/du. */
static inline void maf_affine_backward_elems(cnf_affine_scale kind, size_t nd,
                                      const cnf_real *restrict th, const cnf_real *restrict dz,
                                      const cnf_real *restrict z, cnf_real *restrict dth,
                                      cnf_real *restrict direct, cnf_real *restrict dsd) {
  for (size_t e = 0; e < nd; e++) {
    const cnf_real s = maf_scale(kind, th[2 * e + 1]);
    const cnf_real es = maf_exp_fast(-s), ds_du = maf_scale_deriv(kind, s);
    dth[2 * e] = -dz[e] * es;
    dth[2 * e + 1] = -dz[e] * z[e] * ds_du;
    direct[e] = dz[e] * es;
    dsd[e] = ds_du;
  }
}

/* dL/dx = direct part (through x_d itself) + MADE part (through theta_{d'} of later dims). */
static int maf_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                        const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                        cnf_real *dx, cnf_real *dc) {
  maf_impl *im = maf_of(b);
  const int D = b->dim;
  if (n > im->nmax)
    return cnf_error_set(CNF_ERR_STATE, "%s backward: batch %d larger than the last forward's "
                                        "cache (%d)", maf_name(b), n, im->nmax);
  cnf_real *direct = im->e1;
  if (im->shift) {
    /* z = x - m: dz/dm = -1, dz/dx = 1, no log-det term */
    const size_t nd = (size_t)n * D;
    for (size_t e = 0; e < nd; e++) {
      im->dtheta[e] = -dz[e];
      direct[e] = dz[e];
    }
  } else if (im->rqs) {
    for (int i = 0; i < n; i++)
      for (int d = 0; d < D; d++)
        im->e2[(size_t)i * D + d] = dlogdet[i];
    cnf_rqs_backward(&im->conf, n * D, x, im->theta, dz, im->e2, direct, im->dtheta);
  } else {
    /* z = (x - m) e^{-s}: dz/dm = -e^{-s}, dz/ds = -z, dlogdet/ds = -1; a flat vectorised loop,
     * then the log-det seeds row by row (ds/du kept in e2) */
    cnf_real *dth = im->dtheta, *dsd = im->e2;
    if (b->spec.scale_kind == CNF_AFFINE_SCALE_EXP)
      maf_affine_backward_elems(CNF_AFFINE_SCALE_EXP, (size_t)n * D, im->theta, dz, z, dth,
                                direct, dsd);
    else
      maf_affine_backward_elems(CNF_AFFINE_SCALE_EXP_TANH, (size_t)n * D, im->theta, dz, z, dth,
                                direct, dsd);
    for (int i = 0; i < n; i++)
      for (int d = 0; d < D; d++) {
        const size_t e = (size_t)i * D + d;
        dth[2 * e + 1] -= dlogdet[i] * dsd[e];
      }
  }
  CNF_CALL(cnf_made_backward(im->made, b->params, n, x, c, im->dtheta, b->grads, dx, dc));
  if (dx) {
    const size_t nd = (size_t)n * D;
    for (size_t e = 0; e < nd; e++)
      dx[e] += direct[e];
  }
  return 0;
}

/* ---- sampling direction ---------------------------------------------------------------------- */
static int maf_reserve_seq(maf_impl *im) {
  if (im->seq_theta)
    return 0;
  im->seq_theta = cnf_aligned_alloc(sizeof(cnf_real) * MAF_SEQ_TILE * (size_t)im->P);
  im->seq_y = cnf_malloc(sizeof(cnf_real) * MAF_SEQ_TILE);
  im->seq_x = cnf_malloc(sizeof(cnf_real) * MAF_SEQ_TILE);
  im->seq_ld = cnf_malloc(sizeof(cnf_real) * MAF_SEQ_TILE);
  if (!im->seq_theta || !im->seq_y || !im->seq_x || !im->seq_ld)
    return CNF_ERR_NOMEM;
  return 0;
}

/* x_d = f^{-1}(z_d; theta_d) for the nt rows of one tile; logdet += log|dx_d/dz_d|. */
static void maf_invert_column(cnf_bijector *b, maf_impl *im, int nt, int d, const cnf_real *z,
                              cnf_real *x, cnf_real *logdet) {
  const int D = b->dim;
  const cnf_real *th = im->seq_theta;
  if (im->rqs) {
    for (int i = 0; i < nt; i++)
      im->seq_y[i] = z[(size_t)i * D + d];
    cnf_rqs_inverse(&im->conf, nt, im->seq_y, th, im->seq_x, im->seq_ld);
    for (int i = 0; i < nt; i++) {
      x[(size_t)i * D + d] = im->seq_x[i];
      logdet[i] += im->seq_ld[i];
    }
    return;
  }
  if (im->shift) {
    for (int i = 0; i < nt; i++)
      x[(size_t)i * D + d] = z[(size_t)i * D + d] + th[i];
    return;
  }
  const cnf_affine_scale kind = b->spec.scale_kind;
  for (int i = 0; i < nt; i++) {
    const cnf_real s = maf_scale(kind, th[2 * i + 1]);
    x[(size_t)i * D + d] = z[(size_t)i * D + d] * MAF_EXP(s) + th[2 * i];
    logdet[i] += s;
  }
}

static int maf_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                       cnf_real *x, cnf_real *logdet) {
  maf_impl *im = maf_of(b);
  const int D = b->dim, C = b->cond_dim;
  if (C > 0 && !c && n > 0)
    return cnf_error_set(CNF_ERR_ARG, "%s: %d conditions expected but c is NULL", maf_name(b), C);
  CNF_CALL(maf_reserve_seq(im));
  for (int i0 = 0; i0 < n; i0 += MAF_SEQ_TILE) {
    const int nt = n - i0 < MAF_SEQ_TILE ? n - i0 : MAF_SEQ_TILE;
    const size_t row = (size_t)i0 * D;
    CNF_CALL(cnf_made_seq_begin(im->made, b->params, nt, C > 0 ? c + (size_t)i0 * C : NULL));
    for (int d = 0; d < D; d++) {
      cnf_made_seq_step(im->made, b->params, d, x + row, im->seq_theta);
      maf_invert_column(b, im, nt, d, z + row, x + row, logdet + i0);
    }
  }
  return 0;
}

/* ---- parameters and lifecycle ---------------------------------------------------------------- */
static int maf_init_params(cnf_bijector *b, cnf_rng *rng, int identity) {
  maf_impl *im = maf_of(b);
  cnf_made_init_params(im->made, b->params, rng, identity);
  if (identity && im->rqs) {
    /* zero width/height logits give equal bins; these derivative logits give interior knot
     * derivatives of 1, so the spline is the identity */
    const int K = im->conf.K, D = b->dim;
    const cnf_real ud = (cnf_real)cnf_rqs_identity_ud(im->conf.min_d);
    cnf_real *bout = b->params + cnf_made_offset_bias(im->made, b->spec.n_hidden);
    for (int d = 0; d < D; d++)
      for (int j = 0; j < K - 1; j++)
        bout[(size_t)d * im->P + 2 * K + j] = ud;
  }
  return 0;
}

static int maf_params_changed(cnf_bijector *b) {
  cnf_made_apply_mask(maf_of(b)->made, b->params);
  cnf_made_params_changed(maf_of(b)->made); /* the packed weight copies are stale now */
  return 0;
}

static size_t maf_live_ranges(const cnf_bijector *b, size_t *out) {
  return cnf_made_live_ranges(((const maf_impl *)b->impl)->made, b->param_offset, out);
}

static void maf_destroy(cnf_bijector *b) {
  maf_impl *im = maf_of(b);
  if (im) {
    cnf_made_free(&im->made);
    maf_free_buffers(im);
    free(im->seq_theta);
    free(im->seq_y);
    free(im->seq_x);
    free(im->seq_ld);
    free(im);
  }
  b->impl = NULL;
}

static const cnf_bijector_ops maf_ops = {
    .forward = maf_forward,
    .backward = maf_backward,
    .inverse = maf_inverse,
    .reserve = maf_reserve,
    .init_params = maf_init_params,
    .data_init = NULL,
    .params_changed = maf_params_changed,
    .live_ranges = maf_live_ranges,
    .destroy = maf_destroy,
};

int cnf_bij_maf_create(cnf_bijector *b) {
  if (b->spec.kind != CNF_BIJ_MAF_AFFINE && b->spec.kind != CNF_BIJ_MAF_RQS)
    return cnf_error_set(CNF_ERR_ARG, "bijector kind %d is not a MAF block", (int)b->spec.kind);
  CNF_CALL(cnf_bijector_spec_check(&b->spec, b->dim, b->cond_dim, -1));
  maf_impl *im = cnf_calloc(1, sizeof *im);
  if (!im)
    return CNF_ERR_NOMEM;
  const cnf_bijector_spec *s = &b->spec;
  im->rqs = s->kind == CNF_BIJ_MAF_RQS;
  /* a shift-only block allocates no log-scale outputs (no dead parameters in the file) */
  im->shift = !im->rqs && s->scale_kind == CNF_AFFINE_SCALE_SHIFT;
  im->P = im->rqs ? 3 * s->bins - 1 : im->shift ? 1 : 2;
  if (im->rqs)
    im->conf = (cnf_rqs_conf){.K = s->bins,
                              .B = (cnf_real)s->tail_bound,
                              .min_w = (cnf_real)s->min_bin_width,
                              .min_h = (cnf_real)s->min_bin_height,
                              .min_d = (cnf_real)s->min_derivative};
  int rc = cnf_made_create(b->dim, b->cond_dim, s->hidden, s->n_hidden, im->P, &im->made);
  if (rc < 0) {
    free(im);
    return rc;
  }
  /* the flow's contract (cnf_flow_params_changed after every write) lets the MADE keep its
   * packed weights between passes */
  cnf_made_set_param_cache(im->made, 1);
  b->impl = im;
  b->ops = &maf_ops;
  b->n_params = cnf_made_num_params(im->made);
  /* no arrays are used: drop the borrowed pointers */
  b->spec.perm = NULL;
  b->spec.shift = b->spec.scale = NULL;
  return 0;
}
