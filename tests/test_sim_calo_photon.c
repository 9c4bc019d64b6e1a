/* Generator calo-photon (physics-spec.md section 2): each physics stage against its closed
 * form, the section 2.5 sanity numbers with statistical tolerances, the window search against a
 * brute-force scan, energy bookkeeping, reproducibility and option validation. */
#include "testutil.h"

#include "../src/sim/calo_photon.h"

#include <gsl/gsl_sf_gamma.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { DS_ENERGY = 0, DS_SHOWERS, DS_COND, DS_TRUTH, DS_FULL };
/* truth columns used here (names checked in test_schema) */
enum {
  T_CONVERTED = 0,
  T_CONV_DEPTH = 1,
  T_WIN_IY0 = 3,
  T_WIN_IX0 = 4,
  T_E_DEPOSIT = 5,
  T_E_WINDOW = 6,
  T_E_REAR = 7,
  T_E_LATERAL = 8,
  T_E_CURL = 9,
  T_E_PLATE = 10,
  T_E_MINUS = 12,
  T_E_PLUS = 13,
  T_Y_MINUS = 14,
  T_Y_PLUS = 15
};

/* ---- a small harness around setup/event -------------------------------------------------- */
typedef struct run {
  photon_opts o;
  cnf_sim_desc desc;
  void *state;
  double *rows[CNF_MAX_DATASETS];
} run;

static photon_opts default_opts(void) {
  photon_opts o;
  cnf_gen_calo_photon.opts_default(&o);
  o.n_events = 1000;
  o.seed = 12345;
  return o;
}

static void run_open(run *rn, const photon_opts *o, uint64_t first) {
  rn->o = *o;
  int rc = cnf_gen_calo_photon.setup(&rn->o, first, (uint64_t)o->n_events, &rn->desc, &rn->state);
  if (rc < 0)
    fail_msg("setup failed: %s", cnf_error_message());
  for (int k = 0; k < rn->desc.n_datasets; k++)
    rn->rows[k] = calloc((size_t)rn->desc.datasets[k].ncols, sizeof(double));
}

static void run_event(run *rn, uint64_t i) {
  if (cnf_gen_calo_photon.event(&rn->o, rn->state, i, rn->rows) < 0)
    fail_msg("event %llu failed: %s", (unsigned long long)i, cnf_error_message());
}

static void run_close(run *rn) {
  for (int k = 0; k < rn->desc.n_datasets; k++)
    free(rn->rows[k]);
  cnf_gen_calo_photon.teardown(rn->state);
}

/* ---- section 2.4 observables on a (ny, nx) window --------------------------------------- */
static double obs_r9(const double *w, int ny, int nx) {
  int best = 0;
  double sum = 0.0, s3 = 0.0;
  for (int i = 0; i < ny * nx; i++) {
    sum += w[i];
    if (w[i] > w[best])
      best = i;
  }
  int by = best / nx, bx = best % nx;
  for (int y = by - 1; y <= by + 1; y++) /* out-of-window crystals ignored (spec default) */
    for (int x = bx - 1; x <= bx + 1; x++)
      if (y >= 0 && y < ny && x >= 0 && x < nx)
        s3 += w[y * nx + x];
  return s3 / sum;
}

/* width = sum E_i |r_i - r_bar| / sum E_i (cells); also the energy-weighted rms along y and x */
static double obs_width(const double *w, int ny, int nx, double *rms_y, double *rms_x) {
  double s = 0, my = 0, mx = 0, vy = 0, vx = 0, wd = 0;
  for (int y = 0; y < ny; y++)
    for (int x = 0; x < nx; x++) {
      s += w[y * nx + x];
      my += w[y * nx + x] * y;
      mx += w[y * nx + x] * x;
    }
  my /= s;
  mx /= s;
  for (int y = 0; y < ny; y++)
    for (int x = 0; x < nx; x++) {
      double v = w[y * nx + x];
      wd += v * sqrt((y - my) * (y - my) + (x - mx) * (x - mx));
      vy += v * (y - my) * (y - my);
      vx += v * (x - mx) * (x - mx);
    }
  if (rms_y)
    *rms_y = sqrt(vy / s);
  if (rms_x)
    *rms_x = sqrt(vx / s);
  return wd / s;
}

/* ---- stage tests ----------------------------------------------------------------------- */
static void test_pair_fraction_moments(void **state) {
  /* density (9/7)(1 - 4/3 x(1-x)): E[x] = 1/2, E[x^2] = (1/3 - 1/15)(9/7) = 12/35,
   * P(x < 0.1) = (9/7)(0.1 - (2/3) 0.01 + (4/9) 0.001) */
  cnf_rng r;
  cnf_rng_init(&r, 5, 0, 0);
  const int n = 400000;
  double s = 0, ss = 0, low = 0;
  for (int i = 0; i < n; i++) {
    double x = photon_pair_fraction(&r);
    assert_true(x > 0.0 && x < 1.0);
    s += x;
    ss += x * x;
    low += x < 0.1;
  }
  double var = 12.0 / 35.0 - 0.25, var2 = 0.0989;
  double p_low = 9.0 / 7.0 * (0.1 - 2.0 / 3.0 * 0.01 + 4.0 / 9.0 * 0.001);
  assert_close(s / n, 0.5, 0, 5 * sqrt(var / n));
  assert_close(ss / n, 12.0 / 35.0, 0, 5 * sqrt(var2 / n));
  assert_close(low / n, p_low, 0, 5 * sqrt(p_low * (1 - p_low) / n));
}

static void test_brem_survival_law(void **state) {
  /* E_out/E_in = e^{-Y}, Y ~ Gamma(t/ln2): <e^{-Y}> = 2^{-t/ln2} = e^{-t}, <e^{-2Y}> = 3^{-t/ln2} */
  void *g = cnf_rng_gsl_alloc(9, 1, 0);
  assert_non_null(g);
  const double ts[] = {0.3, 1.2}; /* shape < 1 (GSL's U^{1/k} branch) and > 1 */
  for (int j = 0; j < 2; j++) {
    const int n = 200000;
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) {
      double f = photon_brem_survival(g, ts[j]);
      assert_true(f >= 0.0 && f <= 1.0);
      s += f;
      ss += f * f;
    }
    double m2 = pow(3.0, -ts[j] / M_LN2), var = m2 - exp(-2 * ts[j]);
    assert_close(s / n, exp(-ts[j]), 0, 5 * sqrt(var / n));
    assert_close(ss / n, m2, 0, 5 * sqrt(m2 / n));
  }
  assert_close(photon_brem_survival(g, 0.0), 1.0, 0, 0);
  cnf_rng_gsl_free(g);
}

static void test_highland(void **state) {
  /* spec step 4: 10 GeV through 0.5 X0 gives theta0 = 0.94 mrad */
  assert_close(photon_highland(10.0, 0.5), 0.94e-3, 0, 0.005e-3);
  /* theta0 scales as 1/p */
  assert_close(photon_highland(1.0, 0.5), 10 * photon_highland(10.0, 0.5), 1e-12, 0);
}

static void test_helix_geometry(void **state) {
  const double B = 4.0, L = 700.0, p = 10.0;
  const double pos[3] = {3.0, 1.0, -L}, dir[3] = {0.0, 0.0, 1.0};
  double pp[3], dp[3], pm[3], dm[3];
  assert_int_equal(photon_helix_to_face(pos, dir, p, +1, B, pp, dp), 0);
  assert_int_equal(photon_helix_to_face(pos, dir, p, -1, B, pm, dm), 0);
  /* F = q v x B with B along +x: e+ to +y, e- to -y, mirror images; x untouched */
  assert_true(pp[1] > pos[1] && pm[1] < pos[1]);
  assert_close(pp[1] - pos[1], pos[1] - pm[1], 1e-12, 0);
  assert_close(pp[0], pos[0], 0, 1e-12);
  assert_close(pp[2], 0.0, 0, 0);
  /* exact circle: R = p/(0.3 B), centre (y0 + R, z0); end point on it, direction tangent */
  double R = 1000.0 * p / (0.299792458 * B), yc = pos[1] + R, zc = pos[2];
  assert_close(hypot(pp[1] - yc, pp[2] - zc), R, 1e-10, 0);
  assert_close((pp[1] - yc) * dp[1] + (pp[2] - zc) * dp[2], 0.0, 0, 1e-9 * R);
  assert_close(dp[0] * dp[0] + dp[1] * dp[1] + dp[2] * dp[2], 1.0, 1e-12, 0);
  /* small-angle check from the spec: 10 GeV over 0.7 m -> 29 mm */
  assert_close(pp[1] - pos[1], L * L / (2 * R), 0.01, 0);
  assert_close(pp[1] - pos[1], 29.0, 0, 0.5);
  /* pitch: with a component along B the x advance is s_perp u_x / u_yz */
  const double tilt[3] = {0.1 / sqrt(1.01), 0.0, 1.0 / sqrt(1.01)};
  assert_int_equal(photon_helix_to_face(pos, tilt, p, +1, B, pp, dp), 0);
  double r_t = R * tilt[2], phi1 = asin(L / r_t);
  assert_close(pp[0] - pos[0], r_t * phi1 * tilt[0] / tilt[2], 1e-10, 0);
  /* p < 0.3 B L curls away */
  assert_int_equal(photon_helix_to_face(pos, dir, 0.5, -1, B, pm, dm), 1);
  /* no field: straight line */
  assert_int_equal(photon_helix_to_face(pos, tilt, p, +1, 0.0, pp, dp), 0);
  assert_close(pp[0], pos[0] + L * tilt[0] / tilt[2], 1e-12, 0);
}

static void test_gamma_profile_steps(void **state) {
  /* cumulative step contents equal the regularised incomplete gamma P(alpha, beta t), for the
   * GFlash range of alpha (the 1.05 guard up to ~6) and beta, over the 25.8 X0 of crystal */
  const double alphas[] = {1.05, 1.6, 3.0, 6.0}, betas[] = {0.3, 0.5, 0.9};
  const double dt = 0.1;
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 3; b++) {
      photon_gamma_profile g;
      photon_gamma_profile_init(&g, alphas[a], betas[b]);
      double cum = 0.0, worst = 0.0;
      for (int k = 0; k < 260; k++) {
        double t_lo = k * dt, log_t[4];
        for (int j = 0; j < 4; j++)
          log_t[j] = log(t_lo + photon_gl_node[j] * dt);
        double step = photon_gamma_profile_step(&g, t_lo, dt, log_t);
        assert_true(step >= 0.0);
        cum += step;
        double exact = gsl_sf_gamma_inc_P(alphas[a], betas[b] * (t_lo + dt));
        worst = fmax(worst, fabs(cum - exact));
      }
      if (worst > 1e-8)
        fail_msg("alpha %g beta %g: cumulative profile off by %g", alphas[a], betas[b], worst);
    }
}

/* n showers of one particle at the centre of crystal (12, 12), normal incidence: mean of
 * E_5x5/E, its relative spread, <E_3x3/E_5x5> and the mean leaked fraction */
static void single_showers(double e, int q, int n, double *s55, double *r35, double *leak) {
  photon_opts o = default_opts();
  run rn;
  run_open(&rn, &o, 0);
  double m = 0, mm = 0, r = 0, l = 0;
  for (int i = 0; i < n; i++) {
    double img[PHOTON_NPIX] = {0};
    photon_tally t = {0};
    photon_particle p = {.e = e, .pos = {11.0, 11.0, 0.0}, .dir = {0, 0, 1}, .q = q};
    cnf_rng rng;
    cnf_rng_init(&rng, 77, (uint64_t)i, 16);
    photon_shower(&rn.o, rn.state, &rng, &p, img, &t);
    double e55 = 0, e33 = 0, all = 0;
    for (int k = 0; k < PHOTON_NPIX; k++)
      all += img[k];
    for (int y = 10; y < 15; y++)
      for (int x = 10; x < 15; x++) {
        e55 += img[y * 24 + x];
        if (y >= 11 && y < 14 && x >= 11 && x < 14)
          e33 += img[y * 24 + x];
      }
    assert_close(all + t.rear + t.lateral, e, 1e-6, 0); /* nothing created or lost */
    m += e55 / e;
    mm += (e55 / e) * (e55 / e);
    r += e33 / e55;
    l += (t.rear + t.lateral) / e;
  }
  m /= n;
  *s55 = sqrt(mm / n - m * m) / m;
  *r35 = r / n;
  *leak = l / n;
  run_close(&rn);
}

static void test_single_particle_showers(void **state) {
  /* section 2.5: photon leakage 0.7 / 1.0 / 1.3 % at 20 / 50 / 100 GeV; at 50 GeV
   * sigma(E_5x5)/E 0.51 % (e) / 0.84 % (gamma) from GFlash alone; electrons E_3x3/E_5x5 ~ 0.95 */
  const double es[] = {20, 50, 100}, leak_ref[] = {0.007, 0.010, 0.013};
  double s55_g = 0, s55_e, r35, leak;
  for (int k = 0; k < 3; k++) {
    double s;
    single_showers(es[k], 0, k == 1 ? 1000 : 500, &s, &r35, &leak);
    assert_close(leak, leak_ref[k], 0, 0.0015);
    if (k == 1)
      s55_g = s;
  }
  single_showers(50, -1, 1000, &s55_e, &r35, &leak);
  assert_close(r35, 0.95, 0, 0.02);
  assert_close(s55_e, 0.0051, 0, 0.001);
  assert_close(s55_g, 0.0084, 0, 0.002);
  assert_true(s55_g > s55_e); /* the photon's conversion depth adds leakage fluctuations */
}

/* ---- generator-level tests --------------------------------------------------------------- */
static void test_schema(void **state) {
  photon_opts o = default_opts();
  run rn;
  run_open(&rn, &o, 0);
  assert_int_equal(rn.desc.n_datasets, 5);
  assert_int_equal(rn.desc.n_events, 1000);
  const char *paths[] = {"incident_energies", "showers", "conditions", "truth", "images_full"};
  const int ncols[] = {1, 128, 3, 20, 576};
  for (int k = 0; k < 5; k++) {
    assert_string_equal(rn.desc.datasets[k].path, paths[k]);
    assert_int_equal(rn.desc.datasets[k].ncols, ncols[k]);
  }
  assert_int_equal(rn.desc.datasets[DS_SHOWERS].dtype, CNF_DTYPE_F32);
  assert_int_equal(rn.desc.datasets[DS_FULL].dtype, CNF_DTYPE_F32);
  assert_string_equal(rn.desc.datasets[DS_ENERGY].units[0], "MeV");
  const cnf_dataset_schema *t = &rn.desc.datasets[DS_TRUTH];
  assert_string_equal(t->colnames[T_CONVERTED], "converted");
  assert_string_equal(t->colnames[T_CONV_DEPTH], "conv_depth");
  assert_string_equal(t->colnames[T_WIN_IY0], "window_iy0");
  assert_string_equal(t->colnames[T_E_DEPOSIT], "e_deposit");
  assert_string_equal(t->colnames[T_E_PLATE], "e_plate");
  assert_string_equal(t->colnames[T_Y_PLUS], "y_plus_face");
  run_close(&rn);
  /* without the full image the other datasets keep their place */
  o.store_full = 0;
  run_open(&rn, &o, 0);
  assert_int_equal(rn.desc.n_datasets, 4);
  assert_string_equal(rn.desc.datasets[DS_TRUTH].path, "truth");
  run_event(&rn, 3);
  /* every option name carries the generator prefix */
  for (int i = 0; i < cnf_gen_calo_photon.n_options; i++)
    assert_int_equal(strncmp(cnf_gen_calo_photon.options[i].name, "photon_", 7), 0);
  run_close(&rn);
}

static void test_conversion_fraction_per_thickness(void **state) {
  /* P_conv = 1 - exp(-7d/9); depth | converted is a truncated exponential of mean 9/7 X0 */
  const double ds[] = {0.5, 1.0, 1.5};
  const int n = 1500;
  for (int j = 0; j < 3; j++) {
    photon_opts o = default_opts();
    o.e_min = o.e_max = 20.0; /* cheapest showers; conversion does not depend on E */
    o.d_min = o.d_max = ds[j];
    o.seed = 100 + j;
    run rn;
    run_open(&rn, &o, 0);
    double nconv = 0, depth = 0;
    for (int i = 0; i < n; i++) {
      run_event(&rn, i);
      const double *t = rn.rows[DS_TRUTH];
      if (t[T_CONVERTED]) {
        nconv++;
        depth += t[T_CONV_DEPTH];
        assert_true(t[T_CONV_DEPTH] >= 0.0 && t[T_CONV_DEPTH] <= ds[j]);
      } else {
        assert_close(t[T_CONV_DEPTH], -1.0, 0, 0);
      }
    }
    double p = 1.0 - exp(-7.0 * ds[j] / 9.0);
    assert_close(nconv / n, p, 0, 4 * sqrt(p * (1 - p) / n));
    double lam = 9.0 / 7.0, q = exp(-ds[j] / lam);
    double mean_depth = lam - ds[j] * q / (1 - q);
    double sd_depth = ds[j] / sqrt(12.0); /* upper bound for a truncated exponential */
    assert_close(depth / nconv, mean_depth, 0, 4 * sd_depth / sqrt(nconv));
    run_close(&rn);
  }
}

static void test_sanity_full_ranges(void **state) {
  /* section 2.5, full ranges: conversion fraction 0.529; <R9> 0.935 (unconverted) and 0.836
   * (converted); <E_window/E> 0.983; <E_5x5/E> 0.963 (unconverted); e+ bends to +y;
   * converted showers wider in y than in x; energy bookkeeping closes; pixels finite >= 0 */
  photon_opts o = default_opts();
  run rn;
  run_open(&rn, &o, 0);
  const int n = 2000;
  double nconv = 0, r9c = 0, r9u = 0, ewin = 0, e55 = 0, dy = 0, ndy = 0, ry = 0, rx = 0;
  for (int i = 0; i < n; i++) {
    run_event(&rn, i);
    const double *t = rn.rows[DS_TRUTH], *w = rn.rows[DS_SHOWERS], *full = rn.rows[DS_FULL];
    double e = rn.rows[DS_ENERGY][0];
    assert_close(rn.rows[DS_COND][2], e, 0, 0);
    assert_true(e >= 20e3 && e <= 100e3);
    assert_true(cnf_all_finite_d(128, w) && cnf_all_finite_d(576, full) && cnf_all_finite_d(20, t));
    for (int j = 0; j < 128; j++)
      assert_true(w[j] >= 0.0);
    for (int j = 0; j < 576; j++)
      assert_true(full[j] >= 0.0);
    /* deposit + rear + lateral + curl + plate = E (spot energies are floats: 1e-6) */
    double sum = t[T_E_DEPOSIT] + t[T_E_REAR] + t[T_E_LATERAL] + t[T_E_CURL] + t[T_E_PLATE];
    assert_close(sum, e, 1e-6, 0);
    double r9 = obs_r9(w, 16, 8);
    ewin += t[T_E_WINDOW] / e;
    if (t[T_CONVERTED]) {
      nconv++;
      r9c += r9;
      double sy, sx;
      obs_width(w, 16, 8, &sy, &sx);
      ry += sy;
      rx += sx;
      if (t[T_E_MINUS] > 0 && t[T_E_PLUS] > 0) {
        dy += t[T_Y_PLUS] - t[T_Y_MINUS];
        ndy++;
      }
    } else {
      r9u += r9;
      int b = 0;
      for (int j = 1; j < 576; j++)
        if (full[j] > full[b])
          b = j;
      double s = 0;
      for (int y = b / 24 - 2; y <= b / 24 + 2; y++)
        for (int x = b % 24 - 2; x <= b % 24 + 2; x++)
          if (y >= 0 && y < 24 && x >= 0 && x < 24)
            s += full[y * 24 + x];
      e55 += s / e;
    }
  }
  double nu = n - nconv;
  double p = 1.0 - 9.0 / 7.0 * (exp(-7.0 / 18.0) - exp(-7.0 / 6.0));
  assert_close(nconv / n, p, 0, 4 * sqrt(p * (1 - p) / n));
  assert_close(r9u / nu, 0.935, 0, 0.01);
  assert_close(r9c / nconv, 0.836, 0, 0.02);
  assert_true(r9c / nconv < r9u / nu - 0.05);
  assert_close(ewin / n, 0.983, 0, 0.005);
  assert_close(e55 / nu, 0.963, 0, 0.005);
  assert_true(dy / ndy > 10.0); /* mm: e+ lands at larger y than e- */
  assert_true(ry / nconv > rx / nconv);
  run_close(&rn);
}

/* mean width (2.4 definition) and mean converted R9 for fixed (E range, d, b) */
static void width_r9_at(double e_lo, double e_hi, double d, double b, int n, double *width,
                        double *r9_conv) {
  photon_opts o = default_opts();
  o.e_min = e_lo;
  o.e_max = e_hi;
  o.d_min = o.d_max = d;
  o.b_min = o.b_max = b;
  run rn;
  run_open(&rn, &o, 0);
  double s = 0, r9 = 0, nc = 0;
  for (int i = 0; i < n; i++) {
    run_event(&rn, i);
    s += obs_width(rn.rows[DS_SHOWERS], 16, 8, NULL, NULL);
    if (rn.rows[DS_TRUTH][T_CONVERTED]) {
      r9 += obs_r9(rn.rows[DS_SHOWERS], 16, 8);
      nc++;
    }
  }
  *width = s / n;
  *r9_conv = r9 / nc;
  run_close(&rn);
}

static void test_width_rises_with_thickness_and_distance(void **state) {
  const int n = 600;
  double w_thin, w_thick, w_near, w_far, r9_thin, r9_thick, r9_near, r9_far;
  width_r9_at(20, 40, 0.5, 70, n, &w_thin, &r9_thin);
  width_r9_at(20, 40, 1.5, 70, n, &w_thick, &r9_thick);
  assert_true(w_thick > w_thin + 0.05);
  /* section 2.5: E = 20 GeV, d = 1: converted <R9> 0.80 at b = 50 cm, 0.66 at 90 cm */
  width_r9_at(20, 20, 1.0, 50, n, &w_near, &r9_near);
  width_r9_at(20, 20, 1.0, 90, n, &w_far, &r9_far);
  assert_true(w_far > w_near + 0.1);
  assert_close(r9_near, 0.80, 0, 0.03);
  assert_close(r9_far, 0.66, 0, 0.03);
}

/* brute-force max-sum window of the full image, row-major sums; returns the max sum */
static double brute_window(const double *full, int ny, int nx, int ncy, int ncx, int *by, int *bx) {
  double best = -1.0;
  for (int y = 0; y < ncy; y++)
    for (int x = 0; x < ncx; x++) {
      double s = 0;
      for (int jy = 0; jy < ny; jy++)
        for (int jx = 0; jx < nx; jx++)
          s += full[(y + jy) * 24 + x + jx];
      if (s > best * (1 + 1e-12)) {
        best = s;
        *by = y;
        *bx = x;
      }
    }
  return best;
}

static void check_windows(const char *placement, const char *axis, int quirk, int n) {
  photon_opts o = default_opts();
  strcpy(o.noise_placement, placement);
  strcpy(o.window_long, axis);
  o.window_quirk = quirk;
  int ny = axis[0] == 'y' ? 16 : 8, nx = axis[0] == 'y' ? 8 : 16;
  int ncy = 24 - ny + (quirk ? 0 : 1), ncx = 24 - nx + (quirk ? 0 : 1);
  const double noise_mev = 20e-3;
  run rn;
  run_open(&rn, &o, 0);
  for (int i = 0; i < n; i++) {
    run_event(&rn, i);
    const double *full = rn.rows[DS_FULL], *w = rn.rows[DS_SHOWERS], *t = rn.rows[DS_TRUTH];
    int by = -1, bx = -1;
    double best = brute_window(full, ny, nx, ncy, ncx, &by, &bx);
    int iy0 = (int)t[T_WIN_IY0], ix0 = (int)t[T_WIN_IX0];
    assert_true(iy0 >= 0 && iy0 < ncy && ix0 >= 0 && ix0 < ncx);
    double s = 0;
    for (int jy = 0; jy < ny; jy++)
      for (int jx = 0; jx < nx; jx++) {
        double v = full[(iy0 + jy) * 24 + ix0 + jx], got = w[jy * nx + jx];
        s += v;
        if (placement[0] == 'w') /* noise only on the window: U(0, 20 keV) on top */
          assert_true(got - v >= 0.0 && got - v <= noise_mev * (1 + 1e-9));
        else
          assert_true(got == v);
      }
    assert_close(s, best, 1e-12, 0);
    assert_int_equal(iy0, by);
    assert_int_equal(ix0, bx);
  }
  run_close(&rn);
}

static void test_window_is_max_sum(void **state) {
  check_windows("window", "y", 0, 150);
  check_windows("full", "y", 0, 100);
  check_windows("full", "x", 0, 50);
  check_windows("full", "y", 1, 50);
}

static void test_noise_full_placement_bounds(void **state) {
  /* noise before cropping: the same events with "window" placement have a noise-free full
   * image, so the difference is the noise: U(0, 20 keV) on every crystal, mean 10 keV */
  photon_opts o = default_opts();
  run clean, noisy;
  run_open(&clean, &o, 0);
  strcpy(o.noise_placement, "full");
  run_open(&noisy, &o, 0);
  const int n = 30;
  double s = 0;
  for (int i = 0; i < n; i++) {
    run_event(&clean, i);
    run_event(&noisy, i);
    for (int j = 0; j < 576; j++) {
      double noise = noisy.rows[DS_FULL][j] - clean.rows[DS_FULL][j];
      assert_true(noise > 0.0 && noise <= 20e-3 * (1 + 1e-9));
      s += noise;
    }
  }
  double m = 576.0 * n;
  assert_close(s / m, 10e-3, 0, 5 * 20e-3 / sqrt(12.0 * m));
  run_close(&clean);
  run_close(&noisy);
}

static void test_event_independent_of_call_order(void **state) {
  photon_opts o = default_opts();
  o.brem_reconvert = 1; /* exercise the recursive branch too */
  run a, b;
  run_open(&a, &o, 0);
  run_open(&b, &o, 5); /* another rank's block start */
  const int n = 8;
  double *saved[8][5];
  for (int i = 0; i < n; i++) {
    run_event(&a, i);
    for (int k = 0; k < 5; k++) {
      size_t bytes = (size_t)a.desc.datasets[k].ncols * sizeof(double);
      saved[i][k] = malloc(bytes);
      memcpy(saved[i][k], a.rows[k], bytes);
    }
  }
  for (int i = n - 1; i >= 0; i--) {
    run_event(&b, i);
    run_event(&b, i); /* twice: no hidden state carried over */
    for (int k = 0; k < 5; k++)
      assert_memory_equal(b.rows[k], saved[i][k],
                          (size_t)a.desc.datasets[k].ncols * sizeof(double));
  }
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 5; k++)
      free(saved[i][k]);
  run_close(&a);
  run_close(&b);
}

static void test_alternative_settings_run(void **state) {
  /* every choice of every string option produces finite, bookkept events */
  const char *what[][2] = {{"gflash", "g4"},
                           {"spot_profile", "fluctuated"},
                           {"ms_momentum", "in"},
                           {"ms_momentum", "out"},
                           {"calo_res", "cms"}};
  for (int c = 0; c < 5; c++) {
    photon_opts o = default_opts();
    o.brem_split = 3;
    o.brem_reconvert = 1;
    o.smear_both = 1;
    o.conv_tsai = 1;
    char *field = strcmp(what[c][0], "gflash") == 0         ? o.gflash
                  : strcmp(what[c][0], "spot_profile") == 0 ? o.spot_profile
                  : strcmp(what[c][0], "ms_momentum") == 0  ? o.ms_momentum
                                                            : o.calo_res;
    strcpy(field, what[c][1]);
    run rn;
    run_open(&rn, &o, 0);
    double ewin = 0;
    for (int i = 0; i < 40; i++) {
      run_event(&rn, i);
      const double *t = rn.rows[DS_TRUTH];
      assert_true(cnf_all_finite_d(128, rn.rows[DS_SHOWERS]));
      double sum = t[T_E_DEPOSIT] + t[T_E_REAR] + t[T_E_LATERAL] + t[T_E_CURL] + t[T_E_PLATE];
      assert_close(sum, rn.rows[DS_ENERGY][0], 1e-6, 0);
      ewin += t[T_E_WINDOW] / rn.rows[DS_ENERGY][0];
    }
    assert_true(ewin / 40 > 0.95 && ewin / 40 < 1.0);
    run_close(&rn);
  }
}

static void expect_bad(photon_opts *o, const char *needle) {
  cnf_sim_desc desc;
  void *st = NULL;
  cnf_error_clear();
  int rc = cnf_gen_calo_photon.setup(o, 0, 10, &desc, &st);
  assert_true(rc < 0);
  const char *msg = cnf_error_message();
  if (!strstr(msg, needle))
    fail_msg("message '%s' lacks '%s'", msg, needle);
  assert_null(strchr(msg, '\n'));
}

static void test_bad_options(void **state) {
  photon_opts o = default_opts();
  o.d_min = 1.5;
  o.d_max = 0.5;
  expect_bad(&o, "inverted");
  o = default_opts();
  o.e_min = -5.0;
  expect_bad(&o, "energy");
  o = default_opts();
  o.b_min = 95.0;
  expect_bad(&o, "distance");
  o = default_opts();
  strcpy(o.gflash, "geant3");
  expect_bad(&o, "unknown value 'geant3'");
  o = default_opts();
  strcpy(o.noise_placement, "sideways");
  expect_bad(&o, "noise_placement");
  o = default_opts();
  o.brem_split = 0;
  expect_bad(&o, "brem_split");
  o = default_opts();
  o.n_events = 0;
  expect_bad(&o, "number of events (-n)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pair_fraction_moments),
      cmocka_unit_test(test_brem_survival_law),
      cmocka_unit_test(test_highland),
      cmocka_unit_test(test_helix_geometry),
      cmocka_unit_test(test_gamma_profile_steps),
      cmocka_unit_test(test_single_particle_showers),
      cmocka_unit_test(test_schema),
      cmocka_unit_test(test_conversion_fraction_per_thickness),
      cmocka_unit_test(test_sanity_full_ranges),
      cmocka_unit_test(test_width_rises_with_thickness_and_distance),
      cmocka_unit_test(test_window_is_max_sum),
      cmocka_unit_test(test_noise_full_placement_bounds),
      cmocka_unit_test(test_event_independent_of_call_order),
      cmocka_unit_test(test_alternative_settings_run),
      cmocka_unit_test(test_bad_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
