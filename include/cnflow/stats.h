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

/* ---- calibration bias and resolution (`cnflow bias`; src/stats/bias.c) ----------------------
 * One scan file = one fixed-true-energy sample.  Over the showers whose flags bit 3 (failed) is
 * clear, r = e_pred / e_true; the bias is the bootstrap KDE mode of r and the "full resolution"
 * half the 68 % percentile interval about it, by the study's rule (src/stats/kde.h: n_boot
 * resamples of size n with replacement, Scott's bandwidth, first argmax on
 * linspace(min r, max r, n_grid), percentiles p -+ 34 clipped to [0, 100]; mean and ddof-0 std
 * over the resamples).  Resample b of file f draws from the stream (seed, stream_id = f,
 * sub = b), so the result does not depend on which rank computes which resample.
 * Where the 68 % interval [e_lo, e_hi] is finite (flow scans; NaN for regression):
 *   per-shower relative resolution (e_hi - e_lo) / (2 e_true): mean and std (ddof 0);
 *   asymmetry Delta_L / Delta_U = (e_pred - e_lo) / (e_hi - e_pred) over the showers with
 *   Delta_U > 0: median (numpy) and counts in CNF_BIAS_ASYM_BINS equal bins over
 *   [0, CNF_BIAS_ASYM_MAX] (numpy.histogram: the last bin is closed, values outside dropped). */
#define CNF_BIAS_N_FLAGS 4    /* scan flag bits: boundary, open interval, multi-maxima, failed */
#define CNF_BIAS_FLAG_FAILED 8
#define CNF_BIAS_ASYM_BINS 50
#define CNF_BIAS_ASYM_MAX 3.0

typedef struct cnf_bias_conf {
  int n_boot;    /* bootstrap resamples (20) */
  size_t n_grid; /* KDE grid points over [min r, max r] (10000) */
  uint64_t seed; /* stream key (1) */
} cnf_bias_conf;
void cnf_bias_conf_default(cnf_bias_conf *conf);

/* The columns of one scan file (N showers); e_lo / e_hi may be NULL (no intervals). */
typedef struct cnf_bias_columns {
  size_t n;
  const double *e_true, *e_pred, *e_lo, *e_hi; /* (n) GeV */
  const int32_t *flags;                        /* (n) scan flag bits */
} cnf_bias_columns;

/* One output row.  Values without data (no finite interval) are NaN. */
typedef struct cnf_bias_row {
  int64_t n_showers;                        /* all showers of the file */
  int64_t n_used;                           /* flags bit 3 clear: the sample r */
  int64_t n_intervals;                      /* used showers with a finite interval */
  int64_t flag_counts[CNF_BIAS_N_FLAGS];    /* showers with bit k set, k = 0..3 */
  double e_true_mean;                       /* over all showers (the nominal energy) */
  double mode, mode_err;                    /* bootstrap mean and std of the KDE mode of r */
  double res_full, res_full_err;            /* same for the percentile half-width */
  double res_shower_mean, res_shower_std;   /* (e_hi - e_lo) / (2 e_true) */
  double asym_median;                       /* median of Delta_L / Delta_U */
  int64_t asym_hist[CNF_BIAS_ASYM_BINS];    /* counts over [0, CNF_BIAS_ASYM_MAX] */
} cnf_bias_row;

/* Lower edge of asymmetry bin i (i = CNF_BIAS_ASYM_BINS gives the upper edge). */
double cnf_bias_asym_edge(int i);

/* Everything but the bootstrap: checks the columns, fills row (mode and res_full set NaN) and
 * writes the ratios of the used showers, in file order, to r (capacity c->n; row->n_used of
 * them).  Errors (message without a file name): CNF_ERR_NUMERIC for a non-finite or
 * non-positive e_true (naming the shower) or a non-finite e_pred of an unflagged shower,
 * CNF_ERR_ARG when fewer than 2 showers are usable or all ratios are equal. */
int cnf_bias_prepare(const cnf_bias_columns *c, cnf_bias_row *row, double *r);

/* Bootstrap resample (stream_id, sub) of the ratios: r (n, file order: the draws index it),
 * rs the same values ascending.  Writes its KDE mode and percentile half-width.  With
 * stream_id = b, sub = 0 for b = 0..n_boot-1 this is cnf_kde_bootstrap_mode's repeat b. */
int cnf_bias_boot_one(const double *r, const double *rs, size_t n, size_t n_grid, uint64_t seed,
                      uint64_t stream_id, uint32_t sub, double *mode, double *res);

/* mode, mode_err, res_full, res_full_err of row from the n_boot resample values (in b order:
 * the result is a fixed-order sum, the same whichever rank computed each value). */
void cnf_bias_boot_finish(const double *modes, const double *res, int n_boot, cnf_bias_row *row);

/* The whole row of file index file_index in one call (serial): prepare, every resample, finish. */
int cnf_bias_compute(const cnf_bias_columns *c, const cnf_bias_conf *conf, uint64_t file_index,
                     cnf_bias_row *row);
