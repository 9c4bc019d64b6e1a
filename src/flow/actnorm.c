/* ActNorm (Kingma & Dhariwal 2018; FrEIA's ActNorm as used by CaloINN): per-dimension
 * loc (D) and log_scale (D), density direction z = (x - loc) exp(-log_scale),
 * log|dz/dx| = -sum_d log_scale_d.  data_init sets loc = batch mean, log_scale = log(std)
 * (unbiased std, as torch.std), so the initialising batch leaves with zero mean and unit std.
 */
#include <math.h>
#include <stdlib.h>

#include "bijector_impl.h"

static int actnorm_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                           cnf_real *z, cnf_real *logdet) {
  const int D = b->dim;
  const cnf_real *loc = b->params, *ls = b->params + D;
  cnf_real *inv_scale = b->impl; /* (D) exp(-log_scale), refreshed per call */
  cnf_real sum_ls = 0;
  for (int d = 0; d < D; d++) {
    inv_scale[d] = (cnf_real)exp(-(double)ls[d]);
    sum_ls += ls[d];
  }
  for (int i = 0; i < n; i++) {
    const cnf_real *xi = x + (size_t)i * D;
    cnf_real *zi = z + (size_t)i * D;
    for (int d = 0; d < D; d++)
      zi[d] = (xi[d] - loc[d]) * inv_scale[d];
    logdet[i] -= sum_ls;
  }
  return 0;
}

/* dloc = -sum_i dz exp(-ls);  dls = -sum_i (dz z + dlogdet);  dx = dz exp(-ls). */
static int actnorm_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                            const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                            cnf_real *dx, cnf_real *dc) {
  const int D = b->dim;
  const cnf_real *ls = b->params + D;
  cnf_real *inv_scale = b->impl, *gloc = b->grads, *gls = b->grads ? b->grads + D : NULL;
  cnf_real sum_dld = 0;
  for (int d = 0; d < D; d++)
    inv_scale[d] = (cnf_real)exp(-(double)ls[d]);
  for (int i = 0; i < n; i++) {
    const cnf_real *dzi = dz + (size_t)i * D, *zi = z + (size_t)i * D;
    cnf_real *dxi = dx + (size_t)i * D;
    for (int d = 0; d < D; d++) {
      const cnf_real g = dzi[d] * inv_scale[d];
      dxi[d] = g;
      if (gloc) { /* NULL: parameter gradients not wanted (cnf_flow_cond_gradient) */
        gloc[d] -= g;
        gls[d] -= dzi[d] * zi[d];
      }
    }
    sum_dld += dlogdet[i];
  }
  for (int d = 0; gls && d < D; d++)
    gls[d] -= sum_dld;
  return 0;
}

static int actnorm_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                           cnf_real *x, cnf_real *logdet) {
  const int D = b->dim;
  const cnf_real *loc = b->params, *ls = b->params + D;
  cnf_real *scale = b->impl;
  cnf_real sum_ls = 0;
  for (int d = 0; d < D; d++) {
    scale[d] = (cnf_real)exp((double)ls[d]);
    sum_ls += ls[d];
  }
  for (int i = 0; i < n; i++) {
    const cnf_real *zi = z + (size_t)i * D;
    cnf_real *xi = x + (size_t)i * D;
    for (int d = 0; d < D; d++)
      xi[d] = zi[d] * scale[d] + loc[d];
    logdet[i] += sum_ls;
  }
  return 0;
}

static int actnorm_reserve(cnf_bijector *b, int nmax) { return 0; }

/* Identity whatever `identity` says: ActNorm starts neutral until data_init. */
static int actnorm_init_params(cnf_bijector *b, cnf_rng *rng, int identity) {
  for (int k = 0; k < 2 * b->dim; k++)
    b->params[k] = 0;
  return 0;
}

static int actnorm_data_init(cnf_bijector *b, int n, const cnf_real *x) {
  const int D = b->dim;
  if (n < 2)
    return cnf_error_set(CNF_ERR_ARG, "actnorm data init needs at least 2 events, got %d", n);
  for (int d = 0; d < D; d++) {
    /* two-pass mean and variance in double */
    double mean = 0, ss = 0;
    for (int i = 0; i < n; i++)
      mean += x[(size_t)i * D + d];
    mean /= n;
    for (int i = 0; i < n; i++) {
      const double v = x[(size_t)i * D + d] - mean;
      ss += v * v;
    }
    const double sd = sqrt(ss / (n - 1));
    if (!(sd > 0) || !isfinite(mean) || !isfinite(sd))
      return cnf_error_set(CNF_ERR_NUMERIC,
                           "actnorm data init: dimension %d has standard deviation %g over %d "
                           "events (constant or non-finite data)",
                           d, sd, n);
    b->params[d] = (cnf_real)mean;
    b->params[D + d] = (cnf_real)log(sd);
  }
  return 0;
}

static void actnorm_destroy(cnf_bijector *b) {
  free(b->impl);
  b->impl = NULL;
}

static const cnf_bijector_ops actnorm_ops = {
    .forward = actnorm_forward,
    .backward = actnorm_backward,
    .inverse = actnorm_inverse,
    .reserve = actnorm_reserve,
    .init_params = actnorm_init_params,
    .data_init = actnorm_data_init,
    .params_changed = NULL,
    .destroy = actnorm_destroy,
};

int cnf_bij_actnorm_create(cnf_bijector *b) {
  if (b->spec.kind != CNF_BIJ_ACTNORM)
    return cnf_error_set(CNF_ERR_ARG, "actnorm: wrong kind %d", (int)b->spec.kind);
  if (b->dim < 1)
    return cnf_error_set(CNF_ERR_ARG, "actnorm: needs dimension >= 1, got %d", b->dim);
  b->impl = cnf_malloc((size_t)b->dim * sizeof(cnf_real));
  if (!b->impl)
    return CNF_ERR_NOMEM;
  b->ops = &actnorm_ops;
  b->n_params = 2 * (size_t)b->dim;
  return 0;
}
