/* Adam / AdamW over one flat parameter buffer (torch.optim.Adam and AdamW semantics). */
#include "cnflow/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
  double sq = 0;
  for (size_t i = 0; i < n; i++)
    sq += (double)grads[i] * grads[i];
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
  const double decay = 1.0 - lr * a->conf.weight_decay;
  for (size_t i = 0; i < n; i++) {
    double g = grads[i] * gscale;
    double m = b1 * a->m[i] + (1.0 - b1) * g;
    double v = b2 * a->v[i] + (1.0 - b2) * g * g;
    a->m[i] = (cnf_real)m;
    a->v[i] = (cnf_real)v;
    double p = params[i] * decay;
    params[i] = (cnf_real)(p - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps));
  }
  return 0;
}
