/* hgg physics: Higgs production spectra (pT, y, m), the isotropic decay and boost, the truth
 * selection, the Table-2 resolution model and the smearing scenarios (physics-spec.md 1.3-1.8). */
#include "hgg.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- process ---------------------------------------------------------------------------- */

void hgg_process_defaults(int process, double *a, double *b, double *c, double *d,
                          double *y_n, double *y_shat) {
  if (process == HGG_PROC_TTH) { /* spec 1.3 / 1.4 [FIT]: ttH, sqrt(s_hat_eff) ~ 2 m_t + m_H */
    *a = 0.9676, *b = 167.04, *c = 1.955, *d = 3.0666, *y_n = 3.052, *y_shat = 570.0;
  } else { /* ggF: a = 1 fixed (dsigma/dpT ~ pT at small pT), s_hat = m_H^2 */
    *a = 1.0, *b = 180.91, *c = 0.7732, *d = 11.954, *y_n = 9.579, *y_shat = 125.0;
  }
}

int hgg_parse_process(const char *s) {
  char low[16];
  size_t n = strlen(s);
  if (n >= sizeof low)
    return cnf_error_set(CNF_ERR_ARG, "hgg: unknown -hgg_process '%s' (expected ggF or ttH)", s);
  for (size_t i = 0; i <= n; i++)
    low[i] = (char)tolower((unsigned char)s[i]);
  if (strcmp(low, "ggf") == 0 || strcmp(low, "ggh") == 0)
    return HGG_PROC_GGF;
  if (strcmp(low, "tth") == 0)
    return HGG_PROC_TTH;
  return cnf_error_set(CNF_ERR_ARG, "hgg: unknown -hgg_process '%s' (expected ggF or ttH)", s);
}

/* ---- spectra ---------------------------------------------------------------------------- */

double hgg_pt_density(const hgg_physics *ph, double pt) {
  if (pt <= 0.0)
    return 0.0;
  return pow(pt, ph->pt_a) * pow(1.0 + pow(pt / ph->pt_b, ph->pt_c), -ph->pt_d);
}

double hgg_y_weight(const hgg_y_table *t, double y) {
  /* (1 - s e^y)(1 - s e^-y) = 1 + s^2 - 2 s cosh y; clamp the rounding below 0 at |y| = y_max */
  double base = 1.0 + t->sqrt_tau * t->sqrt_tau - 2.0 * t->sqrt_tau * cosh(y);
  return base > 0.0 ? pow(base, t->n) : 0.0;
}

static int pt_table_init(hgg_pt_table *t, const hgg_physics *ph, double pt_max, double step) {
  double nd = pt_max / step;
  if (!(nd >= 10.0 && nd <= 1e7))
    return cnf_error_set(CNF_ERR_ARG, "hgg: pT grid %g GeV / %g GeV gives %g intervals (need 10..1e7)",
                         pt_max, step, nd);
  t->n = (int)lround(nd);
  t->step = pt_max / t->n;
  t->cdf = cnf_malloc((size_t)(t->n + 1) * sizeof *t->cdf);
  t->guide = cnf_malloc((size_t)t->n * sizeof *t->guide);
  if (!t->cdf || !t->guide)
    return CNF_ERR_NOMEM;
  /* trapezoid rule (spec 1.3): the inverse is then piecewise linear */
  double f_prev = hgg_pt_density(ph, 0.0);
  t->cdf[0] = 0.0;
  for (int j = 1; j <= t->n; j++) {
    double f = hgg_pt_density(ph, j * t->step);
    t->cdf[j] = t->cdf[j - 1] + 0.5 * t->step * (f_prev + f);
    f_prev = f;
  }
  double total = t->cdf[t->n];
  if (!(total > 0.0 && isfinite(total)))
    return cnf_error_set(CNF_ERR_ARG, "hgg: the pT spectrum (a %g, b %g, c %g, d %g) has no finite positive integral",
                         ph->pt_a, ph->pt_b, ph->pt_c, ph->pt_d);
  for (int j = 1; j <= t->n; j++)
    t->cdf[j] /= total;
  t->cdf[t->n] = 1.0;
  int j = 0;
  for (int k = 0; k < t->n; k++) {
    double uk = (double)k / t->n;
    while (j + 1 < t->n && t->cdf[j + 1] <= uk)
      j++;
    t->guide[k] = j;
  }
  return 0;
}

double hgg_sample_pt(const hgg_pt_table *t, double u) {
  int k = (int)(u * t->n);
  if (k >= t->n)
    k = t->n - 1;
  int j = t->guide[k];
  while (j < t->n - 1 && t->cdf[j + 1] < u)
    j++;
  double width = t->cdf[j + 1] - t->cdf[j];
  double frac = width > 0.0 ? (u - t->cdf[j]) / width : 0.0;
  return (j + frac) * t->step;
}

static int y_table_init(hgg_y_table *t, double sqrt_tau, double n) {
  if (!(sqrt_tau > 0.0 && sqrt_tau < 1.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: sqrt(tau) = sqrt(s_hat)/sqrt(s) = %g must be in (0, 1)",
                         sqrt_tau);
  if (!(n > 0.0 && n < 1000.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: rapidity exponent -hgg_y_n %g must be in (0, 1000)", n);
  t->sqrt_tau = sqrt_tau;
  t->n = n;
  t->y_max = -log(sqrt_tau);
  t->width = t->y_max / HGG_Y_BINS;
  t->cum[0] = 0.0;
  for (int k = 0; k < HGG_Y_BINS; k++) {
    t->hi[k] = hgg_y_weight(t, k * t->width); /* w decreases with |y| */
    t->lo[k] = hgg_y_weight(t, (k + 1) * t->width);
    t->cum[k + 1] = t->cum[k] + t->hi[k];
  }
  for (int k = 1; k <= HGG_Y_BINS; k++)
    t->cum[k] /= t->cum[HGG_Y_BINS];
  t->cum[HGG_Y_BINS] = 1.0;
  int j = 0;
  for (int k = 0; k < HGG_Y_BINS; k++) {
    double uk = (double)k / HGG_Y_BINS;
    while (j + 1 < HGG_Y_BINS && t->cum[j + 1] <= uk)
      j++;
    t->guide[k] = j;
  }
  return 0;
}

double hgg_sample_y(const hgg_y_table *t, cnf_rng *r) {
  for (;;) {
    double u = cnf_rng_uniform(r), v = cnf_rng_uniform(r);
    int sign = (int)(cnf_rng_u32(r) & 1u);
    int k = t->guide[(int)(u * HGG_Y_BINS)];
    while (k < HGG_Y_BINS - 1 && t->cum[k + 1] < u)
      k++;
    /* the position of u inside bin k is itself uniform: it places y inside the bin */
    double frac = (u - t->cum[k]) / (t->cum[k + 1] - t->cum[k]);
    double y = (k + frac) * t->width;
    double level = v * t->hi[k];
    if (level <= t->lo[k] || level <= hgg_y_weight(t, y))
      return sign ? -y : y;
  }
}

double hgg_sample_mass(const hgg_physics *ph, double u) {
  if (ph->fixed_mass)
    return ph->mass;
  double uu = ph->bw_u_lo + (ph->bw_u_hi - ph->bw_u_lo) * u;
  return ph->mass + 0.5 * ph->width * tan(M_PI * (uu - 0.5));
}

int hgg_physics_init(hgg_physics *ph, const hgg_opts *o) {
  memset(ph, 0, sizeof *ph);
  int proc = hgg_parse_process(o->process);
  CNF_CALL(proc);
  ph->process = proc;
  double y_n, y_shat;
  hgg_process_defaults(proc, &ph->pt_a, &ph->pt_b, &ph->pt_c, &ph->pt_d, &y_n, &y_shat);
  if (o->pt_a != 0.0)
    ph->pt_a = o->pt_a;
  if (o->pt_b != 0.0)
    ph->pt_b = o->pt_b;
  if (o->pt_c != 0.0)
    ph->pt_c = o->pt_c;
  if (o->pt_d != 0.0)
    ph->pt_d = o->pt_d;
  if (o->y_n != 0.0)
    y_n = o->y_n;
  if (o->y_shat != 0.0)
    y_shat = o->y_shat;
  if (!(ph->pt_a > -1.0 && ph->pt_b > 0.0 && ph->pt_c > 0.0 && isfinite(ph->pt_d)))
    return cnf_error_set(CNF_ERR_ARG, "hgg: pT spectrum needs a > -1, b > 0, c > 0 (got a %g, b %g, c %g, d %g)",
                         ph->pt_a, ph->pt_b, ph->pt_c, ph->pt_d);
  if (!(o->sqrt_s > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: -hgg_sqrt_s must be > 0 GeV, got %g", o->sqrt_s);
  if (!(o->mass > 0.0 && o->width >= 0.0 && o->mass_window > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: need mass > 0, width >= 0, mass window > 0 GeV (got %g, %g, %g)",
                         o->mass, o->width, o->mass_window);
  if (!(o->pt_max > 0.0 && o->pt_step > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: -hgg_pt_max and -hgg_pt_step must be > 0 GeV");
  ph->mass = o->mass;
  ph->width = o->width;
  ph->fixed_mass = o->fixed_mass || o->width == 0.0;
  /* truncated Breit-Wigner: inverse CDF restricted to (F(m_H - window), F(m_H + window)) */
  double edge = atan(2.0 * o->mass_window / (o->width > 0.0 ? o->width : 1.0)) / M_PI;
  ph->bw_u_lo = 0.5 - edge;
  ph->bw_u_hi = 0.5 + edge;
  CNF_CALL(pt_table_init(&ph->pt, ph, o->pt_max, o->pt_step));
  return y_table_init(&ph->y, y_shat / o->sqrt_s, y_n);
}

void hgg_physics_free(hgg_physics *ph) {
  free(ph->pt.cdf);
  free(ph->pt.guide);
  ph->pt.cdf = NULL;
  ph->pt.guide = NULL;
}

/* ---- kinematics ------------------------------------------------------------------------- */

hgg_p4 hgg_higgs_p4(double m, double pt, double y, double phi) {
  double mt = sqrt(m * m + pt * pt), ey = exp(y);
  double ch = 0.5 * (ey + 1.0 / ey), sh = 0.5 * (ey - 1.0 / ey);
  return (hgg_p4){pt * cos(phi), pt * sin(phi), mt * sh, mt * ch};
}

void hgg_decay(const hgg_p4 *h, double m, double u1, double u2, hgg_p4 *g1, hgg_p4 *g2) {
  double cth = 2.0 * u1 - 1.0, sth = sqrt(fmax(0.0, 1.0 - cth * cth)), ph = 2.0 * M_PI * u2;
  double half = 0.5 * m;
  double k[3] = {half * sth * cos(ph), half * sth * sin(ph), half * cth};
  double b[3] = {h->px / h->e, h->py / h->e, h->pz / h->e};
  double b2 = b[0] * b[0] + b[1] * b[1] + b[2] * b[2];
  if (b2 <= 0.0) {
    *g1 = (hgg_p4){k[0], k[1], k[2], half};
    *g2 = (hgg_p4){-k[0], -k[1], -k[2], half};
    return;
  }
  double gamma = h->e / m, g2f = (gamma - 1.0) / b2;
  double bp = b[0] * k[0] + b[1] * k[1] + b[2] * k[2];
  /* photon 1 = (E*, k*), photon 2 = (E*, -k*): b.k flips sign */
  double c1 = g2f * bp + gamma * half, c2 = -g2f * bp + gamma * half;
  *g1 = (hgg_p4){k[0] + c1 * b[0], k[1] + c1 * b[1], k[2] + c1 * b[2], gamma * (half + bp)};
  *g2 = (hgg_p4){-k[0] + c2 * b[0], -k[1] + c2 * b[1], -k[2] + c2 * b[2], gamma * (half - bp)};
}

hgg_photon hgg_photon_from_p4(const hgg_p4 *p) {
  double et = sqrt(p->px * p->px + p->py * p->py);
  double eta = et > 0.0 ? asinh(p->pz / et) : copysign(INFINITY, p->pz);
  return (hgg_photon){et, eta, atan2(p->py, p->px)};
}

hgg_p4 hgg_p4_from_photon(const hgg_photon *g) {
  return (hgg_p4){g->et * cos(g->phi), g->et * sin(g->phi), g->et * sinh(g->eta),
                  g->et * cosh(g->eta)};
}

int hgg_select_order(hgg_photon *a, hgg_photon *b, double et_min, double eta_max) {
  if (!(a->et > et_min && b->et > et_min && fabs(a->eta) < eta_max && fabs(b->eta) < eta_max))
    return 0;
  if (b->et > a->et) {
    hgg_photon t = *a;
    *a = *b;
    *b = t;
  }
  return 1;
}

void hgg_diphoton(const hgg_photon *a, const hgg_photon *b, double *m, double *pt, double *y) {
  /* m^2 = 2 ET1 ET2 (cosh d_eta - cos d_phi) has no cancellation for boosted systems */
  double m2 = 2.0 * a->et * b->et * (cosh(a->eta - b->eta) - cos(a->phi - b->phi));
  double px = a->et * cos(a->phi) + b->et * cos(b->phi);
  double py = a->et * sin(a->phi) + b->et * sin(b->phi);
  double pz = a->et * sinh(a->eta) + b->et * sinh(b->eta);
  *m = sqrt(fmax(m2, 0.0));
  *pt = sqrt(px * px + py * py);
  *y = asinh(pz / sqrt(fmax(m2, 0.0) + px * px + py * py));
}

double hgg_wrap_phi(double phi) {
  if (phi > M_PI)
    phi -= 2.0 * M_PI;
  else if (phi < -M_PI)
    phi += 2.0 * M_PI;
  return phi;
}

int hgg_truth_generate(const hgg_physics *ph, const hgg_opts *o, uint64_t index, hgg_truth *t) {
  cnf_rng r;
  for (int attempt = 0; attempt < HGG_MAX_ATTEMPTS; attempt++) {
    cnf_rng_init(&r, (uint64_t)o->seed, index, (uint32_t)attempt);
    double pt = hgg_sample_pt(&ph->pt, cnf_rng_uniform(&r));
    double y = hgg_sample_y(&ph->y, &r);
    double phi = M_PI * (2.0 * cnf_rng_uniform(&r) - 1.0);
    double m = hgg_sample_mass(ph, cnf_rng_uniform(&r));
    double u1 = cnf_rng_uniform(&r), u2 = cnf_rng_uniform(&r);
    hgg_p4 h = hgg_higgs_p4(m, pt, y, phi), k1, k2;
    hgg_decay(&h, m, u1, u2, &k1, &k2);
    t->g[0] = hgg_photon_from_p4(&k1);
    t->g[1] = hgg_photon_from_p4(&k2);
    if (hgg_select_order(&t->g[0], &t->g[1], o->et_min, o->eta_max)) {
      t->pt_h = pt;
      t->y_h = y;
      t->m_h = m;
      t->attempts = attempt + 1;
      return 0;
    }
  }
  return cnf_error_set(CNF_ERR_NUMERIC, "hgg: event %llu: no event passed the selection in %d attempts",
                       (unsigned long long)index, HGG_MAX_ATTEMPTS);
}

/* ---- resolution (paper Table 2) ----------------------------------------------------------- */

/* [resolution of ET, eta, phi][dependence on ET, eta, mu]: p0..p4 and the normalisation C */
static const double hgg_table2[3][3][6] = {
    {{1.81, -0.56, 0.28, -0.044, 0.0024, 1.46},
     {1.74, 1.04, -0.59, 0.10, -0.0057, 1.64},
     {1.74, 0.058, 0.0041, -0.0031, 0.00031, 1.74}},
    {{0.00048, -6.7e-5, 1.5e-5, -1.7e-6, 7.8e-8, 0.00032},
     {0.00066, -0.00023, 5.5e-5, -6.3e-6, 3.3e-7, 0.00030},
     {0.00033, 2.5e-5, -9.7e-6, 2.0e-6, -1.5e-7, 0.00033}},
    {{0.0014, -0.00021, 1.0e-5, 1.6e-6, -1.6e-7, 0.00054},
     {0.00091, 0.00025, -0.00016, 3.0e-5, -1.6e-6, 0.00078},
     {0.00076, -9.2e-6, 2.1e-5, -3.6e-6, 1.9e-7, 0.00076}},
};

static double table2_factor(const double p[6], double x) {
  return (p[0] + x * (p[1] + x * (p[2] + x * (p[3] + x * p[4])))) / p[5];
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

void hgg_resolution(const hgg_opts *o, double et, double eta, double mu, double sigma[3]) {
  double x[3] = {clamp(et / o->et_scale, 0.0, o->x_et_max), o->eta_signed ? eta : fabs(eta),
                 clamp(mu / o->mu_scale, 0.0, o->x_mu_max)};
  const double scale[3] = {o->sigma_et, o->sigma_eta, o->sigma_phi};
  for (int v = 0; v < 3; v++)
    sigma[v] = scale[v] * table2_factor(hgg_table2[v][0], x[0]) *
               table2_factor(hgg_table2[v][1], x[1]) * table2_factor(hgg_table2[v][2], x[2]);
}

/* ---- scenarios -------------------------------------------------------------------------- */

static int parse_vars(const char *s, const char *opt, int *all) {
  if (strcmp(s, "et") == 0)
    *all = 0;
  else if (strcmp(s, "all") == 0)
    *all = 1;
  else
    return cnf_error_set(CNF_ERR_ARG, "hgg: -%s must be 'et' or 'all', got '%s'", opt, s);
  return 0;
}

int hgg_smear_init(hgg_smear_cfg *c, const hgg_opts *o) {
  CNF_CALL(parse_vars(o->corr_vars, "hgg_corr_vars", &c->corr_all));
  CNF_CALL(parse_vars(o->asym_vars, "hgg_asym_vars", &c->asym_all));
  if (!(fabs(o->rho_a) <= 1.0 && fabs(o->rho_b) <= 1.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: correlations must be in [-1, 1], got rho_a %g, rho_b %g",
                         o->rho_a, o->rho_b);
  if (!(o->asym_frac >= 0.0 && o->asym_frac <= 1.0 && o->asym_width > 0.0 && isfinite(o->asym_mean)))
    return cnf_error_set(CNF_ERR_ARG, "hgg: asym tail needs fraction in [0, 1] and width > 0 (got %g, %g)",
                         o->asym_frac, o->asym_width);
  c->rho[0] = o->rho_a;
  c->rho[1] = o->rho_b;
  c->asym_frac = o->asym_frac;
  c->asym_mean = o->asym_mean;
  c->asym_width = o->asym_width;
  return 0;
}

void hgg_scenario_deltas(const hgg_smear_cfg *c, const double z[2][3], const double u[2][3],
                         double delta[HGG_N_SC][2][3]) {
  for (int s = 0; s < HGG_N_SC; s++)
    memcpy(delta[s], z, sizeof delta[s]);
  for (int k = 0; k < 2; k++) {
    double rho = c->rho[k], rc = sqrt(1.0 - rho * rho);
    int nv = c->corr_all ? 3 : 1;
    for (int v = 0; v < nv; v++)
      delta[HGG_SC_CORR_A + k][1][v] = rho * z[0][v] + rc * z[1][v];
  }
  int nv = c->asym_all ? 3 : 1;
  for (int p = 0; p < 2; p++)
    for (int v = 0; v < nv; v++)
      if (u[p][v] < c->asym_frac)
        delta[HGG_SC_ASYM][p][v] = c->asym_mean + c->asym_width * z[p][v];
}
