/* Private to the calo-pion generator (G3, physics-spec.md section 3): options, the derived
 * detector description and the physics stages, exposed so tests/test_sim_calo_pion.c can check
 * each stage against its closed form.
 *
 * Units: GeV, mm.  z runs along the pion from the ECAL front face (z = 0) to the back of the
 * HCAL (z = 2480 mm).  Layers 0-2: Pb/LAr ECAL (CaloGAN read-out segments 90, 347, 43 mm);
 * layers 3-5: W/LAr HCAL (375, 667, 958 mm).  Each layer is treated as a homogenised mixture.
 *
 * "EM scale": energy that an electron shower would need to produce the same LAr signal, i.e.
 * LAr energy / S_em with S_em = (e/mip) f_mip the EM sampling fraction of the layer. */
#pragma once

#include "cnflow/sim.h"

#define PION_NLAYER 6
#define PION_NECAL 3 /* layers 0..2 are ECAL, 3..5 HCAL */

/* ---- fixed inputs [SRC]/[LIT] ------------------------------------------------------------- */
#define PION_ECAL_PB_MM 2.0  /* CaloGAN ECAL cell: 2 mm Pb + 4 mm LAr [SRC] */
#define PION_ECAL_LAR_MM 4.0
#define PION_FAST_EM_Z 70.0     /* GFlash-style prompt-EM profile: effective Z ... */
#define PION_FAST_EM_EC_GEV 9e-3 /* ... and critical energy of the W/Pb mixtures */
#define PION_FAST_EM_T_OFFSET 1.0 /* photon-initiated shower max is 1 X0 deeper (C_gamma - C_e) */
#define PION_PROFILE_EMIN_GEV 1.0 /* energies in the Groom and Bock fits are floored here */
/* Bock et al. NIM 186 (1981) 533: a = a0 + a1 ln E, b, d = d0 + d1 ln E, w [LIT] */
#define PION_BOCK_A0 0.6165
#define PION_BOCK_A1 0.3183
#define PION_BOCK_B 0.2198
#define PION_BOCK_D0 0.9099
#define PION_BOCK_D1 (-0.0237)
#define PION_BOCK_W 0.4634

/* ---- options (names "pion_*", table in calo_pion.c) --------------------------------------- */
typedef struct pion_opts {
  int64_t n;                 /* events */
  int64_t seed;
  char energy_mode[CNF_OPT_STRLEN]; /* "uniform", "loguniform" or "fixed" */
  double e_min, e_max;       /* GeV, uniform / loguniform range */
  double energy;             /* GeV, fixed mode (0 = not given) */
  double hcal_w_mm, hcal_lar_mm;   /* [CHOSEN] HCAL cell 20 mm W + 4 mm LAr */
  double ecal_e_mip, hcal_e_mip;   /* [CHOSEN] e/mip 0.78, 0.70 */
  double ecal_e_h, hcal_e_h;       /* e/h 1.74 [SRC], 1.70 [CHOSEN] */
  double lar_lambda_ratio;         /* [CHOSEN] lambda_pi / lambda_I of LAr, 1.25 */
  double groom_e0, groom_m;        /* <f_h> = (E / E0)^(m - 1) [LIT] 1 GeV, 0.83 */
  double fem_nu;                   /* [CHOSEN] Beta concentration of x1, 3 */
  double fem_x1_min, fem_x1_max;   /* [CHOSEN] clamp of the mean first-generation pi0 share */
  double fem_later_sigma;          /* [CHOSEN] lognormal spread of later generations, 0.05 */
  double kappa;                    /* [CHOSEN] prompt share of the EM energy, 0.5 */
  double delta_h_sigma, delta_h_min; /* [CHOSEN] hadronic (binding) fluctuation 0.10, > -0.9 */
  double profile_sigma;            /* [CHOSEN] lognormal spread of Bock's d, 0.15 */
  char profile[CNF_OPT_STRLEN];    /* "split" (spec 3.3) or "bock" (two-term average shape) */
  int sampling;                    /* 1: Gamma sampling fluctuations; 0: E_l = visible mean */
  double a_em_coef, a_had_coef;    /* [LIT-formula] 2.7 %, 11.5 % (see pion_detector_init) */
  char scale[CNF_OPT_STRLEN];      /* "em" (default) or "pion": divide by scale_factor */
  double scale_factor;             /* mean pion response at 50 GeV, 0.790 */
} pion_opts;

/* ---- detector description derived from the options -------------------------------------- */
typedef struct pion_detector {
  double z[PION_NLAYER + 1];       /* layer boundaries (mm) */
  double x0[PION_NLAYER], lam[PION_NLAYER], lam_pi[PION_NLAYER]; /* homogenised lengths (mm) */
  double dedx[PION_NLAYER];        /* mip dE/dx (GeV/mm) */
  double f_mip[PION_NLAYER];       /* LAr share of the mip dE/dx */
  double e_mip[PION_NLAYER], e_h[PION_NLAYER];
  double s_em[PION_NLAYER];        /* EM sampling fraction (e/mip) f_mip */
  double a_em[PION_NLAYER], a_had[PION_NLAYER]; /* sampling terms (GeV^1/2) */
  double t[PION_NLAYER + 1], l[PION_NLAYER + 1], l_pi[PION_NLAYER + 1]; /* cumulative X0, lambda_I, lambda_pi at z[] */
} pion_detector;

/* Homogenise the six layers (volume fractions: 1/X = sum v_i / X_i, dE/dx = sum v_i dE/dx_i)
 * and derive the sampling terms a_em = a_em_coef sqrt(d_LAr[mm] / f_mip) and
 * a_had = a_had_coef sqrt(mip loss per cell [MeV]) (Wigmans; PDG calorimetry review). */
void pion_detector_init(const pion_opts *o, pion_detector *det);

/* Regularised lower incomplete gamma P(a, x) for a > 0, x >= 0 (series / Lentz continued
 * fraction, relative accuracy ~1e-12); lgamma_a = ln Gamma(a).  Never calls an error handler. */
double pion_gamma_p(double a, double lgamma_a, double x);

/* EM fraction of a hadron shower of energy e (GeV), spec 3.3 step 4: x1 ~ Beta(nu x1bar,
 * nu (1 - x1bar)), later generations g lognormal.  Draws one Beta from `gsl` and one normal
 * from r. */
double pion_sample_fem(const pion_opts *o, cnf_rng *r, void *gsl, double e);

/* Everything one event produces (GeV unless stated). */
typedef struct pion_event_out {
  double e_inc;
  double layers[PION_NLAYER];      /* EM-scale layer energies after sampling (before -pion_scale) */
  double visible[PION_NLAYER];     /* EM-scale visible mean V_l = V_em,l + V_had,l */
  double deposited[PION_NLAYER];   /* true energy deposited (mip + EM + hadronic incl. invisible) */
  double z0;                       /* first-interaction depth (mm); > 2480 for punch-through */
  int layer0;                      /* layer of the first interaction; 6 = punch-through */
  double f_em, e_avail, e_leak, delta_h;
} pion_event_out;

/* Incident energy of event stream r (first draws of the event), per -pion_energy_mode. */
double pion_sample_energy(const pion_opts *o, cnf_rng *r);
/* The full chain of spec 3.3 for an incident energy e_inc, drawing from r (uniforms, normals)
 * and gsl (Beta, Gamma). */
void pion_simulate(const pion_opts *o, const pion_detector *det, cnf_rng *r, void *gsl,
                   double e_inc, pion_event_out *out);
/* Validate options: 0 or CNF_ERR_ARG with a one-line message. */
int pion_opts_check(const pion_opts *o);
