/* The conditional toy density of include/cnflow/stats.h: a two-component Gaussian mixture in
 * 2-D whose means move with c.  Sampler, closed-form log-density and moments. */
#include "cnflow/stats.h"

#include <math.h>

/* Component covariances (row-major 2x2) and their Cholesky factors L (S = L L^T). */
static const double toy_cov[2][4] = {{0.25, 0.10, 0.10, 0.16}, {0.09, -0.03, -0.03, 0.36}};

static void toy_means(double c, double mu[2][2]) {
  double a = 1.0 + 0.5 * c;
  mu[0][0] = a;
  mu[0][1] = 0.5 * c;
  mu[1][0] = -a;
  mu[1][1] = 0.5 * c;
}

static void toy_cholesky(const double *s, double *l11, double *l21, double *l22) {
  *l11 = sqrt(s[0]);
  *l21 = s[2] / *l11;
  *l22 = sqrt(s[3] - *l21 * *l21);
}

void cnf_toy_sample_given(uint64_t seed, uint64_t first_index, int n, const cnf_real *c,
                          cnf_real *x) {
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    /* sub = 1: independent of the draw of c (sub 0) in cnf_toy_sample */
    cnf_rng_init(&r, seed, first_index + (uint64_t)i, 1);
    double mu[2][2], l11, l21, l22;
    toy_means((double)c[i], mu);
    int k = cnf_rng_uniform(&r) < 0.5 ? 0 : 1;
    toy_cholesky(toy_cov[k], &l11, &l21, &l22);
    double z0 = cnf_rng_normal(&r), z1 = cnf_rng_normal(&r);
    x[2 * i + 0] = (cnf_real)(mu[k][0] + l11 * z0);
    x[2 * i + 1] = (cnf_real)(mu[k][1] + l21 * z0 + l22 * z1);
  }
}

void cnf_toy_sample(uint64_t seed, uint64_t first_index, int n, cnf_real *x, cnf_real *c) {
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, seed, first_index + (uint64_t)i, 0);
    c[i] = (cnf_real)(2.0 * cnf_rng_uniform(&r) - 1.0);
  }
  cnf_toy_sample_given(seed, first_index, n, c, x);
}

/* log N(x; mu, S) for 2-D x. */
static double gauss2_log_prob(const double *x, const double *mu, const double *s) {
  double det = s[0] * s[3] - s[1] * s[2];
  double d0 = x[0] - mu[0], d1 = x[1] - mu[1];
  double q = (s[3] * d0 * d0 - 2.0 * s[1] * d0 * d1 + s[0] * d1 * d1) / det;
  return -0.5 * q - 0.5 * log(det) - log(2.0 * M_PI);
}

double cnf_toy_log_prob(const double *x, double c) {
  double mu[2][2];
  toy_means(c, mu);
  double a = gauss2_log_prob(x, mu[0], toy_cov[0]);
  double b = gauss2_log_prob(x, mu[1], toy_cov[1]);
  double m = a > b ? a : b; /* log(0.5 e^a + 0.5 e^b) without overflow */
  return m + log(0.5 * exp(a - m) + 0.5 * exp(b - m));
}

void cnf_toy_moments(double c, double *mean, double *cov) {
  double a = 1.0 + 0.5 * c;
  mean[0] = 0.0;
  mean[1] = 0.5 * c;
  for (int j = 0; j < 4; j++)
    cov[j] = 0.5 * (toy_cov[0][j] + toy_cov[1][j]);
  cov[0] += a * a; /* the modes sit at +-a in x_0, equally weighted */
}
