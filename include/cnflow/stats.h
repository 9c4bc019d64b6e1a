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

/* ---- evaluation statistics (src/stats/metrics.c, src/stats/shower.c) ------------------------
 * Pure serial computations in double precision for `cnflow evaluate` (generated vs reference
 * samples).  Inputs are never modified; functions that sort work on internal copies. */

/* Exact 1-D Wasserstein-1 distance between the empirical distributions of a (na values) and
 * b (nb values), W1 = integral |F_a(t) - F_b(t)| dt, i.e. scipy.stats.wasserstein_distance(a, b)
 * without weights.  Computed on sorted copies by one merge pass; the CDF differences are formed
 * from integer counts (|i nb - j na| / (na nb)) so that no rounding accumulates in them.
 * NaN if either sample is empty, a copy cannot be allocated (message set) or a value is not
 * finite (no meaningful distance). */
double cnf_w1_1d(const double *a, size_t na, const double *b, size_t nb);

/* Counts of x in nbins equal bins over [lo, hi], numpy.histogram(x, nbins, (lo, hi)) exactly:
 * edges linspace(lo, hi, nbins + 1), bin i = [e_i, e_{i+1}) except the last, which is closed;
 * values outside [lo, hi] and NaN are dropped and their number is written to *n_outside
 * (if non-NULL).  counts (nbins) is overwritten.  CNF_ERR_ARG for nbins < 1, non-finite lo/hi
 * or hi <= lo. */
int cnf_hist_fill(const double *x, size_t n, double lo, double hi, int nbins, double *counts,
                  size_t *n_outside);
/* Same binning, but ADDS to counts (filling a histogram chunk by chunk); *n_outside, if
 * non-NULL, is incremented. */
int cnf_hist_add(const double *x, size_t n, double lo, double hi, int nbins, double *counts,
                 size_t *n_outside);

/* Separation power of two histograms of raw counts c1, c2 (nbins each), each normalised to unit
 * sum, p_i = c1_i / N1, q_i = c2_i / N2:
 *     S = 1/2 sum_i (p_i - q_i)^2 / (p_i + q_i)          (bins with p_i + q_i = 0 skipped)
 * 0 for identical shapes, 1 for disjoint supports.  Its error (err may be NULL) is linear error
 * propagation of independent Poisson counts, Var c_i = c_i, through p, q INCLUDING the
 * normalisations N1, N2 (they are sums of the same counts):
 *     g_i = dS/dp_i = (p_i - q_i)(p_i + 3 q_i) / (2 (p_i + q_i)^2),
 *     h_i = dS/dq_i = (q_i - p_i)(q_i + 3 p_i) / (2 (p_i + q_i)^2),
 *     dS/dc1_j = (g_j - sum_i p_i g_i) / N1,   dS/dc2_j = (h_j - sum_i q_i h_i) / N2,
 *     err^2 = sum_j (dS/dc1_j)^2 c1_j + sum_j (dS/dc2_j)^2 c2_j.
 * Being first order, it vanishes for identical histograms (S is quadratic in p - q there), and
 * it is an underestimate whenever S is comparable to its own statistical floor ~ nbins / N: use
 * it for distributions that really differ.  S itself is biased upwards by about
 * 1/2 sum_i (p_i/N1 + q_i/N2) / (p_i + q_i) (not corrected).  Counts may be non-integer (weighted)
 * but must be finite and >= 0: CNF_ERR_ARG for nbins < 1, a negative count or an empty
 * histogram, CNF_ERR_NUMERIC for a non-finite count. */
int cnf_separation_power(const double *counts1, const double *counts2, int nbins, double *sep,
                         double *err);

/* Core width of a peaked sample by the iterative +-k sigma Gaussian rule.
 * Start: mu = median, s = 1.4826 MAD (the sample sd if MAD = 0).  Repeat: window
 * [mu - k s, mu + k s]; n_core points inside, mu = their mean, s = their sd (ddof 1) divided by
 * sqrt(beta_k) with beta_k = 1 - 2 k phi(k) / P_k, P_k = 2 Phi(k) - 1 (the variance of a unit
 * Gaussian truncated at +-k), so s estimates the sigma of the Gaussian core.  Converged when the
 * window holds exactly the same points as in the previous iteration (then mu, s are a fixed
 * point); at most CNF_CORE_MAX_ITER iterations (converged = 0 if that limit is hit, e.g. a
 * 2-cycle; the last values are returned).
 * Errors: asymptotic variances of the fixed point as an M-estimator, for a Gaussian core
 * (location and scale decouple for a symmetric core):
 *     mean_err  = sigma / sqrt(n_core beta_k)
 *     sigma_err = sigma * sqrt(P_k / (n_core J_k)),
 *     J_k = integral_{-k}^{k} (u^2 - beta_k)^2 phi(u) du = 3 P_k - 2 phi(k)(k^3 + 3 k) - beta_k^2 P_k.
 * For k -> infinity these become sigma/sqrt(n) and sigma/sqrt(2 n); for k = 2 they are
 * 1.137 sigma/sqrt(n_core) and 1.106 sigma/sqrt(n_core) (a truncated window loses information,
 * the naive sigma/sqrt(2 n_core) would be 1.6x too small at k = 2).  Tails inside the window
 * bias sigma upwards; that is the price of the rule, not corrected.
 * CNF_ERR_ARG for n < 3, k < 1 or non-finite k, a constant sample, or fewer than 3 points in a
 * window; CNF_ERR_NUMERIC for a non-finite value; CNF_ERR_NOMEM. */
#define CNF_CORE_MAX_ITER 100
typedef struct cnf_core_fit {
  double mean, mean_err, sigma, sigma_err;
  size_t n_core;  /* points in the final window */
  int iterations; /* window updates done */
  int converged;  /* 1 when the final window's point set repeated */
} cnf_core_fit;
int cnf_core_width(const double *x, size_t n, double k, cnf_core_fit *fit);

/* Area under the ROC curve of scores of positives vs negatives:
 * AUC = #{(i, j): s_pos_i > s_neg_j} + 1/2 #{ties}, divided by np nn (Mann-Whitney U / (np nn);
 * = sklearn roc_auc_score with positives labelled 1).  O((np + nn) log) on sorted copies.
 * NaN if either set is empty, a score is NaN, or a copy cannot be allocated. */
double cnf_auc(const double *score_pos, size_t np, const double *score_neg, size_t nn);

/* ParaFlow shower shapes of one image (jonaskann/ParaFlow utils.py and clustering.py,
 * physics-spec.md 2.4).  img is (rows, cols) row-major; row = eta-like index, col = phi-like
 * index; positions are crystal indices (r, c), distances in crystal units.  Energies are in the
 * input's unit: the calo-photon generator writes MeV (`showers` (N, 128) = 16 (y) x 8 (x)
 * window, row = jy, col = jx; `images_full` 24 x 24), so conf energies are MeV for its files.
 *   e_total = sum of all crystals; e_max1 = the brightest crystal (first in row-major order on
 *   ties), e_max2 = the largest of the other crystals (equal to e_max1 when two crystals tie;
 *   NaN for a one-crystal image).
 *   width = sum_i E_i |r_i - r_bar| / e_total, |.| Euclidean in (row, col), r_bar the energy
 *   barycentre (ParaFlow shower_width).
 *   r9 = (sum of the 3 x 3 crystals centred on the brightest one) / e_total; crystals outside the
 *   image are ignored (physics-spec default), or, with conf->r9_clip_edges, the indices are
 *   clipped to the image as ParaFlow's np.clip does (edge crystals counted more than once when
 *   the maximum is on the border: only for bit-compatibility with their numbers).
 *   n_clusters = DBSCAN over the crystals with E > cluster_e_min (strict, like ParaFlow's
 *   image > threshold) at their (row, col) positions: neighbours are points at Euclidean
 *   distance <= eps (sklearn/cuML convention); a core point has >= min_pts neighbours counting
 *   itself; clusters are the eps-connected sets of core points plus the border points (non-core
 *   points within eps of a core point); noise points are not counted.
 * With e_total <= 0 (e.g. an all-zero generated image) width and r9 are NaN (not an error).
 * CNF_ERR_ARG for rows or cols < 1, eps <= 0 or non-finite, min_pts < 1, non-finite e_min;
 * CNF_ERR_NUMERIC for a non-finite crystal energy; CNF_ERR_NOMEM. */
typedef struct cnf_shower_shape {
  double e_total, e_max1, e_max2; /* sum, brightest and second-brightest crystal */
  double width;                   /* energy-weighted mean distance to the barycentre (crystals) */
  double r9;                      /* energy in the 3x3 around the brightest crystal / e_total */
  int n_clusters;                 /* DBSCAN clusters of crystals with energy > e_min */
} cnf_shower_shape;
typedef struct cnf_shower_conf {
  double cluster_e_min; /* crystal threshold, image unit (MeV for calo-photon): 400 */
  double cluster_eps;   /* DBSCAN radius, crystals: 1.5 (8-neighbourhood) */
  int cluster_min_pts;  /* DBSCAN core-point count including the point itself: 1 */
  int r9_clip_edges;    /* 0 (default): out-of-image crystals ignored; 1: ParaFlow's np.clip */
} cnf_shower_conf;
/* ParaFlow's evaluation settings: e_min 400 MeV, eps 1.5 crystals, min_pts 1, r9_clip_edges 0. */
void cnf_shower_conf_default(cnf_shower_conf *c);
int cnf_shower_shape_compute(const double *img, int rows, int cols, const cnf_shower_conf *conf,
                             cnf_shower_shape *s);
