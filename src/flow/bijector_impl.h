/* Private to src/flow: constructors of each bijector kind.  cnf_flow_create calls
 * cnf_bijector_create, which dispatches on spec->kind.  Each constructor fills b->ops, b->impl,
 * b->n_params, b->dim, b->cond_dim and b->spec (deep-copying any arrays). */
#pragma once

#include "cnflow/flow.h"

/* The largest number of RQS bins: the kernel keeps per-element knots on the stack (rqs.c's
 * RQS_KMAX must be at least this). */
#define CNF_RQS_MAX_BINS 64

/* The one rule set for bijector hyper-parameters (flow.c), run by cnf_flow_create and by every
 * constructor below: 0 if spec is valid for a bijector on D dims with C conditions, else
 * CNF_ERR_ARG with "bijector k (kind): problem" (k >= 0) or "kind: problem" (k < 0). */
int cnf_bijector_spec_check(const cnf_bijector_spec *spec, int D, int C, int k);

int cnf_bij_maf_create(cnf_bijector *b);      /* CNF_BIJ_MAF_AFFINE, CNF_BIJ_MAF_RQS  (maf.c) */
int cnf_bij_coupling_create(cnf_bijector *b); /* CNF_BIJ_COUPLING_RQS               (coupling.c) */
int cnf_bij_actnorm_create(cnf_bijector *b);  /* CNF_BIJ_ACTNORM                    (actnorm.c) */
int cnf_bij_elementwise_create(cnf_bijector *b); /* PERMUTE, TANH, LOGIT, AFFINE_FIXED (elementwise.c) */

/* ---- rational-quadratic spline kernel (rqs.c) --------------------------------------------- */
/* One 1-D monotone RQS per element with linear (identity) tails outside [-B, B].
 * theta holds P = 3K-1 raw parameters per element, contiguous: [uw (K) | uh (K) | ud (K-1)].
 * Element e uses x[e], theta[e*P .. e*P+P). */
typedef struct cnf_rqs_conf {
  int K;
  cnf_real B, min_w, min_h, min_d;
} cnf_rqs_conf;

/* y = RQS(x), logdet[e] = log|dy/dx| (WRITTEN). */
void cnf_rqs_forward(const cnf_rqs_conf *conf, int n, const cnf_real *x, const cnf_real *theta,
                     cnf_real *y, cnf_real *logdet);
/* x = RQS^{-1}(y), logdet[e] = log|dx/dy| (WRITTEN). Cancellation-free root formula. */
void cnf_rqs_inverse(const cnf_rqs_conf *conf, int n, const cnf_real *y, const cnf_real *theta,
                     cnf_real *x, cnf_real *logdet);
/* Reverse mode of cnf_rqs_forward: given dy (dL/dy) and dld (dL/dlogdet) per element,
 * WRITE dx (dL/dx, may be NULL) and dtheta (dL/dtheta, n*P, may be NULL). */
void cnf_rqs_backward(const cnf_rqs_conf *conf, int n, const cnf_real *x, const cnf_real *theta,
                      const cnf_real *dy, const cnf_real *dld, cnf_real *dx, cnf_real *dtheta);
/* Raw derivative parameter that gives knot derivative exactly 1: log(exp(1 - min_d) - 1). */
double cnf_rqs_identity_ud(double min_d);
