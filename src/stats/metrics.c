/* Evaluation statistics of generated vs reference samples (include/cnflow/stats.h, section
 * "evaluation statistics"): 1-D Wasserstein-1, numpy-compatible histograms, separation power
 * with its propagated error, the iterative +-k sigma core width and the ROC AUC. */
#include "cnflow/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int metrics_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorted copy of x (n >= 1), or NULL (message set). */
static double *metrics_sorted_copy(const double *x, size_t n) {
  double *s = cnf_malloc(n * sizeof *s);
  if (!s)
    return NULL;
  memcpy(s, x, n * sizeof *s);
  qsort(s, n, sizeof *s, metrics_cmp_double);
  return s;
}

static int metrics_all_finite(const double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return 0;
  return 1;
}

/* ---- Wasserstein-1 ------------------------------------------------------------------------ */
double cnf_w1_1d(const double *a, size_t na, const double *b, size_t nb) {
  if (na == 0 || nb == 0 || !metrics_all_finite(a, na) || !metrics_all_finite(b, nb))
    return NAN;
  double *sa = metrics_sorted_copy(a, na), *sb = sa ? metrics_sorted_copy(b, nb) : NULL;
  if (!sb) {
    free(sa);
    return NAN;
  }
  /* Between consecutive distinct values t < next of the merged sample, F_a = i/na and
   * F_b = j/nb are constant (i, j = counts <= t); |F_a - F_b| = |i nb - j na| / (na nb) is
   * exact in integers, so only the interval lengths and the sum round.  Neumaier summation
   * keeps the sum of up to na + nb positive terms accurate to a few ulp. */
  size_t i = 0, j = 0;
  double t = sa[0] < sb[0] ? sa[0] : sb[0], sum = 0.0, comp = 0.0;
  for (;;) {
    while (i < na && sa[i] <= t)
      i++;
    while (j < nb && sb[j] <= t)
      j++;
    if (i == na && j == nb)
      break;
    double next = (j == nb || (i < na && sa[i] < sb[j])) ? sa[i] : sb[j];
    uint64_t u = (uint64_t)i * nb, v = (uint64_t)j * na;
    double term = (double)(u > v ? u - v : v - u) * (next - t);
    double s2 = sum + term;
    comp += fabs(sum) >= fabs(term) ? (sum - s2) + term : (term - s2) + sum;
    sum = s2;
    t = next;
  }
  free(sa);
  free(sb);
  return (sum + comp) / ((double)na * (double)nb);
}

/* ---- histograms --------------------------------------------------------------------------- */
static int hist_check(double lo, double hi, int nbins, const char *who) {
  if (nbins < 1)
    return cnf_error_set(CNF_ERR_ARG, "%s: need at least 1 bin, got %d", who, nbins);
  if (!isfinite(lo) || !isfinite(hi) || !(hi > lo) || !isfinite(hi - lo))
    return cnf_error_set(CNF_ERR_ARG, "%s: range [%g, %g] must be finite with hi > lo", who, lo, hi);
  return 0;
}

/* numpy.histogram's equal-bin path (numpy/lib/histograms.py): index from (x - lo) * norm, then
 * corrected against the linspace edges, which may differ from the index arithmetic by an ulp. */
static void hist_accumulate(const double *x, size_t n, double lo, double hi, int nbins,
                            double *counts, size_t *n_outside) {
  const double norm = (double)nbins / (hi - lo), step = (hi - lo) / (double)nbins;
#define HIST_EDGE(e) ((e) == nbins ? hi : (double)(e) * step + lo)
  size_t out = 0;
  for (size_t k = 0; k < n; k++) {
    double v = x[k];
    if (!(v >= lo && v <= hi)) { /* NaN fails both */
      out++;
      continue;
    }
    double f = (v - lo) * norm;
    int idx = f >= (double)nbins ? nbins : (int)f;
    if (idx == nbins)
      idx--;
    if (idx > 0 && v < HIST_EDGE(idx))
      idx--;
    if (idx != nbins - 1 && v >= HIST_EDGE(idx + 1))
      idx++;
    counts[idx] += 1.0;
  }
#undef HIST_EDGE
  if (n_outside)
    *n_outside += out;
}

int cnf_hist_fill(const double *x, size_t n, double lo, double hi, int nbins, double *counts,
                  size_t *n_outside) {
  CNF_CALL(hist_check(lo, hi, nbins, "histogram"));
  memset(counts, 0, (size_t)nbins * sizeof *counts);
  if (n_outside)
    *n_outside = 0;
  hist_accumulate(x, n, lo, hi, nbins, counts, n_outside);
  return 0;
}

int cnf_hist_add(const double *x, size_t n, double lo, double hi, int nbins, double *counts,
                 size_t *n_outside) {
  CNF_CALL(hist_check(lo, hi, nbins, "histogram"));
  hist_accumulate(x, n, lo, hi, nbins, counts, n_outside);
  return 0;
}

/* ---- separation power --------------------------------------------------------------------- */
static int sep_sum(const double *c, int nbins, const char *which, double *total) {
  double s = 0.0;
  for (int i = 0; i < nbins; i++) {
    if (!isfinite(c[i]))
      return cnf_error_set(CNF_ERR_NUMERIC, "separation power: %s histogram bin %d is not finite",
                           which, i);
    if (c[i] < 0.0)
      return cnf_error_set(CNF_ERR_ARG, "separation power: %s histogram bin %d is negative (%g)",
                           which, i, c[i]);
    s += c[i];
  }
  if (!(s > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "separation power: %s histogram is empty", which);
  *total = s;
  return 0;
}

int cnf_separation_power(const double *counts1, const double *counts2, int nbins, double *sep,
                         double *err) {
  if (nbins < 1)
    return cnf_error_set(CNF_ERR_ARG, "separation power: need at least 1 bin, got %d", nbins);
  double n1 = 0.0, n2 = 0.0;
  CNF_CALL(sep_sum(counts1, nbins, "first", &n1));
  CNF_CALL(sep_sum(counts2, nbins, "second", &n2));
  /* S and the projections sum_i p_i g_i, sum_i q_i h_i that the normalisations contribute. */
  double s = 0.0, pg = 0.0, qh = 0.0;
  for (int i = 0; i < nbins; i++) {
    double p = counts1[i] / n1, q = counts2[i] / n2, t = p + q;
    if (!(t > 0.0))
      continue;
    double d = p - q;
    s += d * d / t;
    pg += p * (d * (p + 3.0 * q) / (2.0 * t * t));
    qh += q * (-d * (q + 3.0 * p) / (2.0 * t * t));
  }
  *sep = 0.5 * s;
  if (err) {
    double var = 0.0;
    for (int i = 0; i < nbins; i++) {
      double p = counts1[i] / n1, q = counts2[i] / n2, t = p + q;
      double g = 0.0, h = 0.0;
      if (t > 0.0) {
        double d = p - q;
        g = d * (p + 3.0 * q) / (2.0 * t * t);
        h = -d * (q + 3.0 * p) / (2.0 * t * t);
      }
      double d1 = (g - pg) / n1, d2 = (h - qh) / n2;
      var += d1 * d1 * counts1[i] + d2 * d2 * counts2[i];
    }
    *err = sqrt(var);
  }
  return 0;
}

/* ---- core width --------------------------------------------------------------------------- */
/* numpy.median of sorted values. */
static double metrics_median_sorted(const double *xs, size_t n) {
  return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

/* First index with xs[i] >= v, or with xs[i] > v when upper (n if none). */
static size_t metrics_bound(const double *xs, size_t n, double v, int upper) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (upper ? xs[mid] <= v : xs[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Mean and sd (ddof 1) of xs[lo, hi), two passes. */
static void metrics_mean_sd(const double *xs, size_t lo, size_t hi, double *mean, double *sd) {
  double m = 0.0, ss = 0.0;
  for (size_t i = lo; i < hi; i++)
    m += xs[i];
  m /= (double)(hi - lo);
  for (size_t i = lo; i < hi; i++)
    ss += (xs[i] - m) * (xs[i] - m);
  *mean = m;
  *sd = sqrt(ss / (double)(hi - lo - 1));
}

int cnf_core_width(const double *x, size_t n, double k, cnf_core_fit *fit) {
  if (n < 3)
    return cnf_error_set(CNF_ERR_ARG, "core width: need at least 3 values, got %zu", n);
  if (!isfinite(k) || k < 1.0)
    return cnf_error_set(CNF_ERR_ARG, "core width: window half-width k = %g sigma must be >= 1", k);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return cnf_error_set(CNF_ERR_NUMERIC, "core width: value %zu is not finite", i);
  double *xs = metrics_sorted_copy(x, n);
  if (!xs)
    return CNF_ERR_NOMEM;
  double *dev = cnf_malloc(n * sizeof *dev);
  if (!dev) {
    free(xs);
    return CNF_ERR_NOMEM;
  }
  double mu = metrics_median_sorted(xs, n);
  for (size_t i = 0; i < n; i++)
    dev[i] = fabs(xs[i] - mu);
  qsort(dev, n, sizeof *dev, metrics_cmp_double);
  double s = 1.4826 * metrics_median_sorted(dev, n);
  free(dev);
  if (!(s > 0.0)) { /* more than half the sample on one value: start from the plain sd */
    double m_all;
    metrics_mean_sd(xs, 0, n, &m_all, &s);
    if (!(s > 0.0)) {
      free(xs);
      return cnf_error_set(CNF_ERR_ARG, "core width: constant sample (n = %zu)", n);
    }
  }
  /* Unit Gaussian truncated at +-k: P = mass inside, beta = variance, J = E[(u^2 - beta)^2]. */
  const double phi = exp(-0.5 * k * k) / sqrt(2.0 * M_PI), P = erf(k / sqrt(2.0));
  const double beta = 1.0 - 2.0 * k * phi / P;
  const double J = 3.0 * P - 2.0 * phi * (k * k * k + 3.0 * k) - beta * beta * P;

  size_t prev_lo = (size_t)-1, prev_hi = (size_t)-1, lo = 0, hi = 0;
  int iterations = 0, converged = 0;
  for (;;) {
    lo = metrics_bound(xs, n, mu - k * s, 0);
    hi = metrics_bound(xs, n, mu + k * s, 1);
    if (lo == prev_lo && hi == prev_hi) { /* same points: mu, s would not change */
      converged = 1;
      break;
    }
    if (iterations == CNF_CORE_MAX_ITER) {
      lo = prev_lo; /* report the window the returned mu, s came from */
      hi = prev_hi;
      break;
    }
    if (hi - lo < 3) {
      free(xs);
      return cnf_error_set(CNF_ERR_ARG,
                           "core width: only %zu points in the window [%g, %g] (iteration %d)",
                           hi - lo, mu - k * s, mu + k * s, iterations);
    }
    double sd;
    metrics_mean_sd(xs, lo, hi, &mu, &sd);
    s = sd / sqrt(beta);
    prev_lo = lo;
    prev_hi = hi;
    iterations++;
  }
  free(xs);
  const double m = (double)(hi - lo);
  fit->mean = mu;
  fit->sigma = s;
  fit->mean_err = s / sqrt(m * beta);
  fit->sigma_err = s * sqrt(P / (m * J));
  fit->n_core = hi - lo;
  fit->iterations = iterations;
  fit->converged = converged;
  return 0;
}

/* ---- ROC AUC ------------------------------------------------------------------------------ */
double cnf_auc(const double *score_pos, size_t np, const double *score_neg, size_t nn) {
  if (np == 0 || nn == 0)
    return NAN;
  for (size_t i = 0; i < np; i++)
    if (isnan(score_pos[i]))
      return NAN;
  for (size_t i = 0; i < nn; i++)
    if (isnan(score_neg[i]))
      return NAN;
  double *sp = metrics_sorted_copy(score_pos, np), *sn = sp ? metrics_sorted_copy(score_neg, nn) : NULL;
  if (!sn) {
    free(sp);
    return NAN;
  }
  /* 2U = sum over positives of 2 #(neg < s) + #(neg == s), in integers. */
  uint64_t u2 = 0;
  size_t lt = 0, le = 0;
  for (size_t i = 0; i < np; i++) {
    while (lt < nn && sn[lt] < sp[i])
      lt++;
    if (le < lt)
      le = lt;
    while (le < nn && sn[le] <= sp[i])
      le++;
    u2 += 2 * (uint64_t)lt + (uint64_t)(le - lt);
  }
  free(sp);
  free(sn);
  return (double)u2 / (2.0 * (double)np * (double)nn);
}
