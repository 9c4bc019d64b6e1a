/* calo-pion physics (physics-spec.md 3.1-3.3): homogenised layers, first interaction, mip
 * track, EM fraction, longitudinal profiles and Gamma sampling fluctuations. */
#include "calo_pion.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sf_gamma.h>
#include <math.h>
#include <string.h>

/* ---- materials [LIT, PDG]: X0, lambda_I, lambda_pi (mm), mip dE/dx (MeV/mm) --------------- */
typedef struct pion_material {
  double x0, lam, lam_pi, dedx_mev;
} pion_material;
static const pion_material pion_pb = {5.612, 175.9, 199.3, 1.273};
static const pion_material pion_w = {3.504, 99.46, 113.3, 2.210};
/* LAr lambda_pi is lambda_I times an option (no tabulated value) */
static const double pion_lar_x0 = 140.0, pion_lar_lam = 857.7, pion_lar_dedx_mev = 0.212;

/* Read-out segment depths (mm): CaloGAN ECAL [SRC], HCAL from the paper */
static const double pion_layer_depth[PION_NLAYER] = {90.0, 347.0, 43.0, 375.0, 667.0, 958.0};

/* One layer as a homogenised absorber/LAr mixture with thicknesses d_abs, d_lar (mm). */
static void pion_layer_mix(pion_detector *det, int k, const pion_material *abs, double d_abs,
                           double d_lar, double lar_lam_pi, double e_mip, double e_h,
                           double a_em_coef, double a_had_coef) {
  double va = d_abs / (d_abs + d_lar), vl = d_lar / (d_abs + d_lar);
  det->x0[k] = 1.0 / (va / abs->x0 + vl / pion_lar_x0);
  det->lam[k] = 1.0 / (va / abs->lam + vl / pion_lar_lam);
  det->lam_pi[k] = 1.0 / (va / abs->lam_pi + vl / lar_lam_pi);
  double dedx_mev = va * abs->dedx_mev + vl * pion_lar_dedx_mev;
  det->dedx[k] = dedx_mev * 1e-3;
  det->f_mip[k] = vl * pion_lar_dedx_mev / dedx_mev;
  det->e_mip[k] = e_mip;
  det->e_h[k] = e_h;
  det->s_em[k] = e_mip * det->f_mip[k];
  det->a_em[k] = a_em_coef * sqrt(d_lar / det->f_mip[k]);
  double cell_mip_mev = d_abs * abs->dedx_mev + d_lar * pion_lar_dedx_mev;
  det->a_had[k] = a_had_coef * sqrt(cell_mip_mev);
}

void pion_detector_init(const pion_opts *o, pion_detector *det) {
  memset(det, 0, sizeof *det);
  double lar_lam_pi = pion_lar_lam * o->lar_lambda_ratio;
  for (int k = 0; k < PION_NLAYER; k++) {
    if (k < PION_NECAL)
      pion_layer_mix(det, k, &pion_pb, PION_ECAL_PB_MM, PION_ECAL_LAR_MM, lar_lam_pi,
                     o->ecal_e_mip, o->ecal_e_h, o->a_em_coef, o->a_had_coef);
    else
      pion_layer_mix(det, k, &pion_w, o->hcal_w_mm, o->hcal_lar_mm, lar_lam_pi, o->hcal_e_mip,
                     o->hcal_e_h, o->a_em_coef, o->a_had_coef);
    det->z[k + 1] = det->z[k] + pion_layer_depth[k];
    det->t[k + 1] = det->t[k] + pion_layer_depth[k] / det->x0[k];
    det->l[k + 1] = det->l[k] + pion_layer_depth[k] / det->lam[k];
    det->l_pi[k + 1] = det->l_pi[k] + pion_layer_depth[k] / det->lam_pi[k];
  }
}

/* ---- regularised incomplete gamma (Numerical Recipes gser / gcf) ------------------------ */
double pion_gamma_p(double a, double lgamma_a, double x) {
  const double eps = 1e-14, tiny = 1e-300;
  if (!(x > 0.0))
    return 0.0;
  double pre = -x + a * log(x) - lgamma_a;
  if (pre < -745.0) /* the prefactor underflows: P is 0 (small x) or 1 (large x) */
    return x < a ? 0.0 : 1.0;
  if (x < a + 1.0) {
    double ap = a, del = 1.0 / a, sum = del;
    for (int n = 0; n < 1000; n++) {
      ap += 1.0;
      del *= x / ap;
      sum += del;
      if (fabs(del) < fabs(sum) * eps)
        break;
    }
    double p = sum * exp(pre);
    return p < 1.0 ? p : 1.0;
  }
  double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 1000; i++) {
    double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (fabs(d) < tiny)
      d = tiny;
    c = b + an / c;
    if (fabs(c) < tiny)
      c = tiny;
    d = 1.0 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1.0) < eps)
      break;
  }
  double q = exp(pre) * h;
  return q < 1.0 ? 1.0 - q : 0.0;
}

/* ---- EM fraction (spec 3.3 step 4) --------------------------------------------------------- */
double pion_sample_fem(const pion_opts *o, cnf_rng *r, void *gsl, double e) {
  double fh_mean = pow(fmax(e, o->groom_e0) / o->groom_e0, o->groom_m - 1.0);
  double x1bar = fmin(o->fem_x1_max, fmax(o->fem_x1_min, 1.0 - fh_mean));
  double x1 = gsl_ran_beta((gsl_rng *)gsl, o->fem_nu * x1bar, o->fem_nu * (1.0 - x1bar));
  /* later generations keep <f_h> on Groom's curve; unit-mean lognormal spread */
  double g = fmin(1.0, fh_mean / (1.0 - x1bar));
  double s = o->fem_later_sigma;
  double fh = (1.0 - x1) * g * exp(s * cnf_rng_normal(r) - 0.5 * s * s);
  fh = fmin(1.0, fmax(0.0, fh));
  return 1.0 - fh;
}

double pion_sample_energy(const pion_opts *o, cnf_rng *r) {
  if (strcmp(o->energy_mode, "fixed") == 0)
    return o->energy;
  double u = cnf_rng_uniform(r);
  if (strcmp(o->energy_mode, "loguniform") == 0)
    return o->e_min * exp(u * log(o->e_max / o->e_min));
  return o->e_min + u * (o->e_max - o->e_min);
}

/* Layer fractions F[k] (k >= k0) of a Gamma(shape, rate) profile in a cumulative depth
 * coordinate u (u_b at the layer boundaries, u0 at the interaction point).  Returns the
 * contained fraction (1 - leakage). */
static double pion_profile_layers(double shape, double rate, const double *u_b, double u0,
                                  int k0, double *F) {
  double lg = gsl_sf_lngamma(shape), prev = 0.0; /* not lgamma: it writes the global signgam */
  for (int k = k0; k < PION_NLAYER; k++) {
    double c = pion_gamma_p(shape, lg, rate * fmax(0.0, u_b[k + 1] - u0));
    F[k] = c - prev;
    prev = c;
  }
  return prev;
}

void pion_simulate(const pion_opts *o, const pion_detector *det, cnf_rng *r, void *gsl,
                   double e_inc, pion_event_out *out) {
  memset(out, 0, sizeof *out);
  out->e_inc = e_inc;
  double vis_em[PION_NLAYER] = {0}, vis_had[PION_NLAYER] = {0};

  /* 2. first inelastic interaction, exponential in lambda_pi */
  double lpi0 = -log(cnf_rng_uniform(r));
  int k0 = 0;
  while (k0 < PION_NLAYER && lpi0 >= det->l_pi[k0 + 1])
    k0++;
  int kz = k0 < PION_NLAYER ? k0 : PION_NLAYER - 1; /* punch-through: extrapolate the last layer */
  out->z0 = det->z[kz] + (lpi0 - det->l_pi[kz]) * det->lam_pi[kz];
  out->layer0 = k0;

  /* 3. mip track up to z0; a slow pion can range out first (its energy is then all mip) */
  double remaining = e_inc;
  for (int k = 0; k <= k0 && k < PION_NLAYER; k++) {
    double zhi = k < k0 ? det->z[k + 1] : out->z0;
    double de = fmin((zhi - det->z[k]) * det->dedx[k], remaining);
    out->deposited[k] += de;
    vis_em[k] += de / det->e_mip[k]; /* LAr share f_mip de, calibrated by (e/mip) f_mip */
    remaining -= de;
  }
  out->e_avail = remaining;

  if (k0 < PION_NLAYER && remaining > 0.0) {
    /* 4-5. energy split */
    double ea = remaining;
    out->f_em = pion_sample_fem(o, r, gsl, ea);
    double e_fast = o->kappa * out->f_em * ea, e_late = (1.0 - o->kappa) * out->f_em * ea;
    double e_had = (1.0 - out->f_em) * ea;
    out->delta_h = fmax(o->delta_h_min, o->delta_h_sigma * cnf_rng_normal(r));
    double lnE = log(fmax(ea, PION_PROFILE_EMIN_GEV)), sp = o->profile_sigma;
    double a = PION_BOCK_A0 + PION_BOCK_A1 * lnE;
    double d = (PION_BOCK_D0 + PION_BOCK_D1 * lnE) * exp(sp * cnf_rng_normal(r) - 0.5 * sp * sp);

    /* 6. layer fractions from the interaction point */
    double dz = out->z0 - det->z[k0];
    double t0 = det->t[k0] + dz / det->x0[k0], l0 = det->l[k0] + dz / det->lam[k0];
    double F_fast[PION_NLAYER] = {0}, F_lam[PION_NLAYER] = {0};
    double c_fast, c_lam;
    if (strcmp(o->profile, "bock") == 0) {
      /* Bock's two-term average profile for all shower energy; term shares from the
       * integrals w X0 Gamma(a) b^-a and (1 - w) lambda Gamma(a) d^-a in the starting layer */
      double wx = PION_BOCK_W * det->x0[k0] * pow(PION_BOCK_B, -a);
      double wl = (1.0 - PION_BOCK_W) * det->lam[k0] * pow(d, -a);
      double sx = wx / (wx + wl), Fx[PION_NLAYER] = {0}, Fl[PION_NLAYER] = {0};
      double cx = pion_profile_layers(a, PION_BOCK_B, det->t, t0, k0, Fx);
      double cl = pion_profile_layers(a, d, det->l, l0, k0, Fl);
      for (int k = k0; k < PION_NLAYER; k++)
        F_fast[k] = F_lam[k] = sx * Fx[k] + (1.0 - sx) * Fl[k];
      c_fast = c_lam = sx * cx + (1.0 - sx) * cl;
    } else {
      /* prompt EM: GFlash <ln T>, <ln alpha> of a photon shower (ln y floored at 1 so that
       * alpha > 1 for the few-MeV EM parts of low-energy pions) */
      double lny = fmax(1.0, log(fmax(e_fast, 1e-300) / PION_FAST_EM_EC_GEV));
      double alpha = 0.81 + (0.458 + 2.26 / PION_FAST_EM_Z) * lny;
      double tmax = lny - 0.812 + PION_FAST_EM_T_OFFSET;
      c_fast = pion_profile_layers(alpha, (alpha - 1.0) / tmax, det->t, t0, k0, F_fast);
      c_lam = pion_profile_layers(a, d, det->l, l0, k0, F_lam);
    }

    /* 7. deposits and EM-scale visible energy */
    for (int k = k0; k < PION_NLAYER; k++) {
      double dep_em = e_fast * F_fast[k] + e_late * F_lam[k], dep_had = e_had * F_lam[k];
      out->deposited[k] += dep_em + dep_had;
      vis_em[k] += dep_em;
      vis_had[k] = dep_had * (1.0 + out->delta_h) / det->e_h[k];
    }
    out->e_leak = e_fast * (1.0 - c_fast) + (e_late + e_had) * (1.0 - c_lam);
  } else {
    out->e_leak = remaining; /* punch-through: the pion leaves the HCAL */
  }

  /* 8. sampling fluctuations: Gamma with mean V and variance a_em^2 V_em + a_had^2 V_had */
  for (int k = 0; k < PION_NLAYER; k++) {
    double v = vis_em[k] + vis_had[k];
    out->visible[k] = v;
    double var = det->a_em[k] * det->a_em[k] * vis_em[k] + det->a_had[k] * det->a_had[k] * vis_had[k];
    if (o->sampling && v > 0.0 && var > 0.0) {
      double theta = var / v;
      out->layers[k] = gsl_ran_gamma((gsl_rng *)gsl, v / theta, theta);
    } else {
      out->layers[k] = v;
    }
  }
}

static int pion_check_positive(const char *name, double v) {
  if (!(v > 0.0) || !isfinite(v))
    return cnf_error_set(CNF_ERR_ARG, "calo-pion: -%s must be a positive number, got %g", name, v);
  return 0;
}

int pion_opts_check(const pion_opts *o) {
  if (o->n < 0)
    return cnf_error_set(CNF_ERR_ARG, "calo-pion: -pion_n_events must be >= 0, got %lld",
                         (long long)o->n);
  if (strcmp(o->energy_mode, "fixed") == 0) {
    if (!(o->energy > 0.0) || !isfinite(o->energy))
      return cnf_error_set(CNF_ERR_ARG,
                           "calo-pion: -pion_energy_mode fixed needs -pion_energy > 0 (GeV), got %g",
                           o->energy);
  } else if (strcmp(o->energy_mode, "uniform") == 0 || strcmp(o->energy_mode, "loguniform") == 0) {
    if (!(o->e_min > 0.0) || !isfinite(o->e_min) || !isfinite(o->e_max))
      return cnf_error_set(CNF_ERR_ARG, "calo-pion: need finite -pion_emin > 0 and -pion_emax (GeV), got %g, %g",
                           o->e_min, o->e_max);
    if (!(o->e_max > o->e_min))
      return cnf_error_set(CNF_ERR_ARG, "calo-pion: need -pion_emin < -pion_emax, got %g >= %g",
                           o->e_min, o->e_max);
  } else {
    return cnf_error_set(CNF_ERR_ARG,
                         "calo-pion: unknown -pion_energy_mode '%s' (uniform, loguniform, fixed)",
                         o->energy_mode);
  }
  if (strcmp(o->profile, "split") != 0 && strcmp(o->profile, "bock") != 0)
    return cnf_error_set(CNF_ERR_ARG, "calo-pion: unknown -pion_profile '%s' (split, bock)",
                         o->profile);
  if (strcmp(o->scale, "em") != 0 && strcmp(o->scale, "pion") != 0)
    return cnf_error_set(CNF_ERR_ARG, "calo-pion: unknown -pion_scale '%s' (em, pion)", o->scale);
  CNF_CALL(pion_check_positive("pion_hcal_w_mm", o->hcal_w_mm));
  CNF_CALL(pion_check_positive("pion_hcal_lar_mm", o->hcal_lar_mm));
  CNF_CALL(pion_check_positive("pion_ecal_e_mip", o->ecal_e_mip));
  CNF_CALL(pion_check_positive("pion_hcal_e_mip", o->hcal_e_mip));
  CNF_CALL(pion_check_positive("pion_ecal_e_h", o->ecal_e_h));
  CNF_CALL(pion_check_positive("pion_hcal_e_h", o->hcal_e_h));
  CNF_CALL(pion_check_positive("pion_lar_lambda_ratio", o->lar_lambda_ratio));
  CNF_CALL(pion_check_positive("pion_groom_e0", o->groom_e0));
  CNF_CALL(pion_check_positive("pion_fem_nu", o->fem_nu));
  CNF_CALL(pion_check_positive("pion_scale_factor", o->scale_factor));
  if (!(o->groom_m > 0.0 && o->groom_m <= 1.0))
    return cnf_error_set(CNF_ERR_ARG, "calo-pion: -pion_groom_m must be in (0, 1], got %g",
                         o->groom_m);
  if (!(o->fem_x1_min > 0.0 && o->fem_x1_min <= o->fem_x1_max && o->fem_x1_max < 1.0))
    return cnf_error_set(CNF_ERR_ARG,
                         "calo-pion: need 0 < -pion_fem_x1_min <= -pion_fem_x1_max < 1, got %g, %g",
                         o->fem_x1_min, o->fem_x1_max);
  if (!(o->kappa >= 0.0 && o->kappa <= 1.0))
    return cnf_error_set(CNF_ERR_ARG, "calo-pion: -pion_kappa must be in [0, 1], got %g", o->kappa);
  if (!(o->delta_h_min > -1.0 && o->delta_h_min <= 0.0))
    return cnf_error_set(CNF_ERR_ARG, "calo-pion: -pion_delta_h_min must be in (-1, 0], got %g",
                         o->delta_h_min);
  const double sig[] = {o->fem_later_sigma, o->delta_h_sigma, o->profile_sigma, o->a_em_coef,
                        o->a_had_coef};
  const char *sig_name[] = {"pion_fem_later_sigma", "pion_delta_h_sigma", "pion_profile_sigma",
                            "pion_a_em_coef", "pion_a_had_coef"};
  for (int i = 0; i < 5; i++)
    if (!(sig[i] >= 0.0) || !isfinite(sig[i]))
      return cnf_error_set(CNF_ERR_ARG, "calo-pion: -%s must be >= 0, got %g", sig_name[i], sig[i]);
  return 0;
}
