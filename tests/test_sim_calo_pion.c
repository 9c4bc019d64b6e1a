/* calo-pion (G3): detector constants against physics-spec.md 3.1, the incomplete gamma against
 * GSL and closed forms, the f_em model and the full response against the sanity numbers of
 * spec 3.4, energy conservation, incident-energy modes against closed-form moments,
 * call-order independence, option validation and the file annotation. */
#include "testutil.h"

#include <gsl/gsl_sf_erf.h>
#include <gsl/gsl_sf_gamma.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/sim/calo_pion.h"

/* ---- helpers ---------------------------------------------------------------------------- */
typedef struct pion_run {
  cnf_sim_desc desc;
  void *state;
  double row[5][8];
  double *rows[5];
} pion_run;

static void run_open(pion_run *run, const pion_opts *o) {
  int rc = cnf_gen_calo_pion.setup(o, 0, (uint64_t)o->n, &run->desc, &run->state);
  if (rc < 0)
    fail_msg("setup failed: %s", cnf_error_message());
  assert_int_equal(run->desc.n_datasets, 5);
  for (int k = 0; k < 5; k++)
    run->rows[k] = run->row[k];
}

static void run_event(pion_run *run, const pion_opts *o, uint64_t i) {
  assert_int_equal(cnf_gen_calo_pion.event(o, run->state, i, run->rows), 0);
}

static void opts_fixed(pion_opts *o, double e) {
  cnf_gen_calo_pion.opts_default(o);
  strcpy(o->energy_mode, "fixed");
  o->energy = e;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Moments and quantiles of n values (sorts v). */
typedef struct stats1 {
  double mean, sd, skew, median, q16, q84;
} stats1;
static stats1 stats_of(double *v, int n) {
  stats1 s = {0};
  for (int i = 0; i < n; i++)
    s.mean += v[i] / n;
  double m2 = 0, m3 = 0;
  for (int i = 0; i < n; i++) {
    double d = v[i] - s.mean;
    m2 += d * d / n;
    m3 += d * d * d / n;
  }
  s.sd = sqrt(m2);
  s.skew = m3 / (m2 * s.sd);
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  s.median = v[n / 2];
  s.q16 = v[(int)(0.16 * n)];
  s.q84 = v[(int)(0.84 * n)];
  return s;
}

/* ---- detector (spec 3.1 tables) --------------------------------------------------------- */
static void test_detector_constants(void **state) {
  pion_opts o;
  cnf_gen_calo_pion.opts_default(&o);
  pion_detector d;
  pion_detector_init(&o, &d);
  const int ecal = 0, hcal = 5;
  assert_close(d.x0[ecal], 15.59, 0, 0.01);
  assert_close(d.x0[hcal], 4.18, 0, 0.01);
  assert_close(d.lam[ecal], 374.2, 0, 0.1);
  assert_close(d.lam[hcal], 116.6, 0, 0.1);
  assert_close(d.lam_pi[ecal], 435.8, 0, 0.2);
  assert_close(d.lam_pi[hcal], 133.1, 0, 0.1);
  assert_close(d.dedx[ecal] * 1e3, 0.566, 0, 0.001);
  assert_close(d.dedx[hcal] * 1e3, 1.877, 0, 0.001);
  assert_close(d.f_mip[ecal], 0.2499, 0, 0.0001);
  assert_close(d.f_mip[hcal], 0.0188, 0, 0.0001);
  assert_close(d.s_em[ecal], 0.195, 0, 0.001);
  assert_close(d.s_em[hcal], 0.0132, 0, 0.0001);
  assert_close(d.a_em[ecal], 0.108, 0, 0.001);
  assert_close(d.a_had[ecal], 0.21, 0, 0.003);
  assert_close(d.a_em[hcal], 0.39, 0, 0.005);
  assert_close(d.a_had[hcal], 0.77, 0, 0.005);
  /* per-layer depths in X0 and lambda_I, and the ECAL in lambda_pi */
  const double t_layer[6] = {5.77, 22.26, 2.76, 89.6, 159.4, 229.0};
  const double l_layer[6] = {0.241, 0.927, 0.115, 3.22, 5.72, 8.21};
  for (int k = 0; k < 6; k++) {
    assert_close(d.t[k + 1] - d.t[k], t_layer[k], 0.002, 0);
    assert_close(d.l[k + 1] - d.l[k], l_layer[k], 0.003, 0);
  }
  assert_close(d.z[6], 2480.0, 0, 1e-9);
  assert_close(d.l_pi[3], 1.101, 0, 0.001);
  assert_close(d.l_pi[6], 1.10 + 2000.0 / 133.1, 0, 0.01); /* 16.1 lambda_pi in total */
}

/* ---- incomplete gamma ------------------------------------------------------------------- */
static void test_gamma_p_closed_forms(void **state) {
  const double xs[] = {0.0, 1e-8, 0.01, 0.3, 1.0, 2.5, 7.0, 20.0, 80.0};
  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
    double x = xs[i];
    assert_close(pion_gamma_p(1.0, 0.0, x), -expm1(-x), 1e-11, 1e-15);
    assert_close(pion_gamma_p(0.5, lgamma(0.5), x), gsl_sf_erf(sqrt(x)), 1e-11, 1e-15);
    const double as[] = {0.3, 0.62, 1.35, 2.0, 4.7, 12.0, 60.0};
    for (size_t j = 0; j < sizeof as / sizeof as[0]; j++)
      assert_close(pion_gamma_p(as[j], lgamma(as[j]), x), gsl_sf_gamma_inc_P(as[j], x), 1e-10,
                   1e-14);
  }
}

/* ---- f_em model (spec 3.4 additional assertions, evaluated at E) ------------------------- */
static void check_fem(double e, double mean, double sd, double median) {
  pion_opts o;
  cnf_gen_calo_pion.opts_default(&o);
  void *gsl = cnf_rng_gsl_alloc(5, 0, 1);
  const int n = 100000;
  double *v = malloc(n * sizeof *v);
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, 5, (uint64_t)i, 0);
    cnf_rng_gsl_reset(gsl, 5, (uint64_t)i, 1);
    v[i] = pion_sample_fem(&o, &r, gsl, e);
    assert_true(v[i] >= 0.0 && v[i] <= 1.0);
  }
  stats1 s = stats_of(v, n);
  assert_close(s.mean, mean, 0, 0.005);
  assert_close(s.sd, sd, 0, 0.01);
  assert_close(s.median, median, 0, 0.01);
  assert_true(s.median < s.mean);
  assert_true(s.skew > 0.0);
  free(v);
  cnf_rng_gsl_free(gsl);
}

static void test_fem_matches_groom(void **state) {
  check_fem(10.0, 1.0 - pow(10.0, -0.17), 0.20, 0.275);   /* 0.324 */
  check_fem(100.0, 1.0 - pow(100.0, -0.17), 0.13, 0.510); /* 0.543 */
}

/* ---- full response at fixed energies (spec 3.4 table) ----------------------------------- */
typedef struct response_ref {
  double e, mean, sd, skew, median, q16, q84, p_above1;
  double layer[6];
} response_ref;

static void check_response(const response_ref *ref) {
  pion_opts o;
  opts_fixed(&o, ref->e);
  o.n = 60000;
  o.seed = 11;
  pion_run run;
  run_open(&run, &o);
  const int n = (int)o.n;
  double *ratio = malloc(n * sizeof *ratio), layer_mean[6] = {0};
  int above1 = 0, in_ecal = 0;
  for (int i = 0; i < n; i++) {
    run_event(&run, &o, (uint64_t)i);
    assert_true(run.row[0][0] == ref->e);
    double sum = 0;
    for (int k = 0; k < 6; k++) {
      sum += run.row[1][k];
      layer_mean[k] += run.row[1][k] / ref->e / n;
    }
    ratio[i] = sum / ref->e;
    above1 += ratio[i] > 1.0;
    in_ecal += run.row[4][1] < 3.0;
  }
  cnf_gen_calo_pion.teardown(run.state);
  stats1 s = stats_of(ratio, n);
  /* spec tolerance 0.005 on means plus 4 standard errors of this sample */
  double se = s.sd / sqrt(n);
  assert_close(s.mean, ref->mean, 0, 0.005 + 4 * se);
  assert_close(s.sd, ref->sd, 0.04, 0);
  assert_close(s.median, ref->median, 0, 0.005 + 5 * se);
  assert_close(s.q16, ref->q16, 0, 0.005 + 5 * se);
  assert_close(s.q84, ref->q84, 0, 0.005 + 5 * se);
  assert_true(s.skew > 0.1); /* EM-rich high-side tail */
  assert_close(s.skew, ref->skew, 0, 0.08);
  double p = ref->p_above1;
  assert_close((double)above1 / n, p, 0, 0.003 + 4 * sqrt(p * (1 - p) / n));
  assert_close((double)in_ecal / n, 1.0 - exp(-1.101), 0, 4 * sqrt(0.667 * 0.333 / n));
  for (int k = 0; k < 6; k++)
    assert_close(layer_mean[k], ref->layer[k], 0, 0.005);
  free(ratio);
}

static void test_response_10_gev(void **state) {
  const response_ref r = {10, 0.733, 0.173, 0.32, 0.724, 0.559, 0.906, 0.069,
                          {.014, .187, .025, .423, .083, .002}};
  check_response(&r);
}

static void test_response_100_gev(void **state) {
  const response_ref r = {100, 0.813, 0.077, 0.14, 0.810, 0.735, 0.892, 0.007,
                          {.003, .160, .023, .455, .165, .007}};
  check_response(&r);
}

/* ---- conservation and bounds ------------------------------------------------------------ */
static void check_conservation(const char *profile, const char *mode) {
  pion_opts o;
  cnf_gen_calo_pion.opts_default(&o);
  strcpy(o.profile, profile);
  strcpy(o.energy_mode, mode);
  o.e_min = 0.2; /* low energies exercise range-out of the mip track */
  o.n = 20000;
  pion_run run;
  run_open(&run, &o);
  pion_detector det;
  pion_detector_init(&o, &det);
  double diff = 0, var = 0; /* sum of (E_l - V_l) and its expected variance */
  for (uint64_t i = 0; i < (uint64_t)o.n; i++) {
    run_event(&run, &o, i);
    double e = run.row[0][0], dep = 0, vis = 0;
    const double *ev = run.row[4];
    double f_em = ev[2], e_avail = ev[3], e_leak = ev[4], delta_h = ev[5];
    for (int k = 0; k < 6; k++) {
      double el = run.row[1][k], v = run.row[2][k], d = run.row[3][k];
      assert_true(isfinite(el) && el >= 0.0);
      assert_true(isfinite(v) && v >= 0.0);
      assert_true(isfinite(d) && d >= 0.0);
      dep += d;
      vis += v;
      diff += el - v;
      /* upper bound of the variance: all of V_l hadronic or all EM, whichever is larger */
      double a2 = fmax(det.a_em[k] * det.a_em[k], det.a_had[k] * det.a_had[k]);
      var += a2 * v;
    }
    assert_true(f_em >= 0.0 && f_em <= 1.0);
    assert_true(e_avail >= 0.0 && e_avail <= e);
    assert_true(e_leak >= 0.0 && e_leak <= e_avail * (1 + 1e-12));
    assert_close(dep + e_leak, e, 1e-12, 0); /* every GeV is deposited or leaks */
    /* visible energy: deposits weighted by 1/(e/mip) (mip part) or (1 + delta_h)/(e/h) */
    double boost = fmax(fmax(1.0 / o.ecal_e_mip, 1.0 / o.hcal_e_mip),
                        fmax(1.0, (1.0 + delta_h) / fmin(o.ecal_e_h, o.hcal_e_h)));
    assert_true(vis <= boost * dep * (1 + 1e-12));
  }
  /* the Gamma sampling preserves the mean: sum(E_l - V_l) ~ 0 within 5 sigma */
  assert_true(fabs(diff) < 5 * sqrt(var));
  cnf_gen_calo_pion.teardown(run.state);
}

static void test_energy_conservation(void **state) {
  check_conservation("split", "loguniform");
  check_conservation("bock", "uniform");
}

static void test_sampling_off_and_scale(void **state) {
  pion_opts o, o_off, o_pion;
  cnf_gen_calo_pion.opts_default(&o);
  o.n = 2000;
  o_off = o;
  o_off.sampling = 0;
  o_pion = o;
  strcpy(o_pion.scale, "pion");
  pion_run a, b, c;
  run_open(&a, &o);
  run_open(&b, &o_off);
  run_open(&c, &o_pion);
  for (uint64_t i = 0; i < (uint64_t)o.n; i++) {
    run_event(&a, &o, i);
    run_event(&b, &o_off, i);
    run_event(&c, &o_pion, i);
    for (int k = 0; k < 6; k++) {
      assert_true(b.row[1][k] == b.row[2][k]);   /* no sampling: E_l = V_l */
      assert_true(a.row[2][k] == b.row[2][k]);   /* same truth either way */
      assert_close(c.row[1][k], a.row[1][k] / 0.790, 1e-15, 0);
    }
  }
  cnf_gen_calo_pion.teardown(a.state);
  cnf_gen_calo_pion.teardown(b.state);
  cnf_gen_calo_pion.teardown(c.state);
}

/* ---- incident-energy modes -------------------------------------------------------------- */
static void test_energy_modes(void **state) {
  const double a = 1.0, b = 100.0;
  const int n = 50000;
  pion_opts o;
  cnf_gen_calo_pion.opts_default(&o);
  o.n = n;
  pion_run run;

  run_open(&run, &o); /* uniform */
  double s = 0, lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++) {
    run_event(&run, &o, (uint64_t)i);
    double e = run.row[0][0];
    s += e;
    lo = fmin(lo, e);
    hi = fmax(hi, e);
  }
  cnf_gen_calo_pion.teardown(run.state);
  assert_true(lo >= a && hi <= b);
  assert_close(s / n, (a + b) / 2, 0, 4 * (b - a) / sqrt(12.0 * n));

  strcpy(o.energy_mode, "loguniform");
  run_open(&run, &o);
  double sl = 0, se = 0, se2 = 0;
  for (int i = 0; i < n; i++) {
    run_event(&run, &o, (uint64_t)i);
    double e = run.row[0][0];
    assert_true(e >= a && e <= b);
    se += e;
    se2 += e * e;
    sl += log(e);
  }
  cnf_gen_calo_pion.teardown(run.state);
  double L = log(b / a);
  double mean = (b - a) / L, var = (b * b - a * a) / (2 * L) - mean * mean;
  assert_close(se / n, mean, 0, 4 * sqrt(var / n));
  assert_close(sl / n, 0.5 * (log(a) + log(b)), 0, 4 * L / sqrt(12.0 * n)); /* ln E uniform */
  assert_close(se2 / n, (b * b - a * a) / (2 * L), 0.03, 0);

  opts_fixed(&o, 37.5);
  o.n = 100;
  run_open(&run, &o);
  for (int i = 0; i < 100; i++) {
    run_event(&run, &o, (uint64_t)i);
    assert_true(run.row[0][0] == 37.5);
  }
  cnf_gen_calo_pion.teardown(run.state);
}

/* ---- reproducibility -------------------------------------------------------------------- */
static void test_event_independent_of_order(void **state) {
  pion_opts o;
  cnf_gen_calo_pion.opts_default(&o);
  strcpy(o.energy_mode, "loguniform");
  o.n = 300;
  const int n = 300, w = 1 + 6 + 6 + 6 + 6;
  double *fwd = malloc((size_t)n * w * sizeof *fwd);
  pion_run run, other;
  run_open(&run, &o);
  for (int i = 0; i < n; i++) {
    run_event(&run, &o, (uint64_t)i);
    double *p = fwd + (size_t)i * w;
    memcpy(p, run.row[0], sizeof(double));
    for (int k = 1; k < 5; k++)
      memcpy(p + 1 + 6 * (k - 1), run.row[k], 6 * sizeof(double));
  }
  /* a fresh state (as on another rank), visiting the indices backwards */
  run_open(&other, &o);
  for (int i = n - 1; i >= 0; i--) {
    run_event(&other, &o, (uint64_t)i);
    const double *p = fwd + (size_t)i * w;
    assert_memory_equal(p, other.row[0], sizeof(double));
    for (int k = 1; k < 5; k++)
      assert_memory_equal(p + 1 + 6 * (k - 1), other.row[k], 6 * sizeof(double));
  }
  /* a different seed changes the events */
  o.seed = 2;
  run_event(&run, &o, 0);
  assert_true(memcmp(fwd, run.row[0], sizeof(double)) != 0);
  cnf_gen_calo_pion.teardown(run.state);
  cnf_gen_calo_pion.teardown(other.state);
  free(fwd);
}

/* ---- option validation ------------------------------------------------------------------ */
static void expect_bad(const pion_opts *o, const char *needle) {
  cnf_sim_desc desc;
  void *st = NULL;
  cnf_error_clear();
  int rc = cnf_gen_calo_pion.setup(o, 0, 10, &desc, &st);
  assert_int_equal(rc, CNF_ERR_ARG);
  assert_null(st);
  const char *msg = cnf_error_message();
  assert_non_null(strstr(msg, needle));
  assert_null(strchr(msg, '\n'));
}

static void test_bad_options(void **state) {
  pion_opts o;
  cnf_gen_calo_pion.opts_default(&o);
  o.e_min = 100.0;
  expect_bad(&o, "-pion_emin < -pion_emax");
  cnf_gen_calo_pion.opts_default(&o);
  strcpy(o.energy_mode, "loguniform");
  o.e_min = -1.0;
  expect_bad(&o, "-pion_emin");
  cnf_gen_calo_pion.opts_default(&o);
  strcpy(o.energy_mode, "fixed");
  expect_bad(&o, "-pion_energy"); /* not given */
  o.energy = -10.0;
  expect_bad(&o, "-pion_energy");
  cnf_gen_calo_pion.opts_default(&o);
  strcpy(o.energy_mode, "gaussian");
  expect_bad(&o, "unknown -pion_energy_mode 'gaussian'");
  cnf_gen_calo_pion.opts_default(&o);
  strcpy(o.profile, "gflash");
  expect_bad(&o, "-pion_profile");
  cnf_gen_calo_pion.opts_default(&o);
  o.kappa = 1.5;
  expect_bad(&o, "-pion_kappa");
  cnf_gen_calo_pion.opts_default(&o);
  o.hcal_lar_mm = 0.0;
  expect_bad(&o, "-pion_hcal_lar_mm");
}

/* Every option in the table is named pion_*, points inside the struct and round-trips the
 * default the code uses. */
static void test_option_table(void **state) {
  const cnf_generator *g = cnf_generator_find("calo-pion");
  assert_ptr_equal(g, &cnf_gen_calo_pion);
  for (int i = 0; i < g->n_options; i++) {
    assert_int_equal(strncmp(g->options[i].name, "pion_", 5), 0);
    assert_true(g->options[i].offset < g->opts_size);
    assert_non_null(g->options[i].help);
  }
  pion_opts o;
  g->opts_default(&o);
  assert_int_equal(o.n, 100000);
  assert_string_equal(o.energy_mode, "uniform");
  assert_true(o.e_min == 1.0 && o.e_max == 100.0);
}

/* ---- finalize: derived constants attached to "layers" ----------------------------------- */
static void test_finalize_attributes(void **state) {
  pion_opts o;
  cnf_gen_calo_pion.opts_default(&o);
  o.n = 4;
  pion_run run;
  run_open(&run, &o);
  const char *path = testutil_tmp_path("pion_attr.h5");
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(f >= 0);
  hsize_t dims[2] = {4, 6};
  hid_t sp = H5Screate_simple(2, dims, NULL);
  hid_t ds = H5Dcreate2(f, "layers", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(ds >= 0);
  H5Dclose(ds);
  H5Sclose(sp);
  assert_int_equal(cnf_gen_calo_pion.finalize(&o, run.state, (int64_t)f, NULL), 0);
  double sf[6], z[7];
  ds = H5Dopen2(f, "layers", H5P_DEFAULT);
  hid_t at = H5Aopen(ds, "sampling_fraction", H5P_DEFAULT);
  assert_true(H5Aread(at, H5T_NATIVE_DOUBLE, sf) >= 0);
  H5Aclose(at);
  at = H5Aopen(ds, "layer_z_mm", H5P_DEFAULT);
  assert_true(H5Aread(at, H5T_NATIVE_DOUBLE, z) >= 0);
  H5Aclose(at);
  H5Dclose(ds);
  H5Fclose(f);
  remove(path);
  for (int k = 0; k < 3; k++) {
    assert_close(sf[k], 0.195, 0, 0.001);
    assert_close(sf[k + 3], 0.0132, 0, 0.0001);
  }
  const double zb[7] = {0, 90, 437, 480, 855, 1522, 2480};
  check_array("layer_z_mm", 7, z, zb, 0, 1e-9);
  /* finalize without a "layers" dataset fails cleanly */
  f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5E_BEGIN_TRY { assert_true(cnf_gen_calo_pion.finalize(&o, run.state, (int64_t)f, NULL) < 0); }
  H5E_END_TRY;
  H5Fclose(f);
  remove(path);
  cnf_gen_calo_pion.teardown(run.state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_detector_constants),
      cmocka_unit_test(test_gamma_p_closed_forms),
      cmocka_unit_test(test_fem_matches_groom),
      cmocka_unit_test(test_response_10_gev),
      cmocka_unit_test(test_response_100_gev),
      cmocka_unit_test(test_energy_conservation),
      cmocka_unit_test(test_sampling_off_and_scale),
      cmocka_unit_test(test_energy_modes),
      cmocka_unit_test(test_event_independent_of_order),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_option_table),
      cmocka_unit_test(test_finalize_attributes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
