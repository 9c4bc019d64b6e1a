/* Private to the calo-photon generator (G2, physics-spec.md section 2): options, constants and
 * the physics stages, exposed here so tests/test_sim_calo_photon.c can check each stage against
 * its closed form.
 *
 * Internal units: GeV, mm, rad, tesla.  Output units (in calo_photon.c): MeV, X0, cm.
 * Coordinates: z along the photon (calorimeter face at z = 0, crystals 0 <= z <= 230 mm), x along
 * the 4 T field, y the bending direction (e+ bends to +y).  The image is indexed [iy][ix]
 * (row = y crystal, column = x crystal), iy = floor((y + 264) / 22). */
#pragma once

#include "cnflow/sim.h"

/* ---- fixed geometry (defines the dataset shapes) ---------------------------------------- */
#define PHOTON_NCELL 24               /* crystals per side */
#define PHOTON_NPIX (PHOTON_NCELL * PHOTON_NCELL)
#define PHOTON_CELL_MM 22.0           /* crystal front face */
#define PHOTON_HALF_MM 264.0          /* |x|, |y| <= 264 mm */
#define PHOTON_DEPTH_MM 230.0         /* crystal length (25.8 X0) */
#define PHOTON_WIN_LONG 16            /* window: 16 crystals along the long axis ... */
#define PHOTON_WIN_SHORT 8            /* ... and 8 along the other */
#define PHOTON_NWIN (PHOTON_WIN_LONG * PHOTON_WIN_SHORT)
/* PbWO4, CMS GFlash triple (X0, R_M, E_c are tied: E_c = 21.2 MeV X0 / R_M) */
#define PHOTON_PBWO4_X0_MM 8.9
#define PHOTON_PBWO4_RM_MM 21.9
#define PHOTON_PBWO4_EC_GEV 8.6155e-3
#define PHOTON_PBWO4_Z 68.36
#define PHOTON_ME_GEV 0.51099895e-3

/* ---- options (names "photon_*", see the table in calo_photon.c) ------------------------- */
typedef struct photon_opts {
  int64_t n_events;         /* events (the writer owns it: -n) */
  int64_t seed;             /* the writer owns it: -seed */
  double e_min, e_max;      /* GeV */
  double d_min, d_max;      /* plate thickness, X0(Fe) */
  double b_min, b_max;      /* plate centre distance from the calorimeter face, cm */
  double field;             /* T, along +x */
  double x0_fe;             /* mm */
  double dedx_fe;           /* MeV/cm */
  double source_dist;       /* mm from the calorimeter face */
  double source_sigma;      /* mm, Gaussian transverse spread of the gun */
  int smear_both;           /* [CHOSEN] 0: smear x only (beam/field axis); 1: x and y */
  char window_long[CNF_OPT_STRLEN];  /* [CHOSEN] "y" (bending axis, default) or "x" */
  int window_quirk;         /* 1: ParaFlow corner loop (omits the last corner on each axis) */
  int brem_split;           /* [CHOSEN] photons per brem emission (stick-breaking), default 1 */
  double brem_position;     /* [CHOSEN] emission point, fraction of the remaining path (0.5) */
  int brem_reconvert;       /* [CHOSEN] 0: brem photons never convert in the remaining iron */
  char ms_momentum[CNF_OPT_STRLEN];  /* [CHOSEN] "geometric" (sqrt(Ein Eout)), "in", "out" */
  int conv_tsai;            /* 1: energy-dependent pair mean free path (Tsai fit, ActsFatras) */
  char gflash[CNF_OPT_STRLEN];       /* "cms" (default) or "g4" parameter set */
  char spot_profile[CNF_OPT_STRLEN]; /* "average" (CMS) or "fluctuated" (Geant4) */
  double gflash_step;       /* X0(PbWO4) */
  int max_spots;            /* cap on spots per shower, 0 = no cap */
  int store_full;           /* write images_full */
  double noise_max;         /* keV, uniform noise U(0, noise_max) per crystal */
  char noise_placement[CNF_OPT_STRLEN]; /* [CHOSEN] "window" (after cropping) or "full" */
  char calo_res[CNF_OPT_STRLEN];        /* "off" (default) or "cms" (spec step 9) */
  double res_stochastic;    /* a in sigma_i = a sqrt(E_i GeV) */
  double res_noise;         /* MeV per crystal (Gaussian) */
  double res_constant;      /* event-wide scale sigma */
} photon_opts;

/* ---- parsed settings and per-rank scratch ----------------------------------------------- */
typedef struct photon_gflash_par {
  double lnt_off;           /* <ln T> = ln(ln y - lnt_off) */
  double la0, la1, la2;     /* <ln alpha> = ln(la0 + (la1 + la2 / Z) ln y) */
  double k4_slope;          /* radial tail: k4 = 0.3585 + k4_slope ln E */
  double p1, p1_scale;      /* core probability: p1 = p1_scale (p1 - 0.00094 Z) */
} photon_gflash_par;

typedef struct photon_state {
  photon_gflash_par gf;
  int spot_fluctuated;
  int win_ny, win_nx;       /* window extent along y and x */
  int noise_full;           /* noise before cropping */
  int res_cms;
  int ms_mode;              /* 0 geometric, 1 in, 2 out */
  void *gsl;                /* gsl_rng over the event's brem sub-stream */
  const char *units_mev[PHOTON_NPIX];
  char text_showers[320], text_full[320]; /* dataset descriptions */
} photon_state;

/* Energy bookkeeping of one event (GeV): deposited + leaked + curled + plate = E_gamma. */
typedef struct photon_tally {
  double rear, lateral;     /* shower energy leaving the crystals (back / sides) */
  double curl;              /* e+- that curl away in the field before reaching z = 0 */
  double plate;             /* ionisation (and absorbed soft e+-) in the iron */
  double brem;              /* energy radiated by the primary pair in the plate */
  long spots;
  int showers;
} photon_tally;

/* A particle leaving the plate region towards the calorimeter. */
typedef struct photon_particle {
  double e;                 /* GeV */
  double pos[3];            /* mm */
  double dir[3];            /* unit vector */
  int q;                    /* 0 photon, -1 electron, +1 positron */
} photon_particle;

/* ---- physics stages (calo_photon_plate.c) ----------------------------------------------- */
/* Bethe-Heitler pair sharing: x = E-/E_gamma with density (9/7)(1 - 4/3 x (1 - x)) on [0,1]. */
double photon_pair_fraction(cnf_rng *r);
/* Bethe-Heitler brem: E_out / E_in = exp(-Y), Y ~ Gamma(t / ln 2, 1), t in X0. */
double photon_brem_survival(void *gsl, double t_x0);
/* Highland theta0 (rad) for a unit-charge beta = 1 particle, momentum p GeV, thickness t X0. */
double photon_highland(double p_gev, double t_x0);
/* Helix in B along +x from (pos, dir) at z = pos[2] < 0 to z = 0.  Returns 0 and fills
 * pos_out/dir_out, or 1 if the particle curls before reaching the calorimeter. */
int photon_helix_to_face(const double pos[3], const double dir[3], double p_gev, int q,
                         double field_t, double pos_out[3], double dir_out[3]);

/* Everything upstream of the calorimeter for one photon of energy e entering the plate at
 * `pos` along `dir`: conversion, sharing, brem, ionisation, multiple scattering, helix.  Calls
 * photon_shower() for every particle reaching z = 0.  `truth` receives the primary's
 * conversion details (see calo_photon.c for the columns). */
typedef struct photon_upstream_truth {
  int converted;
  double depth_x0;          /* conversion depth from the plate's front face */
  double x_minus;           /* E-/E_gamma */
  double e_minus, e_plus;   /* energy at the calorimeter face (0 if curled / absorbed) */
  double y_minus, y_plus;   /* impact y (mm) of the e-/e+ */
} photon_upstream_truth;

typedef struct photon_event_ctx {
  const photon_opts *o;
  const photon_state *st;
  cnf_rng *r;               /* upstream stream (sub 0) */
  void *gsl;                /* brem stream */
  uint64_t seed, index;
  uint32_t next_sub;        /* next shower sub-stream */
  double z_in, z_out;       /* plate faces (mm) */
  double *image;            /* (24, 24) GeV */
  photon_tally *tally;
} photon_event_ctx;

int photon_upstream(photon_event_ctx *ctx, double e, const double pos[3],
                    photon_upstream_truth *truth);

/* ---- calorimeter (calo_photon_shower.c) ------------------------------------------------- */
/* GFlash shower of one particle entering at `p->pos` (z = 0) along `p->dir`, spots added to
 * image (24, 24) in GeV; leakage counted in tally.  Photons first travel -(9/7) ln U X0. */
void photon_shower(const photon_opts *o, const photon_state *st, cnf_rng *r,
                   const photon_particle *p, double *image, photon_tally *tally);
/* A Gamma(alpha, beta) depth profile (t in X0) integrated step by step: the content of
 * [t_lo, t_lo + dt], i.e. P(alpha, beta (t_lo + dt)) - P(alpha, beta t_lo); the cumulative sum
 * stays within 1e-9 of P for alpha >= 1.05.  log_t[j] = ln(t_lo + photon_gl_node[j] dt), shared
 * by the profiles of a step. */
typedef struct photon_gamma_profile {
  double alpha, beta, log_norm; /* log_norm = alpha ln beta - lnGamma(alpha) */
} photon_gamma_profile;
extern const double photon_gl_node[4];
void photon_gamma_profile_init(photon_gamma_profile *g, double alpha, double beta);
double photon_gamma_profile_step(const photon_gamma_profile *g, double t_lo, double dt,
                                 const double log_t[4]);

/* Corner (iy0, ix0) of the ny x nx window with maximal sum (ties: first in y-major scan order);
 * quirk = 1 omits the last corner on each axis (ParaFlow).  Returns the sum. */
double photon_window_find(const double *image, int ny, int nx, int quirk, int *iy0, int *ix0);
