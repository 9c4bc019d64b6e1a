/* Private to the hgg generator (G1, physics-spec.md section 1): options, precomputed tables and
 * the physics stages, exposed here so tests/test_sim_hgg.c can check each stage against its
 * closed form.
 *
 * Units: GeV for energies, momenta and masses, rad for angles; eta, y and mu are unitless.
 *
 * Random-stream layout of event (row) i, seed s (every value depends only on (s, i)):
 *   sub = attempt (0, 1, ...)  internal truth: Higgs (pT, y, phi, m) and its decay; the first
 *                              attempt whose photons pass the selection is the event
 *   sub = HGG_SUB_SMEAR        mu, fold, the 6 baseline normals, the 6 asym component uniforms
 *                              (same layout in every mode, so the smearing of a given truth
 *                              event does not depend on how many attempts it took)
 *   stream = input event j, sub = HGG_SUB_DECAY
 *                              file modes: isotropic decay of an input Higgs (in setup)
 */
#pragma once

#include "cnflow/sim.h"

#include <stdint.h>

#define HGG_SUB_SMEAR 0x40000000u
#define HGG_SUB_DECAY 0x40000001u
#define HGG_MAX_ATTEMPTS 100000

enum { HGG_PROC_GGF = 0, HGG_PROC_TTH = 1 };
enum { HGG_ET = 0, HGG_ETA = 1, HGG_PHI = 2 }; /* variable index v of Delta_i^v */

/* Smearing scenarios, side by side for the same truth event, in output order. */
enum { HGG_SC_GAUSS = 0, HGG_SC_CORR_A = 1, HGG_SC_CORR_B = 2, HGG_SC_ASYM = 3, HGG_N_SC = 4 };

typedef struct hgg_opts {
  int64_t seed;
  int64_t n_events;             /* 0: 7,000,000 (internal truth) or all selected input events */
  char process[CNF_OPT_STRLEN]; /* "ggF" or "ttH" */
  double sqrt_s;                /* GeV */
  double mass, width;           /* m_H, Gamma_H (GeV) */
  double mass_window;           /* Breit-Wigner truncation |m - m_H| < window (GeV) */
  int fixed_mass;               /* m = m_H exactly */
  double pt_a, pt_b, pt_c, pt_d;/* f(pT) ~ pT^a / (1 + (pT/b)^c)^d; 0: process default */
  double pt_max, pt_step;       /* inverse-CDF grid (GeV) */
  double y_n, y_shat;           /* w(y) exponent n and sqrt(s_hat_eff) (GeV); 0: process default */
  double et_min, eta_max;       /* truth selection of both photons */
  double mu_min, mu_max;        /* pile-up range */
  double sigma_et, sigma_eta, sigma_phi; /* Table 2 scale constants (GeV, -, rad) */
  double et_scale, mu_scale;    /* x_ET = ET / et_scale, x_mu = mu / mu_scale */
  double x_et_max, x_mu_max;    /* clamps of the polynomial variables */
  int eta_signed;               /* 1: x_eta = eta instead of |eta| */
  double rho_a, rho_b;          /* the two correlated scenarios */
  char corr_vars[CNF_OPT_STRLEN]; /* "et" or "all" */
  double asym_frac, asym_mean, asym_width; /* tail component, units of sigma */
  char asym_vars[CNF_OPT_STRLEN]; /* "et" or "all" */
  double scale_et, scale_phi, scale_eta;  /* target scaling constants (the [-1, 1] space) */
  char truth_lhef[CNF_OPT_STRLEN];
  char truth_h5[CNF_OPT_STRLEN];
  char truth_h5_dataset[CNF_OPT_STRLEN]; /* "" = auto-detect */
} hgg_opts;

void hgg_opts_default(hgg_opts *o);

/* ---- tables ------------------------------------------------------------------------------ */
/* Inverse CDF of the pT spectrum: CDF on a uniform grid (trapezoid rule), linear interpolation
 * of the inverse, guide table for O(1) lookup. */
typedef struct hgg_pt_table {
  int n;            /* grid intervals */
  double step;      /* GeV */
  double *cdf;      /* (n + 1), cdf[0] = 0, cdf[n] = 1 */
  int *guide;       /* (n): guide[k] = largest j with cdf[j] <= k / n */
} hgg_pt_table;

/* Rapidity |y| by rejection from a piecewise-constant envelope (w is decreasing in |y|, so the
 * bin's left edge bounds it from above and its right edge from below: exact, ~1 w call per
 * 100 draws). */
#define HGG_Y_BINS 1024
typedef struct hgg_y_table {
  double sqrt_tau, n, y_max;
  double width;                 /* bin width */
  double hi[HGG_Y_BINS];        /* w at the left edge (envelope) */
  double lo[HGG_Y_BINS];        /* w at the right edge (squeeze) */
  double cum[HGG_Y_BINS + 1];   /* cumulative envelope mass, normalised */
  int guide[HGG_Y_BINS];
} hgg_y_table;

typedef struct hgg_physics {
  int process;
  double pt_a, pt_b, pt_c, pt_d;
  hgg_pt_table pt;
  hgg_y_table y;
  double mass, width;
  double bw_u_lo, bw_u_hi;      /* truncated Breit-Wigner by inverse CDF on (u_lo, u_hi) */
  int fixed_mass;
} hgg_physics;

/* Process defaults (spec 1.3, 1.4). */
void hgg_process_defaults(int process, double *a, double *b, double *c, double *d,
                          double *y_n, double *y_shat);
/* Parse "ggF"/"ggH"/"ttH" (case-insensitive) or CNF_ERR_ARG. */
int hgg_parse_process(const char *s);

/* Validate the physics options and build the tables (free with hgg_physics_free). */
int hgg_physics_init(hgg_physics *ph, const hgg_opts *o);
void hgg_physics_free(hgg_physics *ph);

/* Unnormalised spectrum density and rapidity weight. */
double hgg_pt_density(const hgg_physics *ph, double pt);
double hgg_y_weight(const hgg_y_table *t, double y);

double hgg_sample_pt(const hgg_pt_table *t, double u);
double hgg_sample_y(const hgg_y_table *t, cnf_rng *r);
double hgg_sample_mass(const hgg_physics *ph, double u);

/* ---- kinematics -------------------------------------------------------------------------- */
typedef struct hgg_p4 {
  double px, py, pz, e;
} hgg_p4;

typedef struct hgg_photon {
  double et, eta, phi;
} hgg_photon;

/* Higgs four-vector from (m, pT, y, phi). */
hgg_p4 hgg_higgs_p4(double m, double pt, double y, double phi);
/* Isotropic two-body decay to massless photons in the rest frame (cos theta* = 2 u1 - 1,
 * phi* = 2 pi u2), boosted to the lab.  m = invariant mass of h. */
void hgg_decay(const hgg_p4 *h, double m, double u1, double u2, hgg_p4 *g1, hgg_p4 *g2);
hgg_photon hgg_photon_from_p4(const hgg_p4 *p);
hgg_p4 hgg_p4_from_photon(const hgg_photon *g);
/* Both photons pass ET > et_min and |eta| < eta_max; swaps them so that a is the leading one. */
int hgg_select_order(hgg_photon *a, hgg_photon *b, double et_min, double eta_max);
/* Invariant mass, transverse momentum and rapidity of the diphoton system. */
void hgg_diphoton(const hgg_photon *a, const hgg_photon *b, double *m, double *pt, double *y);
double hgg_wrap_phi(double phi);

/* One internal truth event: returns 0 and fills the ordered photons, the Higgs pT/y and the
 * number of attempts, or CNF_ERR_NUMERIC when HGG_MAX_ATTEMPTS attempts all fail. */
typedef struct hgg_truth {
  hgg_photon g[2];
  double pt_h, y_h, m_h;
  int attempts;
} hgg_truth;
int hgg_truth_generate(const hgg_physics *ph, const hgg_opts *o, uint64_t index, hgg_truth *t);

/* ---- resolution (Table 2) and smearing --------------------------------------------------- */
/* sigma[HGG_ET] in GeV, sigma[HGG_ETA], sigma[HGG_PHI] in rad. */
void hgg_resolution(const hgg_opts *o, double et, double eta, double mu, double sigma[3]);

/* Scenario settings parsed from the options (CNF_ERR_ARG on bad values). */
typedef struct hgg_smear_cfg {
  double rho[2];          /* corr_a, corr_b */
  int corr_all, asym_all; /* apply to eta and phi as well as ET */
  double asym_frac, asym_mean, asym_width;
} hgg_smear_cfg;
int hgg_smear_init(hgg_smear_cfg *c, const hgg_opts *o);

/* Standardised residuals Delta[scenario][photon][variable] from the 6 baseline normals z and
 * the 6 component uniforms u (both [photon][variable]): gauss = z; corr keeps photon 1 and
 * sets Delta_2 = rho z_1 + sqrt(1 - rho^2) z_2; asym replaces Delta by mean + width z when
 * u < frac (so every scenario reuses the baseline normals). */
void hgg_scenario_deltas(const hgg_smear_cfg *c, const double z[2][3], const double u[2][3],
                         double delta[HGG_N_SC][2][3]);

/* ---- truth from files (hgg_input.c) ------------------------------------------------------ */
/* Selected input events, in file order; only rows [keep_first, keep_first + keep_count) of the
 * selected sequence are stored. */
typedef struct hgg_input {
  uint64_t n_read;      /* events in the file */
  uint64_t n_selected;  /* events passing the selection */
  uint64_t keep_first, keep_count, n_kept;
  hgg_photon *g;        /* (n_kept, 2), ordered */
  double *mu;           /* (n_kept), NaN when the file has no mu */
  int64_t *source;      /* (n_kept) input event index */
} hgg_input;

int hgg_input_read_lhef(const hgg_opts *o, uint64_t keep_first, uint64_t keep_count,
                        hgg_input *in);
int hgg_input_read_h5(const hgg_opts *o, uint64_t keep_first, uint64_t keep_count,
                      hgg_input *in);
void hgg_input_free(hgg_input *in);

extern const char *const hgg_scenario_names[HGG_N_SC];
