/* calo-photon, calorimeter stages (physics-spec.md 2.3 step 7 and step 10): GFlash homogeneous
 * shower of one particle with log-normal longitudinal fluctuations and spot sampling of the
 * radial profile, and the maximal-sum window search. */
#include "calo_photon.h"

#include <gsl/gsl_sf_gamma.h>
#include <math.h>

/* 4-point Gauss-Legendre nodes/weights on [0, 1] (weights sum to 1) */
const double photon_gl_node[4] = {0.06943184420297371, 0.33000947820757187, 0.66999052179242813,
                                  0.93056815579702629};
static const double gl_weight[4] = {0.17392742256872692, 0.32607257743127308, 0.32607257743127308,
                                    0.17392742256872692};

/* GFlash guards (spec step 7): below 50 MeV a single spot 1 X0 deep; the last <10 MeV of a
 * shower goes into the current step. */
#define SHOWER_E_SINGLE_SPOT 0.05
#define SHOWER_E_REST 0.01

typedef struct shower_radial {
  double z1, z2; /* R_C = z1 + z2 tau (Moliere radii) */
  double k1, k2, k3, k4; /* R_T = k1 (e^{k3 (tau - k2)} + e^{k4 (tau - k2)}) */
  double p1, p2, p3; /* core probability p(tau) */
} shower_radial;

void photon_gamma_profile_init(photon_gamma_profile *g, double alpha, double beta) {
  g->alpha = alpha;
  g->beta = beta;
  g->log_norm = alpha * log(beta) - gsl_sf_lngamma(alpha);
}

/* The first step [0, dt] uses the exact regularised incomplete gamma (the density may be
 * singular-ish at t = 0); later steps integrate the smooth density with 4-point Gauss-Legendre,
 * an order of magnitude cheaper than gsl_sf_gamma_inc_P per step. */
double photon_gamma_profile_step(const photon_gamma_profile *g, double t_lo, double dt,
                                 const double log_t[4]) {
  if (t_lo == 0.0)
    return gsl_sf_gamma_inc_P(g->alpha, g->beta * dt);
  double s = 0.0;
  for (int j = 0; j < 4; j++) {
    double t = t_lo + photon_gl_node[j] * dt;
    s += gl_weight[j] * exp(g->log_norm + (g->alpha - 1.0) * log_t[j] - g->beta * t);
  }
  return s * dt;
}

/* Add `e` at point (x, y, z) mm or count it as leakage. */
static inline void deposit(double *image, photon_tally *tally, float x, float y, float z, float e) {
  if (z > (float)PHOTON_DEPTH_MM) {
    tally->rear += e;
    return;
  }
  float fx = (x + (float)PHOTON_HALF_MM) * (float)(1.0 / PHOTON_CELL_MM);
  float fy = (y + (float)PHOTON_HALF_MM) * (float)(1.0 / PHOTON_CELL_MM);
  if (!(fx >= 0.0f && fx < (float)PHOTON_NCELL && fy >= 0.0f && fy < (float)PHOTON_NCELL)) {
    tally->lateral += e;
    return;
  }
  image[(int)fy * PHOTON_NCELL + (int)fx] += e;
}

/* A spot's random numbers come from one 64-bit draw: bits 0-23 choose core or tail, bits 24-47
 * the radius, bits 48-63 the azimuth (2-bit quadrant + 14-bit fraction: 1e-4 rad, i.e. 0.01 mm
 * at r = 100 mm, far below the 22 mm crystals).  The azimuth uses short Taylor polynomials on
 * [-pi/4, pi/4] (error < 4e-7) instead of a libm call, so the spot loop has no calls. */
enum { SPOT_CHUNK = 256 };

static inline float spot_u24(uint64_t bits) {
  return ((float)(bits & 0xffffff) + 0.5f) * (1.0f / 16777216.0f);
}

static inline void spot_azimuth(uint32_t bits16, float *c, float *s) {
  int q = (int)(bits16 >> 14);
  float th = 1.5707963f * (((float)(bits16 & 0x3fff) + 0.5f) * (1.0f / 16384.0f) - 0.5f);
  float t2 = th * th;
  float sn = th * (1.0f + t2 * (-1.0f / 6 + t2 * (1.0f / 120 + t2 * (-1.0f / 5040))));
  float cs = 1.0f + t2 * (-0.5f + t2 * (1.0f / 24 + t2 * (-1.0f / 720 + t2 * (1.0f / 40320))));
  /* rotate by q quarter turns: psi = q pi/2 + th is uniform on a full turn */
  float a = (q & 1) ? -sn : cs, b = (q & 1) ? cs : sn, sign = (q & 2) ? -1.0f : 1.0f;
  *c = sign * a;
  *s = sign * b;
}

static void radial_params(const photon_state *st, double e_gev, shower_radial *rp) {
  const double z = PHOTON_PBWO4_Z, lne = log(e_gev);
  rp->z1 = 0.0251 + 0.00319 * lne;
  rp->z2 = 0.1162 - 0.000381 * z;
  rp->k1 = 0.659 - 0.00309 * z;
  rp->k2 = 0.645;
  rp->k3 = -2.59;
  rp->k4 = 0.3585 + st->gf.k4_slope * lne;
  rp->p1 = st->gf.p1_scale * (st->gf.p1 - 0.00094 * z);
  rp->p2 = 0.401 + 0.00187 * z;
  rp->p3 = 1.313 - 0.0686 * lne;
}

void photon_shower(const photon_opts *o, const photon_state *st, cnf_rng *r,
                   const photon_particle *p, double *image, photon_tally *tally) {
  const double x0 = PHOTON_PBWO4_X0_MM, rm = PHOTON_PBWO4_RM_MM, zeff = PHOTON_PBWO4_Z;
  const double e = p->e;
  tally->showers++;
  if (e <= 0.0)
    return;
  double start[3] = {p->pos[0], p->pos[1], p->pos[2]};
  const double *u = p->dir;
  if (p->q == 0) { /* photons convert after -(9/7) ln U X0 */
    double t0 = -9.0 / 7.0 * log(cnf_rng_uniform(r)) * x0;
    for (int c = 0; c < 3; c++)
      start[c] += t0 * u[c];
  }
  if (start[2] > PHOTON_DEPTH_MM) {
    tally->rear += e;
    return;
  }
  if (e < SHOWER_E_SINGLE_SPOT) {
    deposit(image, tally, (float)(start[0] + x0 * u[0]), (float)(start[1] + x0 * u[1]),
            (float)(start[2] + x0 * u[2]), (float)e);
    tally->spots++;
    return;
  }

  /* longitudinal profile: correlated log-normal T and alpha (GFlash) */
  const double lny = log(e / PHOTON_PBWO4_EC_GEV);
  double mean_lnt = log(fmax(0.1, lny - st->gf.lnt_off));
  double mean_lna = log(st->gf.la0 + (st->gf.la1 + st->gf.la2 / zeff) * lny);
  double den_t = -1.4 + 1.26 * lny, den_a = -0.58 + 0.86 * lny;
  double sig_t = den_t > 2.0 ? 1.0 / den_t : 0.5, sig_a = den_a > 2.0 ? 1.0 / den_a : 0.5;
  double rho = 0.705 - 0.023 * lny;
  double c1 = sqrt((1.0 + rho) / 2.0), c2 = sqrt((1.0 - rho) / 2.0);
  double n1 = cnf_rng_normal(r), n2 = cnf_rng_normal(r);
  double t_max = exp(mean_lnt + sig_t * (c1 * n1 + c2 * n2));
  double alpha = fmax(1.05, exp(mean_lna + sig_a * (c1 * n1 - c2 * n2)));
  double beta = (alpha - 1.0) / t_max;

  /* spots: number and longitudinal density (average or fluctuated profile) */
  double n_spots = 93.0 * log(zeff) * pow(e, 0.876);
  if (o->max_spots > 0 && n_spots > o->max_spots)
    n_spots = o->max_spots;
  double tbar = st->spot_fluctuated ? t_max : lny - 0.858;
  double abar = st->spot_fluctuated ? alpha : 0.21 + (0.492 + 2.38 / zeff) * lny;
  double t_s = fmax(0.1, tbar * (0.698 + 0.00212 * zeff));
  double alpha_s = fmax(1.05, abar * (0.639 + 0.00334 * zeff));
  double beta_s = (alpha_s - 1.0) / t_s;

  shower_radial rp;
  radial_params(st, e, &rp);
  double alpha_g = exp(mean_lna);
  double t_scale = t_max * alpha / (alpha - 1.0) * (alpha_g - 1.0) / alpha_g;

  /* transverse basis e1, e2 of the shower axis */
  double a[3] = {1, 0, 0};
  if (fabs(u[0]) > 0.9) {
    a[0] = 0;
    a[1] = 1;
  }
  double e1[3] = {a[1] * u[2] - a[2] * u[1], a[2] * u[0] - a[0] * u[2], a[0] * u[1] - a[1] * u[0]};
  double n_e1 = sqrt(e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2]);
  for (int c = 0; c < 3; c++)
    e1[c] /= n_e1;
  double e2[3] = {u[1] * e1[2] - u[2] * e1[1], u[2] * e1[0] - u[0] * e1[2],
                  u[0] * e1[1] - u[1] * e1[0]};

  const double dt = o->gflash_step;
  photon_gamma_profile prof, prof_s;
  photon_gamma_profile_init(&prof, alpha, beta);
  photon_gamma_profile_init(&prof_s, alpha_s, beta_s);
  double e_left = e, ps_done = 0.0;
  for (int k = 1; e_left > 0.0; k++) {
    double t_lo = (k - 1) * dt;
    double ax = start[0] + t_lo * x0 * u[0], ay = start[1] + t_lo * x0 * u[1];
    double az = start[2] + t_lo * x0 * u[2];
    if (az > PHOTON_DEPTH_MM) {
      tally->rear += e_left;
      break;
    }
    if (fabs(ax) > PHOTON_HALF_MM || fabs(ay) > PHOTON_HALF_MM) {
      tally->lateral += e_left;
      break;
    }
    double log_t[4];
    for (int j = 0; j < 4; j++)
      log_t[j] = log(t_lo + photon_gl_node[j] * dt);
    double dp = photon_gamma_profile_step(&prof, t_lo, dt, log_t);
    double dps = photon_gamma_profile_step(&prof_s, t_lo, dt, log_t);
    double de = fmin(e_left, e * dp);
    double n_k = floor(n_spots * dps);
    if (e_left - de < SHOWER_E_REST) {
      de = e_left;
      n_k = floor(n_spots * fmax(0.0, 1.0 - ps_done));
    }
    ps_done += dps;
    if (de <= 0.0)
      continue;
    int ns = n_k < 1.0 ? 1 : (int)n_k;
    e_left -= de;

    /* radial shape at the step mid-point, in the shower's scaled depth */
    double tau = fmin(10.0, (t_lo + 0.5 * dt) / t_scale);
    double r_c = rp.z1 + rp.z2 * tau;
    double r_t = rp.k1 * (exp(rp.k3 * (tau - rp.k2)) + exp(rp.k4 * (tau - rp.k2)));
    double g = (rp.p2 - tau) / rp.p3;
    double p_core = fmin(1.0, fmax(0.0, rp.p1 * exp(g - exp(g))));

    const float e_spot = (float)(de / ns);
    const float rc_mm = (float)(rm * r_c), rt_mm = (float)(rm * r_t), pc = (float)p_core;
    const float dz = (float)(dt * x0 / ns);
    const float bx = (float)ax, by = (float)ay, bz = (float)az;
    const float ux = (float)u[0] * dz, uy = (float)u[1] * dz, uz = (float)u[2] * dz;
    const float e1x = (float)e1[0], e1y = (float)e1[1], e1z = (float)e1[2];
    const float e2x = (float)e2[0], e2y = (float)e2[1], e2z = (float)e2[2];
    uint64_t bits[SPOT_CHUNK];
    for (int j0 = 0; j0 < ns; j0 += SPOT_CHUNK) {
      int m = ns - j0 < SPOT_CHUNK ? ns - j0 : SPOT_CHUNK;
      for (int j = 0; j < m; j++)
        bits[j] = cnf_rng_u64(r);
      for (int j = 0; j < m; j++) {
        float u1 = spot_u24(bits[j]), u2 = spot_u24(bits[j] >> 24), cs, sn;
        spot_azimuth((uint32_t)(bits[j] >> 48), &cs, &sn);
        float rad = (u1 < pc ? rc_mm : rt_mm) * sqrtf(u2 / (1.0f - u2));
        float f = (float)(j0 + j) + 0.5f; /* spot depth: (j + 1/2)/n_k of the step */
        float x = bx + f * ux + rad * (cs * e1x + sn * e2x);
        float y = by + f * uy + rad * (cs * e1y + sn * e2y);
        float z = bz + f * uz + rad * (cs * e1z + sn * e2z);
        deposit(image, tally, x, y, z, e_spot);
      }
    }
    tally->spots += ns;
  }
}

double photon_window_find(const double *image, int ny, int nx, int quirk, int *iy0, int *ix0) {
  /* strip sums in a fixed order, so windows that differ only by empty crystals tie exactly and
   * the first in scan order wins (a summed-area table would break such ties by rounding) */
  const int ny_corner = PHOTON_NCELL - ny + (quirk ? 0 : 1);
  const int nx_corner = PHOTON_NCELL - nx + (quirk ? 0 : 1);
  double strip[PHOTON_NCELL][PHOTON_NCELL]; /* strip[iy][x] = sum of image[iy][x .. x+nx) */
  for (int iy = 0; iy < PHOTON_NCELL; iy++)
    for (int x = 0; x < nx_corner; x++) {
      double s = 0.0;
      for (int ix = x; ix < x + nx; ix++)
        s += image[iy * PHOTON_NCELL + ix];
      strip[iy][x] = s;
    }
  double best = -INFINITY;
  *iy0 = *ix0 = 0;
  for (int y = 0; y < ny_corner; y++)
    for (int x = 0; x < nx_corner; x++) {
      double s = 0.0;
      for (int iy = y; iy < y + ny; iy++)
        s += strip[iy][x];
      if (s > best) {
        best = s;
        *iy0 = y;
        *ix0 = x;
      }
    }
  return best;
}
