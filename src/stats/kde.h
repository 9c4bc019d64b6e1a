/* Private to src/stats: bootstrap KDE mode and "true resolution" of a 1-D sample, as the
 * calibration study computes its bias (flows-reference.md 5.5):
 *
 *   range  = [min r, max r] of the full sample; grid = linspace(min, max, n_grid)
 *   repeat n_boot times:
 *     y    = n_resample draws from r with replacement
 *     kde  = scipy.stats.gaussian_kde(y, bw_method='scott'): Gaussian kernel with bandwidth
 *            h = n^(-1/5) * std(y, ddof=1)
 *     mode = grid[argmax kde(grid)]                (first maximum)
 *     p    = scipy.stats.percentileofscore(r, mode)          (kind='rank')
 *     res  = (percentile(r, p+34) - percentile(r, p-34)) / 2  (numpy 'median_unbiased')
 *   bias = mean(mode), error = std(mode); resolution = mean(res) +- std(res)  (ddof = 0, numpy)
 *
 * Speed: the KDE is linearly binned onto the grid and convolved with a Gaussian truncated at
 * CNF_KDE_CUT bandwidths (O(n + n_grid * h / step)); the grid points whose binned density is
 * within the binning error bound of the maximum are then evaluated exactly on the sorted
 * sample, so the argmax is that of the exact (truncated) KDE, not of its binned approximation.
 * 100k points x 10k grid points take milliseconds instead of the 1e9 kernel evaluations of the
 * direct sum. */
#pragma once

#include "cnflow/core.h"

#define CNF_KDE_CUT 8.0 /* kernel truncation in bandwidths: relative error e^-32 ~ 1e-14 */

/* Scott's bandwidth n^(-1/5) * std(x, ddof=1).  CNF_ERR_ARG if n < 2 or the sample is constant
 * or not finite (scipy raises for a singular covariance too). */
int cnf_kde_scott_bandwidth(const double *x, size_t n, double *h);

/* Gaussian KDE density (1/(n h)) sum_i phi((g - x_i)/h) of an ASCENDING sample xs at g, summed
 * over the points within CNF_KDE_CUT h of g. */
double cnf_kde_density_sorted(const double *xs, size_t n, double h, double g);

/* First argmax of the KDE of the ascending sample xs (bandwidth h) over
 * linspace(lo, hi, n_grid) (numpy: lo + i * (hi - lo)/(n_grid - 1), last point = hi).
 * Writes the grid value to *mode and its index to *index (may be NULL). */
int cnf_kde_mode_grid(const double *xs, size_t n, double h, double lo, double hi, size_t n_grid,
                      double *mode, size_t *index);

/* Mean and population (ddof 0, numpy's default) standard deviation, two-pass in index order. */
void cnf_mean_std_ddof0(const double *v, size_t n, double *mean, double *sd);

/* numpy.percentile(xs, pct, method='median_unbiased') (Hyndman-Fan type 8) of an ascending
 * sample; pct in [0, 100]. */
double cnf_percentile_type8(const double *xs, size_t n, double pct);
/* scipy.stats.percentileofscore(xs, score, kind='rank') of an ascending sample, in [0, 100]. */
double cnf_percentile_of_score(const double *xs, size_t n, double score);

typedef struct cnf_kde_mode_config {
  int n_boot;            /* bootstrap repeats (20) */
  size_t n_resample;     /* draws per repeat (0: the sample size, as random.choices(r, k=N)) */
  size_t n_grid;         /* grid points over [min r, max r] (10000) */
  double half_width_pct; /* percentile half-width of the resolution (34) */
  int clip_percentiles;  /* 1: clip p +- 34 to [0, 100] (MSE notebook); 0: fail outside it, as
                          * numpy does in the flow notebook (default 1) */
  uint64_t seed;         /* repeat b draws from the stream (seed, b) */
} cnf_kde_mode_config;

void cnf_kde_mode_config_default(cnf_kde_mode_config *cfg);

typedef struct cnf_kde_mode_result {
  double mode_mean, mode_std; /* mean and std (ddof 0) of the n_boot modes */
  double res_mean, res_std;   /* same for the percentile half-widths */
  double bandwidth_mean;      /* mean Scott bandwidth of the repeats */
  double lo, hi;              /* grid range (min and max of r) */
} cnf_kde_mode_result;

/* The whole procedure above on r (n values, any order; not modified).  modes and res, if not
 * NULL, receive the n_boot individual values.  CNF_ERR_ARG on bad sizes or a constant sample,
 * CNF_ERR_NUMERIC on non-finite values, CNF_ERR_NOMEM. */
int cnf_kde_bootstrap_mode(const double *r, size_t n, const cnf_kde_mode_config *cfg,
                           cnf_kde_mode_result *out, double *modes, double *res);
