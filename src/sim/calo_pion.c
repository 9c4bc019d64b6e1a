/* Generator G3 "calo-pion" (physics-spec.md section 3): a single pi+ in a 3-layer Pb/LAr ECAL
 * (CaloGAN geometry) + 3-layer W/LAr HCAL; per event the incident energy and the six layer
 * energies on the EM scale (LAr energy / EM sampling fraction), CaloChallenge-like.
 *
 * Datasets (row i = event i, a pure function of (seed, i)):
 *   incident_energies  (N, 1)  E_inc [GeV]
 *   layers             (N, 6)  E_0..E_5 [GeV], EM scale after sampling fluctuations
 *                              (divided by -pion_scale_factor with -pion_scale pion).
 *                              Attributes: sampling_fraction (6), layer_z_mm (7).
 *   truth/visible      (N, 6)  EM-scale visible energy before sampling fluctuations [GeV]
 *   truth/deposited    (N, 6)  true energy deposited per layer [GeV] (sum + e_leak = E_inc)
 *   truth/event        (N, 6)  z0 [mm], interaction layer (6 = none), f_em, e_avail [GeV],
 *                              e_leak [GeV], delta_h
 * The calibration study (flows-reference 5.1) feeds layer energies in MeV (x 1e3) and the
 * incident energy in GeV; conversions belong to the reader, the file stays in GeV.
 *
 * Random streams of event i: (seed, i, sub 0) for uniforms and normals, (seed, i, sub 1) for
 * the GSL Beta and Gamma draws. */
#include "calo_pion.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define OPT(name, type, field, help) {name, type, offsetof(pion_opts, field), help}
static const cnf_option pion_options[] = {
    OPT("pion_n_events", CNF_OPT_INT64, n, "events (default 100000)"),
    OPT("pion_seed", CNF_OPT_INT64, seed, "random seed (default 1)"),
    OPT("pion_energy_mode", CNF_OPT_STRING, energy_mode,
        "incident energy: uniform | loguniform in [emin, emax], or fixed (default uniform)"),
    OPT("pion_emin", CNF_OPT_REAL, e_min, "lowest incident energy, GeV (default 1)"),
    OPT("pion_emax", CNF_OPT_REAL, e_max, "highest incident energy, GeV (default 100)"),
    OPT("pion_energy", CNF_OPT_REAL, energy, "incident energy in fixed mode, GeV (required there)"),
    OPT("pion_hcal_w_mm", CNF_OPT_REAL, hcal_w_mm, "[CHOSEN] W per HCAL cell, mm (default 20)"),
    OPT("pion_hcal_lar_mm", CNF_OPT_REAL, hcal_lar_mm, "[CHOSEN] LAr per HCAL cell, mm (default 4)"),
    OPT("pion_ecal_e_mip", CNF_OPT_REAL, ecal_e_mip, "[CHOSEN] e/mip of Pb/LAr (default 0.78)"),
    OPT("pion_hcal_e_mip", CNF_OPT_REAL, hcal_e_mip, "[CHOSEN] e/mip of W/LAr (default 0.70)"),
    OPT("pion_ecal_e_h", CNF_OPT_REAL, ecal_e_h, "e/h of Pb/LAr (default 1.74)"),
    OPT("pion_hcal_e_h", CNF_OPT_REAL, hcal_e_h, "[CHOSEN] e/h of W/LAr (default 1.70)"),
    OPT("pion_lar_lambda_ratio", CNF_OPT_REAL, lar_lambda_ratio,
        "[CHOSEN] lambda_pi / lambda_I of LAr (default 1.25)"),
    OPT("pion_groom_e0", CNF_OPT_REAL, groom_e0, "Groom <f_h> = (E/E0)^(m-1): E0, GeV (default 1)"),
    OPT("pion_groom_m", CNF_OPT_REAL, groom_m, "Groom exponent m (default 0.83)"),
    OPT("pion_fem_nu", CNF_OPT_REAL, fem_nu, "[CHOSEN] Beta concentration of the first pi0 share (default 3)"),
    OPT("pion_fem_x1_min", CNF_OPT_REAL, fem_x1_min, "[CHOSEN] lower clamp of its mean (default 0.05)"),
    OPT("pion_fem_x1_max", CNF_OPT_REAL, fem_x1_max, "[CHOSEN] upper clamp of its mean (default 0.25)"),
    OPT("pion_fem_later_sigma", CNF_OPT_REAL, fem_later_sigma,
        "[CHOSEN] lognormal sigma of later generations (default 0.05)"),
    OPT("pion_kappa", CNF_OPT_REAL, kappa, "[CHOSEN] prompt share of the EM energy (default 0.5)"),
    OPT("pion_delta_h_sigma", CNF_OPT_REAL, delta_h_sigma,
        "[CHOSEN] sigma of the hadronic (binding energy) fluctuation (default 0.10)"),
    OPT("pion_delta_h_min", CNF_OPT_REAL, delta_h_min, "[CHOSEN] its lower clip (default -0.9)"),
    OPT("pion_profile_sigma", CNF_OPT_REAL, profile_sigma,
        "[CHOSEN] unit-mean lognormal sigma of the hadronic profile rate d (default 0.15)"),
    OPT("pion_profile", CNF_OPT_STRING, profile,
        "split (GFlash prompt EM + Bock lambda term) | bock (two-term average) (default split)"),
    OPT("pion_sampling", CNF_OPT_BOOL, sampling, "Gamma sampling fluctuations (default true)"),
    OPT("pion_a_em_coef", CNF_OPT_REAL, a_em_coef,
        "EM sampling term a = coef sqrt(d_LAr/f_mip), GeV^1/2 (default 0.027)"),
    OPT("pion_a_had_coef", CNF_OPT_REAL, a_had_coef,
        "hadronic sampling term a = coef sqrt(cell mip loss MeV) (default 0.115)"),
    OPT("pion_scale", CNF_OPT_STRING, scale, "em | pion (divide layers by scale_factor) (default em)"),
    OPT("pion_scale_factor", CNF_OPT_REAL, scale_factor,
        "mean pion response used by -pion_scale pion (default 0.790)"),
};
#undef OPT

static void pion_opts_default(void *p) {
  pion_opts *o = p;
  memset(o, 0, sizeof *o);
  o->n = 100000;
  o->seed = 1;
  strcpy(o->energy_mode, "uniform");
  o->e_min = 1.0;
  o->e_max = 100.0;
  o->energy = 0.0;
  o->hcal_w_mm = 20.0;
  o->hcal_lar_mm = 4.0;
  o->ecal_e_mip = 0.78;
  o->hcal_e_mip = 0.70;
  o->ecal_e_h = 1.74;
  o->hcal_e_h = 1.70;
  o->lar_lambda_ratio = 1.25;
  o->groom_e0 = 1.0;
  o->groom_m = 0.83;
  o->fem_nu = 3.0;
  o->fem_x1_min = 0.05;
  o->fem_x1_max = 0.25;
  o->fem_later_sigma = 0.05;
  o->kappa = 0.5;
  o->delta_h_sigma = 0.10;
  o->delta_h_min = -0.9;
  o->profile_sigma = 0.15;
  strcpy(o->profile, "split");
  o->sampling = 1;
  o->a_em_coef = 0.027;
  o->a_had_coef = 0.115;
  strcpy(o->scale, "em");
  o->scale_factor = 0.790;
}

typedef struct pion_state {
  pion_detector det;
  void *gsl;        /* gsl_rng over the event's sub-stream 1 */
  double out_scale; /* 1 / scale_factor with -pion_scale pion, else 1 */
} pion_state;

enum { DS_EINC, DS_LAYERS, DS_VISIBLE, DS_DEPOSITED, DS_EVENT, DS_COUNT };

static const char *const pion_layer_cols[PION_NLAYER] = {"E_0", "E_1", "E_2", "E_3", "E_4", "E_5"};
static const char *const pion_gev6[PION_NLAYER] = {"GeV", "GeV", "GeV", "GeV", "GeV", "GeV"};
static const char *const pion_einc_col[1] = {"E_inc"};
static const char *const pion_gev1[1] = {"GeV"};
static const char *const pion_event_cols[6] = {"z0", "layer0", "f_em", "e_avail", "e_leak", "delta_h"};
static const char *const pion_event_units[6] = {"mm", "", "", "GeV", "GeV", ""};

static int pion_setup(const void *opts, uint64_t first, uint64_t count, cnf_sim_desc *desc,
                      void **state) {
  const pion_opts *o = opts;
  CNF_CALL(pion_opts_check(o));
  memset(desc, 0, sizeof *desc);
  desc->n_events = (uint64_t)o->n;
  desc->n_datasets = DS_COUNT;
  desc->datasets[DS_EINC] = (cnf_dataset_schema){
      "incident_energies", 1, CNF_DTYPE_F64, pion_einc_col, pion_gev1,
      "incident pi+ energy E_inc (GeV)"};
  desc->datasets[DS_LAYERS] = (cnf_dataset_schema){
      "layers", PION_NLAYER, CNF_DTYPE_F64, pion_layer_cols, pion_gev6,
      "layer energies (GeV) on the EM scale: LAr energy / EM sampling fraction, with sampling "
      "fluctuations; layers 0-2 Pb/LAr ECAL, 3-5 W/LAr HCAL"};
  desc->datasets[DS_VISIBLE] = (cnf_dataset_schema){
      "truth/visible", PION_NLAYER, CNF_DTYPE_F32, pion_layer_cols, pion_gev6,
      "EM-scale visible energy per layer before sampling fluctuations (GeV)"};
  desc->datasets[DS_DEPOSITED] = (cnf_dataset_schema){
      "truth/deposited", PION_NLAYER, CNF_DTYPE_F32, pion_layer_cols, pion_gev6,
      "true energy deposited per layer incl. invisible hadronic energy (GeV); sum + e_leak = E_inc"};
  desc->datasets[DS_EVENT] = (cnf_dataset_schema){
      "truth/event", 6, CNF_DTYPE_F32, pion_event_cols, pion_event_units,
      "first-interaction depth from the ECAL face, its layer (6: punch-through), EM fraction, "
      "energy at the interaction, longitudinal leakage, hadronic fluctuation"};
  *state = NULL;
  pion_state *st = cnf_calloc(1, sizeof *st);
  if (!st)
    return CNF_ERR_NOMEM;
  pion_detector_init(o, &st->det);
  st->out_scale = strcmp(o->scale, "pion") == 0 ? 1.0 / o->scale_factor : 1.0;
  st->gsl = cnf_rng_gsl_alloc((uint64_t)o->seed, 0, 1);
  if (!st->gsl) {
    free(st);
    return CNF_ERR_NOMEM;
  }
  *state = st;
  return 0;
}

static int pion_event(const void *opts, void *state, uint64_t index, double *const *rows) {
  const pion_opts *o = opts;
  pion_state *st = state;
  cnf_rng r;
  cnf_rng_init(&r, (uint64_t)o->seed, index, 0);
  cnf_rng_gsl_reset(st->gsl, (uint64_t)o->seed, index, 1);
  pion_event_out ev;
  pion_simulate(o, &st->det, &r, st->gsl, pion_sample_energy(o, &r), &ev);
  rows[DS_EINC][0] = ev.e_inc;
  for (int k = 0; k < PION_NLAYER; k++) {
    rows[DS_LAYERS][k] = ev.layers[k] * st->out_scale;
    rows[DS_VISIBLE][k] = ev.visible[k];
    rows[DS_DEPOSITED][k] = ev.deposited[k];
  }
  double *t = rows[DS_EVENT];
  t[0] = ev.z0;
  t[1] = ev.layer0;
  t[2] = ev.f_em;
  t[3] = ev.e_avail;
  t[4] = ev.e_leak;
  t[5] = ev.delta_h;
  return 0;
}

/* Attach a 1-D double attribute to an open object. */
static int pion_write_attr(hid_t obj, const char *name, int n, const double *v) {
  hsize_t dim = (hsize_t)n;
  hid_t space = H5Screate_simple(1, &dim, NULL);
  if (space < 0)
    return cnf_error_set(CNF_ERR_IO, "calo-pion: cannot create the dataspace of attribute %s", name);
  hid_t attr = H5Acreate2(obj, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_DOUBLE, v);
  if (attr >= 0)
    H5Aclose(attr);
  H5Sclose(space);
  if (rc < 0)
    return cnf_error_set(CNF_ERR_IO, "calo-pion: cannot write attribute layers/%s", name);
  return 0;
}

/* The derived detector constants, so a file says how to undo the EM-scale calibration. */
static int pion_finalize(const void *opts, void *state, int64_t file, void *mpi_comm) {
  const pion_state *st = state;
  hid_t ds = H5Dopen2((hid_t)file, "layers", H5P_DEFAULT);
  if (ds < 0)
    return cnf_error_set(CNF_ERR_IO, "calo-pion: cannot open dataset 'layers' to annotate it");
  int rc = pion_write_attr(ds, "sampling_fraction", PION_NLAYER, st->det.s_em);
  if (rc == 0)
    rc = pion_write_attr(ds, "layer_z_mm", PION_NLAYER + 1, st->det.z);
  H5Dclose(ds);
  return rc;
}

static void pion_teardown(void *state) {
  pion_state *st = state;
  if (!st)
    return;
  cnf_rng_gsl_free(st->gsl);
  free(st);
}

const cnf_generator cnf_gen_calo_pion = {
    .name = "calo-pion",
    .help = "Single pi+ in an ATLAS-like 3-layer Pb/LAr ECAL + 3-layer W/LAr HCAL "
            "(physics-spec.md section 3): incident energy (uniform, log-uniform or fixed) and six "
            "layer energies on the EM scale (GeV), plus truth (visible and deposited energy per "
            "layer, first-interaction depth, EM fraction, leakage).",
    .opts_size = sizeof(pion_opts),
    .n_options = (int)(sizeof pion_options / sizeof pion_options[0]),
    .options = pion_options,
    .opts_default = pion_opts_default,
    .setup = pion_setup,
    .event = pion_event,
    .finalize = pion_finalize,
    .teardown = pion_teardown,
};
