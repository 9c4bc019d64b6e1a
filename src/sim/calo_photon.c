/* Generator G2 "calo-photon" (physics-spec.md section 2): photons of 20-100 GeV shot
 * perpendicularly through an iron plate (d in [0.5, 1.5] X0, centre b in [50, 90] cm in front of
 * the calorimeter) in a 4 T field along x, onto 24 x 24 PbWO4 crystals.  Conversion, pair
 * sharing, brem, ionisation, multiple scattering and the helix are in calo_photon_plate.c; the
 * GFlash showers and the window search in calo_photon_shower.c.  This file holds the option
 * table, the output schema and the per-event driver (noise, optional response, cropping).
 *
 * Streams for event i: sub 0 conditions + upstream physics, sub 1 the GSL gamma draws (brem),
 * sub 2 noise, sub 3 the optional detector response, sub 16+k the k-th shower's spots. */
#include "calo_photon.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dataset order; images_full last so -photon_store_full 0 simply drops it */
enum { DS_ENERGY = 0, DS_SHOWERS, DS_COND, DS_TRUTH, DS_FULL, DS_COUNT };
enum { SUB_UPSTREAM = 0, SUB_BREM = 1, SUB_NOISE = 2, SUB_RESPONSE = 3, SUB_SHOWER0 = 16 };

#define OPT(field, type, help)                                                                     \
  { "photon_" #field, type, offsetof(photon_opts, field), help }
static const cnf_option photon_options[] = {
    OPT(n_events, CNF_OPT_INT64, "number of showers (default 1000000)"),
    OPT(seed, CNF_OPT_INT64, "random seed: row i depends only on (seed, i) (default 1)"),
    OPT(e_min, CNF_OPT_REAL, "lowest photon energy, GeV (default 20)"),
    OPT(e_max, CNF_OPT_REAL, "highest photon energy, GeV (default 100)"),
    OPT(d_min, CNF_OPT_REAL, "thinnest iron plate, X0(Fe) (default 0.5)"),
    OPT(d_max, CNF_OPT_REAL, "thickest iron plate, X0(Fe) (default 1.5)"),
    OPT(b_min, CNF_OPT_REAL, "smallest plate-centre distance to the calorimeter, cm (default 50)"),
    OPT(b_max, CNF_OPT_REAL, "largest plate-centre distance to the calorimeter, cm (default 90)"),
    OPT(field, CNF_OPT_REAL, "magnetic field along +x, T (default 4)"),
    OPT(x0_fe, CNF_OPT_REAL, "radiation length of iron, mm (default 17.57)"),
    OPT(dedx_fe, CNF_OPT_REAL, "minimum ionisation loss in iron, MeV/cm (default 11.4)"),
    OPT(source_dist, CNF_OPT_REAL,
        "photon gun distance to the calorimeter face, mm (default 1290)"),
    OPT(source_sigma, CNF_OPT_REAL, "Gaussian transverse spread of the gun, mm (default 44)"),
    OPT(smear_both, CNF_OPT_BOOL, "[CHOSEN] smear the gun in y too, not only x (default 0)"),
    OPT(window_long, CNF_OPT_STRING,
        "[CHOSEN] axis of the window's 16-crystal side: y|x (default y)"),
    OPT(window_quirk, CNF_OPT_BOOL, "ParaFlow corner loop omitting the last corner (default 0)"),
    OPT(brem_split, CNF_OPT_INT, "[CHOSEN] photons per brem emission, 1..64 (default 1)"),
    OPT(brem_position, CNF_OPT_REAL,
        "[CHOSEN] brem emission point, fraction of the remaining path (default 0.5)"),
    OPT(brem_reconvert, CNF_OPT_BOOL,
        "[CHOSEN] let brem photons convert in the remaining iron (default 0)"),
    OPT(ms_momentum, CNF_OPT_STRING,
        "[CHOSEN] multiple-scattering momentum: geometric|in|out (default geometric)"),
    OPT(conv_tsai, CNF_OPT_BOOL, "energy-dependent pair mean free path (Tsai fit) (default 0)"),
    OPT(gflash, CNF_OPT_STRING, "GFlash parameter set: cms|g4 (default cms)"),
    OPT(spot_profile, CNF_OPT_STRING,
        "spot longitudinal profile: average (CMS)|fluctuated (Geant4) (default average)"),
    OPT(gflash_step, CNF_OPT_REAL, "GFlash integration step, X0(PbWO4) (default 0.1)"),
    OPT(max_spots, CNF_OPT_INT, "cap on spots per shower, 0 = none (default 0)"),
    OPT(store_full, CNF_OPT_BOOL, "write images_full (N,576): 2.3 kB per shower (default 1)"),
    OPT(noise_max, CNF_OPT_REAL,
        "uniform electronic noise U(0, max) per crystal, keV (default 20)"),
    OPT(noise_placement, CNF_OPT_STRING,
        "[CHOSEN] noise on the cropped window or on the full image: window|full (default window)"),
    OPT(calo_res, CNF_OPT_STRING, "detector-response stage: off|cms (default off)"),
    OPT(res_stochastic, CNF_OPT_REAL,
        "response: per-crystal sigma = a sqrt(E/GeV) GeV, a (default 0.028)"),
    OPT(res_noise, CNF_OPT_REAL, "response: Gaussian noise per crystal, MeV (default 24)"),
    OPT(res_constant, CNF_OPT_REAL, "response: event-wide scale sigma (default 0.003)"),
};
#undef OPT

static void photon_opts_default(void *opts) {
  photon_opts *o = opts;
  memset(o, 0, sizeof *o);
  o->n_events = 1000000;
  o->seed = 1;
  o->e_min = 20.0;
  o->e_max = 100.0;
  o->d_min = 0.5;
  o->d_max = 1.5;
  o->b_min = 50.0;
  o->b_max = 90.0;
  o->field = 4.0;
  o->x0_fe = 17.57;
  o->dedx_fe = 11.4;
  o->source_dist = 1290.0;
  o->source_sigma = 44.0;
  strcpy(o->window_long, "y");
  o->brem_split = 1;
  o->brem_position = 0.5;
  strcpy(o->ms_momentum, "geometric");
  strcpy(o->gflash, "cms");
  strcpy(o->spot_profile, "average");
  o->gflash_step = 0.1;
  o->store_full = 1;
  o->noise_max = 20.0;
  strcpy(o->noise_placement, "window");
  strcpy(o->calo_res, "off");
  o->res_stochastic = 0.028;
  o->res_noise = 24.0;
  o->res_constant = 0.003;
}

/* Index of `value` in the NULL-terminated `choices`, or an error naming the option. */
static int parse_choice(const char *opt, const char *value, const char *const *choices, int *out) {
  for (int i = 0; choices[i]; i++)
    if (strcmp(value, choices[i]) == 0) {
      *out = i;
      return 0;
    }
  return cnf_error_set(CNF_ERR_ARG, "calo-photon: -photon_%s: unknown value '%s'", opt, value);
}

static int check_range(const char *what, double lo, double hi, double min_allowed, int strict) {
  if (!isfinite(lo) || !isfinite(hi))
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: %s range is not finite", what);
  if (strict ? !(lo > min_allowed) : !(lo >= min_allowed))
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: %s minimum %g must be %s %g", what, lo,
                         strict ? ">" : ">=", min_allowed);
  if (lo > hi)
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: %s range inverted (min %g > max %g)", what, lo,
                         hi);
  return 0;
}

static int photon_validate(const photon_opts *o, photon_state *st) {
  if (o->n_events < 1)
    return cnf_error_set(CNF_ERR_ARG,
                         "calo-photon: the number of events (-n) must be >= 1 (got %lld)",
                         (long long)o->n_events);
  CNF_CALL(check_range("energy (-photon_e_min/-photon_e_max, GeV)", o->e_min, o->e_max, 0.0, 1));
  CNF_CALL(check_range("thickness (-photon_d_min/-photon_d_max, X0)", o->d_min, o->d_max, 0.0, 0));
  CNF_CALL(check_range("distance (-photon_b_min/-photon_b_max, cm)", o->b_min, o->b_max, 0.0, 1));
  if (!(o->x0_fe > 0.0) || !isfinite(o->x0_fe))
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: -photon_x0_fe must be > 0 mm");
  if (10.0 * o->b_min - 0.5 * o->d_max * o->x0_fe <= 0.0)
    return cnf_error_set(
        CNF_ERR_ARG, "calo-photon: the plate overlaps the calorimeter (b_min too small for d_max)");
  if (!(o->source_dist > 10.0 * o->b_max + 0.5 * o->d_max * o->x0_fe) || !isfinite(o->source_dist))
    return cnf_error_set(CNF_ERR_ARG,
                         "calo-photon: -photon_source_dist %g mm must lie in front of the plate",
                         o->source_dist);
  if (!isfinite(o->field))
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: -photon_field must be finite");
  if (!(o->dedx_fe >= 0.0) || !(o->source_sigma >= 0.0) || !(o->noise_max >= 0.0) ||
      !(o->res_stochastic >= 0.0) || !(o->res_noise >= 0.0) || !(o->res_constant >= 0.0) ||
      !isfinite(o->dedx_fe + o->source_sigma + o->noise_max + o->res_stochastic + o->res_noise +
                o->res_constant))
    return cnf_error_set(
        CNF_ERR_ARG,
        "calo-photon: dedx_fe, source_sigma, noise_max and res_* must be finite and >= 0");
  if (o->brem_split < 1 || o->brem_split > 64)
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: -photon_brem_split must be in 1..64 (got %d)",
                         o->brem_split);
  if (!(o->brem_position >= 0.0 && o->brem_position <= 1.0))
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: -photon_brem_position must be in [0, 1]");
  if (!(o->gflash_step > 0.0 && o->gflash_step <= 1.0))
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: -photon_gflash_step must be in (0, 1] X0");
  if (o->max_spots < 0)
    return cnf_error_set(CNF_ERR_ARG, "calo-photon: -photon_max_spots must be >= 0");

  static const char *const axes[] = {"y", "x", NULL};
  static const char *const ms[] = {"geometric", "in", "out", NULL};
  static const char *const gflash[] = {"cms", "g4", NULL};
  static const char *const spot[] = {"average", "fluctuated", NULL};
  static const char *const noise[] = {"window", "full", NULL};
  static const char *const res[] = {"off", "cms", NULL};
  int long_axis, gf;
  CNF_CALL(parse_choice("window_long", o->window_long, axes, &long_axis));
  CNF_CALL(parse_choice("ms_momentum", o->ms_momentum, ms, &st->ms_mode));
  CNF_CALL(parse_choice("gflash", o->gflash, gflash, &gf));
  CNF_CALL(parse_choice("spot_profile", o->spot_profile, spot, &st->spot_fluctuated));
  CNF_CALL(parse_choice("noise_placement", o->noise_placement, noise, &st->noise_full));
  CNF_CALL(parse_choice("calo_res", o->calo_res, res, &st->res_cms));
  st->win_ny = long_axis == 0 ? PHOTON_WIN_LONG : PHOTON_WIN_SHORT;
  st->win_nx = long_axis == 0 ? PHOTON_WIN_SHORT : PHOTON_WIN_LONG;
  /* CMS tuning (GflashEMShowerProfile.cc) vs Geant4 defaults (GVFlashHomoShowerTuning.hh) */
  st->gf = gf == 0 ? (photon_gflash_par){0.7157, 0.7996, 0.4581, 1.8628, 0.0421, 2.623, 0.965}
                   : (photon_gflash_par){0.812, 0.81, 0.458, 2.26, 0.0412, 2.632, 1.0};
  return 0;
}

/* ---- schema -------------------------------------------------------------------------------- */
static const char *const energy_names[] = {"energy"};
static const char *const cond_names[] = {"thickness", "distance", "energy"};
static const char *const cond_units[] = {"X0", "cm", "MeV"};
enum {
  T_CONVERTED,
  T_CONV_DEPTH,
  T_X_MINUS,
  T_WIN_IY0,
  T_WIN_IX0,
  T_E_DEPOSIT,
  T_E_WINDOW,
  T_E_REAR,
  T_E_LATERAL,
  T_E_CURL,
  T_E_PLATE,
  T_E_BREM,
  T_E_MINUS,
  T_E_PLUS,
  T_Y_MINUS,
  T_Y_PLUS,
  T_SOURCE_X,
  T_SOURCE_Y,
  T_N_SPOTS,
  T_N_SHOWERS,
  T_COUNT
};
static const char *const truth_names[T_COUNT] = {
    "converted",   "conv_depth", "x_minus",      "window_iy0",     "window_ix0",
    "e_deposit",   "e_window",   "e_leak_rear",  "e_leak_lateral", "e_curl",
    "e_plate",     "e_brem",     "e_minus_face", "e_plus_face",    "y_minus_face",
    "y_plus_face", "source_x",   "source_y",     "n_spots",        "n_showers"};
static const char *const truth_units[T_COUNT] = {
    "",    "X0",  "",    "crystal", "crystal", "MeV", "MeV", "MeV", "MeV", "MeV",
    "MeV", "MeV", "MeV", "MeV",     "mm",      "mm",  "mm",  "mm",  "",    ""};

static void photon_describe(const photon_opts *o, photon_state *st, cnf_sim_desc *desc) {
  for (int i = 0; i < PHOTON_NPIX; i++)
    st->units_mev[i] = "MeV";
  memset(desc, 0, sizeof *desc);
  desc->n_events = (uint64_t)o->n_events;
  desc->n_datasets = o->store_full ? DS_COUNT : DS_FULL;
  desc->datasets[DS_ENERGY] =
      (cnf_dataset_schema){"incident_energies", 1,
                           CNF_DTYPE_F64,       energy_names,
                           st->units_mev,       "photon energy in MeV (CaloChallenge convention)"};
  const char *resp = st->res_cms ? ", after the cms response stage (values can be negative)" : "";
  snprintf(st->text_showers, sizeof st->text_showers,
           "crystal energies (MeV, with noise%s) of the %d(y) x %d(x) window of maximal sum, "
           "row-major [jy][jx]: column = jy*%d + jx; y = bending axis (e+ to +y), x = field axis",
           resp, st->win_ny, st->win_nx, st->win_nx);
  snprintf(st->text_full, sizeof st->text_full,
           "all 24 x 24 crystal energies (MeV, %s%s), row-major [iy][ix]: column = iy*24 + ix, "
           "iy = floor((y + 264 mm)/22 mm), ix likewise in x",
           st->noise_full ? "with noise" : "no noise: noise is added after cropping", resp);
  desc->datasets[DS_SHOWERS] = (cnf_dataset_schema){"showers", PHOTON_NWIN,   CNF_DTYPE_F32,
                                                    NULL,      st->units_mev, st->text_showers};
  desc->datasets[DS_FULL] = (cnf_dataset_schema){"images_full", PHOTON_NPIX,   CNF_DTYPE_F32,
                                                 NULL,          st->units_mev, st->text_full};
  desc->datasets[DS_COND] =
      (cnf_dataset_schema){"conditions",
                           3,
                           CNF_DTYPE_F64,
                           cond_names,
                           cond_units,
                           "plate thickness (X0 of iron), plate-centre distance to the calorimeter "
                           "(cm), photon energy (MeV)"};
  desc->datasets[DS_TRUTH] = (cnf_dataset_schema){
      "truth",
      T_COUNT,
      CNF_DTYPE_F64,
      truth_names,
      truth_units,
      "per-shower truth: conversion (flag, depth from the plate front face in X0 or -1, E-/E), "
      "window corner, noise-free deposited/window energy, leakage, curled and plate losses "
      "(deposit + leaks + curl + plate = E), primary pair at the face (0 when absent), gun "
      "position, spot and shower counts"};
}

static int photon_setup(const void *opts, uint64_t first, uint64_t count, cnf_sim_desc *desc,
                        void **state) {
  const photon_opts *o = opts;
  photon_state *st = cnf_calloc(1, sizeof *st);
  if (!st)
    return CNF_ERR_NOMEM;
  int rc = photon_validate(o, st);
  if (rc < 0) {
    free(st);
    return rc;
  }
  st->gsl = cnf_rng_gsl_alloc((uint64_t)o->seed, first, SUB_BREM);
  if (!st->gsl) {
    free(st);
    return CNF_ERR_NOMEM;
  }
  photon_describe(o, st, desc);
  *state = st;
  return 0;
}

/* Spec step 9 (option): per-crystal stochastic + Gaussian noise, one event-wide scale. */
static void photon_response(const photon_opts *o, cnf_rng *r, double *image) {
  double scale = 1.0 + o->res_constant * cnf_rng_normal(r);
  double sigma_n = o->res_noise * 1e-3;
  for (int i = 0; i < PHOTON_NPIX; i++) {
    double e = image[i];
    double s = e > 0.0 ? o->res_stochastic * sqrt(e) : 0.0;
    image[i] = scale * (e + s * cnf_rng_normal(r) + sigma_n * cnf_rng_normal(r));
  }
}

static int photon_event(const void *opts, void *state, uint64_t index, double *const *rows) {
  const photon_opts *o = opts;
  photon_state *st = state;
  const uint64_t seed = (uint64_t)o->seed;
  cnf_rng r;
  cnf_rng_init(&r, seed, index, SUB_UPSTREAM);
  cnf_rng_gsl_reset(st->gsl, seed, index, SUB_BREM);

  /* step 1: conditions and gun position */
  double e = o->e_min + (o->e_max - o->e_min) * cnf_rng_uniform(&r);
  double d = o->d_min + (o->d_max - o->d_min) * cnf_rng_uniform(&r);
  double b = o->b_min + (o->b_max - o->b_min) * cnf_rng_uniform(&r);
  double xs = o->source_sigma * cnf_rng_normal(&r);
  double ys = o->smear_both ? o->source_sigma * cnf_rng_normal(&r) : 0.0;

  /* steps 2-7 */
  double deposit[PHOTON_NPIX] = {0}, image[PHOTON_NPIX];
  photon_tally tally = {0};
  double thick = d * o->x0_fe;
  photon_event_ctx ctx = {.o = o,
                          .st = st,
                          .r = &r,
                          .gsl = st->gsl,
                          .seed = seed,
                          .index = index,
                          .next_sub = SUB_SHOWER0,
                          .z_in = -10.0 * b - 0.5 * thick,
                          .z_out = -10.0 * b + 0.5 * thick,
                          .image = deposit,
                          .tally = &tally};
  const double entry[3] = {xs, ys, ctx.z_in};
  photon_upstream_truth up;
  CNF_CALL(photon_upstream(&ctx, e, entry, &up));

  /* steps 9, 8 (full placement), 10, 8 (window placement) */
  memcpy(image, deposit, sizeof image);
  if (st->res_cms) {
    cnf_rng rr;
    cnf_rng_init(&rr, seed, index, SUB_RESPONSE);
    photon_response(o, &rr, image);
  }
  cnf_rng rn;
  cnf_rng_init(&rn, seed, index, SUB_NOISE);
  const double noise_gev = o->noise_max * 1e-6;
  if (st->noise_full)
    for (int i = 0; i < PHOTON_NPIX; i++)
      image[i] += noise_gev * cnf_rng_uniform(&rn);
  int iy0, ix0;
  photon_window_find(image, st->win_ny, st->win_nx, o->window_quirk, &iy0, &ix0);
  double e_dep = 0.0, e_win = 0.0;
  for (int i = 0; i < PHOTON_NPIX; i++)
    e_dep += deposit[i];
  if (o->store_full)
    for (int i = 0; i < PHOTON_NPIX; i++)
      rows[DS_FULL][i] = 1e3 * image[i];
  for (int jy = 0; jy < st->win_ny; jy++)
    for (int jx = 0; jx < st->win_nx; jx++) {
      int src = (iy0 + jy) * PHOTON_NCELL + ix0 + jx;
      double v = image[src];
      if (!st->noise_full)
        v += noise_gev * cnf_rng_uniform(&rn);
      rows[DS_SHOWERS][jy * st->win_nx + jx] = 1e3 * v;
      e_win += deposit[src];
    }

  rows[DS_ENERGY][0] = 1e3 * e;
  rows[DS_COND][0] = d;
  rows[DS_COND][1] = b;
  rows[DS_COND][2] = 1e3 * e;
  double *t = rows[DS_TRUTH];
  t[T_CONVERTED] = up.converted;
  t[T_CONV_DEPTH] = up.depth_x0;
  t[T_X_MINUS] = up.x_minus;
  t[T_WIN_IY0] = iy0;
  t[T_WIN_IX0] = ix0;
  t[T_E_DEPOSIT] = 1e3 * e_dep;
  t[T_E_WINDOW] = 1e3 * e_win;
  t[T_E_REAR] = 1e3 * tally.rear;
  t[T_E_LATERAL] = 1e3 * tally.lateral;
  t[T_E_CURL] = 1e3 * tally.curl;
  t[T_E_PLATE] = 1e3 * tally.plate;
  t[T_E_BREM] = 1e3 * tally.brem;
  t[T_E_MINUS] = 1e3 * up.e_minus;
  t[T_E_PLUS] = 1e3 * up.e_plus;
  t[T_Y_MINUS] = up.y_minus;
  t[T_Y_PLUS] = up.y_plus;
  t[T_SOURCE_X] = xs;
  t[T_SOURCE_Y] = ys;
  t[T_N_SPOTS] = (double)tally.spots;
  t[T_N_SHOWERS] = tally.showers;
  return 0;
}

static void photon_teardown(void *state) {
  photon_state *st = state;
  if (!st)
    return;
  cnf_rng_gsl_free(st->gsl);
  free(st);
}

const cnf_generator cnf_gen_calo_photon = {
    .name = "calo-photon",
    .help = "G2 (physics-spec.md section 2): 20-100 GeV photons through an iron plate (0.5-1.5 X0, "
            "50-90 cm upstream) in 4 T onto 24x24 PbWO4 crystals: conversion, pair sharing, brem, "
            "multiple scattering, helix, GFlash showers with spot fluctuations, uniform noise.  "
            "Writes incident_energies (N,1) MeV, showers (N,128) = 16(y)x8(x) max-sum window MeV, "
            "conditions (N,3) = thickness X0, distance cm, energy MeV, truth (N,20) and "
            "images_full (N,576) MeV.",
    .opts_size = sizeof(photon_opts),
    .n_options = (int)(sizeof photon_options / sizeof photon_options[0]),
    .options = photon_options,
    .opts_default = photon_opts_default,
    .setup = photon_setup,
    .event = photon_event,
    .finalize = NULL,
    .teardown = photon_teardown,
};
