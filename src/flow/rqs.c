/* Rational-quadratic spline kernel (Durkan et al. 2019, "Neural Spline Flows") with identity
 * tails outside [-B, B], elementwise.  Matches rqs() of shared/bench/torch_flows.py (nflows
 * parameterisation): widths = min_w + (1 - K min_w) softmax(uw), knots -B .. B with the
 * endpoints forced, heights alike, interior derivatives min_d + softplus(ud), boundary
 * derivatives exactly 1, bin = number of interior knots <= value.
 *
 * Every element is evaluated at its input clamped to [-B, B] and the tail result is selected
 * afterwards, so the discarded branch works on safe values and cannot produce NaN/Inf
 * (flowjax#239, bayesflow#721).  Nothing is cached: backward recomputes the knots, which costs
 * less than storing (n, 3K) intermediates.
 */
#include <math.h>

#include "bijector_impl.h"

#if CNF_REAL_IS_DOUBLE
#define R_EXP exp
#define R_LOG log
#define R_LOG1P log1p
#define R_SQRT sqrt
#else
#define R_EXP expf
#define R_LOG logf
#define R_LOG1P log1pf
#define R_SQRT sqrtf
#endif

/* Largest supported K: knot arrays live on the stack.  Configurations are validated against
 * it where bijectors are created. */
#define RQS_KMAX 64

double cnf_rqs_identity_ud(double min_d) { return log(expm1(1.0 - min_d)); }

/* u (K) -> p (K) = softmax(u), knots (K+1) from -B to B with bin sizes min + (1 - K min) p.
 * Same operation order as the peer: cumsum of the sizes, then 2B cum - B, endpoints forced. */
static inline void rqs_knots(int K, cnf_real B, cnf_real min_size, const cnf_real *u,
                             cnf_real *p, cnf_real *knots) {
  cnf_real m = u[0];
  for (int j = 1; j < K; j++)
    m = u[j] > m ? u[j] : m;
  cnf_real sum = 0;
  for (int j = 0; j < K; j++) {
    p[j] = R_EXP(u[j] - m);
    sum += p[j];
  }
  const cnf_real inv = (cnf_real)1 / sum, scale = (cnf_real)1 - (cnf_real)K * min_size;
  const cnf_real twob = (cnf_real)2 * B;
  cnf_real cum = 0;
  knots[0] = -B;
  for (int j = 0; j < K - 1; j++) {
    p[j] *= inv;
    cum += min_size + scale * p[j];
    knots[j + 1] = twob * cum - B;
  }
  p[K - 1] *= inv;
  knots[K] = B;
}

/* Bin of v: number of interior knots <= v, in [0, K-1]. */
static inline int rqs_bin(int K, const cnf_real *knots, cnf_real v) {
  int k = 0;
  for (int j = 1; j < K; j++)
    k += knots[j] <= v;
  return k;
}

/* softplus(u) and sigmoid(u) = softplus'(u), overflow-free, sharing one exp. */
static inline cnf_real rqs_softplus(cnf_real u, cnf_real *sig) {
  cnf_real e = R_EXP(-fabs(u));
  cnf_real r = (cnf_real)1 / ((cnf_real)1 + e);
  if (sig)
    *sig = u >= 0 ? r : e * r;
  return (u > 0 ? u : (cnf_real)0) + R_LOG1P(e);
}

/* Knot derivative i in [0, K] for interior parameters ud (K-1); boundary derivatives are 1.
 * *sig receives d(deriv)/d(ud[i-1]) (0 at the boundary). */
static inline cnf_real rqs_deriv(int K, cnf_real min_d, const cnf_real *ud, int i, cnf_real *sig) {
  if (i == 0 || i == K) {
    *sig = 0;
    return 1;
  }
  return min_d + rqs_softplus(ud[i - 1], sig);
}

static inline cnf_real rqs_clamp(cnf_real v, cnf_real B) {
  return v < -B ? -B : (v > B ? B : v);
}

void cnf_rqs_forward(const cnf_rqs_conf *conf, int n, const cnf_real *x, const cnf_real *theta,
                     cnf_real *y, cnf_real *logdet) {
  const int K = conf->K, P = 3 * K - 1;
  const cnf_real B = conf->B;
  cnf_real pw[RQS_KMAX], ph[RQS_KMAX], cw[RQS_KMAX + 1], ch[RQS_KMAX + 1];
  for (int e = 0; e < n; e++) {
    const cnf_real *uw = theta + (size_t)e * P, *uh = uw + K, *ud = uh + K;
    const cnf_real xe = x[e], xin = rqs_clamp(xe, B);
    const int inside = xe >= -B && xe <= B;
    rqs_knots(K, B, conf->min_w, uw, pw, cw);
    rqs_knots(K, B, conf->min_h, uh, ph, ch);
    const int k = rqs_bin(K, cw, xin);
    cnf_real sig;
    const cnf_real dk = rqs_deriv(K, conf->min_d, ud, k, &sig);
    const cnf_real dk1 = rqs_deriv(K, conf->min_d, ud, k + 1, &sig);
    const cnf_real xk = cw[k], wk = cw[k + 1] - cw[k], yk = ch[k], hk = ch[k + 1] - ch[k];
    const cnf_real s = hk / wk, t = (xin - xk) / wk, t1m = t * (1 - t);
    const cnf_real den = s + (dk + dk1 - 2 * s) * t1m;
    const cnf_real out = yk + hk * (s * t * t + dk * t1m) / den;
    const cnf_real dnum = s * s * (dk1 * t * t + 2 * s * t1m + dk * (1 - t) * (1 - t));
    const cnf_real lad = R_LOG(dnum) - 2 * R_LOG(den);
    y[e] = inside ? out : xe;
    logdet[e] = inside ? lad : 0;
  }
}

void cnf_rqs_inverse(const cnf_rqs_conf *conf, int n, const cnf_real *y, const cnf_real *theta,
                     cnf_real *x, cnf_real *logdet) {
  const int K = conf->K, P = 3 * K - 1;
  const cnf_real B = conf->B;
  cnf_real pw[RQS_KMAX], ph[RQS_KMAX], cw[RQS_KMAX + 1], ch[RQS_KMAX + 1];
  for (int e = 0; e < n; e++) {
    const cnf_real *uw = theta + (size_t)e * P, *uh = uw + K, *ud = uh + K;
    const cnf_real ye = y[e], yin = rqs_clamp(ye, B);
    const int inside = ye >= -B && ye <= B;
    rqs_knots(K, B, conf->min_w, uw, pw, cw);
    rqs_knots(K, B, conf->min_h, uh, ph, ch);
    const int k = rqs_bin(K, ch, yin);
    cnf_real sig;
    const cnf_real dk = rqs_deriv(K, conf->min_d, ud, k, &sig);
    const cnf_real dk1 = rqs_deriv(K, conf->min_d, ud, k + 1, &sig);
    const cnf_real xk = cw[k], wk = cw[k + 1] - cw[k], yk = ch[k], hk = ch[k + 1] - ch[k];
    const cnf_real s = hk / wk, dy = yin - yk, c2 = dk + dk1 - 2 * s;
    const cnf_real a = hk * (s - dk) + dy * c2, b = hk * dk - dy * c2, c = -s * dy;
    cnf_real disc = b * b - 4 * a * c;
    disc = disc > 0 ? disc : 0; /* rounding can make it slightly negative (nflows#87) */
    /* root (-b + sqrt(disc)) / 2a without the cancellation; finite as a -> 0.  It lies in
     * [0, 1] exactly; clamping the rounding keeps den and dnum positive for extreme slopes. */
    cnf_real t = 2 * c / (-b - R_SQRT(disc));
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    const cnf_real out = xk + t * wk, t1m = t * (1 - t);
    const cnf_real den = s + c2 * t1m;
    const cnf_real dnum = s * s * (dk1 * t * t + 2 * s * t1m + dk * (1 - t) * (1 - t));
    const cnf_real lad = -(R_LOG(dnum) - 2 * R_LOG(den));
    x[e] = inside ? out : ye;
    logdet[e] = inside ? lad : 0;
  }
}

/* Softmax-knot reverse mode: the bin used knot v_k = -B + 2B sum_{j<k} size_j and bin size
 * h_k = 2B size_k (size_j = min + scale p_j), with upstream gradients g_knot, g_size.
 * Writes du (K) = dL/du through the softmax p = softmax(u). */
static inline void rqs_knots_backward(int K, cnf_real B, cnf_real min_size, const cnf_real *p,
                                      int k, cnf_real g_knot, cnf_real g_size, cnf_real *du) {
  const cnf_real f = (cnf_real)2 * B * ((cnf_real)1 - (cnf_real)K * min_size);
  const cnf_real a_lo = f * g_knot, a_k = f * g_size;
  cnf_real plo = 0;
  for (int j = 0; j < k; j++)
    plo += p[j];
  const cnf_real dot = a_lo * plo + a_k * p[k];
  for (int j = 0; j < K; j++) {
    const cnf_real a = j < k ? a_lo : (j == k ? a_k : (cnf_real)0);
    du[j] = p[j] * (a - dot);
  }
}

void cnf_rqs_backward(const cnf_rqs_conf *conf, int n, const cnf_real *x, const cnf_real *theta,
                      const cnf_real *dy, const cnf_real *dld, cnf_real *dx, cnf_real *dtheta) {
  const int K = conf->K, P = 3 * K - 1;
  const cnf_real B = conf->B;
  cnf_real pw[RQS_KMAX], ph[RQS_KMAX], cw[RQS_KMAX + 1], ch[RQS_KMAX + 1];
  for (int e = 0; e < n; e++) {
    const cnf_real *uw = theta + (size_t)e * P, *uh = uw + K, *ud = uh + K;
    const cnf_real xe = x[e], xin = rqs_clamp(xe, B);
    const int inside = xe >= -B && xe <= B;
    rqs_knots(K, B, conf->min_w, uw, pw, cw);
    rqs_knots(K, B, conf->min_h, uh, ph, ch);
    const int k = rqs_bin(K, cw, xin);
    cnf_real sk0, sk1;
    const cnf_real dk = rqs_deriv(K, conf->min_d, ud, k, &sk0);
    const cnf_real dk1 = rqs_deriv(K, conf->min_d, ud, k + 1, &sk1);
    const cnf_real xk = cw[k], wk = cw[k + 1] - cw[k], hk = ch[k + 1] - ch[k];
    const cnf_real iw = 1 / wk, s = hk * iw, t = (xin - xk) * iw, u = 1 - t, t1m = t * u;
    const cnf_real c2 = dk + dk1 - 2 * s;
    const cnf_real den = s + c2 * t1m, iden = 1 / den;
    const cnf_real num = s * t * t + dk * t1m, r = num * iden;
    const cnf_real m = dk1 * t * t + 2 * s * t1m + dk * u * u, im = 1 / m;
    /* upstream gradients; zero in the tails, where y = x and the parameters are unused */
    const cnf_real gy = inside ? dy[e] : 0, gl = inside ? dld[e] : 0;
    const cnf_real hd = gy * hk * iden; /* d y / d(num/den) times gy */
    /* y = yk + hk num/den;  lad = 2 log s + log m - 2 log den */
    const cnf_real d1m2t = 1 - 2 * t;
    const cnf_real g_t = hd * ((2 * s * t + dk * d1m2t) - r * c2 * d1m2t) +
                         gl * ((2 * dk1 * t + 2 * s * d1m2t - 2 * dk * u) * im -
                               2 * c2 * d1m2t * iden);
    const cnf_real g_s = hd * (t * t - r * (1 - 2 * t1m)) +
                         gl * (2 / s + 2 * t1m * im - 2 * (1 - 2 * t1m) * iden);
    const cnf_real g_dk = hd * t1m * (1 - r) + gl * (u * u * im - 2 * t1m * iden);
    const cnf_real g_dk1 = -hd * r * t1m + gl * (t * t * im - 2 * t1m * iden);
    /* chain through t = (x - xk)/wk and s = hk/wk */
    const cnf_real g_hk = gy * r + g_s * iw;
    const cnf_real g_wk = -(g_s * s + g_t * t) * iw;
    const cnf_real g_xk = -g_t * iw;
    if (dx)
      dx[e] = inside ? g_t * iw : dy[e];
    if (!dtheta)
      continue;
    cnf_real *gw = dtheta + (size_t)e * P, *gh = gw + K, *gd = gh + K;
    rqs_knots_backward(K, B, conf->min_w, pw, k, g_xk, g_wk, gw);
    rqs_knots_backward(K, B, conf->min_h, ph, k, gy, g_hk, gh);
    for (int j = 0; j < K - 1; j++)
      gd[j] = 0;
    if (k > 0)
      gd[k - 1] = g_dk * sk0;
    if (k + 1 < K)
      gd[k] = g_dk1 * sk1;
  }
}
