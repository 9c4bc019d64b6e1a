/* RQS coupling block (CaloINN RationalQuadraticSplineBlock).
 *
 * x (n, D) = [x1 (n, d1) | x2 (n, d2)], d1 = ceil(D/2), d2 = floor(D/2).  x1 passes through;
 * x2 is transformed elementwise by the RQS kernel with theta = subnet([x1, c]) viewed as
 * (n * d2, P), P = 3K - 1 (dimension-major: element j of event i uses theta[i, j*P ..]).
 * Subnet: n_hidden LeakyReLU(0.01) dense layers of width H, dense output layer (src/nn/mlp.h).
 * Tails: CNF_TAILS_EVENT leaves an event's whole x2 untouched (log-det 0) if any |x2_j| > B;
 * the inverse applies the same test to z2, which is consistent because the spline maps
 * [-B, B] onto itself.  CNF_TAILS_ELEMENT: the kernel's elementwise identity tails.
 */
#include <stdlib.h>
#include <string.h>

#include "../nn/mlp.h"
#include "bijector_impl.h"

/* Sampling works in chunks of this many events, so it needs no batch-sized buffers. */
#define COUPLING_INV_CHUNK 64

typedef struct coupling_impl {
  cnf_mlp net;
  cnf_rqs_conf conf;
  int d1, d2, P;
  int nmax;
  /* forward cache (nmax rows) */
  cnf_real *in;      /* (nmax, d1 + C) subnet input [x1, c] */
  cnf_real *work;    /* subnet hidden activations */
  cnf_real *theta;   /* (nmax, d2 * P) */
  /* backward scratch (nmax rows) */
  cnf_real *x2, *g2, *gl2, *dx2; /* (nmax * d2) each */
  cnf_real *dtheta;  /* (nmax, d2 * P) */
  cnf_real *din;     /* (nmax, d1 + C) */
  cnf_real *mscratch; /* mlp backward scratch */
  /* sampling scratch (COUPLING_INV_CHUNK rows) */
  cnf_real *inv_in, *inv_work, *inv_theta, *inv_y2, *inv_x2, *inv_ld;
} coupling_impl;

static void coupling_free_buffers(coupling_impl *p) {
  free(p->in), free(p->work), free(p->theta);
  free(p->x2), free(p->g2), free(p->gl2), free(p->dx2), free(p->dtheta), free(p->din);
  free(p->mscratch);
  free(p->inv_in), free(p->inv_work), free(p->inv_theta), free(p->inv_y2), free(p->inv_x2);
  free(p->inv_ld);
  coupling_impl keep = {.net = p->net, .conf = p->conf, .d1 = p->d1, .d2 = p->d2, .P = p->P};
  *p = keep;
}

static cnf_real *alloc_reals(size_t count) {
  return cnf_malloc((count ? count : 1) * sizeof(cnf_real));
}

static int coupling_reserve(cnf_bijector *b, int nmax) {
  coupling_impl *p = b->impl;
  if (nmax <= p->nmax)
    return 0;
  coupling_free_buffers(p);
  const size_t n = (size_t)nmax, ch = COUPLING_INV_CHUNK;
  const size_t nin = (size_t)p->net.n_in, nth = (size_t)p->d2 * p->P, d2 = (size_t)p->d2;
  const size_t hid = (size_t)(p->net.hidden > 0 ? p->net.hidden : 1);
  p->in = alloc_reals(n * nin);
  p->work = alloc_reals(cnf_mlp_work_size(&p->net, nmax));
  p->theta = alloc_reals(n * nth);
  p->x2 = alloc_reals(n * d2);
  p->g2 = alloc_reals(n * d2);
  p->gl2 = alloc_reals(n * d2);
  p->dx2 = alloc_reals(n * d2);
  p->dtheta = alloc_reals(n * nth);
  p->din = alloc_reals(n * nin);
  p->mscratch = alloc_reals(2 * n * hid);
  p->inv_in = alloc_reals(ch * nin);
  p->inv_work = alloc_reals(cnf_mlp_work_size(&p->net, COUPLING_INV_CHUNK));
  p->inv_theta = alloc_reals(ch * nth);
  p->inv_y2 = alloc_reals(ch * d2);
  p->inv_x2 = alloc_reals(ch * d2);
  p->inv_ld = alloc_reals(ch * d2);
  if (!p->in || !p->work || !p->theta || !p->x2 || !p->g2 || !p->gl2 || !p->dx2 ||
      !p->dtheta || !p->din || !p->mscratch || !p->inv_in || !p->inv_work || !p->inv_theta ||
      !p->inv_y2 || !p->inv_x2 || !p->inv_ld) {
    coupling_free_buffers(p);
    return cnf_error_set(CNF_ERR_NOMEM, "coupling: cannot allocate buffers for %d events", nmax);
  }
  p->nmax = nmax;
  return 0;
}

/* in (n, d1 + C) = [v[:, :d1], c] for v (n, D). */
static void coupling_load_input(const cnf_bijector *b, const coupling_impl *p, int n,
                                const cnf_real *v, const cnf_real *c, cnf_real *in) {
  const int D = b->dim, C = b->cond_dim, nin = p->net.n_in;
  for (int i = 0; i < n; i++) {
    memcpy(in + (size_t)i * nin, v + (size_t)i * D, (size_t)p->d1 * sizeof *in);
    if (C > 0)
      memcpy(in + (size_t)i * nin + p->d1, c + (size_t)i * C, (size_t)C * sizeof *in);
  }
}

/* v2 (n * d2) = v[:, d1:] for v (n, D). */
static void coupling_load_x2(const cnf_bijector *b, const coupling_impl *p, int n,
                             const cnf_real *v, cnf_real *v2) {
  for (int i = 0; i < n; i++)
    memcpy(v2 + (size_t)i * p->d2, v + (size_t)i * b->dim + p->d1, (size_t)p->d2 * sizeof *v2);
}

/* 1 if the event's spline result is used: always for elementwise tails; under the per-event
 * rule only if every |v2_j| <= B. */
static int coupling_event_used(const cnf_bijector *b, const coupling_impl *p,
                               const cnf_real *v2) {
  if (b->spec.tails == CNF_TAILS_ELEMENT)
    return 1;
  const cnf_real B = p->conf.B;
  int inside = 1;
  for (int j = 0; j < p->d2; j++)
    inside &= v2[j] >= -B && v2[j] <= B;
  return inside;
}

/* Writes out (n, D) = [v1 | t2] and logdet += sum of ld2, where an event outside the bound
 * under the per-event rule keeps v2 and adds nothing.  Shared by forward and inverse. */
static void coupling_combine(const cnf_bijector *b, const coupling_impl *p, int n,
                             const cnf_real *v, const cnf_real *v2, const cnf_real *t2,
                             const cnf_real *ld2, cnf_real *out, cnf_real *logdet) {
  const int D = b->dim, d1 = p->d1, d2 = p->d2;
  for (int i = 0; i < n; i++) {
    const cnf_real *vi2 = v2 + (size_t)i * d2;
    const int use = coupling_event_used(b, p, vi2);
    cnf_real *oi = out + (size_t)i * D;
    memcpy(oi, v + (size_t)i * D, (size_t)d1 * sizeof *oi);
    memcpy(oi + d1, use ? t2 + (size_t)i * d2 : vi2, (size_t)d2 * sizeof *oi);
    if (use) {
      cnf_real s = 0;
      for (int j = 0; j < d2; j++)
        s += ld2[(size_t)i * d2 + j];
      logdet[i] += s;
    }
  }
}

static int coupling_forward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                            cnf_real *z, cnf_real *logdet) {
  coupling_impl *p = b->impl;
  CNF_CALL(coupling_reserve(b, n));
  coupling_load_input(b, p, n, x, c, p->in);
  cnf_mlp_forward(&p->net, b->params, n, p->in, p->theta, p->work);
  coupling_load_x2(b, p, n, x, p->x2);
  /* g2 and gl2 are backward scratch, free here: they receive y2 and the element log-dets */
  cnf_rqs_forward(&p->conf, n * p->d2, p->x2, p->theta, p->g2, p->gl2);
  coupling_combine(b, p, n, x, p->x2, p->g2, p->gl2, z, logdet);
  return 0;
}

static int coupling_backward(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                             const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet,
                             cnf_real *dx, cnf_real *dc) {
  coupling_impl *p = b->impl;
  if (n > p->nmax)
    return cnf_error_set(CNF_ERR_STATE, "backward on %d events without a forward of them", n);
  const int D = b->dim, C = b->cond_dim, d1 = p->d1, d2 = p->d2, nin = p->net.n_in;
  coupling_load_x2(b, p, n, x, p->x2);
  /* upstream gradients per element; zero for events left untouched by the per-event rule,
   * so the kernel adds nothing to their parameters */
  for (int i = 0; i < n; i++) {
    const int use = coupling_event_used(b, p, p->x2 + (size_t)i * d2);
    for (int j = 0; j < d2; j++) {
      p->g2[(size_t)i * d2 + j] = use ? dz[(size_t)i * D + d1 + j] : 0;
      p->gl2[(size_t)i * d2 + j] = use ? dlogdet[i] : 0;
    }
  }
  cnf_rqs_backward(&p->conf, n * d2, p->x2, p->theta, p->g2, p->gl2, p->dx2, p->dtheta);
  cnf_mlp_backward(&p->net, b->params, n, p->in, p->work, p->dtheta, b->grads, p->din,
                   p->mscratch);
  for (int i = 0; i < n; i++) {
    const cnf_real *dzi = dz + (size_t)i * D, *dini = p->din + (size_t)i * nin;
    cnf_real *dxi = dx + (size_t)i * D;
    const int use = coupling_event_used(b, p, p->x2 + (size_t)i * d2);
    /* x1 reaches z directly and through theta */
    for (int j = 0; j < d1; j++)
      dxi[j] = dzi[j] + dini[j];
    for (int j = 0; j < d2; j++)
      dxi[d1 + j] = use ? p->dx2[(size_t)i * d2 + j] : dzi[d1 + j];
    if (dc)
      for (int j = 0; j < C; j++)
        dc[(size_t)i * C + j] += dini[d1 + j];
  }
  return 0;
}

/* One pass: theta depends on z1 = x1 only. */
static int coupling_inverse(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c,
                            cnf_real *x, cnf_real *logdet) {
  coupling_impl *p = b->impl;
  CNF_CALL(coupling_reserve(b, 1));
  const int D = b->dim, C = b->cond_dim;
  for (int i0 = 0; i0 < n; i0 += COUPLING_INV_CHUNK) {
    const int m = n - i0 < COUPLING_INV_CHUNK ? n - i0 : COUPLING_INV_CHUNK;
    const cnf_real *zc = z + (size_t)i0 * D, *cc = C > 0 ? c + (size_t)i0 * C : NULL;
    coupling_load_input(b, p, m, zc, cc, p->inv_in);
    cnf_mlp_forward(&p->net, b->params, m, p->inv_in, p->inv_theta, p->inv_work);
    coupling_load_x2(b, p, m, zc, p->inv_y2);
    cnf_rqs_inverse(&p->conf, m * p->d2, p->inv_y2, p->inv_theta, p->inv_x2, p->inv_ld);
    coupling_combine(b, p, m, zc, p->inv_y2, p->inv_x2, p->inv_ld, x + (size_t)i0 * D,
                     logdet + i0);
  }
  return 0;
}

/* identity != 0 (CaloINN): zero output layer, derivative biases at the identity value, so the
 * block starts as the identity.  identity == 0: every layer random (tests, non-trivial init). */
static int coupling_init_params(cnf_bijector *b, cnf_rng *rng, int identity) {
  coupling_impl *p = b->impl;
  cnf_mlp_init_params(&p->net, b->params, rng, identity);
  if (identity) {
    const cnf_real ud = (cnf_real)cnf_rqs_identity_ud(p->conf.min_d);
    cnf_real *bout = b->params + cnf_mlp_out_bias_offset(&p->net);
    const int K = p->conf.K;
    for (int j = 0; j < p->d2; j++)
      for (int q = 2 * K; q < p->P; q++)
        bout[(size_t)j * p->P + q] = ud;
  }
  return 0;
}

static void coupling_destroy(cnf_bijector *b) {
  coupling_impl *p = b->impl;
  if (p) {
    coupling_free_buffers(p);
    free(p);
  }
  b->impl = NULL;
}

static const cnf_bijector_ops coupling_ops = {
    .forward = coupling_forward,
    .backward = coupling_backward,
    .inverse = coupling_inverse,
    .reserve = coupling_reserve,
    .init_params = coupling_init_params,
    .data_init = NULL,
    .params_changed = NULL,
    .destroy = coupling_destroy,
};

int cnf_bij_coupling_create(cnf_bijector *b) {
  const cnf_bijector_spec *s = &b->spec;
  const int D = b->dim, C = b->cond_dim;
  if (s->kind != CNF_BIJ_COUPLING_RQS)
    return cnf_error_set(CNF_ERR_ARG, "coupling: wrong kind %d", (int)s->kind);
  CNF_CALL(cnf_bijector_spec_check(s, D, C, -1));
  coupling_impl *p = cnf_calloc(1, sizeof *p);
  if (!p)
    return CNF_ERR_NOMEM;
  p->d1 = (D + 1) / 2;
  p->d2 = D / 2;
  p->P = 3 * s->bins - 1;
  p->conf = (cnf_rqs_conf){.K = s->bins,
                           .B = (cnf_real)s->tail_bound,
                           .min_w = (cnf_real)s->min_bin_width,
                           .min_h = (cnf_real)s->min_bin_height,
                           .min_d = (cnf_real)s->min_derivative};
  int rc = cnf_mlp_init(&p->net, p->d1 + C, s->n_hidden, s->hidden, p->d2 * p->P,
                        CNF_MLP_LEAKY_RELU, 0.01);
  if (rc < 0) {
    free(p);
    return rc;
  }
  b->impl = p;
  b->ops = &coupling_ops;
  b->n_params = p->net.n_params;
  return 0;
}
