/* Generator G1 (hgg): each stage against closed forms or the sanity numbers of
 * physics-spec.md 1.7 / 1.10 (statistical tolerances), the selection, the scenarios, event-level
 * rank independence, truth from LHEF and HDF5 files, bad options and the finalize counts. */
#include "testutil.h"

#include "../src/sim/hgg.h"

#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers: run the generator through its public table --------------------------------- */

typedef struct hrow {
  double truth[10], sigma[6], fold, index;
  double sc[HGG_N_SC][3][6]; /* [scenario][reco, target, target_scaled][col] */
} hrow;

typedef struct hrun {
  cnf_sim_desc desc;
  void *state;
  double *ptr[CNF_MAX_DATASETS];
  hrow row;
} hrun;

/* Bind every dataset of the schema to a field of r->row by path (so the schema is checked). */
static void bind_rows(hrun *r) {
  static const char *const kinds[3] = {"reco", "target", "target_scaled"};
  static const int widths[3] = {6, 6, 6};
  assert_int_equal(r->desc.n_datasets, 4 + 3 * HGG_N_SC);
  for (int k = 0; k < r->desc.n_datasets; k++) {
    const cnf_dataset_schema *d = &r->desc.datasets[k];
    r->ptr[k] = NULL;
    if (strcmp(d->path, "truth") == 0 && d->ncols == 10)
      r->ptr[k] = r->row.truth;
    else if (strcmp(d->path, "sigma") == 0 && d->ncols == 6)
      r->ptr[k] = r->row.sigma;
    else if (strcmp(d->path, "fold") == 0 && d->ncols == 1)
      r->ptr[k] = &r->row.fold;
    else if ((strcmp(d->path, "attempts") == 0 || strcmp(d->path, "input_index") == 0) &&
             d->ncols == 1)
      r->ptr[k] = &r->row.index;
    for (int s = 0; s < HGG_N_SC; s++)
      for (int j = 0; j < 3; j++) {
        char path[64];
        snprintf(path, sizeof path, "%s/%s", hgg_scenario_names[s], kinds[j]);
        if (strcmp(d->path, path) == 0 && d->ncols == widths[j])
          r->ptr[k] = r->row.sc[s][j];
      }
    if (!r->ptr[k])
      fail_msg("unexpected dataset %s (%d columns)", d->path, d->ncols);
  }
}

static void run_setup(hrun *r, const hgg_opts *o, uint64_t first, uint64_t count) {
  int rc = cnf_gen_hgg.setup(o, first, count, &r->desc, &r->state);
  if (rc < 0)
    fail_msg("setup failed: %s", cnf_error_message());
  bind_rows(r);
}

static void run_event(hrun *r, const hgg_opts *o, uint64_t index) {
  int rc = cnf_gen_hgg.event(o, r->state, index, r->ptr);
  if (rc < 0)
    fail_msg("event %llu failed: %s", (unsigned long long)index, cnf_error_message());
}

static void run_free(hrun *r) { cnf_gen_hgg.teardown(r->state); }

static hgg_opts default_opts(void) {
  hgg_opts o;
  cnf_gen_hgg.opts_default(&o);
  return o;
}

/* ---- 1.7: resolution test vectors ---------------------------------------------------------- */

static void test_resolution_vectors(void **unused) {
  static const double v[8][6] = {
      {20, 0.0, 0, 1.86272, 1.60595e-3, 8.80453e-4},   {50, 0.0, 20, 1.85068, 1.66328e-3, 8.85186e-4},
      {50, 1.0, 20, 2.42961, 1.20721e-3, 1.00036e-3},  {50, 2.4, 20, 2.16008, 8.78660e-4, 9.24131e-4},
      {100, 0.5, 40, 2.18437, 1.36829e-3, 9.86625e-4}, {200, 1.5, 10, 2.21132, 9.04041e-4, 7.55355e-4},
      {300, 2.5, 40, 2.27956, 7.39045e-4, 6.89047e-4}, {40, 1.2, 0, 2.34516, 1.07467e-3, 9.64925e-4}};
  hgg_opts o = default_opts();
  for (int i = 0; i < 8; i++) {
    double s[3], sneg[3];
    hgg_resolution(&o, v[i][0], v[i][1], v[i][2], s);
    hgg_resolution(&o, v[i][0], -v[i][1], v[i][2], sneg);
    for (int k = 0; k < 3; k++) {
      assert_close(s[k], v[i][3 + k], 1e-4, 0);
      assert_close(sneg[k], s[k], 1e-15, 0); /* |eta| reading */
    }
  }
}

/* ---- 1.3: pT spectrum -------------------------------------------------------------------- */

/* Mean of the spectrum from an independent fine Simpson integration of the formula. */
static double spectrum_mean(const hgg_physics *ph, double lo, double hi) {
  const int n = 400000; /* even */
  double h = (hi - lo) / n, s0 = 0, s1 = 0;
  for (int i = 0; i <= n; i++) {
    double x = lo + i * h, w = (i == 0 || i == n) ? 1 : (i % 2 ? 4 : 2);
    double f = hgg_pt_density(ph, x);
    s0 += w * f;
    s1 += w * f * x;
  }
  return s1 / s0;
}

static void check_pt(const char *process, double mean_spec, double p10, double p200) {
  hgg_opts o = default_opts();
  strcpy(o.process, process);
  hgg_physics ph;
  assert_int_equal(hgg_physics_init(&ph, &o), 0);
  cnf_rng r;
  cnf_rng_init(&r, 5, 0, 0);
  const int n = 400000;
  double s = 0, ss = 0;
  int lt5 = 0, lt10 = 0, lt20 = 0, lt30 = 0, gt200 = 0;
  for (int i = 0; i < n; i++) {
    double pt = hgg_sample_pt(&ph.pt, cnf_rng_uniform(&r));
    assert_true(pt >= 0.0 && pt <= 2000.0);
    s += pt;
    ss += pt * pt;
    lt5 += pt < 5, lt10 += pt < 10, lt20 += pt < 20, lt30 += pt < 30, gt200 += pt > 200;
  }
  double mean = s / n, se = sqrt((ss / n - mean * mean) / n);
  assert_close(mean, spectrum_mean(&ph, 0.0, 2000.0), 0, 5 * se + 0.02); /* sampler exact */
  assert_close(mean, mean_spec, 0, 5 * se + 0.05);                        /* spec 1.3 */
  assert_close((double)lt10 / n, p10, 0, 0.003);                          /* spec 1.10 */
  assert_close((double)gt200 / n, p200, 0, 0.003);
  if (strcmp(process, "ggF") == 0) { /* spec 1.3: 5.0 %, 33.7 %, 49.7 % */
    assert_close((double)lt5 / n, 0.050, 0, 0.003);
    assert_close((double)lt20 / n, 0.337, 0, 0.004);
    assert_close((double)lt30 / n, 0.497, 0, 0.004);
  }
  hgg_physics_free(&ph);
}

static void test_pt_spectrum(void **unused) {
  check_pt("ggF", 43.4, 0.144, 0.0130);
  check_pt("ttH", 128.6, 0.008, 0.163);
}

/* ---- 1.4: rapidity ----------------------------------------------------------------------- */

static void check_y(const char *process, double p_fwd, double rms_spec) {
  hgg_opts o = default_opts();
  strcpy(o.process, process);
  hgg_physics ph;
  assert_int_equal(hgg_physics_init(&ph, &o), 0);
  /* exact P(|y| > 2.5) and rms by Simpson integration of w over [0, y_max] */
  const int m = 200000;
  double h = ph.y.y_max / m, w0 = 0, w2 = 0, wf = 0;
  for (int i = 0; i <= m; i++) {
    double y = i * h, c = (i == 0 || i == m) ? 1 : (i % 2 ? 4 : 2), w = hgg_y_weight(&ph.y, y);
    w0 += c * w;
    w2 += c * w * y * y;
    if (y > 2.5)
      wf += c * w;
  }
  double p_exact = wf / w0, rms_exact = sqrt(w2 / w0);
  cnf_rng r;
  cnf_rng_init(&r, 9, 0, 0);
  const int n = 400000;
  double s = 0, ss = 0;
  int fwd = 0;
  for (int i = 0; i < n; i++) {
    double y = hgg_sample_y(&ph.y, &r);
    assert_true(fabs(y) < ph.y.y_max);
    s += y;
    ss += y * y;
    fwd += fabs(y) > 2.5;
  }
  double p = (double)fwd / n;
  assert_close(s / n, 0.0, 0, 5 * rms_exact / sqrt(n));
  assert_close(p, p_exact, 0, 5 * sqrt(p_exact * (1 - p_exact) / n) + 2e-4);
  assert_close(sqrt(ss / n), rms_exact, 0.005, 0);
  assert_close(p, p_fwd, 0, 0.003);           /* spec 1.10 (STXS FWDH target) */
  assert_close(sqrt(ss / n), rms_spec, 0, 0.01); /* spec 1.4 */
  /* w(y)/w(0) at y = 1, 2, 3 (spec 1.4, ggF): 0.90, 0.59, 0.15 */
  if (strcmp(process, "ggF") == 0) {
    double w00 = hgg_y_weight(&ph.y, 0.0);
    assert_close(hgg_y_weight(&ph.y, 1.0) / w00, 0.90, 0, 0.006);
    assert_close(hgg_y_weight(&ph.y, 2.0) / w00, 0.59, 0, 0.006);
    assert_close(hgg_y_weight(&ph.y, 3.0) / w00, 0.15, 0, 0.006);
  }
  hgg_physics_free(&ph);
}

static void test_rapidity(void **unused) {
  check_y("ggF", 0.0815, 1.47);
  check_y("ttH", 0.0138, 1.19);
}

/* ---- 1.4 / 1.5: mass, isotropic decay and boost ------------------------------------------- */

/* Boost p by velocity -beta (into the frame moving with beta), written independently of
 * hgg_decay: the standard Lorentz matrix form. */
static hgg_p4 boost_into(const hgg_p4 *p, const double beta[3]) {
  double b2 = beta[0] * beta[0] + beta[1] * beta[1] + beta[2] * beta[2];
  double g = 1.0 / sqrt(1.0 - b2);
  double bp = beta[0] * p->px + beta[1] * p->py + beta[2] * p->pz;
  double coef = b2 > 0 ? (g - 1.0) * bp / b2 - g * p->e : 0.0;
  return (hgg_p4){p->px + coef * beta[0], p->py + coef * beta[1], p->pz + coef * beta[2],
                  g * (p->e - bp)};
}

static void test_decay_isotropic(void **unused) {
  hgg_opts o = default_opts();
  hgg_physics ph;
  assert_int_equal(hgg_physics_init(&ph, &o), 0);
  cnf_rng r;
  cnf_rng_init(&r, 17, 0, 0);
  const int n = 200000;
  double sc = 0, sc2 = 0, sm = 0, worst = 0, worst_e = 0;
  for (int i = 0; i < n; i++) {
    double pt = hgg_sample_pt(&ph.pt, cnf_rng_uniform(&r));
    double y = hgg_sample_y(&ph.y, &r), phi = M_PI * (2 * cnf_rng_uniform(&r) - 1);
    double m = hgg_sample_mass(&ph, cnf_rng_uniform(&r));
    assert_true(fabs(m - 125.0) < 0.010);
    sm += m;
    hgg_p4 h = hgg_higgs_p4(m, pt, y, phi), g1, g2;
    hgg_decay(&h, m, cnf_rng_uniform(&r), cnf_rng_uniform(&r), &g1, &g2);
    /* four-momentum conservation and the mass recomputed from (ET, eta, phi) */
    assert_close(g1.e + g2.e, h.e, 1e-12, 0);
    assert_close(g1.pz + g2.pz, h.pz, 1e-12, 1e-9);
    hgg_photon a = hgg_photon_from_p4(&g1), b = hgg_photon_from_p4(&g2);
    double mgg, ptgg, ygg;
    hgg_diphoton(&a, &b, &mgg, &ptgg, &ygg);
    worst = fmax(worst, fabs(mgg / m - 1.0));
    assert_close(ptgg, pt, 1e-9, 1e-9);
    assert_close(ygg, y, 0, 1e-9);
    /* back to the Higgs rest frame: E* = m/2 and cos theta* w.r.t. the lab z axis */
    double beta[3] = {h.px / h.e, h.py / h.e, h.pz / h.e};
    hgg_p4 k = boost_into(&g1, beta);
    worst_e = fmax(worst_e, fabs(k.e / (0.5 * m) - 1.0));
    double c = k.pz / sqrt(k.px * k.px + k.py * k.py + k.pz * k.pz);
    sc += c;
    sc2 += c * c;
  }
  assert_true(worst < 1e-9);   /* spec 1.5: m_gg equals m to 1e-9 relative */
  assert_true(worst_e < 1e-9);
  assert_close(sc / n, 0.0, 0, 0.01);          /* spec 1.10 isotropy */
  assert_close(sc2 / n, 1.0 / 3.0, 0, 0.005);
  assert_close(sm / n, 125.0, 0, 0.005);       /* spec 1.4: <m> = 125.00 GeV */
  hgg_physics_free(&ph);
}

/* ---- 1.6 / 1.10: selected truth events ------------------------------------------------- */

static void check_truth(const char *process, double acc, double et1, double et2, double pth) {
  hgg_opts o = default_opts();
  strcpy(o.process, process);
  o.seed = 3;
  o.fixed_mass = 1;
  hrun r;
  const int n = 100000;
  run_setup(&r, &o, 0, n);
  assert_int_equal(r.desc.n_events, 7000000);
  double s1 = 0, s2 = 0, sp = 0, attempts = 0, s1sq = 0;
  int folds[10] = {0};
  for (int i = 0; i < n; i++) {
    run_event(&r, &o, (uint64_t)i);
    const double *t = r.row.truth;
    assert_true(t[0] > 20.0 && t[3] > 20.0 && fabs(t[1]) < 2.5 && fabs(t[4]) < 2.5);
    assert_true(t[0] >= t[3]);
    assert_true(fabs(t[2]) <= M_PI && fabs(t[5]) <= M_PI);
    assert_true(t[6] >= 0.0 && t[6] <= 40.0);
    assert_true(fabs(t[7] - 125.0) < 125.0 * 1e-9); /* --fixed-mass: m_gg = 125 exactly */
    assert_true(r.row.index >= 1);
    assert_true(r.row.fold >= 0 && r.row.fold <= 9);
    folds[(int)r.row.fold]++;
    s1 += t[0];
    s1sq += t[0] * t[0];
    s2 += t[3];
    sp += t[8];
    attempts += r.row.index;
  }
  double se1 = sqrt((s1sq / n - (s1 / n) * (s1 / n)) / n);
  assert_close(n / attempts, acc, 0, 0.005); /* spec 1.10 acceptance */
  assert_close(s1 / n, et1, 0, 5 * se1 + 0.05);
  assert_close(s2 / n, et2, 0, 0.4);
  if (pth > 0)
    assert_close(sp / n, pth, 0, 0.5);
  for (int f = 0; f < 10; f++) /* 10 % per fold */
    assert_close(folds[f] / (double)n, 0.1, 0, 5 * sqrt(0.09 / n));
  run_free(&r);
}

static void test_truth_selection(void **unused) {
  check_truth("ggF", 0.707, 72.4, 47.7, 43.6);
  check_truth("ttH", 0.800, 119.7, 54.4, 130.4);
}

/* The Breit-Wigner option leaves <m_gg> at 125.00 GeV. */
static void test_truth_mass_bw(void **unused) {
  hgg_opts o = default_opts();
  hrun r;
  const int n = 20000;
  run_setup(&r, &o, 0, n);
  double s = 0;
  for (int i = 0; i < n; i++) {
    run_event(&r, &o, (uint64_t)i);
    assert_true(fabs(r.row.truth[7] - 125.0) < 0.010 + 1e-9);
    s += r.row.truth[7];
  }
  assert_close(s / n, 125.0, 0, 0.005);
  run_free(&r);
}

/* ---- 1.8 / 1.10: smearing scenarios ---------------------------------------------------- */

/* Standardised residual Delta of photon p, variable v (HGG_ET, HGG_ETA, HGG_PHI) in scenario s. */
static double row_delta(const hrow *w, int s, int p, int v) {
  static const int target_col[3] = {0, 2, 1}; /* CNF order is (ET, phi, eta) */
  return w->sc[s][1][3 * p + target_col[v]] / w->sigma[3 * p + v];
}

static double reco_mass(const double *reco) {
  hgg_photon a = {reco[0], reco[1], reco[2]}, b = {reco[3], reco[4], reco[5]};
  double m, pt, y;
  hgg_diphoton(&a, &b, &m, &pt, &y);
  return m;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void test_scenarios(void **unused) {
  hgg_opts o = default_opts();
  o.seed = 11;
  const int n = 200000;
  hrun r;
  run_setup(&r, &o, 0, n);
  double s[HGG_N_SC][2][3] = {{{0}}}, ss[HGG_N_SC][2][3] = {{{0}}}, s12[HGG_N_SC] = {0};
  int win_gauss = 0, win_asym = 0;
  double win_s = 0, win_ss = 0;
  double *m_asym = malloc(n * sizeof *m_asym);
  assert_non_null(m_asym);
  const double scale[6] = {20, 0.01, 0.005, 20, 0.01, 0.005};
  for (int i = 0; i < n; i++) {
    run_event(&r, &o, (uint64_t)i);
    const hrow *w = &r.row;
    for (int sc = 0; sc < HGG_N_SC; sc++) {
      const double *reco = w->sc[sc][0], *tg = w->sc[sc][1], *scl = w->sc[sc][2];
      for (int p = 0; p < 2; p++) {
        /* reco = truth + residual; phi wrapped */
        assert_close(reco[3 * p], w->truth[3 * p] + tg[3 * p], 1e-14, 1e-12);
        assert_close(reco[3 * p + 1], w->truth[3 * p + 1] + tg[3 * p + 2], 0, 1e-12);
        double dphi = reco[3 * p + 2] - w->truth[3 * p + 2];
        dphi = dphi > M_PI ? dphi - 2 * M_PI : (dphi < -M_PI ? dphi + 2 * M_PI : dphi);
        assert_close(dphi, tg[3 * p + 1], 0, 1e-12);
        assert_true(fabs(reco[3 * p + 2]) <= M_PI);
        for (int v = 0; v < 3; v++) {
          double d = row_delta(w, sc, p, v);
          s[sc][p][v] += d;
          ss[sc][p][v] += d * d;
          /* outside the scenario's variables every Delta equals the baseline one */
          if (v != HGG_ET)
            assert_close(d, row_delta(w, HGG_SC_GAUSS, p, v), 1e-12, 1e-12);
        }
      }
      for (int j = 0; j < 6; j++)
        assert_close(scl[j], tg[j] / scale[j], 1e-14, 0);
      s12[sc] += row_delta(w, sc, 0, HGG_ET) * row_delta(w, sc, 1, HGG_ET);
    }
    /* photon 1 is never touched by the correlation */
    assert_close(row_delta(w, HGG_SC_CORR_A, 0, HGG_ET), row_delta(w, HGG_SC_GAUSS, 0, HGG_ET), 1e-12, 1e-12);
    double mg = reco_mass(w->sc[HGG_SC_GAUSS][0]);
    if (mg > 120 && mg < 130) {
      win_gauss++;
      win_s += mg;
      win_ss += mg * mg;
    }
    m_asym[i] = reco_mass(w->sc[HGG_SC_ASYM][0]);
    win_asym += m_asym[i] > 120 && m_asym[i] < 130;
  }
  for (int sc = 0; sc < HGG_N_SC; sc++)
    for (int p = 0; p < 2; p++)
      for (int v = 0; v < 3; v++) {
        double mean = s[sc][p][v] / n, sd = sqrt(ss[sc][p][v] / n - mean * mean);
        int tail = sc == HGG_SC_ASYM && v == HGG_ET;
        assert_close(mean, tail ? -0.48 : 0.0, 0, 0.01);   /* spec 1.10 */
        assert_close(sd, tail ? 1.868 : 1.0, 0, tail ? 0.02 : 0.01);
      }
  /* Corr(Delta1, Delta2') = rho (means ~0, s.d. ~1 checked above) */
  double corr[HGG_N_SC];
  for (int sc = 0; sc < HGG_N_SC; sc++) {
    double m1 = s[sc][0][0] / n, m2 = s[sc][1][0] / n;
    double v1 = ss[sc][0][0] / n - m1 * m1, v2 = ss[sc][1][0] / n - m2 * m2;
    corr[sc] = (s12[sc] / n - m1 * m2) / sqrt(v1 * v2);
  }
  assert_close(corr[HGG_SC_GAUSS], 0.0, 0, 0.01);
  assert_close(corr[HGG_SC_CORR_A], 0.5, 0, 0.01);
  assert_close(corr[HGG_SC_CORR_B], 1.0, 0, 1e-9);
  assert_close(corr[HGG_SC_ASYM], 0.0, 0, 0.01);
  /* spec 1.10, ggF: m_gg(reco) in (120, 130): gauss 0.801 (s.d. 2.51 GeV), asym 0.654 (median
   * 123.8 GeV) */
  double wm = win_s / win_gauss;
  assert_close((double)win_gauss / n, 0.801, 0, 0.008);
  assert_close(sqrt(win_ss / win_gauss - wm * wm), 2.51, 0, 0.03);
  assert_close((double)win_asym / n, 0.654, 0, 0.008);
  qsort(m_asym, n, sizeof *m_asym, cmp_double);
  assert_close(m_asym[n / 2], 123.8, 0, 0.1);
  free(m_asym);
  run_free(&r);
}

/* spec 1.10, ttH (the public data's process): m_gg(reco) in (120, 130) 0.828 with in-window
 * s.d. 2.37 GeV; pT_gg(reco) < 400 GeV for 0.977 of events, mean 120.8 and s.d. 77.4 GeV there. */
static void test_tth_reco(void **unused) {
  hgg_opts o = default_opts();
  strcpy(o.process, "ttH");
  o.seed = 21;
  const int n = 100000;
  hrun r;
  run_setup(&r, &o, 0, n);
  int win = 0, low = 0;
  double ws = 0, wss = 0, ps = 0, pss = 0;
  for (int i = 0; i < n; i++) {
    run_event(&r, &o, (uint64_t)i);
    const double *reco = r.row.sc[HGG_SC_GAUSS][0];
    hgg_photon a = {reco[0], reco[1], reco[2]}, b = {reco[3], reco[4], reco[5]};
    double m, pt, y;
    hgg_diphoton(&a, &b, &m, &pt, &y);
    if (m > 120 && m < 130) {
      win++;
      ws += m;
      wss += m * m;
    }
    if (pt < 400) {
      low++;
      ps += pt;
      pss += pt * pt;
    }
  }
  double wm = ws / win, pm = ps / low;
  assert_close((double)win / n, 0.828, 0, 0.008);
  assert_close(sqrt(wss / win - wm * wm), 2.37, 0, 0.04);
  assert_close((double)low / n, 0.977, 0, 0.003);
  assert_close(pm, 120.8, 0, 1.2);
  assert_close(sqrt(pss / low - pm * pm), 77.4, 0, 1.0);
  run_free(&r);
}

/* corr_vars = all / asym_vars = all extend the construction to eta and phi. */
static void test_scenario_vars_all(void **unused) {
  hgg_opts o = default_opts();
  strcpy(o.corr_vars, "all");
  strcpy(o.asym_vars, "all");
  o.rho_a = 0.3;
  const int n = 50000;
  hrun r;
  run_setup(&r, &o, 0, n);
  double s12[3] = {0}, sa[3] = {0};
  for (int i = 0; i < n; i++) {
    run_event(&r, &o, (uint64_t)i);
    for (int v = 0; v < 3; v++) {
      s12[v] += row_delta(&r.row, HGG_SC_CORR_A, 0, v) * row_delta(&r.row, HGG_SC_CORR_A, 1, v);
      sa[v] += row_delta(&r.row, HGG_SC_ASYM, 1, v);
      assert_close(row_delta(&r.row, HGG_SC_CORR_B, 1, v), row_delta(&r.row, HGG_SC_CORR_B, 0, v), 1e-12, 1e-12);
    }
  }
  for (int v = 0; v < 3; v++) {
    assert_close(s12[v] / n, 0.3, 0, 0.02);
    assert_close(sa[v] / n, -0.48, 0, 0.03);
  }
  run_free(&r);
}

/* ---- rank independence at the event level -------------------------------------------- */

static void test_event_order_independent(void **unused) {
  hgg_opts o = default_opts();
  o.seed = 123456789;
  const int n = 2000;
  hrow *fwd = malloc(n * sizeof *fwd);
  assert_non_null(fwd);
  hrun a, b;
  run_setup(&a, &o, 0, n);
  for (int i = 0; i < n; i++) {
    run_event(&a, &o, (uint64_t)i);
    fwd[i] = a.row;
  }
  /* another state, a different block, events in a scrambled order */
  run_setup(&b, &o, 1000, 1000);
  for (int k = 0; k < n; k++) {
    int i = (int)((k * 7919ULL) % n);
    run_event(&b, &o, (uint64_t)i);
    assert_memory_equal(&b.row, &fwd[i], sizeof(hrow));
  }
  /* and a different seed changes the events */
  hrun c;
  o.seed = 123456790;
  run_setup(&c, &o, 0, 1);
  run_event(&c, &o, 0);
  assert_true(memcmp(c.row.truth, fwd[0].truth, sizeof fwd[0].truth) != 0);
  run_free(&c);
  run_free(&a);
  run_free(&b);
  free(fwd);
}

/* ---- truth from a Les Houches Event file ------------------------------------------------ */

#define SAMPLE_LHEF CNFLOW_SOURCE_DIR "/tests/data/hgg_sample.lhe"

static void check_photon(const double *t, double et, double eta, double phi) {
  assert_close(t[0], et, 1e-9, 0);
  assert_close(t[1], eta, 0, 1e-9);
  assert_close(t[2], phi, 0, 1e-9);
}

static void test_lhef_input(void **unused) {
  hgg_opts o = default_opts();
  strcpy(o.truth_lhef, SAMPLE_LHEF);
  hrun r;
  run_setup(&r, &o, 0, 5);
  uint64_t n = r.desc.n_events;
  assert_true(n >= 3 && n <= 5); /* events 0, 3, 5 always; the two Higgs decays may fail */
  int seen[7] = {0};
  hrow rows[5];
  for (uint64_t i = 0; i < n; i++) {
    run_event(&r, &o, i);
    rows[i] = r.row;
    const double *t = r.row.truth;
    int src = (int)r.row.index;
    assert_true(src >= 0 && src < 7 && src != 2 && src != 4); /* 2: ET 15 GeV; 4: |eta| 2.6 */
    assert_true(i == 0 || src > (int)rows[i - 1].index);      /* file order kept */
    seen[src] = 1;
    assert_true(t[6] >= 0.0 && t[6] <= 40.0); /* mu drawn: LHEF has none */
    assert_true(t[0] > 20 && t[3] > 20 && t[0] >= t[3] && fabs(t[1]) < 2.5 && fabs(t[4]) < 2.5);
    switch (src) {
    case 0:
      check_photon(t, 100.0, log(2.0), atan2(-80.0, -60.0));
      check_photon(t + 3, 50.0, 0.0, atan2(30.0, 40.0));
      break;
    case 1: /* Higgs (30, -40, 20) GeV, m = 125, decayed here */
      assert_close(t[7], 125.0, 1e-9, 0);
      assert_close(t[8], 50.0, 1e-9, 0);
      assert_close(t[9], 0.5 * log((136.10657588816 + 20.0) / (136.10657588816 - 20.0)), 0, 1e-9);
      break;
    case 3: /* three photons: the two leading ones */
      check_photon(t, 80.0, 0.0, -M_PI / 2);
      check_photon(t + 3, 30.0, 0.0, M_PI / 2);
      break;
    case 5: /* photons preferred over their Higgs line */
      check_photon(t, 45.0, asinh(-1.0), M_PI / 2);
      check_photon(t + 3, 35.0, 0.0, 0.0);
      break;
    case 6: /* Higgs at rest: back-to-back photons of 62.5 GeV */
      assert_close(t[7], 125.0, 1e-9, 0);
      assert_true(t[8] < 1e-9);
      assert_close(t[0] * cosh(t[1]), 62.5, 1e-9, 0);
      break;
    }
  }
  assert_true(seen[0] && seen[3] && seen[5]);
  run_free(&r);

  /* a rank's block holds the same rows */
  hrun b;
  run_setup(&b, &o, 1, 2);
  assert_int_equal(b.desc.n_events, n);
  for (uint64_t i = 1; i < 3; i++) {
    run_event(&b, &o, i);
    assert_memory_equal(&b.row, &rows[i], sizeof(hrow));
  }
  assert_true(cnf_gen_hgg.event(&o, b.state, 0, b.ptr) == CNF_ERR_ARG);
  run_free(&b);

  /* fewer events than available */
  o.n_events = 2;
  hrun c;
  run_setup(&c, &o, 0, 2);
  assert_int_equal(c.desc.n_events, 2);
  run_free(&c);
}

/* ---- truth from HDF5 tables -------------------------------------------------------------- */

static const double h5_rows[5][8] = {
    {0, 30, 0.5, 1.0, 50, -1.0, -2.0, 12.5}, /* passes, photons swapped */
    {1, 10, 0.0, 0.0, 60, 0.0, 1.0, 5.0},    /* ET 10 */
    {2, 70, 2.4, 3.0, 25, -2.4, -3.0, 33.0}, /* passes */
    {3, 45, 0.1, 0.2, 44, 2.6, 0.3, 7.0},    /* |eta| 2.6 */
    {4, 21, 0.0, 0.0, 20.5, 0.0, 3.0, 39.0}, /* passes */
};

static void write_table_2d(const char *path) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[2] = {5, 8}, nc = 8;
  hid_t sp = H5Screate_simple(2, dims, NULL);
  hid_t d = H5Dcreate2(f, "table", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(d >= 0);
  assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, h5_rows) >= 0);
  const char *names[8] = {"evt", "pt1", "eta1", "phi1", "pt2", "eta2", "phi2", "mu"};
  hid_t st = H5Tcopy(H5T_C_S1);
  H5Tset_size(st, H5T_VARIABLE);
  hid_t asp = H5Screate_simple(1, &nc, NULL);
  hid_t a = H5Acreate2(d, "columns", st, asp, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(H5Awrite(a, st, names) >= 0);
  H5Aclose(a);
  H5Sclose(asp);
  H5Tclose(st);
  H5Dclose(d);
  H5Sclose(sp);
  H5Fclose(f);
}

static void write_table_1d(const char *path, int with_phi2) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const char *names[6] = {"et1", "eta1", "phi1", "et2", "eta2", "phi2"};
  hsize_t n = 5;
  for (int c = 0; c < (with_phi2 ? 6 : 5); c++) {
    double col[5];
    for (int i = 0; i < 5; i++)
      col[i] = h5_rows[i][1 + c];
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, names[c], H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, col) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
  }
  H5Fclose(f);
}

static void test_h5_input(void **unused) {
  static const int expect_src[3] = {0, 2, 4};
  char path2d[600], path1d[600];
  snprintf(path2d, sizeof path2d, "%s", testutil_tmp_path("hgg_truth2d.h5"));
  snprintf(path1d, sizeof path1d, "%s", testutil_tmp_path("hgg_truth1d.h5"));
  write_table_2d(path2d);
  write_table_1d(path1d, 1);
  for (int layout = 0; layout < 2; layout++) {
    hgg_opts o = default_opts();
    strcpy(o.truth_h5, layout == 0 ? path2d : path1d);
    hrun r;
    run_setup(&r, &o, 0, 3);
    assert_int_equal(r.desc.n_events, 3);
    for (int i = 0; i < 3; i++) {
      run_event(&r, &o, (uint64_t)i);
      const double *in = h5_rows[expect_src[i]], *t = r.row.truth;
      int swap = in[4] > in[1];
      float f = layout == 0 ? 1.0f : 0.0f; /* the 2-D table is stored as float32 */
      double tol = f ? 1e-6 : 1e-12;
      assert_int_equal((int)r.row.index, expect_src[i]);
      for (int k = 0; k < 3; k++) {
        assert_close(t[k], in[1 + k + 3 * swap], tol, tol);
        assert_close(t[3 + k], in[4 + k - 3 * swap], tol, tol);
      }
      if (layout == 0)
        assert_close(t[6], in[7], 0, 1e-6); /* mu from the file */
      else
        assert_true(t[6] >= 0.0 && t[6] <= 40.0);
    }
    run_free(&r);
  }
  /* a table without phi2 is refused with a clear message */
  write_table_1d(path1d, 0);
  hgg_opts o = default_opts();
  strcpy(o.truth_h5, path1d);
  cnf_sim_desc desc;
  void *st = NULL;
  assert_int_equal(cnf_gen_hgg.setup(&o, 0, 0, &desc, &st), CNF_ERR_FORMAT);
  assert_non_null(strstr(cnf_error_message(), "phi2"));
  assert_null(st);
  remove(path2d);
  remove(path1d);
}

/* ---- bad options ------------------------------------------------------------------------- */

static void expect_setup_error(const hgg_opts *o, int code, const char *needle) {
  cnf_sim_desc desc;
  void *st = (void *)1;
  cnf_error_clear();
  int rc = cnf_gen_hgg.setup(o, 0, 0, &desc, &st);
  if (rc != code)
    fail_msg("expected status %d, got %d (%s)", code, rc, cnf_error_message());
  assert_null(st);
  if (!strstr(cnf_error_message(), needle))
    fail_msg("message '%s' does not mention '%s'", cnf_error_message(), needle);
  assert_null(strchr(cnf_error_message(), '\n'));
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_bad_options(void **unused) {
  hgg_opts o = default_opts();
  o.mu_min = -1.0;
  expect_setup_error(&o, CNF_ERR_ARG, "mu");
  o = default_opts();
  o.mu_min = 30, o.mu_max = 10;
  expect_setup_error(&o, CNF_ERR_ARG, "mu");
  o = default_opts();
  strcpy(o.process, "qqH");
  expect_setup_error(&o, CNF_ERR_ARG, "qqH");
  o = default_opts();
  strcpy(o.corr_vars, "eta");
  expect_setup_error(&o, CNF_ERR_ARG, "hgg_corr_vars");
  o = default_opts();
  o.rho_a = 1.5;
  expect_setup_error(&o, CNF_ERR_ARG, "rho");
  o = default_opts();
  strcpy(o.truth_lhef, "/nonexistent/dir/events.lhe");
  expect_setup_error(&o, CNF_ERR_IO, "/nonexistent/dir/events.lhe");
  strcpy(o.truth_h5, "x.h5");
  expect_setup_error(&o, CNF_ERR_ARG, "not both");
  o = default_opts();
  strcpy(o.truth_h5, "/nonexistent/truth.h5");
  expect_setup_error(&o, CNF_ERR_IO, "/nonexistent/truth.h5");

  char path[600];
  snprintf(path, sizeof path, "%s", testutil_tmp_path("hgg_bad.lhe"));
  o = default_opts();
  strcpy(o.truth_lhef, path);
  write_text(path, "<LesHouchesEvents>\n<event>\n 2 1 1 1 1 1\n 22 1 0 0 0 0 abc 1 2 3 0 0 9\n");
  expect_setup_error(&o, CNF_ERR_FORMAT, "line 4");
  write_text(path, "<LesHouchesEvents>\n<event>\n 1 1 1 1 1 1\n 25 1 0 0 0 0 0 0 0 125 125 0 9\n");
  expect_setup_error(&o, CNF_ERR_FORMAT, "</event>");
  write_text(path, "just some text\n");
  expect_setup_error(&o, CNF_ERR_FORMAT, "<event>");
  write_text(path, "<event>\n 1 1 1 1 1 1\n 11 1 0 0 0 0 0 0 0 5 0 0 9\n</event>\n");
  expect_setup_error(&o, CNF_ERR_FORMAT, "neither");
  o = default_opts();
  strcpy(o.truth_h5, path); /* a text file */
  expect_setup_error(&o, CNF_ERR_FORMAT, "not a readable HDF5");
  remove(path);

  o = default_opts();
  strcpy(o.truth_lhef, SAMPLE_LHEF);
  o.n_events = 6;
  expect_setup_error(&o, CNF_ERR_ARG, "pass the selection");
}

/* ---- finalize: rejected fractions on the scenario groups -------------------------------- */

static double read_attr_double(hid_t obj, const char *name) {
  double v = NAN;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  assert_true(a >= 0);
  assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
  H5Aclose(a);
  return v;
}

static void test_finalize_counts(void **unused) {
  hgg_opts o = default_opts();
  o.scale_eta = 0.002; /* tighter than the default so that many events are rejected */
  const int n = 20000;
  hrun r;
  run_setup(&r, &o, 0, n);
  int64_t rej[HGG_N_SC] = {0}, det[HGG_N_SC] = {0};
  double attempts = 0;
  for (int i = 0; i < n; i++) {
    run_event(&r, &o, (uint64_t)i);
    attempts += r.row.index;
    for (int s = 0; s < HGG_N_SC; s++) {
      int any = 0;
      for (int j = 0; j < 6; j++)
        any |= fabs(r.row.sc[s][2][j]) >= 1.0;
      rej[s] += any;
      det[s] += fabs(r.row.sc[s][1][0]) > 20.0 || fabs(r.row.sc[s][1][3]) > 20.0;
    }
  }
  char path[600];
  snprintf(path, sizeof path, "%s", testutil_tmp_path("hgg_final.h5"));
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  for (int s = 0; s < HGG_N_SC; s++)
    H5Gclose(H5Gcreate2(f, hgg_scenario_names[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  hsize_t one = 1;
  hid_t sp = H5Screate_simple(1, &one, NULL);
  H5Dclose(H5Dcreate2(f, "truth", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Sclose(sp);
  MPI_Comm comm = MPI_COMM_WORLD;
  assert_int_equal(cnf_gen_hgg.finalize(&o, r.state, (int64_t)f, &comm), 0);
  for (int s = 0; s < HGG_N_SC; s++) {
    hid_t g = H5Gopen2(f, hgg_scenario_names[s], H5P_DEFAULT);
    assert_true(rej[s] > 100); /* the check below is not vacuous */
    assert_close(read_attr_double(g, "rejected_fraction"), (double)rej[s] / n, 1e-15, 0);
    assert_close(read_attr_double(g, "rejected_fraction_det_cut"), (double)det[s] / n, 1e-15, 0);
    if (s == HGG_SC_CORR_A)
      assert_close(read_attr_double(g, "rho"), 0.5, 0, 0);
    H5Gclose(g);
  }
  hid_t d = H5Dopen2(f, "truth", H5P_DEFAULT);
  assert_close(read_attr_double(d, "acceptance"), n / attempts, 1e-15, 0);
  H5Dclose(d);
  H5Fclose(f);
  remove(path);
  run_free(&r);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resolution_vectors),
      cmocka_unit_test(test_pt_spectrum),
      cmocka_unit_test(test_rapidity),
      cmocka_unit_test(test_decay_isotropic),
      cmocka_unit_test(test_truth_selection),
      cmocka_unit_test(test_truth_mass_bw),
      cmocka_unit_test(test_scenarios),
      cmocka_unit_test(test_tth_reco),
      cmocka_unit_test(test_scenario_vars_all),
      cmocka_unit_test(test_event_order_independent),
      cmocka_unit_test(test_lhef_input),
      cmocka_unit_test(test_h5_input),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_finalize_counts),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
