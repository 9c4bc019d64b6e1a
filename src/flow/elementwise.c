/* Parameter-free bijectors that act on each event independently: a fixed permutation, tanh,
 * logit, a fixed per-dimension affine map, log(x + eps) and the condition-dependent scale
 * x exp(-(a c'_j + b)) (the stored preprocessing of `cnflow train`).  All directions follow flow.h: forward is the
 * density direction x -> z, logdet accumulates log|det dz/dx|; inverse is z -> x with
 * log|det dx/dz|.  The log-determinants are exact (no clipping): an input outside the domain
 * (tanh: |x| >= 1, logit: u = alpha + (1 - 2 alpha) x outside (0, 1)) is an error, never a NaN. */
#include "bijector_impl.h"
#include "fastmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct elementwise_impl {
  int *perm;      /* permute: (D) density direction z[:, j] = x[:, perm[j]] */
  double *shift;  /* affine_fixed: (D) */
  double *scale;  /* affine_fixed: (D), non-zero */
  double log_abs_scale_sum; /* affine_fixed: sum_d log|scale_d| */
} elementwise_impl;

static elementwise_impl *impl_of(cnf_bijector *b) { return (elementwise_impl *)b->impl; }

/* log(1 - tanh(z)^2) = 2 (log 2 - z - softplus(-2 z)), stable for large |z| (TFP's form). */
static double log1m_tanh2(double z) {
  double a = fabs(z);
  /* the expression is even in z; evaluate at |z| so softplus(-2|z|) never overflows */
  return 2.0 * (M_LN2 - a - log1p(exp(-2.0 * a)));
}

static double softplus(double v) { return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)); }

#if !CNF_REAL_IS_DOUBLE
/* The float library's atanh bijector runs on every training and log-prob batch: the inline
 * float log1p of fastmath.h instead of two double libm calls per element. */
#define ew_log1pf cnf_fm_log1p
#endif

/* ---- permute ------------------------------------------------------------------------------- */
static int permute_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                           cnf_real *z, cnf_real *logdet) {
  const int D = b->dim;
  const int *perm = impl_of(b)->perm;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < D; j++)
      z[(size_t)i * D + j] = x[(size_t)i * D + perm[j]];
  return 0;
}

static int permute_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                            const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                            cnf_real *dx, cnf_real *dc) {
  const int D = b->dim;
  const int *perm = impl_of(b)->perm;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < D; j++)
      dx[(size_t)i * D + perm[j]] = dz[(size_t)i * D + j];
  return 0;
}

static int permute_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                           cnf_real *x, cnf_real *logdet) {
  const int D = b->dim;
  const int *perm = impl_of(b)->perm;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < D; j++)
      x[(size_t)i * D + perm[j]] = z[(size_t)i * D + j];
  return 0;
}

/* ---- tanh: density z = atanh(x), log|dz/dx| = -log(1 - x^2) -------------------------------- */
static int tanh_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                        cnf_real *z, cnf_real *logdet) {
  const int D = b->dim;
  for (int i = 0; i < n; i++) {
    double ld = 0;
    for (int j = 0; j < D; j++) {
      double v = x[(size_t)i * D + j];
      if (!(fabs(v) < 1.0))
        return cnf_error_set(CNF_ERR_NUMERIC,
                             "tanh bijector: input row %d column %d = %g is outside (-1, 1)", i,
                             j, v);
#if CNF_REAL_IS_DOUBLE
      z[(size_t)i * D + j] = (cnf_real)atanh(v);
      ld -= log1p(-v * v);
#else
      /* atanh(v) = (log1p(v) - log1p(-v)) / 2,  log(1 - v^2) = log1p(v) + log1p(-v) */
      const float a = ew_log1pf((float)v), bm = ew_log1pf((float)-v);
      z[(size_t)i * D + j] = 0.5f * (a - bm);
      ld -= (double)a + bm;
#endif
    }
    logdet[i] += (cnf_real)ld;
  }
  return 0;
}

static int tanh_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                         const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                         cnf_real *dx, cnf_real *dc) {
  const int D = b->dim;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      size_t e = (size_t)i * D + j;
      double v = x[e], inv = 1.0 / (1.0 - v * v);
      /* dz/dx = 1/(1-x^2);  d(-log(1-x^2))/dx = 2x/(1-x^2) */
      dx[e] = (cnf_real)(dz[e] * inv + dlogdet[i] * 2.0 * v * inv);
    }
  return 0;
}

static int tanh_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                        cnf_real *x, cnf_real *logdet) {
  const int D = b->dim;
  /* tanh(z) rounds to +-1 for |z| > ~9 in float (~19 in double); keep samples inside the open
   * interval so that their density can be evaluated.  The log-det stays the exact one of z. */
  const cnf_real below_one =
      CNF_REAL_IS_DOUBLE ? (cnf_real)nextafter(1.0, 0.0) : (cnf_real)nextafterf(1.0f, 0.0f);
  for (int i = 0; i < n; i++) {
    double ld = 0;
    for (int j = 0; j < D; j++) {
      double v = z[(size_t)i * D + j];
      cnf_real t = (cnf_real)tanh(v);
      if (fabs((double)t) >= 1.0)
        t = v > 0 ? below_one : -below_one;
      x[(size_t)i * D + j] = t;
      ld += log1m_tanh2(v);
    }
    logdet[i] += (cnf_real)ld;
  }
  return 0;
}

/* ---- logit: u = alpha + (1 - 2 alpha) x, density z = log(u / (1 - u)) ---------------------- */
static int logit_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                         cnf_real *z, cnf_real *logdet) {
  const int D = b->dim;
  const double a = b->spec.alpha, s = 1.0 - 2.0 * a, log_s = log(s);
  for (int i = 0; i < n; i++) {
    double ld = 0;
    for (int j = 0; j < D; j++) {
      double v = x[(size_t)i * D + j], u = a + s * v;
      if (!(u > 0.0 && u < 1.0))
        return cnf_error_set(CNF_ERR_NUMERIC,
                             "logit bijector (alpha %g): input row %d column %d = %g maps "
                             "outside (0, 1)",
                             a, i, j, v);
      double lu = log(u), l1u = log1p(-u);
      z[(size_t)i * D + j] = (cnf_real)(lu - l1u);
      ld += log_s - lu - l1u;
    }
    logdet[i] += (cnf_real)ld;
  }
  return 0;
}

static int logit_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                          const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                          cnf_real *dx, cnf_real *dc) {
  const int D = b->dim;
  const double a = b->spec.alpha, s = 1.0 - 2.0 * a;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      size_t e = (size_t)i * D + j;
      double u = a + s * x[e], inv = 1.0 / (u * (1.0 - u));
      /* dz/dx = s/(u(1-u));  d(-log u - log(1-u))/dx = s (2u - 1)/(u(1-u)) */
      dx[e] = (cnf_real)(s * inv * (dz[e] + dlogdet[i] * (2.0 * u - 1.0)));
    }
  return 0;
}

static int logit_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                         cnf_real *x, cnf_real *logdet) {
  const int D = b->dim;
  const double a = b->spec.alpha, s = 1.0 - 2.0 * a, log_s = log(s);
  for (int i = 0; i < n; i++) {
    double ld = 0;
    for (int j = 0; j < D; j++) {
      double v = z[(size_t)i * D + j];
      double u = v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
      x[(size_t)i * D + j] = (cnf_real)((u - a) / s);
      /* log du/dz = log(u (1 - u)) = -softplus(-z) - softplus(z) */
      ld += -softplus(-v) - softplus(v) - log_s;
    }
    logdet[i] += (cnf_real)ld;
  }
  return 0;
}

/* ---- affine_fixed: density z = (x - shift) / scale ---------------------------------------- */
static int affine_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                          cnf_real *z, cnf_real *logdet) {
  const int D = b->dim;
  const elementwise_impl *im = impl_of(b);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < D; j++) {
      size_t e = (size_t)i * D + j;
      z[e] = (cnf_real)((x[e] - im->shift[j]) / im->scale[j]);
    }
    logdet[i] += (cnf_real)(-im->log_abs_scale_sum);
  }
  return 0;
}

static int affine_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                           const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                           cnf_real *dx, cnf_real *dc) {
  const int D = b->dim;
  const elementwise_impl *im = impl_of(b);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      size_t e = (size_t)i * D + j;
      dx[e] = (cnf_real)(dz[e] / im->scale[j]);
    }
  return 0;
}

static int affine_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                          cnf_real *x, cnf_real *logdet) {
  const int D = b->dim;
  const elementwise_impl *im = impl_of(b);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < D; j++) {
      size_t e = (size_t)i * D + j;
      x[e] = (cnf_real)(z[e] * im->scale[j] + im->shift[j]);
    }
    logdet[i] += (cnf_real)im->log_abs_scale_sum;
  }
  return 0;
}

/* ---- log: density z = log(x + eps), log|dz/dx| = -sum log(x + eps) ---------------------------- */
static int log_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c, cnf_real *z,
                       cnf_real *logdet) {
  const int D = b->dim;
  const double eps = b->spec.eps;
  for (int i = 0; i < n; i++) {
    double ld = 0;
    for (int j = 0; j < D; j++) {
      double v = (double)x[(size_t)i * D + j] + eps;
      if (!(v > 0) || !isfinite(v))
        return cnf_error_set(CNF_ERR_NUMERIC, "log bijector (eps %g): input row %d column %d = "
                             "%g is outside (-eps, inf)", eps, i, j, (double)x[(size_t)i * D + j]);
      double l = log(v);
      z[(size_t)i * D + j] = (cnf_real)l;
      ld -= l;
    }
    logdet[i] += (cnf_real)ld;
  }
  return 0;
}

static int log_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                        const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                        cnf_real *dx, cnf_real *dc) {
  const int D = b->dim;
  const double eps = b->spec.eps;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      size_t e = (size_t)i * D + j;
      /* dz/dx = 1/(x + eps) and d(-log(x + eps))/dx = -1/(x + eps) */
      dx[e] = (cnf_real)((dz[e] - dlogdet[i]) / ((double)x[e] + eps));
    }
  return 0;
}

static int log_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c, cnf_real *x,
                       cnf_real *logdet) {
  const int D = b->dim;
  const double eps = b->spec.eps;
  for (int i = 0; i < n; i++) {
    double ld = 0;
    for (int j = 0; j < D; j++) {
      double v = z[(size_t)i * D + j], e = exp(v);
      if (!isfinite(e))
        return cnf_error_set(CNF_ERR_NUMERIC, "log bijector: exp(%g) of row %d column %d "
                             "overflows", v, i, j);
      x[(size_t)i * D + j] = (cnf_real)(e - eps);
      ld += v; /* log dx/dz = z */
    }
    logdet[i] += (cnf_real)ld;
  }
  return 0;
}

/* ---- cond_scale: s = a c'_j + b, density z = x exp(-s), log|det| = -D s ------------------------ */
static double cond_scale_s(const cnf_bijector *b, const cnf_real *c, int i) {
  return b->spec.cond_a * (double)c[(size_t)i * b->cond_dim + b->spec.cond_index] + b->spec.cond_b;
}

static int cond_scale_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                              cnf_real *z, cnf_real *logdet) {
  const int D = b->dim;
  for (int i = 0; i < n; i++) {
    double s = cond_scale_s(b, c, i), f = exp(-s);
    if (!isfinite(f) || f == 0.0)
      return cnf_error_set(CNF_ERR_NUMERIC, "cond_scale bijector: scale exp(%g) of row %d is "
                           "not representable", s, i);
    for (int j = 0; j < D; j++)
      z[(size_t)i * D + j] = (cnf_real)((double)x[(size_t)i * D + j] * f);
    logdet[i] += (cnf_real)(-D * s);
  }
  return 0;
}

static int cond_scale_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                               const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                               cnf_real *dx, cnf_real *dc) {
  const int D = b->dim;
  for (int i = 0; i < n; i++) {
    double s = cond_scale_s(b, c, i), f = exp(-s), ds = -(double)D * dlogdet[i];
    for (int j = 0; j < D; j++) {
      size_t e = (size_t)i * D + j;
      dx[e] = (cnf_real)(dz[e] * f);
      ds -= (double)dz[e] * (double)x[e] * f; /* dz/ds = -z */
    }
    if (dc)
      dc[(size_t)i * b->cond_dim + b->spec.cond_index] += (cnf_real)(ds * b->spec.cond_a);
  }
  return 0;
}

static int cond_scale_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                              cnf_real *x, cnf_real *logdet) {
  const int D = b->dim;
  for (int i = 0; i < n; i++) {
    double s = cond_scale_s(b, c, i), f = exp(s);
    if (!isfinite(f))
      return cnf_error_set(CNF_ERR_NUMERIC, "cond_scale bijector: scale exp(%g) of row %d "
                           "overflows", s, i);
    for (int j = 0; j < D; j++)
      x[(size_t)i * D + j] = (cnf_real)((double)z[(size_t)i * D + j] * f);
    logdet[i] += (cnf_real)(D * s);
  }
  return 0;
}

/* ---- shared no-ops and lifecycle ------------------------------------------------------------ */
static int elementwise_reserve(cnf_bijector *b, int nmax) { return 0; }
static int elementwise_init_params(cnf_bijector *b, cnf_rng *rng, int identity) { return 0; }

static void elementwise_destroy(cnf_bijector *b) {
  elementwise_impl *im = impl_of(b);
  if (im) {
    free(im->perm);
    free(im->shift);
    free(im->scale);
    free(im);
  }
  b->impl = NULL;
  b->spec.perm = NULL;
  b->spec.shift = b->spec.scale = NULL;
}

#define ELEMENTWISE_OPS(prefix)                                                             \
  {                                                                                         \
    .forward = prefix##_forward, .backward = prefix##_backward, .inverse = prefix##_inverse, \
    .reserve = elementwise_reserve, .init_params = elementwise_init_params,                 \
    .data_init = NULL, .params_changed = NULL, .destroy = elementwise_destroy               \
  }
static const cnf_bijector_ops permute_ops = ELEMENTWISE_OPS(permute);
static const cnf_bijector_ops tanh_ops = ELEMENTWISE_OPS(tanh);
static const cnf_bijector_ops logit_ops = ELEMENTWISE_OPS(logit);
static const cnf_bijector_ops affine_ops = ELEMENTWISE_OPS(affine);
static const cnf_bijector_ops log_ops = ELEMENTWISE_OPS(log);
static const cnf_bijector_ops cond_scale_ops = ELEMENTWISE_OPS(cond_scale);

/* Deep-copies the spec arrays a kind needs (the caller's spec arrays are borrowed; the spec has
 * passed cnf_bijector_spec_check, so the arrays are valid). */
static int elementwise_copy_arrays(cnf_bijector *b, elementwise_impl *im) {
  const int D = b->dim;
  const cnf_bijector_spec *s = &b->spec;
  if (s->kind == CNF_BIJ_PERMUTE) {
    im->perm = cnf_malloc(sizeof(int) * (size_t)D);
    if (!im->perm)
      return CNF_ERR_NOMEM;
    memcpy(im->perm, s->perm, sizeof(int) * (size_t)D);
  } else if (s->kind == CNF_BIJ_AFFINE_FIXED) {
    im->shift = cnf_malloc(sizeof(double) * (size_t)D);
    im->scale = cnf_malloc(sizeof(double) * (size_t)D);
    if (!im->shift || !im->scale)
      return CNF_ERR_NOMEM;
    im->log_abs_scale_sum = 0;
    for (int j = 0; j < D; j++) {
      im->shift[j] = s->shift[j];
      im->scale[j] = s->scale[j];
      im->log_abs_scale_sum += log(fabs(s->scale[j]));
    }
  }
  return 0;
}

int cnf_bij_elementwise_create(cnf_bijector *b) {
  const cnf_bijector_ops *ops;
  switch (b->spec.kind) {
  case CNF_BIJ_PERMUTE: ops = &permute_ops; break;
  case CNF_BIJ_TANH: ops = &tanh_ops; break;
  case CNF_BIJ_LOGIT: ops = &logit_ops; break;
  case CNF_BIJ_AFFINE_FIXED: ops = &affine_ops; break;
  case CNF_BIJ_LOG: ops = &log_ops; break;
  case CNF_BIJ_COND_SCALE: ops = &cond_scale_ops; break;
  default:
    return cnf_error_set(CNF_ERR_ARG, "bijector kind %d is not elementwise", (int)b->spec.kind);
  }
  CNF_CALL(cnf_bijector_spec_check(&b->spec, b->dim, b->cond_dim, -1));
  elementwise_impl *im = cnf_calloc(1, sizeof *im);
  if (!im)
    return CNF_ERR_NOMEM;
  b->impl = im;
  b->ops = ops;
  b->n_params = 0;
  int rc = elementwise_copy_arrays(b, im);
  if (rc < 0) {
    elementwise_destroy(b);
    b->ops = NULL;
    return rc;
  }
  /* the spec now points at our copies (the caller's arrays were only borrowed) */
  b->spec.perm = im->perm;
  b->spec.shift = im->shift;
  b->spec.scale = im->scale;
  return 0;
}
