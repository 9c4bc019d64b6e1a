/* cnflow stats: reference densities with closed forms (and, later, the evaluation metrics).
 *
 * ---- the conditional toy density (used by `cnflow demo` and its test) ----------------------
 * x in R^2, condition c in [-1, 1] (drawn uniform when the sampler draws it too).
 *     p(x | c) = 1/2 N(x; mu_1(c), S_1) + 1/2 N(x; mu_2(c), S_2)
 *     mu_1(c) = ( +(1 + c/2), c/2 ),   mu_2(c) = ( -(1 + c/2), c/2 )
 *     S_1 = [[0.25, 0.10], [0.10, 0.16]]   (sd 0.5, 0.4, correlation +0.5)
 *     S_2 = [[0.09, -0.03], [-0.03, 0.36]] (sd 0.3, 0.6, correlation -1/6)
 * The two components have different shapes so that a flow must learn more than a shift, and
 * the separation of the modes grows with c.  Moments (closed form):
 *     E[x | c]   = (0, c/2)
 *     Cov[x | c] = (S_1 + S_2)/2 + diag((1 + c/2)^2, 0)
 * Draws are counter-based: event i uses the stream (seed, stream_id = i), so a data set does
 * not depend on how it is split over ranks.
 */
#pragma once

#include "cnflow/core.h"

#define CNF_TOY_DIM 2
#define CNF_TOY_COND_DIM 1

/* n events with indices first_index .. first_index + n - 1: c (n, 1) uniform in [-1, 1],
 * x (n, 2) drawn from p(x | c). */
void cnf_toy_sample(uint64_t seed, uint64_t first_index, int n, cnf_real *x, cnf_real *c);
/* Same, for given conditions c (n, 1) (x (n, 2) written). */
void cnf_toy_sample_given(uint64_t seed, uint64_t first_index, int n, const cnf_real *c,
                          cnf_real *x);
/* Closed-form log p(x | c) for one event (x has 2 values). */
double cnf_toy_log_prob(const double *x, double c);
/* Mean (2) and covariance (2x2 row-major) of p(x | c). */
void cnf_toy_moments(double c, double *mean, double *cov);
