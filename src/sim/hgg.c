/* Generator G1 "hgg": H -> gamma gamma truth events at 13 TeV (ggF or ttH) with the parametric
 * photon smearing of arXiv:2303.10148 (physics-spec.md section 1), four smearing scenarios side
 * by side for the same truth event.  Truth comes from the built-in generator or from the user's
 * LHEF / HDF5 file.  Physics in hgg_physics.c, file input in hgg_input.c.
 *
 * Output rows (row i = event i, a pure function of (seed, i)):
 *   truth        f64 (N, 10) et1, eta1, phi1, et2, eta2, phi2, mu, m_gg, pt_H, y_H
 *   sigma        f32 (N, 6)  per-photon resolutions sigma_et1, sigma_eta1, sigma_phi1, ...2
 *   fold         i32 (N, 1)  0..9 from a uniform of the event's stream (0 test, 1 val, 2-9 train)
 *   attempts     i32 (N, 1)  internal truth: attempts until the selection passed
 *   input_index  i32 (N, 1)  file truth (instead of attempts): index of the input event
 *   <scen>/reco           f32 (N, 6) et1, eta1, phi1, et2, eta2, phi2 after smearing
 *   <scen>/target         f32 (N, 6) reco - truth in the CNF order d_et1, d_phi1, d_eta1, d_et2,
 *                                    d_phi2, d_eta2 (flows-reference 1.2)
 *   <scen>/target_scaled  f32 (N, 6) target / (20 GeV, 0.01, 0.005): the [-1, 1] space
 * for scen = gauss, corr_a (rho_a), corr_b (rho_b), asym.  No event is dropped here; finalize
 * records on each scenario group how many events the paper's cuts (|dET| > 20 GeV, any
 * |scaled| >= 1) would reject.  A reco ET below 0 is kept as it is (reco = truth + residual):
 * it needs dET < -ET < -20 GeV, so those cuts always remove it.
 * The "fold" column is the authors' 80/10/10 split; the writer's root attribute split_ranges
 * (contiguous rows) is an independent, alternative split. */
#include "hgg.h"

#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define HGG_DEFAULT_EVENTS 7000000

const char *const hgg_scenario_names[HGG_N_SC] = {"gauss", "corr_a", "corr_b", "asym"};

#define OPT(name, type, field, help) {name, type, offsetof(hgg_opts, field), help}
static const cnf_option hgg_options[] = {
    OPT("hgg_seed", CNF_OPT_INT64, seed, "random seed (set by the writer's -seed)"),
    OPT("hgg_n_events", CNF_OPT_INT64, n_events,
        "selected events (0: 7000000, or every selected input event with a truth file)"),
    OPT("hgg_process", CNF_OPT_STRING, process, "ggF or ttH (ttH matches the public data file); default ggF"),
    OPT("hgg_sqrt_s", CNF_OPT_REAL, sqrt_s, "collision energy in GeV (13000)"),
    OPT("hgg_mass", CNF_OPT_REAL, mass, "Higgs mass in GeV (125)"),
    OPT("hgg_width", CNF_OPT_REAL, width, "Higgs width in GeV (0.00407; 0 = fixed mass)"),
    OPT("hgg_mass_window", CNF_OPT_REAL, mass_window, "Breit-Wigner truncation |m - m_H| in GeV (0.01)"),
    OPT("hgg_fixed_mass", CNF_OPT_BOOL, fixed_mass, "m = m_H exactly (0)"),
    OPT("hgg_pt_a", CNF_OPT_REAL, pt_a, "pT spectrum pT^a/(1+(pT/b)^c)^d: a (0 = process default: 1 ggF, 0.9676 ttH)"),
    OPT("hgg_pt_b", CNF_OPT_REAL, pt_b, "pT spectrum b in GeV (0 = process default: 180.91 ggF, 167.04 ttH)"),
    OPT("hgg_pt_c", CNF_OPT_REAL, pt_c, "pT spectrum c (0 = process default: 0.7732 ggF, 1.955 ttH)"),
    OPT("hgg_pt_d", CNF_OPT_REAL, pt_d, "pT spectrum d (0 = process default: 11.954 ggF, 3.0666 ttH)"),
    OPT("hgg_pt_max", CNF_OPT_REAL, pt_max, "upper end of the pT inverse-CDF grid in GeV (2000)"),
    OPT("hgg_pt_step", CNF_OPT_REAL, pt_step, "pT inverse-CDF grid step in GeV (0.25)"),
    OPT("hgg_y_n", CNF_OPT_REAL, y_n, "[CHOSEN] rapidity shape exponent n (0 = process default: 9.579 ggF, 3.052 ttH)"),
    OPT("hgg_y_shat", CNF_OPT_REAL, y_shat, "[CHOSEN] rapidity shape sqrt(s_hat_eff) in GeV (0 = process default: 125 ggF, 570 ttH)"),
    OPT("hgg_et_min", CNF_OPT_REAL, et_min, "truth selection: both photons ET > et_min GeV (20)"),
    OPT("hgg_eta_max", CNF_OPT_REAL, eta_max, "truth selection: both photons |eta| < eta_max (2.5)"),
    OPT("hgg_mu_min", CNF_OPT_REAL, mu_min, "pile-up mu ~ U[mu_min, mu_max] (0)"),
    OPT("hgg_mu_max", CNF_OPT_REAL, mu_max, "pile-up upper end (40)"),
    OPT("hgg_sigma_et", CNF_OPT_REAL, sigma_et, "Table 2 ET resolution constant in GeV (1.5)"),
    OPT("hgg_sigma_eta", CNF_OPT_REAL, sigma_eta, "Table 2 eta resolution constant (0.0005)"),
    OPT("hgg_sigma_phi", CNF_OPT_REAL, sigma_phi, "Table 2 phi resolution constant in rad (0.0003)"),
    OPT("hgg_et_scale", CNF_OPT_REAL, et_scale, "[CHOSEN] Table 2 variable x_ET = ET / et_scale, in GeV (100)"),
    OPT("hgg_mu_scale", CNF_OPT_REAL, mu_scale, "[CHOSEN] Table 2 variable x_mu = mu / mu_scale (10)"),
    OPT("hgg_x_et_max", CNF_OPT_REAL, x_et_max, "clamp of x_ET (5)"),
    OPT("hgg_x_mu_max", CNF_OPT_REAL, x_mu_max, "clamp of x_mu (6)"),
    OPT("hgg_eta_signed", CNF_OPT_BOOL, eta_signed, "[CHOSEN] Table 2 variable x_eta = eta instead of |eta| (0)"),
    OPT("hgg_rho_a", CNF_OPT_REAL, rho_a, "[CHOSEN] correlation of scenario corr_a (0.5)"),
    OPT("hgg_rho_b", CNF_OPT_REAL, rho_b, "correlation of scenario corr_b (1.0)"),
    OPT("hgg_corr_vars", CNF_OPT_STRING, corr_vars, "correlate 'et' only or 'all' of ET, eta, phi (et)"),
    OPT("hgg_asym_frac", CNF_OPT_REAL, asym_frac, "asym scenario: tail fraction (0.16)"),
    OPT("hgg_asym_mean", CNF_OPT_REAL, asym_mean, "asym scenario: tail mean in units of sigma (-3)"),
    OPT("hgg_asym_width", CNF_OPT_REAL, asym_width, "asym scenario: tail s.d. in units of sigma (3)"),
    OPT("hgg_asym_vars", CNF_OPT_STRING, asym_vars, "asym tail on 'et' only or 'all' of ET, eta, phi (et)"),
    OPT("hgg_scale_et", CNF_OPT_REAL, scale_et, "target scaling of dET in GeV (20)"),
    OPT("hgg_scale_phi", CNF_OPT_REAL, scale_phi, "target scaling of dphi in rad (0.01)"),
    OPT("hgg_scale_eta", CNF_OPT_REAL, scale_eta, "target scaling of deta (0.005)"),
    OPT("hgg_truth_lhef", CNF_OPT_STRING, truth_lhef, "truth from a Les Houches Event file (two photons, or a Higgs decayed here); default none"),
    OPT("hgg_truth_h5", CNF_OPT_STRING, truth_h5, "truth from an HDF5 table with columns pt1|et1, eta1, phi1, pt2|et2, eta2, phi2[, mu]; default none"),
    OPT("hgg_truth_h5_dataset", CNF_OPT_STRING, truth_h5_dataset, "dataset (2-D) or group (1-D columns) in the HDF5 truth file (default: auto)"),
};
#undef OPT

void hgg_opts_default(hgg_opts *o) {
  memset(o, 0, sizeof *o);
  o->seed = 1;
  strcpy(o->process, "ggF");
  o->sqrt_s = 13000.0;
  o->mass = 125.0;
  o->width = 4.07e-3;
  o->mass_window = 0.010;
  o->pt_max = 2000.0;
  o->pt_step = 0.25;
  o->et_min = 20.0;
  o->eta_max = 2.5;
  o->mu_min = 0.0;
  o->mu_max = 40.0;
  o->sigma_et = 1.5;
  o->sigma_eta = 5e-4;
  o->sigma_phi = 3e-4;
  o->et_scale = 100.0;
  o->mu_scale = 10.0;
  o->x_et_max = 5.0;
  o->x_mu_max = 6.0;
  o->rho_a = 0.5;
  o->rho_b = 1.0;
  strcpy(o->corr_vars, "et");
  o->asym_frac = 0.16;
  o->asym_mean = -3.0;
  o->asym_width = 3.0;
  strcpy(o->asym_vars, "et");
  o->scale_et = 20.0;
  o->scale_phi = 0.01;
  o->scale_eta = 0.005;
}

static void opts_default(void *opts) { hgg_opts_default(opts); }

/* ---- schema ----------------------------------------------------------------------------- */

enum { DS_TRUTH, DS_SIGMA, DS_FOLD, DS_INDEX, DS_SCEN0, N_DS = DS_SCEN0 + 3 * HGG_N_SC };
enum { SC_RECO, SC_TARGET, SC_SCALED };

static const char *const truth_cols[] = {"et1", "eta1", "phi1", "et2", "eta2",
                                         "phi2", "mu", "m_gg", "pt_H", "y_H"};
static const char *const truth_units[] = {"GeV", "", "rad", "GeV", "", "rad", "", "GeV", "GeV", ""};
static const char *const sigma_cols[] = {"sigma_et1", "sigma_eta1", "sigma_phi1",
                                         "sigma_et2", "sigma_eta2", "sigma_phi2"};
static const char *const photon_units[] = {"GeV", "", "rad", "GeV", "", "rad"};
static const char *const reco_cols[] = {"et1", "eta1", "phi1", "et2", "eta2", "phi2"};
static const char *const target_cols[] = {"d_et1", "d_phi1", "d_eta1", "d_et2", "d_phi2", "d_eta2"};
static const char *const target_units[] = {"GeV", "rad", "", "GeV", "rad", ""};
static const char *const fold_cols[] = {"fold"};
static const char *const attempts_cols[] = {"attempts"};
static const char *const index_cols[] = {"input_index"};

static const char *const scen_paths[HGG_N_SC][3] = {
    {"gauss/reco", "gauss/target", "gauss/target_scaled"},
    {"corr_a/reco", "corr_a/target", "corr_a/target_scaled"},
    {"corr_b/reco", "corr_b/target", "corr_b/target_scaled"},
    {"asym/reco", "asym/target", "asym/target_scaled"},
};
static const char *const scen_text[HGG_N_SC] = {
    "independent Gaussian smearing (Delta ~ N(0,1) for every variable)",
    "correlated smearing, Delta2' = rho Delta1 + sqrt(1 - rho^2) Delta2 (rho: hgg_rho_a, group attribute rho)",
    "correlated smearing, Delta2' = rho Delta1 + sqrt(1 - rho^2) Delta2 (rho: hgg_rho_b, group attribute rho)",
    "asymmetric smearing, Delta ~ (1 - f) N(0,1) + f N(mean, width) in units of sigma (hgg_asym_*)",
};

static void schema_fill(cnf_sim_desc *desc, int file_truth) {
  cnf_dataset_schema *d = desc->datasets;
  d[DS_TRUTH] = (cnf_dataset_schema){"truth", 10, CNF_DTYPE_F64, truth_cols, truth_units,
                                     "truth photons (ordered by ET), pile-up mu, diphoton mass, Higgs pT and rapidity"};
  d[DS_SIGMA] = (cnf_dataset_schema){"sigma", 6, CNF_DTYPE_F32, sigma_cols, photon_units,
                                     "per-photon resolutions of the Table-2 model (absolute)"};
  d[DS_FOLD] = (cnf_dataset_schema){"fold", 1, CNF_DTYPE_I32, fold_cols, NULL,
                                    "fold 0..9 from a uniform of the event's stream: 0 test, 1 validation, 2-9 train"};
  if (file_truth)
    d[DS_INDEX] = (cnf_dataset_schema){"input_index", 1, CNF_DTYPE_I32, index_cols, NULL,
                                       "index of the input truth event (events failing the selection are skipped)"};
  else
    d[DS_INDEX] = (cnf_dataset_schema){"attempts", 1, CNF_DTYPE_I32, attempts_cols, NULL,
                                       "truth attempts until both photons passed the selection"};
  for (int s = 0; s < HGG_N_SC; s++) {
    d[DS_SCEN0 + 3 * s + SC_RECO] = (cnf_dataset_schema){
        scen_paths[s][SC_RECO], 6, CNF_DTYPE_F32, reco_cols, photon_units, scen_text[s]};
    d[DS_SCEN0 + 3 * s + SC_TARGET] = (cnf_dataset_schema){
        scen_paths[s][SC_TARGET], 6, CNF_DTYPE_F32, target_cols, target_units,
        "residuals reco - truth in the CNF order (dET1, dphi1, deta1, dET2, dphi2, deta2)"};
    d[DS_SCEN0 + 3 * s + SC_SCALED] = (cnf_dataset_schema){
        scen_paths[s][SC_SCALED], 6, CNF_DTYPE_F32, target_cols, NULL,
        "target divided by (hgg_scale_et, hgg_scale_phi, hgg_scale_eta) = (20 GeV, 0.01, 0.005)"};
  }
  desc->n_datasets = N_DS;
}

/* ---- state ------------------------------------------------------------------------------ */

/* Event counters summed over ranks in finalize (order = the MPI_Allreduce buffer). */
typedef struct hgg_counts {
  uint64_t events, attempts;
  uint64_t rejected[HGG_N_SC];      /* any |scaled target| >= 1 */
  uint64_t rejected_det[HGG_N_SC];  /* |dET| > scale_et for either photon */
  uint64_t rejected_dim[HGG_N_SC][6];
} hgg_counts;

typedef struct hgg_state {
  hgg_opts o;
  hgg_physics ph;
  hgg_smear_cfg sm;
  int file_truth;
  hgg_input in;
  uint64_t n_events, first, count;
  hgg_counts counts;
} hgg_state;

static void teardown(void *state) {
  hgg_state *st = state;
  if (!st)
    return;
  hgg_physics_free(&st->ph);
  hgg_input_free(&st->in);
  free(st);
}

static int validate(const hgg_opts *o) {
  if (!(o->mu_min >= 0.0 && o->mu_max >= o->mu_min && isfinite(o->mu_max)))
    return cnf_error_set(CNF_ERR_ARG, "hgg: pile-up range needs 0 <= mu_min <= mu_max, got [%g, %g]",
                         o->mu_min, o->mu_max);
  if (!(o->et_min >= 0.0 && o->eta_max > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: selection needs et_min >= 0 GeV and eta_max > 0 (got %g, %g)",
                         o->et_min, o->eta_max);
  if (!(o->sigma_et > 0.0 && o->sigma_eta > 0.0 && o->sigma_phi > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: Table 2 resolution constants must be > 0");
  if (!(o->et_scale > 0.0 && o->mu_scale > 0.0 && o->x_et_max > 0.0 && o->x_mu_max > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: Table 2 variable scales and clamps must be > 0");
  if (!(o->scale_et > 0.0 && o->scale_phi > 0.0 && o->scale_eta > 0.0))
    return cnf_error_set(CNF_ERR_ARG, "hgg: target scaling constants must be > 0");
  if (o->n_events < 0)
    return cnf_error_set(CNF_ERR_ARG, "hgg: -hgg_n_events must be >= 0, got %lld",
                         (long long)o->n_events);
  if (o->truth_lhef[0] && o->truth_h5[0])
    return cnf_error_set(CNF_ERR_ARG, "hgg: give -hgg_truth_lhef or -hgg_truth_h5, not both");
  return 0;
}

static int setup_file_truth(hgg_state *st, uint64_t first, uint64_t count) {
  const hgg_opts *o = &st->o;
  const char *path = o->truth_lhef[0] ? o->truth_lhef : o->truth_h5;
  if (o->truth_lhef[0])
    CNF_CALL(hgg_input_read_lhef(o, first, count, &st->in));
  else
    CNF_CALL(hgg_input_read_h5(o, first, count, &st->in));
  if (st->in.n_selected == 0)
    return cnf_error_set(CNF_ERR_ARG, "hgg: none of the %llu events of '%s' passes the selection",
                         (unsigned long long)st->in.n_read, path);
  st->n_events = o->n_events > 0 ? (uint64_t)o->n_events : st->in.n_selected;
  if (st->n_events > st->in.n_selected)
    return cnf_error_set(CNF_ERR_ARG, "hgg: %llu events requested but only %llu of the %llu events of '%s' pass the selection",
                         (unsigned long long)st->n_events, (unsigned long long)st->in.n_selected,
                         (unsigned long long)st->in.n_read, path);
  if (count > 0 && first + count > st->n_events)
    return cnf_error_set(CNF_ERR_ARG, "hgg: block [%llu, %llu) beyond the %llu events",
                         (unsigned long long)first, (unsigned long long)(first + count),
                         (unsigned long long)st->n_events);
  return 0;
}

static int setup(const void *opts, uint64_t first, uint64_t count, cnf_sim_desc *desc,
                 void **state) {
  *state = NULL;
  hgg_state *st = cnf_calloc(1, sizeof *st);
  if (!st)
    return CNF_ERR_NOMEM;
  st->o = *(const hgg_opts *)opts;
  st->first = first;
  st->count = count;
  st->file_truth = st->o.truth_lhef[0] || st->o.truth_h5[0];
  int rc = validate(&st->o);
  if (rc == 0)
    rc = hgg_smear_init(&st->sm, &st->o);
  if (rc == 0)
    rc = hgg_physics_init(&st->ph, &st->o);
  if (rc == 0 && st->file_truth)
    rc = setup_file_truth(st, first, count);
  else if (rc == 0)
    st->n_events = st->o.n_events > 0 ? (uint64_t)st->o.n_events : HGG_DEFAULT_EVENTS;
  if (rc < 0) {
    teardown(st);
    return rc;
  }
  memset(desc, 0, sizeof *desc);
  schema_fill(desc, st->file_truth);
  desc->n_events = st->n_events;
  *state = st;
  return 0;
}

/* ---- event ------------------------------------------------------------------------------ */

static int event(const void *opts, void *state, uint64_t index, double *const *rows) {
  hgg_state *st = state;
  const hgg_opts *o = &st->o;
  hgg_truth t;
  double mu_in = NAN;
  double index_col; /* attempts (internal truth) or the input event index (file truth) */
  if (st->file_truth) {
    if (index < st->first || index - st->first >= st->in.n_kept)
      return cnf_error_set(CNF_ERR_ARG, "hgg: event %llu outside the block [%llu, %llu) given to setup",
                           (unsigned long long)index, (unsigned long long)st->first,
                           (unsigned long long)(st->first + st->in.n_kept));
    uint64_t k = index - st->first;
    t.g[0] = st->in.g[2 * k];
    t.g[1] = st->in.g[2 * k + 1];
    mu_in = st->in.mu[k];
    index_col = (double)st->in.source[k];
    hgg_diphoton(&t.g[0], &t.g[1], &t.m_h, &t.pt_h, &t.y_h);
  } else {
    CNF_CALL(hgg_truth_generate(&st->ph, o, index, &t));
    index_col = t.attempts;
  }

  /* post-selection draws: fixed layout (spec of hgg.h) whatever the mode and options */
  cnf_rng r;
  cnf_rng_init(&r, (uint64_t)o->seed, index, HGG_SUB_SMEAR);
  double u_mu = cnf_rng_uniform(&r), u_fold = cnf_rng_uniform(&r);
  double z[2][3], u[2][3];
  for (int p = 0; p < 2; p++)
    for (int v = 0; v < 3; v++)
      z[p][v] = cnf_rng_normal(&r);
  for (int p = 0; p < 2; p++)
    for (int v = 0; v < 3; v++)
      u[p][v] = cnf_rng_uniform(&r);
  double mu = isfinite(mu_in) ? mu_in : o->mu_min + (o->mu_max - o->mu_min) * u_mu;
  int fold = (int)(10.0 * u_fold);

  double sigma[2][3];
  for (int p = 0; p < 2; p++)
    hgg_resolution(o, t.g[p].et, t.g[p].eta, mu, sigma[p]);
  double delta[HGG_N_SC][2][3];
  hgg_scenario_deltas(&st->sm, z, u, delta);

  double m_gg, pt_gg, y_gg;
  hgg_diphoton(&t.g[0], &t.g[1], &m_gg, &pt_gg, &y_gg);
  double *tr = rows[DS_TRUTH];
  for (int p = 0; p < 2; p++) {
    tr[3 * p] = t.g[p].et;
    tr[3 * p + 1] = t.g[p].eta;
    tr[3 * p + 2] = t.g[p].phi;
    for (int v = 0; v < 3; v++)
      rows[DS_SIGMA][3 * p + v] = sigma[p][v];
  }
  tr[6] = mu;
  tr[7] = m_gg;
  tr[8] = t.pt_h;
  tr[9] = t.y_h;
  rows[DS_FOLD][0] = fold;
  rows[DS_INDEX][0] = index_col;

  const double scale[3] = {o->scale_et, o->scale_phi, o->scale_eta};
  hgg_counts *c = &st->counts;
  c->events++;
  c->attempts += st->file_truth ? 1 : (uint64_t)t.attempts;
  for (int s = 0; s < HGG_N_SC; s++) {
    double *reco = rows[DS_SCEN0 + 3 * s + SC_RECO];
    double *target = rows[DS_SCEN0 + 3 * s + SC_TARGET];
    double *scaled = rows[DS_SCEN0 + 3 * s + SC_SCALED];
    int rejected = 0, det = 0;
    for (int p = 0; p < 2; p++) {
      double d_et = sigma[p][HGG_ET] * delta[s][p][HGG_ET];
      double d_eta = sigma[p][HGG_ETA] * delta[s][p][HGG_ETA];
      double d_phi = sigma[p][HGG_PHI] * delta[s][p][HGG_PHI];
      reco[3 * p] = t.g[p].et + d_et;
      reco[3 * p + 1] = t.g[p].eta + d_eta;
      reco[3 * p + 2] = hgg_wrap_phi(t.g[p].phi + d_phi);
      const double res[3] = {d_et, d_phi, d_eta}; /* CNF order (ET, phi, eta) */
      for (int j = 0; j < 3; j++) {
        target[3 * p + j] = res[j];
        scaled[3 * p + j] = res[j] / scale[j];
        if (fabs(scaled[3 * p + j]) >= 1.0) {
          rejected = 1;
          c->rejected_dim[s][3 * p + j]++;
        }
      }
      det |= fabs(d_et) > o->scale_et;
    }
    c->rejected[s] += (uint64_t)rejected;
    c->rejected_det[s] += (uint64_t)det;
  }
  return 0;
}

/* ---- finalize: rejected fractions as group attributes ------------------------------------ */

static int attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int n,
                      const void *values) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t space = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
  hid_t a = space < 0 ? -1 : H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, mtype, values);
  if (a >= 0)
    H5Aclose(a);
  if (space >= 0)
    H5Sclose(space);
  return st < 0 ? cnf_error_set(CNF_ERR_IO, "hgg: cannot write attribute '%s'", name) : 0;
}

static int attr_double(hid_t obj, const char *name, int n, const double *v) {
  return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, v);
}

static int attr_int64(hid_t obj, const char *name, int n, const int64_t *v) {
  return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, n, v);
}

/* Variable-length UTF-8, like the writer's own string attributes. */
static int attr_string(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    if (t >= 0)
      H5Tclose(t);
    return cnf_error_set(CNF_ERR_IO, "hgg: cannot make a string type for attribute '%s'", name);
  }
  int rc = attr_write(obj, name, t, t, 1, &value);
  H5Tclose(t);
  return rc;
}

static int scenario_attrs(hid_t g, const hgg_state *st, const hgg_counts *tot, int s) {
  const hgg_opts *o = &st->o;
  double n = tot->events > 0 ? (double)tot->events : 1.0;
  int64_t rej = (int64_t)tot->rejected[s], det = (int64_t)tot->rejected_det[s], dim[6];
  double frac = (double)tot->rejected[s] / n, frac_det = (double)tot->rejected_det[s] / n;
  for (int j = 0; j < 6; j++)
    dim[j] = (int64_t)tot->rejected_dim[s][j];
  const double scales[3] = {o->scale_et, o->scale_phi, o->scale_eta};
  CNF_CALL(attr_string(g, "scenario", scen_text[s]));
  if (s == HGG_SC_CORR_A || s == HGG_SC_CORR_B)
    CNF_CALL(attr_double(g, "rho", 1, &st->sm.rho[s - HGG_SC_CORR_A]));
  if (s == HGG_SC_CORR_A || s == HGG_SC_CORR_B)
    CNF_CALL(attr_string(g, "vars", o->corr_vars));
  if (s == HGG_SC_ASYM) {
    const double tail[3] = {o->asym_frac, o->asym_mean, o->asym_width};
    CNF_CALL(attr_double(g, "asym_frac_mean_width", 3, tail));
    CNF_CALL(attr_string(g, "vars", o->asym_vars));
  }
  CNF_CALL(attr_double(g, "target_scale", 3, scales));
  CNF_CALL(attr_int64(g, "n_rejected", 1, &rej));
  CNF_CALL(attr_double(g, "rejected_fraction", 1, &frac));
  CNF_CALL(attr_int64(g, "n_rejected_det_cut", 1, &det));
  CNF_CALL(attr_double(g, "rejected_fraction_det_cut", 1, &frac_det));
  CNF_CALL(attr_int64(g, "n_rejected_by_column", 6, dim));
  cnf_log_info("hgg: %-6s rejected by the CNF cuts: %.5f (%lld of %llu; |dET| > %g GeV: %.5f)",
               hgg_scenario_names[s], frac, (long long)rej, (unsigned long long)tot->events,
               o->scale_et, frac_det);
  return 0;
}

static int finalize(const void *opts, void *state, int64_t file, void *mpi_comm) {
  hgg_state *st = state;
  MPI_Comm comm = *(MPI_Comm *)mpi_comm;
  hgg_counts tot;
  if (MPI_Allreduce(&st->counts, &tot, (int)(sizeof tot / sizeof(uint64_t)), MPI_UINT64_T,
                    MPI_SUM, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "hgg: MPI_Allreduce of the rejection counts failed");
  hid_t f = (hid_t)file;
  for (int s = 0; s < HGG_N_SC; s++) {
    hid_t g = H5Gopen2(f, hgg_scenario_names[s], H5P_DEFAULT);
    if (g < 0)
      return cnf_error_set(CNF_ERR_IO, "hgg: cannot open group '%s'", hgg_scenario_names[s]);
    int rc = scenario_attrs(g, st, &tot, s);
    H5Gclose(g);
    CNF_CALL(rc);
  }
  hid_t d = H5Dopen2(f, "truth", H5P_DEFAULT);
  if (d < 0)
    return cnf_error_set(CNF_ERR_IO, "hgg: cannot open dataset 'truth'");
  int rc = attr_string(d, "process", st->file_truth ? "file" : st->o.process);
  if (rc == 0 && st->file_truth) {
    int64_t nin[2] = {(int64_t)st->in.n_read, (int64_t)st->in.n_selected};
    rc = attr_string(d, "truth_file", st->o.truth_lhef[0] ? st->o.truth_lhef : st->o.truth_h5);
    if (rc == 0)
      rc = attr_int64(d, "n_input_read_selected", 2, nin);
  } else if (rc == 0) {
    double acc = tot.attempts > 0 ? (double)tot.events / (double)tot.attempts : 0.0;
    int64_t att = (int64_t)tot.attempts;
    rc = attr_int64(d, "n_attempts", 1, &att);
    if (rc == 0)
      rc = attr_double(d, "acceptance", 1, &acc);
    cnf_log_info("hgg: %s truth acceptance %.5f (%llu events from %llu attempts)", st->o.process,
                 acc, (unsigned long long)tot.events, (unsigned long long)tot.attempts);
  }
  H5Dclose(d);
  return rc;
}

const cnf_generator cnf_gen_hgg = {
    .name = "hgg",
    .help = "H -> gamma gamma truth at 13 TeV (ggF or ttH; or from an LHEF / HDF5 file) with the "
            "Table-2 photon smearing of arXiv:2303.10148 in four scenarios side by side (gauss, "
            "corr_a, corr_b, asym); truth selection ET > 20 GeV, |eta| < 2.5, pile-up mu ~ U[0,40].",
    .opts_size = sizeof(hgg_opts),
    .n_options = (int)(sizeof hgg_options / sizeof hgg_options[0]),
    .options = hgg_options,
    .opts_default = opts_default,
    .setup = setup,
    .event = event,
    .finalize = finalize,
    .teardown = teardown,
};
