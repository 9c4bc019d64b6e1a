/* Adam / AdamW over one flat parameter buffer (torch.optim.Adam and AdamW semantics). */
#include "cnflow/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if CNF_REAL_IS_DOUBLE
#define ADAM_SQRT sqrt
#else
#define ADAM_SQRT sqrtf
#endif
/* The compiler does not vectorise sqrtf (it may set errno), so the float update has an explicit
 * AVX-512 body where available. */
#if !CNF_REAL_IS_DOUBLE && defined(__AVX512F__)
#define ADAM_SIMD 1
#include <immintrin.h>
#else
#define ADAM_SIMD 0
#endif

cnf_adam_conf cnf_adam_conf_default(void) {
  return (cnf_adam_conf){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0,
                         .clip_norm = 0.0};
}

int cnf_adam_init(cnf_adam *a, size_t n, const cnf_adam_conf *conf) {
  memset(a, 0, sizeof *a);
  if (!(conf->beta1 >= 0 && conf->beta1 < 1) || !(conf->beta2 >= 0 && conf->beta2 < 1))
    return cnf_error_set(CNF_ERR_ARG, "adam: beta1 = %g and beta2 = %g must be in [0, 1)",
                         conf->beta1, conf->beta2);
  if (!(conf->eps > 0) || !(conf->weight_decay >= 0) || !(conf->clip_norm >= 0))
    return cnf_error_set(CNF_ERR_ARG,
                         "adam: need eps > 0 (got %g), weight_decay >= 0 (%g), clip_norm >= 0 "
                         "(%g)",
                         conf->eps, conf->weight_decay, conf->clip_norm);
  a->m = cnf_calloc(n ? n : 1, sizeof(cnf_real));
  a->v = cnf_calloc(n ? n : 1, sizeof(cnf_real));
  if (!a->m || !a->v) {
    cnf_adam_free(a);
    return CNF_ERR_NOMEM;
  }
  a->n = n;
  a->conf = *conf;
  return 0;
}

void cnf_adam_free(cnf_adam *a) {
  free(a->m);
  free(a->v);
  a->m = a->v = NULL;
  a->n = 0;
}

void cnf_adam_reset(cnf_adam *a) {
  memset(a->m, 0, a->n * sizeof(cnf_real));
  memset(a->v, 0, a->n * sizeof(cnf_real));
  a->t = 0;
}

int cnf_adam_step(cnf_adam *a, double lr, cnf_real *params, const cnf_real *grads,
                  double *grad_norm) {
  const size_t n = a->n;
  /* eight independent partial sums: one serial chain of n dependent adds cost ~8% of a CNF
   * training step; the lanes vectorise and the order is fixed, so the result is deterministic */
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i8 = 0;
  for (; i8 + 8 <= n; i8 += 8)
    for (int l = 0; l < 8; l++)
      part[l] += (double)grads[i8 + l] * grads[i8 + l];
  for (; i8 < n; i8++)
    part[0] += (double)grads[i8] * grads[i8];
  double sq = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  double norm = sqrt(sq);
  if (grad_norm)
    *grad_norm = norm;
  if (!isfinite(norm))
    return cnf_error_set(CNF_ERR_NUMERIC, "adam: gradient norm is %g (NaN/Inf gradient)", norm);
  if (!(lr >= 0) || !isfinite(lr))
    return cnf_error_set(CNF_ERR_ARG, "adam: learning rate %g must be finite and >= 0", lr);
  /* torch clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1 */
  double gscale = 1.0;
  if (a->conf.clip_norm > 0) {
    double coef = a->conf.clip_norm / (norm + 1e-6);
    if (coef < 1.0)
      gscale = coef;
  }
  a->t++;
  const double b1 = a->conf.beta1, b2 = a->conf.beta2, eps = a->conf.eps;
  /* bias corrections use the current beta1 (torch does the same when beta1 is scheduled) */
  const double step_size = lr / (1.0 - pow(b1, (double)a->t));
  const double inv_sqrt_bc2 = 1.0 / sqrt(1.0 - pow(b2, (double)a->t));
  /* decoupled decay p *= 1 - lr wd, applied as p - (lr wd) p: 1 - lr wd itself would round
   * to a float spacing of 6e-8 */
  const double decay = lr * a->conf.weight_decay;
  /* one vectorised pass in the working precision (torch updates float tensors in float) */
  const cnf_real cb1 = (cnf_real)b1, cb1c = (cnf_real)(1.0 - b1), cb2 = (cnf_real)b2,
                 cb2c = (cnf_real)(1.0 - b2), cgs = (cnf_real)gscale, cstep = (cnf_real)step_size,
                 cbc2 = (cnf_real)inv_sqrt_bc2, ceps = (cnf_real)eps, cdecay = (cnf_real)decay;
  cnf_real *restrict am = a->m, *restrict av = a->v, *restrict p = params;
  const cnf_real *restrict gr = grads;
  size_t i = 0;
#if ADAM_SIMD
  {
    const __m512 vb1 = _mm512_set1_ps(cb1), vb1c = _mm512_set1_ps(cb1c), vb2 = _mm512_set1_ps(cb2),
                 vb2c = _mm512_set1_ps(cb2c), vgs = _mm512_set1_ps(cgs),
                 vstep = _mm512_set1_ps(cstep), vbc2 = _mm512_set1_ps(cbc2),
                 veps = _mm512_set1_ps(ceps), vdecay = _mm512_set1_ps(cdecay);
    for (; i + 16 <= n; i += 16) {
      const __m512 g = _mm512_mul_ps(_mm512_loadu_ps(gr + i), vgs);
      const __m512 m = _mm512_fmadd_ps(vb1, _mm512_loadu_ps(am + i), _mm512_mul_ps(vb1c, g));
      const __m512 v = _mm512_fmadd_ps(vb2, _mm512_loadu_ps(av + i),
                                       _mm512_mul_ps(vb2c, _mm512_mul_ps(g, g)));
      _mm512_storeu_ps(am + i, m);
      _mm512_storeu_ps(av + i, v);
      const __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(v), vbc2, veps);
      const __m512 pv = _mm512_loadu_ps(p + i);
      _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_fnmadd_ps(vdecay, pv, pv),
                                            _mm512_div_ps(_mm512_mul_ps(vstep, m), den)));
    }
  }
#endif
  for (; i < n; i++) {
    const cnf_real g = gr[i] * cgs;
    const cnf_real m = cb1 * am[i] + cb1c * g;
    const cnf_real v = cb2 * av[i] + cb2c * g * g;
    am[i] = m;
    av[i] = v;
    p[i] = (p[i] - cdecay * p[i]) - cstep * m / (ADAM_SQRT(v) * cbc2 + ceps);
  }
  return 0;
}
