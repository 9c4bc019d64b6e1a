/* Rational-quadratic spline kernel (Durkan et al. 2019, "Neural Spline Flows") with identity
 * tails outside [-B, B], elementwise.  Matches rqs() of shared/bench/torch_flows.py (nflows
 * parameterisation): widths = min_w + (1 - K min_w) softmax(uw), knots -B .. B with the
 * endpoints forced, heights alike, interior derivatives min_d + softplus(ud), boundary
 * derivatives exactly 1, bin = number of interior knots <= value.
 *
 * Layout of the work: elements are processed in tiles of RQS_W.  A tile's parameters are
 * transposed to (P, RQS_W) on the stack, so every step (softmax, knots, bin search, selection
 * of the bin's knots, the rational function, and the reverse mode) is a loop over the tile's
 * lanes with a fixed trip count, which the compiler vectorises; in the float library exp and
 * log are inline polynomials for the same reason (libm calls do not vectorise).  A lane's bin
 * values are fetched with an indexed load (a vector gather).
 *
 * Every lane is evaluated at its input clamped to [-B, B] and the tail result is selected
 * afterwards, so the discarded branch works on safe values and cannot produce NaN/Inf
 * (flowjax#239, bayesflow#721); padding lanes of a partial tile hold zeros.  Nothing is cached:
 * backward recomputes the knots, which is cheaper than storing (n, 3K) intermediates.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bijector_impl.h"
#include "fastmath.h"

/* Largest supported K (knot arrays live on the stack); bijector configs are validated
 * against it (flow.c: bins in [2, 64]). */
#define RQS_KMAX 64
#define RQS_PMAX (3 * RQS_KMAX - 1)
/* Lanes per tile: one AVX-512 register of floats. */
#define RQS_W 16

/* Put before each loop over a tile's lanes.  GCC -O3 otherwise unrolls these fixed 16-trip
 * loops completely before the loop vectoriser runs and then packs the unrolled code poorly
 * (measured: the backward pass 2x slower, mostly scalar). */
#if defined(__GNUC__) && !defined(__clang__)
#define RQS_LANES _Pragma("GCC unroll 1")
#else
#define RQS_LANES
#endif

#if CNF_REAL_IS_DOUBLE
/* The double library serves the finite-difference tests: libm is exact enough and speed is
 * secondary there. */
static inline double rqs_exp(double v) { return exp(v); }
static inline double rqs_log(double v) { return log(v); }
static inline double rqs_log1p(double v) { return log1p(v); }
static inline double rqs_sqrt(double v) { return sqrt(v); }
#else
static inline float rqs_exp(float v) { return cnf_fm_exp(v); }
static inline float rqs_log(float v) { return cnf_fm_log(v); }
static inline float rqs_log1p(float v) { return cnf_fm_log1p(v); }
static inline float rqs_sqrt(float v) { return cnf_fm_sqrt(v); }
#endif

double cnf_rqs_identity_ud(double min_d) { return log(expm1(1.0 - min_d)); }

/* One tile: inputs v (RQS_W) and parameters th (P, RQS_W), transposed from the element-major
 * layout.  Lanes >= m are zero-padded. */
typedef struct rqs_tile {
  cnf_real v[RQS_W];
  cnf_real th[RQS_PMAX][RQS_W];
} rqs_tile;

/* Transpose m <= RQS_W elements into t; a full tile reads by parameter (strided loads that
 * the compiler vectorises), a partial one by element after zeroing. */
static inline void rqs_tile_load(int P, int m, const cnf_real *v, const cnf_real *theta,
                                 rqs_tile *t) {
  if (m == RQS_W) {
    for (int i = 0; i < RQS_W; i++)
      t->v[i] = v[i];
    for (int p = 0; p < P; p++)
      for (int i = 0; i < RQS_W; i++)
        t->th[p][i] = theta[i * P + p];
    return;
  }
  memset(t->v, 0, sizeof t->v);
  for (int p = 0; p < P; p++)
    memset(t->th[p], 0, sizeof t->th[p]);
  for (int i = 0; i < m; i++) {
    t->v[i] = v[i];
    const cnf_real *src = theta + (size_t)i * P;
    for (int p = 0; p < P; p++)
      t->th[p][i] = src[p];
  }
}

/* u (K, W) -> p (K, W) = softmax over the bins, knots (K+1, W) from -B to B with bin sizes
 * min + (1 - K min) p.  Same operation order as the peer: cumsum of the sizes, 2B cum - B,
 * endpoints forced. */
static inline void rqs_tile_knots(int K, cnf_real B, cnf_real min_size,
                                  cnf_real (*restrict u)[RQS_W], cnf_real (*restrict p)[RQS_W],
                                  cnf_real (*restrict knots)[RQS_W]) {
  cnf_real mx[RQS_W], sum[RQS_W], cum[RQS_W];
  RQS_LANES for (int i = 0; i < RQS_W; i++)
    mx[i] = u[0][i], sum[i] = 0, cum[i] = 0;
  for (int j = 1; j < K; j++)
    RQS_LANES for (int i = 0; i < RQS_W; i++)
      mx[i] = u[j][i] > mx[i] ? u[j][i] : mx[i];
  for (int j = 0; j < K; j++)
    RQS_LANES for (int i = 0; i < RQS_W; i++) {
      p[j][i] = rqs_exp(u[j][i] - mx[i]);
      sum[i] += p[j][i];
    }
  RQS_LANES for (int i = 0; i < RQS_W; i++)
    sum[i] = (cnf_real)1 / sum[i];
  const cnf_real scale = (cnf_real)1 - (cnf_real)K * min_size, twob = (cnf_real)2 * B;
  RQS_LANES for (int i = 0; i < RQS_W; i++)
    knots[0][i] = -B, knots[K][i] = B;
  for (int j = 0; j < K; j++)
    RQS_LANES for (int i = 0; i < RQS_W; i++)
      p[j][i] *= sum[i];
  for (int j = 0; j < K - 1; j++)
    RQS_LANES for (int i = 0; i < RQS_W; i++) {
      cum[i] += min_size + scale * p[j][i];
      knots[j + 1][i] = twob * cum[i] - B;
    }
}

/* Bin per lane: number of interior knots <= v. */
static inline void rqs_tile_bin(int K, cnf_real (*restrict knots)[RQS_W],
                                const cnf_real *restrict v, int *restrict k) {
  RQS_LANES for (int i = 0; i < RQS_W; i++)
    k[i] = 0;
  for (int j = 1; j < K; j++)
    RQS_LANES for (int i = 0; i < RQS_W; i++)
      k[i] += knots[j][i] <= v[i];
}

/* lo = knots[k], hi = knots[k + 1] per lane (a vector gather). */
static inline void rqs_tile_pick(cnf_real (*restrict knots)[RQS_W], const int *restrict k,
                                 cnf_real *restrict lo, cnf_real *restrict hi) {
  const cnf_real *flat = knots[0];
  RQS_LANES for (int i = 0; i < RQS_W; i++) {
    lo[i] = flat[k[i] * RQS_W + i];
    hi[i] = flat[(k[i] + 1) * RQS_W + i];
  }
}

/* Knot derivatives d_k, d_{k+1} per lane from the interior parameters ud (K-1, W), and
 * their derivatives w.r.t. ud[k-1], ud[k] (sigmoids; 0 at a boundary knot, whose derivative
 * is exactly 1).  Split into simple loops, each of which vectorises. */
static inline void rqs_tile_derivs(int K, cnf_real min_d, cnf_real (*restrict ud)[RQS_W],
                                   const int *restrict k, cnf_real *restrict dk,
                                   cnf_real *restrict dk1, cnf_real *restrict sig0,
                                   cnf_real *restrict sig1) {
  /* u[i] = ud[k-1], u[W + i] = ud[k] (clamped indices where that knot is a boundary) */
  cnf_real u[2 * RQS_W], e[2 * RQS_W], sp[2 * RQS_W], sg[2 * RQS_W];
  const cnf_real *flat = ud[0];
  RQS_LANES for (int i = 0; i < RQS_W; i++) {
    const int jl = k[i] > 0 ? k[i] - 1 : 0, jr = k[i] < K - 1 ? k[i] : K - 2;
    u[i] = flat[jl * RQS_W + i];
    u[RQS_W + i] = flat[jr * RQS_W + i];
  }
  /* softplus(u) = max(u, 0) + log1p(e^-|u|), sigmoid from the same exp */
  for (int i = 0; i < 2 * RQS_W; i++)
    e[i] = rqs_exp(u[i] < 0 ? u[i] : -u[i]);
  for (int i = 0; i < 2 * RQS_W; i++)
    sp[i] = (u[i] > 0 ? u[i] : 0) + rqs_log1p(e[i]);
  for (int i = 0; i < 2 * RQS_W; i++) {
    const cnf_real r = 1 / (1 + e[i]), er = e[i] * r;
    sg[i] = u[i] >= 0 ? r : er;
  }
  RQS_LANES for (int i = 0; i < RQS_W; i++) {
    const int left_edge = k[i] == 0, right_edge = k[i] == K - 1;
    const cnf_real dl = min_d + sp[i], dr = min_d + sp[RQS_W + i];
    dk[i] = left_edge ? 1 : dl;
    dk1[i] = right_edge ? 1 : dr;
    sig0[i] = left_edge ? 0 : sg[i];
    sig1[i] = right_edge ? 0 : sg[RQS_W + i];
  }
}

static inline cnf_real rqs_clamp(cnf_real v, cnf_real B) {
  return v < -B ? -B : (v > B ? B : v);
}

/* Everything the forward and backward passes share for one tile. */
typedef struct rqs_fwd {
  cnf_real pw[RQS_KMAX][RQS_W], ph[RQS_KMAX][RQS_W];
  cnf_real cw[RQS_KMAX + 1][RQS_W], ch[RQS_KMAX + 1][RQS_W];
  int k[RQS_W];
  cnf_real xin[RQS_W], xk[RQS_W], xk1[RQS_W], yk[RQS_W], yk1[RQS_W];
  cnf_real dk[RQS_W], dk1[RQS_W], sig0[RQS_W], sig1[RQS_W];
} rqs_fwd;

static inline void rqs_tile_setup(const cnf_rqs_conf *conf, rqs_tile *t, rqs_fwd *f, int by_y) {
  const int K = conf->K;
  const cnf_real B = conf->B;
  RQS_LANES for (int i = 0; i < RQS_W; i++)
    f->xin[i] = rqs_clamp(t->v[i], B);
  rqs_tile_knots(K, B, conf->min_w, t->th, f->pw, f->cw);
  rqs_tile_knots(K, B, conf->min_h, t->th + K, f->ph, f->ch);
  rqs_tile_bin(K, by_y ? f->ch : f->cw, f->xin, f->k);
  rqs_tile_pick(f->cw, f->k, f->xk, f->xk1);
  rqs_tile_pick(f->ch, f->k, f->yk, f->yk1);
  rqs_tile_derivs(K, conf->min_d, t->th + 2 * K, f->k, f->dk, f->dk1, f->sig0, f->sig1);
}

void cnf_rqs_forward(const cnf_rqs_conf *conf, int n, const cnf_real *x, const cnf_real *theta,
                     cnf_real *y, cnf_real *logdet) {
  const int P = 3 * conf->K - 1;
  const cnf_real B = conf->B;
  rqs_tile t;
  rqs_fwd f;
  cnf_real out[RQS_W], lad[RQS_W];
  for (int e0 = 0; e0 < n; e0 += RQS_W) {
    const int m = n - e0 < RQS_W ? n - e0 : RQS_W;
    rqs_tile_load(P, m, x + e0, theta + (size_t)e0 * P, &t);
    rqs_tile_setup(conf, &t, &f, 0);
    RQS_LANES for (int i = 0; i < RQS_W; i++) {
      const cnf_real wk = f.xk1[i] - f.xk[i], hk = f.yk1[i] - f.yk[i];
      const cnf_real dk = f.dk[i], dk1 = f.dk1[i];
      const cnf_real s = hk / wk, th = (f.xin[i] - f.xk[i]) / wk, t1m = th * (1 - th);
      const cnf_real den = s + (dk + dk1 - 2 * s) * t1m;
      const cnf_real dnum = s * s * (dk1 * th * th + 2 * s * t1m + dk * (1 - th) * (1 - th));
      out[i] = f.yk[i] + hk * (s * th * th + dk * t1m) / den;
      lad[i] = rqs_log(dnum) - 2 * rqs_log(den);
    }
    for (int i = 0; i < m; i++) {
      const int inside = t.v[i] >= -B && t.v[i] <= B;
      y[e0 + i] = inside ? out[i] : t.v[i];
      logdet[e0 + i] = inside ? lad[i] : 0;
    }
  }
}

void cnf_rqs_inverse(const cnf_rqs_conf *conf, int n, const cnf_real *y, const cnf_real *theta,
                     cnf_real *x, cnf_real *logdet) {
  const int P = 3 * conf->K - 1;
  const cnf_real B = conf->B;
  rqs_tile t;
  rqs_fwd f;
  cnf_real out[RQS_W], lad[RQS_W];
  for (int e0 = 0; e0 < n; e0 += RQS_W) {
    const int m = n - e0 < RQS_W ? n - e0 : RQS_W;
    rqs_tile_load(P, m, y + e0, theta + (size_t)e0 * P, &t);
    rqs_tile_setup(conf, &t, &f, 1);
    RQS_LANES for (int i = 0; i < RQS_W; i++) {
      const cnf_real wk = f.xk1[i] - f.xk[i], hk = f.yk1[i] - f.yk[i];
      const cnf_real dk = f.dk[i], dk1 = f.dk1[i];
      const cnf_real s = hk / wk, dy = f.xin[i] - f.yk[i], c2 = dk + dk1 - 2 * s;
      const cnf_real a = hk * (s - dk) + dy * c2, b = hk * dk - dy * c2, c = -s * dy;
      cnf_real disc = b * b - 4 * a * c;
      disc = disc > 0 ? disc : 0; /* rounding can make it slightly negative (nflows#87) */
      /* root (-b + sqrt(disc)) / 2a without the cancellation; finite as a -> 0.  It lies in
       * [0, 1] exactly; clamping the rounding keeps den and dnum positive for extreme slopes. */
      cnf_real th = 2 * c / (-b - rqs_sqrt(disc));
      th = th < 0 ? 0 : (th > 1 ? 1 : th);
      const cnf_real t1m = th * (1 - th), den = s + c2 * t1m;
      const cnf_real dnum = s * s * (dk1 * th * th + 2 * s * t1m + dk * (1 - th) * (1 - th));
      out[i] = f.xk[i] + th * wk;
      lad[i] = 2 * rqs_log(den) - rqs_log(dnum);
    }
    for (int i = 0; i < m; i++) {
      const int inside = t.v[i] >= -B && t.v[i] <= B;
      x[e0 + i] = inside ? out[i] : t.v[i];
      logdet[e0 + i] = inside ? lad[i] : 0;
    }
  }
}

/* Softmax-knot reverse mode.  The bin used knot v_k = -B + 2B sum_{j<k} size_j and bin size
 * 2B size_k (size_j = min + scale p_j), with upstream gradients g_knot, g_size per lane.
 * Writes du (K, W) = dL/du through p = softmax(u). */
static inline void rqs_tile_knots_backward(int K, cnf_real B, cnf_real min_size,
                                           cnf_real (*restrict p)[RQS_W],
                                           const int *restrict k,
                                           const cnf_real *restrict g_knot,
                                           const cnf_real *restrict g_size,
                                           cnf_real (*restrict du)[RQS_W]) {
  const cnf_real f = (cnf_real)2 * B * ((cnf_real)1 - (cnf_real)K * min_size);
  cnf_real a_lo[RQS_W], a_k[RQS_W], dot[RQS_W];
  RQS_LANES for (int i = 0; i < RQS_W; i++)
    a_lo[i] = f * g_knot[i], a_k[i] = f * g_size[i], dot[i] = 0;
  for (int j = 0; j < K; j++)
    RQS_LANES for (int i = 0; i < RQS_W; i++) {
      const cnf_real a = j < k[i] ? a_lo[i] : (j == k[i] ? a_k[i] : (cnf_real)0);
      du[j][i] = a;
      dot[i] += a * p[j][i];
    }
  for (int j = 0; j < K; j++)
    RQS_LANES for (int i = 0; i < RQS_W; i++)
      du[j][i] = p[j][i] * (du[j][i] - dot[i]);
}

void cnf_rqs_backward(const cnf_rqs_conf *conf, int n, const cnf_real *x, const cnf_real *theta,
                      const cnf_real *dy, const cnf_real *dld, cnf_real *dx, cnf_real *dtheta) {
  const int K = conf->K, P = 3 * K - 1;
  const cnf_real B = conf->B;
  rqs_tile t;
  rqs_fwd f;
  cnf_real gy[RQS_W], gl[RQS_W], g_x[RQS_W], g_xk[RQS_W], g_wk[RQS_W], g_hk[RQS_W];
  cnf_real g_dk[RQS_W], g_dk1[RQS_W];
  cnf_real gth[RQS_PMAX][RQS_W];
  for (int e0 = 0; e0 < n; e0 += RQS_W) {
    const int m = n - e0 < RQS_W ? n - e0 : RQS_W;
    rqs_tile_load(P, m, x + e0, theta + (size_t)e0 * P, &t);
    rqs_tile_setup(conf, &t, &f, 0);
    /* upstream gradients; zero in the tails (y = x there, the parameters are unused) and in
     * padding lanes */
    RQS_LANES for (int i = 0; i < RQS_W; i++)
      gy[i] = 0, gl[i] = 0;
    for (int i = 0; i < m; i++) {
      const int inside = t.v[i] >= -B && t.v[i] <= B;
      gy[i] = inside ? dy[e0 + i] : 0;
      gl[i] = inside ? dld[e0 + i] : 0;
    }
    RQS_LANES for (int i = 0; i < RQS_W; i++) {
      const cnf_real wk = f.xk1[i] - f.xk[i], hk = f.yk1[i] - f.yk[i];
      const cnf_real dk = f.dk[i], dk1 = f.dk1[i];
      const cnf_real iw = 1 / wk, s = hk * iw, th = (f.xin[i] - f.xk[i]) * iw, u = 1 - th;
      const cnf_real t1m = th * u, c2 = dk + dk1 - 2 * s;
      const cnf_real den = s + c2 * t1m, iden = 1 / den;
      const cnf_real r = (s * th * th + dk * t1m) * iden;
      const cnf_real im = 1 / (dk1 * th * th + 2 * s * t1m + dk * u * u);
      /* y = yk + hk num/den;  lad = 2 log s + log m - 2 log den (m: the derivative's
       * numerator without s^2) */
      const cnf_real hd = gy[i] * hk * iden, lg = gl[i], d1m2t = 1 - 2 * th;
      const cnf_real g_t = hd * ((2 * s * th + dk * d1m2t) - r * c2 * d1m2t) +
                           lg * ((2 * dk1 * th + 2 * s * d1m2t - 2 * dk * u) * im -
                                 2 * c2 * d1m2t * iden);
      const cnf_real g_s = hd * (th * th - r * (1 - 2 * t1m)) +
                           lg * (2 / s + 2 * t1m * im - 2 * (1 - 2 * t1m) * iden);
      g_dk[i] = (hd * t1m * (1 - r) + lg * (u * u * im - 2 * t1m * iden)) * f.sig0[i];
      g_dk1[i] = (-hd * r * t1m + lg * (th * th * im - 2 * t1m * iden)) * f.sig1[i];
      /* chain through t = (x - xk)/wk and s = hk/wk */
      g_hk[i] = gy[i] * r + g_s * iw;
      g_wk[i] = -(g_s * s + g_t * th) * iw;
      g_xk[i] = -g_t * iw;
      g_x[i] = g_t * iw;
    }
    if (dx)
      for (int i = 0; i < m; i++) {
        const int inside = t.v[i] >= -B && t.v[i] <= B;
        dx[e0 + i] = inside ? g_x[i] : dy[e0 + i];
      }
    if (!dtheta)
      continue;
    rqs_tile_knots_backward(K, B, conf->min_w, f.pw, f.k, g_xk, g_wk, gth);
    rqs_tile_knots_backward(K, B, conf->min_h, f.ph, f.k, gy, g_hk, gth + K);
    for (int j = 0; j < K - 1; j++)
      RQS_LANES for (int i = 0; i < RQS_W; i++)
        gth[2 * K + j][i] =
            f.k[i] == j + 1 ? g_dk[i] : (f.k[i] == j ? g_dk1[i] : (cnf_real)0);
    for (int i = 0; i < m; i++) {
      cnf_real *dst = dtheta + (size_t)(e0 + i) * P;
      for (int p = 0; p < P; p++)
        dst[p] = gth[p][i];
    }
  }
}
