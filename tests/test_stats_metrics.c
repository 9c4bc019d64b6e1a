/* Evaluation statistics (include/cnflow/stats.h, src/stats/metrics.c) against closed forms,
 * brute-force references written independently here, and replica studies of the stated
 * errors.  scipy/numpy comparisons are in check_metrics_scipy.py. */
#include "testutil.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnflow/stats.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double *normal_sample(size_t n, double mu, double sd, uint64_t seed, uint64_t stream) {
  cnf_rng r;
  cnf_rng_init(&r, seed, stream, 0);
  double *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++)
    x[i] = mu + sd * cnf_rng_normal(&r);
  return x;
}

static double *uniform_sample(size_t n, double lo, double hi, uint64_t seed, uint64_t stream) {
  cnf_rng r;
  cnf_rng_init(&r, seed, stream, 0);
  double *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++)
    x[i] = lo + (hi - lo) * cnf_rng_uniform(&r);
  return x;
}

/* ---- Wasserstein-1 ------------------------------------------------------------------------ */
/* Brute force: integrate |F_a - F_b| over the merged support, counting each CDF from scratch. */
static double w1_brute(const double *a, size_t na, const double *b, size_t nb) {
  size_t n = na + nb;
  double *all = malloc(n * sizeof *all), sum = 0.0;
  memcpy(all, a, na * sizeof *a);
  memcpy(all + na, b, nb * sizeof *b);
  qsort(all, n, sizeof *all, cmp_double);
  for (size_t k = 0; k + 1 < n; k++) {
    double t = all[k], fa = 0, fb = 0;
    for (size_t i = 0; i < na; i++)
      fa += a[i] <= t;
    for (size_t i = 0; i < nb; i++)
      fb += b[i] <= t;
    sum += fabs(fa / na - fb / nb) * (all[k + 1] - t);
  }
  free(all);
  return sum;
}

static void test_w1_small_closed_forms(void **state) {
  const double a1[1] = {0.0}, b1[2] = {1.0, 2.0};
  assert_close(cnf_w1_1d(a1, 1, b1, 2), 1.5, 1e-15, 0);
  assert_close(cnf_w1_1d(b1, 2, a1, 1), 1.5, 1e-15, 0);
  /* a point mass: W1 = mean |a_i - m| */
  const double a2[3] = {3.0, 0.0, 0.0}, b2[1] = {1.0};
  assert_close(cnf_w1_1d(a2, 3, b2, 1), 4.0 / 3.0, 1e-15, 0);
  /* identical samples in another order, and with ties */
  const double a3[5] = {2.0, 1.0, 1.0, 5.0, -3.0}, b3[5] = {5.0, 1.0, -3.0, 2.0, 1.0};
  assert_true(cnf_w1_1d(a3, 5, b3, 5) == 0.0);
  /* the inputs are not reordered */
  assert_true(a3[0] == 2.0 && a3[3] == 5.0 && b3[0] == 5.0 && b3[2] == -3.0);
  /* empty or NaN */
  assert_true(isnan(cnf_w1_1d(a1, 0, b1, 2)));
  assert_true(isnan(cnf_w1_1d(a1, 1, b1, 0)));
  const double bad[2] = {1.0, NAN};
  assert_true(isnan(cnf_w1_1d(a1, 1, bad, 2)));
}

static void test_w1_matches_brute_force(void **state) {
  /* equal sizes: W1 = mean |a_(i) - b_(i)| (quantile coupling); unequal: the CDF integral */
  const size_t n = 1000;
  double *a = normal_sample(n, 0.0, 1.0, 11, 0), *b = uniform_sample(n, -1.0, 2.5, 11, 1);
  double *sa = malloc(n * sizeof *sa), *sb = malloc(n * sizeof *sb), want = 0.0;
  memcpy(sa, a, n * sizeof *a);
  memcpy(sb, b, n * sizeof *b);
  qsort(sa, n, sizeof *sa, cmp_double);
  qsort(sb, n, sizeof *sb, cmp_double);
  for (size_t i = 0; i < n; i++)
    want += fabs(sa[i] - sb[i]);
  assert_close(cnf_w1_1d(a, n, b, n), want / n, 1e-12, 0);
  assert_close(cnf_w1_1d(a, 317, b, 171), w1_brute(a, 317, b, 171), 1e-12, 0);
  /* rounded values: many ties inside and across the samples */
  for (size_t i = 0; i < n; i++) {
    a[i] = round(4.0 * a[i]) / 4.0;
    b[i] = round(4.0 * b[i]) / 4.0;
  }
  assert_close(cnf_w1_1d(a, 400, b, 233), w1_brute(a, 400, b, 233), 1e-12, 0);
  free(a);
  free(b);
  free(sa);
  free(sb);
}

static void test_w1_shifted_uniforms(void **state) {
  const size_t n = 20000;
  const double shift = 0.37;
  double *a = uniform_sample(n, 0.0, 1.0, 5, 0), *b = malloc(n * sizeof *b);
  for (size_t i = 0; i < n; i++) /* the same points shifted, in reverse order */
    b[n - 1 - i] = a[i] + shift;
  assert_close(cnf_w1_1d(a, n, b, n), shift, 1e-12, 0);
  assert_close(cnf_w1_1d(b, n, a, n), shift, 1e-12, 0);
  /* independent samples of U(0,1) and U(0.3, 1.3): |W1 - 0.3| <= W1(F_a^n, F) + W1(F_b^n, F_b),
   * each with mean sqrt(2/(pi n)) * int sqrt(F(1-F)) = sqrt(2/(pi n)) pi/8 */
  double *c = uniform_sample(n / 2, 0.3, 1.3, 5, 1);
  double tol = 5.0 * (sqrt(2.0 / (M_PI * n)) + sqrt(2.0 / (M_PI * (n / 2)))) * M_PI / 8.0;
  double w = cnf_w1_1d(a, n, c, n / 2);
  assert_true(fabs(w - 0.3) < tol);
  assert_true(w >= 0.3 - tol && w > 0.28);
  free(a);
  free(b);
  free(c);
}

static void test_w1_gaussians(void **state) {
  /* W1(N(0,1), N(m,1)) = |m|; the sampling error of each empirical CDF is bounded in mean by
   * sqrt(2/(pi n)) int sqrt(Phi (1 - Phi)) dt (computed here by the midpoint rule) */
  const size_t n = 20000;
  double I = 0.0;
  for (double t = -12.0; t < 12.0; t += 1e-3) {
    double F = 0.5 * erfc(-(t + 5e-4) / sqrt(2.0));
    I += sqrt(F * (1.0 - F)) * 1e-3;
  }
  const double tol = 5.0 * 2.0 * sqrt(2.0 / (M_PI * n)) * I;
  const double ms[3] = {0.5, -0.8, 2.0};
  double *a = normal_sample(n, 0.0, 1.0, 7, 0);
  for (int k = 0; k < 3; k++) {
    double *b = normal_sample(n, ms[k], 1.0, 7, 1 + k);
    double w = cnf_w1_1d(a, n, b, n);
    if (fabs(w - fabs(ms[k])) > tol)
      fail_msg("W1(N(0,1), N(%g,1)) = %.5f, want %g +- %.4f", ms[k], w, fabs(ms[k]), tol);
    free(b);
  }
  free(a);
}

/* ---- histograms --------------------------------------------------------------------------- */
/* numpy's edges linspace(lo, hi, nb + 1): e_i = i * ((hi - lo)/nb) + lo, e_nb = hi. */
static double edge(double lo, double hi, int nb, int i) {
  return i == nb ? hi : i * ((hi - lo) / nb) + lo;
}

static void test_hist_edges_and_outside(void **state) {
  const double lo = -1.0, hi = 2.0;
  const int nb = 30;
  enum { N = 4000 };
  static double x[N];
  cnf_rng r;
  cnf_rng_init(&r, 3, 0, 0);
  size_t n = 0;
  for (int i = 0; i <= nb; i++) /* every edge exactly, and its neighbours */
    for (int d = -1; d <= 1; d++)
      x[n++] = nextafter(edge(lo, hi, nb, i), d < 0 ? -INFINITY : d > 0 ? INFINITY : edge(lo, hi, nb, i));
  x[n++] = NAN;
  x[n++] = INFINITY;
  x[n++] = -INFINITY;
  while (n < N)
    x[n++] = -1.5 + 4.0 * cnf_rng_uniform(&r);
  double counts[30], want[30] = {0};
  size_t out = 99, want_out = 0;
  for (size_t k = 0; k < n; k++) {
    int hit = -1;
    for (int i = 0; i < nb; i++)
      if (x[k] >= edge(lo, hi, nb, i) && (x[k] < edge(lo, hi, nb, i + 1) || (i == nb - 1 && x[k] == hi)))
        hit = i;
    if (hit < 0)
      want_out++;
    else
      want[hit] += 1.0;
  }
  assert_int_equal(cnf_hist_fill(x, n, lo, hi, nb, counts, &out), 0);
  check_array("counts", nb, counts, want, 0, 0);
  assert_int_equal(out, want_out);
  assert_true(want_out > 3); /* the draws reach outside */
  /* the edges themselves: lo in bin 0, hi in the last bin, e_1 in bin 1 */
  const double e3[3] = {lo, hi, edge(lo, hi, nb, 1)};
  assert_int_equal(cnf_hist_fill(e3, 3, lo, hi, nb, counts, NULL), 0);
  assert_true(counts[0] == 1.0 && counts[1] == 1.0 && counts[nb - 1] == 1.0);
  /* cnf_hist_add accumulates */
  assert_int_equal(cnf_hist_fill(x, 1000, lo, hi, nb, counts, &out), 0);
  size_t out2 = out;
  assert_int_equal(cnf_hist_add(x + 1000, n - 1000, lo, hi, nb, counts, &out2), 0);
  check_array("counts (add)", nb, counts, want, 0, 0);
  assert_int_equal(out2, want_out);
  /* bad arguments */
  assert_int_equal(cnf_hist_fill(x, n, lo, hi, 0, counts, NULL), CNF_ERR_ARG);
  assert_int_equal(cnf_hist_fill(x, n, 1.0, 1.0, nb, counts, NULL), CNF_ERR_ARG);
  assert_int_equal(cnf_hist_fill(x, n, 2.0, 1.0, nb, counts, NULL), CNF_ERR_ARG);
  assert_int_equal(cnf_hist_fill(x, n, NAN, 1.0, nb, counts, NULL), CNF_ERR_ARG);
  assert_int_equal(cnf_hist_add(x, n, 0.0, INFINITY, nb, counts, NULL), CNF_ERR_ARG);
}

/* ---- separation power --------------------------------------------------------------------- */
static double sep_direct(const double *c1, const double *c2, int nb) {
  double n1 = 0, n2 = 0, s = 0;
  for (int i = 0; i < nb; i++) {
    n1 += c1[i];
    n2 += c2[i];
  }
  for (int i = 0; i < nb; i++) {
    double p = c1[i] / n1, q = c2[i] / n2;
    if (p + q > 0)
      s += (p - q) * (p - q) / (p + q);
  }
  return 0.5 * s;
}

static void test_separation_power_closed_forms(void **state) {
  const double c1[4] = {1, 3, 0, 0}, c2[4] = {3, 1, 0, 0}, c3[4] = {0, 0, 5, 2};
  double s, e;
  /* p = (1/4, 3/4), q = (3/4, 1/4): S = 1/2 (1/4 + 1/4) */
  assert_int_equal(cnf_separation_power(c1, c2, 4, &s, &e), 0);
  assert_close(s, 0.25, 1e-15, 0);
  /* identical shapes, also with another normalisation */
  const double c4[4] = {3, 9, 0, 0};
  assert_int_equal(cnf_separation_power(c1, c4, 4, &s, &e), 0);
  assert_true(s == 0.0 && e == 0.0);
  /* disjoint supports: 1, and no first-order error */
  assert_int_equal(cnf_separation_power(c1, c3, 4, &s, &e), 0);
  assert_close(s, 1.0, 1e-15, 0);
  assert_close(e, 0.0, 0, 1e-15);
  assert_int_equal(cnf_separation_power(c1, c3, 4, &s, NULL), 0);
  /* errors */
  const double zero[4] = {0}, neg[4] = {1, -1, 2, 0}, nan4[4] = {1, NAN, 2, 0};
  assert_int_equal(cnf_separation_power(c1, zero, 4, &s, &e), CNF_ERR_ARG);
  assert_int_equal(cnf_separation_power(zero, c1, 4, &s, &e), CNF_ERR_ARG);
  assert_int_equal(cnf_separation_power(c1, neg, 4, &s, &e), CNF_ERR_ARG);
  assert_int_equal(cnf_separation_power(nan4, c1, 4, &s, &e), CNF_ERR_NUMERIC);
  assert_int_equal(cnf_separation_power(c1, c2, 0, &s, &e), CNF_ERR_ARG);
}

static void test_separation_power_error_vs_numeric_gradient(void **state) {
  /* err^2 = sum_j (dS/dc_j)^2 c_j with the gradient by central differences of a direct
   * evaluation: checks the analytic derivative including the normalisation terms */
  enum { NB = 12 };
  double c1[NB], c2[NB], s, e;
  for (int i = 0; i < NB; i++) {
    c1[i] = 50.0 + 40.0 * sin(0.7 * i) + (i == 3 ? 0.0 : 3.0);
    c2[i] = 60.0 + 30.0 * cos(0.5 * i);
  }
  c2[7] = 0.0;
  assert_int_equal(cnf_separation_power(c1, c2, NB, &s, &e), 0);
  assert_close(s, sep_direct(c1, c2, NB), 1e-14, 0);
  double var = 0.0;
  for (int h = 0; h < 2; h++) {
    double *c = h ? c2 : c1;
    for (int j = 0; j < NB; j++) {
      double keep = c[j], d = 1e-4 * (keep > 1 ? keep : 1);
      c[j] = keep + d;
      double sp = sep_direct(c1, c2, NB);
      c[j] = keep - d;
      double sm = sep_direct(c1, c2, NB);
      c[j] = keep;
      double g = (sp - sm) / (2 * d);
      var += g * g * keep;
    }
  }
  assert_close(e, sqrt(var), 1e-6, 0);
}

static void test_separation_power_error_replicas(void **state) {
  /* expected counts of N(0,1) and N(0.6, 1.2) in 25 bins over [-4, 5], N = 4000 and 6000;
   * the spread of S over Poisson replicas must match the propagated error */
  enum { NB = 25, REPS = 600 };
  double lam1[NB], lam2[NB];
  for (int i = 0; i < NB; i++) {
    double a = -4.0 + 9.0 * i / NB, b = -4.0 + 9.0 * (i + 1) / NB;
    lam1[i] = 4000.0 * 0.5 * (erf(b / sqrt(2.0)) - erf(a / sqrt(2.0)));
    lam2[i] = 6000.0 * 0.5 * (erf((b - 0.6) / (1.2 * sqrt(2.0))) - erf((a - 0.6) / (1.2 * sqrt(2.0))));
  }
  gsl_rng *g = cnf_rng_gsl_alloc(21, 0, 0);
  double sum = 0, sum2 = 0, err_sum = 0;
  for (int k = 0; k < REPS; k++) {
    double c1[NB], c2[NB], s, e;
    for (int i = 0; i < NB; i++) {
      c1[i] = gsl_ran_poisson(g, lam1[i]);
      c2[i] = gsl_ran_poisson(g, lam2[i]);
    }
    assert_int_equal(cnf_separation_power(c1, c2, NB, &s, &e), 0);
    sum += s;
    sum2 += s * s;
    err_sum += e;
  }
  cnf_rng_gsl_free(g);
  double mean = sum / REPS, sd = sqrt(sum2 / REPS - mean * mean), err = err_sum / REPS;
  printf("separation power: mean %.5f, replica sd %.5f, mean propagated error %.5f\n", mean, sd, err);
  /* the sd of a sd from 600 replicas is ~3 %: 15 % is a real check of the formula */
  assert_true(fabs(err / sd - 1.0) < 0.15);
  /* the mean is S of the expected shapes plus the stated bias 1/2 sum (p/N1 + q/N2)/(p + q) */
  double n1 = 0, n2 = 0, bias = 0;
  for (int i = 0; i < NB; i++) {
    n1 += lam1[i];
    n2 += lam2[i];
  }
  for (int i = 0; i < NB; i++)
    bias += 0.5 * (lam1[i] / n1 / n1 + lam2[i] / n2 / n2) / (lam1[i] / n1 + lam2[i] / n2);
  double s_true = sep_direct(lam1, lam2, NB);
  printf("separation power: expected shapes %.5f, stated bias %.5f\n", s_true, bias);
  assert_true(s_true > 0.05 && bias > 0.1 * sd);
  assert_true(fabs(mean - s_true - bias) < 4.0 * sd / sqrt(REPS));
}

/* ---- core width --------------------------------------------------------------------------- */
/* frac of N(mu, sd) plus 1 - frac uniform on [-w, w]. */
static double *core_sample(size_t n, double mu, double sd, double frac, double w, uint64_t seed,
                           uint64_t stream) {
  cnf_rng r;
  cnf_rng_init(&r, seed, stream, 0);
  double *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++)
    x[i] = cnf_rng_uniform(&r) < frac ? mu + sd * cnf_rng_normal(&r)
                                      : -w + 2.0 * w * cnf_rng_uniform(&r);
  return x;
}

static void test_core_width_gaussian_plus_tail(void **state) {
  const size_t n = 20000;
  double *x = core_sample(n, 1.5, 0.8, 0.95, 40.0, 9, 0);
  cnf_core_fit f;
  assert_int_equal(cnf_core_width(x, n, 2.0, &f), 0);
  printf("core fit k=2: mean %.4f +- %.4f, sigma %.4f +- %.4f, n_core %zu, %d iterations\n", f.mean,
         f.mean_err, f.sigma, f.sigma_err, f.n_core, f.iterations);
  assert_true(f.converged);
  assert_true(f.iterations >= 2 && f.iterations < CNF_CORE_MAX_ITER);
  assert_true(fabs(f.sigma - 0.8) < 3.0 * f.sigma_err);
  assert_true(fabs(f.mean - 1.5) < 3.0 * f.mean_err);
  /* the plain sd is far off: the tail matters */
  double m = 0, ss = 0;
  for (size_t i = 0; i < n; i++)
    m += x[i];
  m /= n;
  for (size_t i = 0; i < n; i++)
    ss += (x[i] - m) * (x[i] - m);
  assert_true(sqrt(ss / n) > 3.0);
  /* n_core: 95 % x P(|z| < 2) of the sample, plus the tail inside the window */
  double want_core = n * (0.95 * erf(2.0 / sqrt(2.0)) + 0.05 * 4.0 * 0.8 / 80.0);
  assert_true(fabs((double)f.n_core - want_core) < 4.0 * sqrt(want_core));
  /* the stated error constants at k = 2, with J by the midpoint rule here */
  double P = erf(2.0 / sqrt(2.0)), beta = 0.0, J = 0.0, du = 1e-5;
  for (double u = -2.0 + du / 2; u < 2.0; u += du)
    beta += u * u * exp(-u * u / 2) / sqrt(2 * M_PI) * du;
  beta /= P;
  for (double u = -2.0 + du / 2; u < 2.0; u += du)
    J += (u * u - beta) * (u * u - beta) * exp(-u * u / 2) / sqrt(2 * M_PI) * du;
  assert_close(f.mean_err, f.sigma / sqrt(f.n_core * beta), 1e-6, 0);
  assert_close(f.sigma_err, f.sigma * sqrt(P / (f.n_core * J)), 1e-6, 0);
  assert_close(f.mean_err * sqrt((double)f.n_core) / f.sigma, 1.137, 1e-3, 0);
  assert_close(f.sigma_err * sqrt((double)f.n_core) / f.sigma, 1.106, 1e-3, 0);
  free(x);
}

static void test_core_width_wide_window_is_mean_and_sd(void **state) {
  /* k = 10 on a Gaussian sample: the window holds everything, beta ~ 1 - 1e-21 */
  const size_t n = 3001;
  double *x = normal_sample(n, -2.0, 0.5, 4, 0), m = 0, ss = 0;
  for (size_t i = 0; i < n; i++)
    m += x[i];
  m /= n;
  for (size_t i = 0; i < n; i++)
    ss += (x[i] - m) * (x[i] - m);
  cnf_core_fit f;
  assert_int_equal(cnf_core_width(x, n, 10.0, &f), 0);
  assert_true(f.converged && f.n_core == n);
  assert_close(f.mean, m, 1e-12, 0);
  assert_close(f.sigma, sqrt(ss / (n - 1)), 1e-12, 0);
  assert_close(f.mean_err, f.sigma / sqrt((double)n), 1e-12, 0);
  assert_close(f.sigma_err, f.sigma / sqrt(2.0 * n), 1e-9, 0);
  free(x);
}

static void test_core_width_errors_replicas(void **state) {
  /* the spread of mean and sigma over independent replicas vs the mean stated error */
  const size_t n = 2000;
  const int reps = 300;
  const double ks[2] = {2.0, 1.5};
  for (int kk = 0; kk < 2; kk++) {
    double sm = 0, sm2 = 0, ss = 0, ss2 = 0, em = 0, es = 0;
    for (int r = 0; r < reps; r++) {
      double *x = core_sample(n, 0.0, 1.0, 0.95, 40.0, 13 + kk, (uint64_t)r);
      cnf_core_fit f;
      assert_int_equal(cnf_core_width(x, n, ks[kk], &f), 0);
      sm += f.mean;
      sm2 += f.mean * f.mean;
      ss += f.sigma;
      ss2 += f.sigma * f.sigma;
      em += f.mean_err;
      es += f.sigma_err;
      free(x);
    }
    double sd_mean = sqrt(sm2 / reps - (sm / reps) * (sm / reps));
    double sd_sigma = sqrt(ss2 / reps - (ss / reps) * (ss / reps));
    printf("core fit k=%.1f replicas: sd(mean) %.4f vs err %.4f, sd(sigma) %.4f vs err %.4f, "
           "<sigma> %.4f\n",
           ks[kk], sd_mean, em / reps, sd_sigma, es / reps, ss / reps);
    /* 300 replicas: the sd of a sd is ~4 %; the naive sd_in/sqrt(n_core) would be 23 % low */
    assert_true(fabs(em / reps / sd_mean - 1.0) < 0.2);
    assert_true(fabs(es / reps / sd_sigma - 1.0) < 0.2);
    assert_true(fabs(ss / reps - 1.0) < 0.02);
  }
}

static void test_core_width_bad_input(void **state) {
  cnf_core_fit f;
  const double three[3] = {1, 2, 3}, cst[5] = {2, 2, 2, 2, 2}, nan5[5] = {1, 2, NAN, 3, 4};
  assert_int_equal(cnf_core_width(three, 2, 2.0, &f), CNF_ERR_ARG);
  assert_int_equal(cnf_core_width(three, 3, 0.5, &f), CNF_ERR_ARG);
  assert_int_equal(cnf_core_width(three, 3, NAN, &f), CNF_ERR_ARG);
  assert_int_equal(cnf_core_width(cst, 5, 2.0, &f), CNF_ERR_ARG);
  assert_int_equal(cnf_core_width(nan5, 5, 2.0, &f), CNF_ERR_NUMERIC);
  assert_null(strchr(cnf_error_message(), '\n'));
  /* more than half on one value: MAD = 0, the start falls back to the sd and still works */
  double x[9] = {0, 0, 0, 0, 0, 0.1, -0.1, 0.2, -0.2};
  assert_int_equal(cnf_core_width(x, 9, 3.0, &f), 0);
  assert_true(f.n_core == 9 && fabs(f.mean) < 1e-15);
}

/* ---- AUC ---------------------------------------------------------------------------------- */
static double auc_direct(const double *p, size_t np, const double *q, size_t nq) {
  double u = 0;
  for (size_t i = 0; i < np; i++)
    for (size_t j = 0; j < nq; j++)
      u += p[i] > q[j] ? 1.0 : p[i] == q[j] ? 0.5 : 0.0;
  return u / ((double)np * nq);
}

static void test_auc(void **state) {
  const size_t n = 5000;
  double *a = normal_sample(n, 0.0, 1.0, 17, 0), *b = normal_sample(n, 0.0, 1.0, 17, 1);
  /* one distribution: 0.5 within the null sd sqrt((np + nn + 1) / (12 np nn)) */
  double auc = cnf_auc(a, n, b, n), sd0 = sqrt((2.0 * n + 1) / (12.0 * n * n));
  assert_true(fabs(auc - 0.5) < 4.0 * sd0);
  /* N(d, 1) vs N(0, 1): Phi(d / sqrt 2) */
  double *c = normal_sample(n, 1.0, 1.0, 17, 2);
  assert_true(fabs(cnf_auc(c, n, b, n) - 0.5 * erfc(-1.0 / 2.0)) < 4.0 * sd0);
  assert_close(cnf_auc(b, n, c, n), 1.0 - cnf_auc(c, n, b, n), 1e-14, 0);
  /* disjoint */
  for (size_t i = 0; i < n; i++)
    c[i] = 10.0 + fabs(a[i]);
  assert_true(cnf_auc(c, n, b, 1000) == 1.0);
  assert_true(cnf_auc(b, 1000, c, n) == 0.0);
  /* one common value: all ties */
  const double t1[3] = {2, 2, 2}, t2[2] = {2, 2};
  assert_true(cnf_auc(t1, 3, t2, 2) == 0.5);
  /* with ties, against the direct O(n^2) count */
  for (size_t i = 0; i < n; i++) {
    a[i] = round(3.0 * a[i]) / 3.0;
    c[i] = round(3.0 * (b[i] + 0.3)) / 3.0;
  }
  double *keep = malloc(700 * sizeof *keep);
  memcpy(keep, a, 700 * sizeof *keep);
  assert_close(cnf_auc(a, 700, c, 513), auc_direct(a, 700, c, 513), 1e-15, 0);
  assert_close(cnf_auc(c, 1, a, 999), auc_direct(c, 1, a, 999), 1e-15, 0);
  assert_memory_equal(keep, a, 700 * sizeof *keep); /* inputs untouched */
  free(keep);
  /* empty, NaN */
  assert_true(isnan(cnf_auc(a, 0, b, n)));
  assert_true(isnan(cnf_auc(a, n, b, 0)));
  a[5] = NAN;
  assert_true(isnan(cnf_auc(a, n, b, n)));
  free(a);
  free(b);
  free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_w1_small_closed_forms),
      cmocka_unit_test(test_w1_matches_brute_force),
      cmocka_unit_test(test_w1_shifted_uniforms),
      cmocka_unit_test(test_w1_gaussians),
      cmocka_unit_test(test_hist_edges_and_outside),
      cmocka_unit_test(test_separation_power_closed_forms),
      cmocka_unit_test(test_separation_power_error_vs_numeric_gradient),
      cmocka_unit_test(test_separation_power_error_replicas),
      cmocka_unit_test(test_core_width_gaussian_plus_tail),
      cmocka_unit_test(test_core_width_wide_window_is_mean_and_sd),
      cmocka_unit_test(test_core_width_errors_replicas),
      cmocka_unit_test(test_core_width_bad_input),
      cmocka_unit_test(test_auc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
