/* Bootstrap KDE mode with Scott's rule and the percentile "true resolution" (kde.h;
 * flows-reference.md 5.5). */
#include "kde.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int kde_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int cnf_kde_scott_bandwidth(const double *x, size_t n, double *h) {
  if (n < 2)
    return cnf_error_set(CNF_ERR_ARG, "KDE: Scott's bandwidth needs at least 2 points, got %zu", n);
  double mean = 0.0;
  for (size_t i = 0; i < n; i++)
    mean += x[i];
  mean /= (double)n;
  double ss = 0.0;
  for (size_t i = 0; i < n; i++)
    ss += (x[i] - mean) * (x[i] - mean);
  double sd = sqrt(ss / (double)(n - 1));
  if (!isfinite(sd))
    return cnf_error_set(CNF_ERR_NUMERIC, "KDE: non-finite sample (n = %zu)", n);
  if (!(sd > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "KDE: constant sample (n = %zu): bandwidth would be 0", n);
  *h = pow((double)n, -0.2) * sd;
  return 0;
}

/* First index with xs[i] >= v (n if none). */
static size_t kde_lower_bound(const double *xs, size_t n, double v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (xs[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Unnormalised sum_i exp(-((g - x_i)/h)^2 / 2) over |g - x_i| <= CUT h. */
static double kde_kernel_sum(const double *xs, size_t n, double h, double g) {
  double inv_h = 1.0 / h, s = 0.0;
  for (size_t i = kde_lower_bound(xs, n, g - CNF_KDE_CUT * h); i < n && xs[i] <= g + CNF_KDE_CUT * h; i++) {
    double u = (g - xs[i]) * inv_h;
    s += exp(-0.5 * u * u);
  }
  return s;
}

double cnf_kde_density_sorted(const double *xs, size_t n, double h, double g) {
  return kde_kernel_sum(xs, n, h, g) / ((double)n * h * sqrt(2.0 * M_PI));
}

/* numpy.linspace(lo, hi, m)[i] */
static double kde_grid_point(double lo, double hi, size_t m, size_t i) {
  return i == m - 1 ? hi : lo + (double)i * ((hi - lo) / (double)(m - 1));
}

/* Exact first argmax over the grid points i with keep[i] (all when keep is NULL). */
static size_t kde_exact_argmax(const double *xs, size_t n, double h, double lo, double hi,
                               size_t m, const unsigned char *keep) {
  size_t best = 0;
  double best_v = -1.0;
  for (size_t i = 0; i < m; i++) {
    if (keep && !keep[i])
      continue;
    double v = kde_kernel_sum(xs, n, h, kde_grid_point(lo, hi, m, i));
    if (v > best_v) {
      best_v = v;
      best = i;
    }
  }
  return best;
}

int cnf_kde_mode_grid(const double *xs, size_t n, double h, double lo, double hi, size_t n_grid,
                      double *mode, size_t *index) {
  if (n < 1 || n_grid < 1 || !(h > 0.0) || !(hi >= lo) || !isfinite(lo) || !isfinite(hi))
    return cnf_error_set(CNF_ERR_ARG,
                         "KDE mode: need n >= 1, n_grid >= 1, h > 0, finite lo <= hi (n %zu, "
                         "grid %zu, h %g, [%g, %g])", n, n_grid, h, lo, hi);
  size_t best = 0;
  double step = n_grid > 1 ? (hi - lo) / (double)(n_grid - 1) : 0.0;
  double kw = step > 0.0 ? ceil(CNF_KDE_CUT * h / step) : 0.0; /* kernel half-width in steps */
  if (step > 0.0 && (2.0 * kw + 1.0) * (double)n_grid < 4e8) {
    size_t K = (size_t)kw, next = n_grid + 2 * K, m = n_grid;
    double *counts = cnf_calloc(next, sizeof *counts), *w = cnf_malloc((K + 1) * sizeof *w);
    double *binned = cnf_malloc(m * sizeof *binned);
    unsigned char *keep = cnf_calloc(m, 1);
    if (!counts || !w || !binned || !keep) {
      free(counts), free(w), free(binned), free(keep);
      return CNF_ERR_NOMEM;
    }
    /* linear binning onto the grid extended by K nodes each side (node j at lo + (j - K) step);
     * points beyond it are more than CUT h from every grid point */
    for (size_t i = 0; i < n; i++) {
      double pos = (xs[i] - lo) / step + (double)K;
      if (pos < 0.0 || pos > (double)(next - 1))
        continue;
      size_t j = (size_t)pos;
      double f = pos - (double)j;
      if (j >= next - 1) {
        counts[next - 1] += 1.0;
      } else {
        counts[j] += 1.0 - f;
        counts[j + 1] += f;
      }
    }
    for (size_t j = 0; j <= K; j++) {
      double u = (double)j * step / h;
      w[j] = exp(-0.5 * u * u);
    }
    double max_b = 0.0;
    for (size_t i = 0; i < m; i++) {
      const double *c = counts + i + K; /* node of grid point i */
      double s = c[0] * w[0];
      for (size_t j = 1; j <= K; j++)
        s += (c[-(ptrdiff_t)j] + c[j]) * w[j];
      binned[i] = s;
      max_b = fmax(max_b, s);
    }
    /* |binned - exact| <= n (step^2 / (8 h^2) + 2 e^(-CUT^2/2)) per grid point (linear
     * interpolation error of the kernel, max |d2/dy2 exp(-y^2/2h^2)| = 1/h^2, plus the
     * truncated tails); any grid point that can hold the exact maximum is kept */
    double bound = (double)n * (step * step / (8.0 * h * h) + 2.0 * exp(-0.5 * CNF_KDE_CUT * CNF_KDE_CUT));
    double thresh = max_b - 2.0 * bound - 1e-9 * max_b;
    for (size_t i = 0; i < m; i++)
      keep[i] = binned[i] >= thresh;
    best = kde_exact_argmax(xs, n, h, lo, hi, m, keep);
    free(counts), free(w), free(binned), free(keep);
  } else if (n_grid > 1) {
    best = kde_exact_argmax(xs, n, h, lo, hi, n_grid, NULL); /* grid much finer than useful */
  }
  *mode = n_grid > 1 ? kde_grid_point(lo, hi, n_grid, best) : lo;
  if (index)
    *index = best;
  return 0;
}

double cnf_percentile_type8(const double *xs, size_t n, double pct) {
  double q = pct / 100.0;
  double v = (double)n * q + (1.0 / 3.0 + q / 3.0) - 1.0; /* numpy virtual index, alpha = beta = 1/3 */
  if (v < 0.0)
    return xs[0];
  if (v >= (double)(n - 1))
    return xs[n - 1];
  size_t j = (size_t)floor(v);
  double t = v - (double)j, a = xs[j], b = xs[j + 1], d = b - a;
  return t < 0.5 ? a + d * t : b - d * (1.0 - t); /* numpy's _lerp */
}

double cnf_percentile_of_score(const double *xs, size_t n, double score) {
  size_t left = kde_lower_bound(xs, n, score), right = left;
  while (right < n && xs[right] <= score)
    right++;
  return (double)(left + right + (right > left ? 1 : 0)) * (50.0 / (double)n);
}

void cnf_kde_mode_config_default(cnf_kde_mode_config *cfg) {
  cfg->n_boot = 20;
  cfg->n_resample = 0;
  cfg->n_grid = 10000;
  cfg->half_width_pct = 34.0;
  cfg->clip_percentiles = 1;
  cfg->seed = 1;
}

void cnf_mean_std_ddof0(const double *v, size_t n, double *mean, double *sd) {
  double m = 0.0, ss = 0.0;
  for (size_t i = 0; i < n; i++)
    m += v[i];
  m /= (double)n;
  for (size_t i = 0; i < n; i++)
    ss += (v[i] - m) * (v[i] - m);
  *mean = m;
  *sd = sqrt(ss / (double)n);
}

int cnf_kde_bootstrap_mode(const double *r, size_t n, const cnf_kde_mode_config *cfg,
                           cnf_kde_mode_result *out, double *modes, double *res) {
  if (n < 2 || cfg->n_boot < 1 || cfg->n_grid < 1 ||
      !(cfg->half_width_pct > 0.0 && cfg->half_width_pct <= 50.0))
    return cnf_error_set(CNF_ERR_ARG,
                         "KDE bootstrap: need n >= 2, n_boot >= 1, n_grid >= 1, half-width in "
                         "(0, 50] (n %zu, n_boot %d, n_grid %zu, half-width %g)",
                         n, cfg->n_boot, cfg->n_grid, cfg->half_width_pct);
  if (!cnf_all_finite_d(n, r))
    return cnf_error_set(CNF_ERR_NUMERIC, "KDE bootstrap: the sample holds NaN or Inf");
  size_t k = cfg->n_resample ? cfg->n_resample : n, nb = (size_t)cfg->n_boot;
  double *rs = cnf_malloc(n * sizeof *rs), *y = cnf_malloc(k * sizeof *y);
  double *mv = cnf_malloc(2 * nb * sizeof *mv), *rv = mv ? mv + nb : NULL;
  if (!rs || !y || !mv) {
    free(rs), free(y), free(mv);
    return CNF_ERR_NOMEM;
  }
  memcpy(rs, r, n * sizeof *rs);
  qsort(rs, n, sizeof *rs, kde_cmp_double);
  memset(out, 0, sizeof *out);
  out->lo = rs[0];
  out->hi = rs[n - 1];
  int rc = 0;
  for (size_t b = 0; b < nb; b++) {
    cnf_rng g;
    cnf_rng_init(&g, cfg->seed, (uint64_t)b, 0);
    for (size_t j = 0; j < k; j++) { /* random.choices(r, k): uniform indices, with replacement */
      size_t idx = (size_t)(cnf_rng_uniform(&g) * (double)n);
      y[j] = r[idx < n ? idx : n - 1];
    }
    qsort(y, k, sizeof *y, kde_cmp_double);
    double h;
    CNF_CALL_GOTO(rc, done, cnf_kde_scott_bandwidth(y, k, &h));
    CNF_CALL_GOTO(rc, done, cnf_kde_mode_grid(y, k, h, out->lo, out->hi, cfg->n_grid, &mv[b], NULL));
    double p = cnf_percentile_of_score(rs, n, mv[b]);
    double plo = p - cfg->half_width_pct, phi = p + cfg->half_width_pct;
    if (cfg->clip_percentiles) {
      plo = fmax(plo, 0.0);
      phi = fmin(phi, 100.0);
    } else if (plo < 0.0 || phi > 100.0) {
      rc = cnf_error_set(CNF_ERR_ARG,
                         "KDE bootstrap: mode %g sits at percentile %.2f, so p -+ %g leaves [0, 100]",
                         mv[b], p, cfg->half_width_pct);
      goto done;
    }
    rv[b] = 0.5 * (cnf_percentile_type8(rs, n, phi) - cnf_percentile_type8(rs, n, plo));
    out->bandwidth_mean += h / (double)nb;
  }
  cnf_mean_std_ddof0(mv, nb, &out->mode_mean, &out->mode_std);
  cnf_mean_std_ddof0(rv, nb, &out->res_mean, &out->res_std);
  if (modes)
    memcpy(modes, mv, nb * sizeof *mv);
  if (res)
    memcpy(res, rv, nb * sizeof *rv);
done:
  free(rs), free(y), free(mv);
  return rc;
}
