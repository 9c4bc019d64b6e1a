/* Adam/AdamW against closed forms, and each LR schedule against its formula; plateau and
 * early-stopping logic. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cnflow/optim.h"

/* f(p) = sum_i a_i (p_i - t_i)^2 / 2: gradient a_i (p_i - t_i) */
enum { NP = 6 };
static const double qa[NP] = {1.0, 10.0, 0.1, 3.0, 0.5, 100.0};
static const double qt[NP] = {1.0, -2.0, 0.5, 3.0, -0.25, 0.0};

static void quad_grad(const cnf_real *p, cnf_real *g) {
  for (int i = 0; i < NP; i++)
    g[i] = (cnf_real)(qa[i] * (p[i] - qt[i]));
}

static void test_adam_first_step_is_lr_sign(void **state) {
  cnf_adam_conf conf = cnf_adam_conf_default();
  cnf_adam a;
  assert_int_equal(cnf_adam_init(&a, NP, &conf), 0);
  cnf_real p[NP] = {0, 0, 0, 0, 0, 0}, g[NP];
  quad_grad(p, g);
  const double lr = 0.01;
  double norm;
  assert_int_equal(cnf_adam_step(&a, lr, p, g, &norm), 0);
  double want_norm = 0;
  for (int i = 0; i < NP; i++) {
    want_norm += (double)g[i] * g[i];
    /* bias correction makes step 1 exactly lr * g/(|g| + eps) */
    double sign = g[i] > 0 ? 1.0 : (g[i] < 0 ? -1.0 : 0.0);
    assert_close(p[i], -lr * sign, 1e-5, 0);
  }
  assert_close(norm, sqrt(want_norm), 1e-6, 0);
  /* step 2 closed form, parameter 0 */
  double g1 = g[0];
  cnf_real g2[NP];
  quad_grad(p, g2);
  double m = 0.9 * 0.1 * g1 + 0.1 * g2[0];
  double v = 0.999 * 0.001 * g1 * g1 + 0.001 * (double)g2[0] * g2[0];
  double mh = m / (1 - 0.81), vh = v / (1 - 0.999 * 0.999);
  double want = (double)p[0] - lr * mh / (sqrt(vh) + 1e-8);
  assert_int_equal(cnf_adam_step(&a, lr, p, g2, NULL), 0);
  assert_close(p[0], want, 1e-5, 1e-9);
  cnf_adam_free(&a);
}

static void test_adam_converges(void **state) {
  cnf_adam_conf conf = cnf_adam_conf_default();
  cnf_adam a;
  assert_int_equal(cnf_adam_init(&a, NP, &conf), 0);
  cnf_real p[NP] = {5, 5, 5, 5, 5, 5}, g[NP];
  for (int it = 0; it < 4000; it++) {
    quad_grad(p, g);
    double lr = it < 3000 ? 0.05 : 0.005;
    assert_int_equal(cnf_adam_step(&a, lr, p, g, NULL), 0);
  }
  for (int i = 0; i < NP; i++)
    assert_close(p[i], qt[i], 0, 2e-3);
  assert_int_equal(a.t, 4000);
  cnf_adam_free(&a);
}

static void test_adamw_decay_and_clipping(void **state) {
  /* zero gradient: AdamW only shrinks p by (1 - lr wd) per step (the Adam part is 0/eps = 0) */
  cnf_adam_conf conf = cnf_adam_conf_default();
  conf.weight_decay = 0.1;
  cnf_adam a;
  assert_int_equal(cnf_adam_init(&a, 2, &conf), 0);
  cnf_real p[2] = {2.0f, -1.0f}, g[2] = {0, 0};
  for (int k = 0; k < 3; k++)
    assert_int_equal(cnf_adam_step(&a, 0.5, p, g, NULL), 0);
  assert_close(p[0], 2.0 * pow(0.95, 3), 1e-6, 0);
  assert_close(p[1], -1.0 * pow(0.95, 3), 1e-6, 0);
  cnf_adam_free(&a);

  /* clipping rescales the whole gradient: with beta1 = 0, beta2 = 0 each step is lr g/|g|
   * elementwise anyway, so check via the second moment instead */
  conf = cnf_adam_conf_default();
  conf.clip_norm = 1.0;
  assert_int_equal(cnf_adam_init(&a, 2, &conf), 0);
  cnf_real q[2] = {0, 0}, gq[2] = {3.0f, 4.0f};
  double norm;
  assert_int_equal(cnf_adam_step(&a, 0.1, q, gq, &norm), 0);
  assert_close(norm, 5.0, 1e-6, 0);
  /* m = 0.1 * g * (1/5): clipped gradient (0.6, 0.8) */
  assert_close(a.m[0], 0.1 * 0.6, 1e-5, 0);
  assert_close(a.m[1], 0.1 * 0.8, 1e-5, 0);
  cnf_adam_free(&a);
}

static void test_adam_rejects_nan_gradient(void **state) {
  cnf_adam_conf conf = cnf_adam_conf_default();
  cnf_adam a;
  assert_int_equal(cnf_adam_init(&a, 2, &conf), 0);
  cnf_real p[2] = {1, 2}, g[2] = {NAN, 1};
  assert_int_equal(cnf_adam_step(&a, 0.1, p, g, NULL), CNF_ERR_NUMERIC);
  assert_true(p[0] == 1 && p[1] == 2 && a.t == 0 && a.m[1] == 0);
  cnf_adam_free(&a);
}

/* Live ranges: restricted to ranges, a step over a buffer whose other entries are zero with
 * zero gradients gives the full step's parameters and moments bit for bit (with weight decay
 * and with clipping too) and never touches the entries outside (poisoned with a value to see
 * it); bad ranges are refused. */
enum { NB = 203 };
static void test_adam_live_ranges(void **state) {
  const size_t r[] = {0, 5, 9, 40, 41, 42, 60, 130, 150, 203};
  const size_t nr = sizeof r / sizeof r[0] / 2;
  for (int variant = 0; variant < 3; variant++) {
    cnf_adam_conf conf = cnf_adam_conf_default();
    if (variant == 1)
      conf.weight_decay = 0.05;
    if (variant == 2)
      conf.clip_norm = 0.01; /* the norm here is ~0.3: clipping active */
    cnf_adam full, ranged;
    assert_int_equal(cnf_adam_init(&full, NB, &conf), 0);
    assert_int_equal(cnf_adam_init(&ranged, NB, &conf), 0);
    assert_int_equal(cnf_adam_live_count(&ranged), NB);
    assert_int_equal(cnf_adam_set_ranges(&ranged, nr, r), 0);
    assert_int_equal(cnf_adam_live_count(&ranged), 5 + 31 + 1 + 70 + 53);
    cnf_real pf[NB], pr[NB], g[NB];
    char inside[NB] = {0};
    for (size_t k = 0; k < nr; k++)
      for (size_t i = r[2 * k]; i < r[2 * k + 1]; i++)
        inside[i] = 1;
    for (size_t i = 0; i < NB; i++) {
      pf[i] = inside[i] ? (cnf_real)(0.01 * (double)((i * 37) % 101) - 0.505) : 0;
      g[i] = inside[i] ? (cnf_real)(0.001 * (double)((i * 53) % 97) - 0.0405) : 0;
      pr[i] = inside[i] ? pf[i] : 7.0f; /* outside the ranges: must stay untouched */
    }
    for (int step = 0; step < 5; step++) {
      double nf, nr_norm;
      assert_int_equal(cnf_adam_step(&full, 1e-2, pf, g, &nf), 0);
      assert_int_equal(cnf_adam_step(&ranged, 1e-2, pr, g, &nr_norm), 0);
      assert_close(nr_norm, nf, 1e-12, 0);
      for (size_t i = 0; i < NB; i++) {
        if (inside[i])
          assert_true(pr[i] == pf[i] && ranged.m[i] == full.m[i] && ranged.v[i] == full.v[i]);
        else
          assert_true(pr[i] == 7.0f && ranged.m[i] == 0 && ranged.v[i] == 0 && pf[i] == 0);
      }
    }
    cnf_adam_free(&full), cnf_adam_free(&ranged);
  }
  cnf_adam a;
  cnf_adam_conf conf = cnf_adam_conf_default();
  assert_int_equal(cnf_adam_init(&a, NB, &conf), 0);
  const size_t overlap[] = {0, 10, 5, 20}, empty[] = {3, 3}, outside[] = {10, NB + 1};
  assert_int_equal(cnf_adam_set_ranges(&a, 2, overlap), CNF_ERR_ARG);
  assert_int_equal(cnf_adam_set_ranges(&a, 1, empty), CNF_ERR_ARG);
  assert_int_equal(cnf_adam_set_ranges(&a, 1, outside), CNF_ERR_ARG);
  assert_int_equal(cnf_adam_live_count(&a), NB); /* unchanged: still everything */
  cnf_adam_free(&a);
}

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
/* Denormal gradients (g*g below FLT_MIN) are flushed inside the step only: the step stays
 * finite and matches the closed form of the normal entries, and the caller's floating-point
 * mode (MXCSR) is the same afterwards. */
static void test_adam_denormal_gradients(void **state) {
  cnf_adam_conf conf = cnf_adam_conf_default();
  cnf_adam a;
  assert_int_equal(cnf_adam_init(&a, 40, &conf), 0);
  cnf_real p[40], g[40];
  for (int i = 0; i < 40; i++) {
    p[i] = 0.5f;
    g[i] = i % 2 ? (cnf_real)1e-21 : (cnf_real)0.25; /* 1e-42: a float denormal square */
  }
#if defined(__SSE__)
  const unsigned csr = _mm_getcsr();
#endif
  assert_int_equal(cnf_adam_step(&a, 0.01, p, g, NULL), 0);
#if defined(__SSE__)
  assert_int_equal(_mm_getcsr(), csr);
#endif
  for (int i = 0; i < 40; i++) {
    assert_true(isfinite(p[i]));
    if (i % 2 == 0)
      assert_close(p[i], 0.5 - 0.01, 1e-6, 0); /* step 1 = lr * sign(g) */
    else
      assert_true(p[i] <= 0.5f && p[i] > 0.5f - 0.01f); /* at most a normal step */
  }
  cnf_adam_free(&a);
}

static void test_schedule_poly(void **state) {
  cnf_schedule_conf c = cnf_schedule_conf_default(CNF_SCHED_POLY);
  c.lr = 1e-3;
  c.decay_steps = 1000;
  cnf_schedule s;
  assert_int_equal(cnf_schedule_init(&s, &c), 0);
  assert_close(cnf_schedule_lr(&s, 0), 1e-3, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 250), (1e-3 - 1e-5) * sqrt(0.75) + 1e-5, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 1000), 1e-5, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 5000), 1e-5, 1e-12, 0);
  c.decay_steps = 0;
  assert_int_equal(cnf_schedule_init(&s, &c), CNF_ERR_ARG);
}

static void test_schedule_cosine_warm_restarts(void **state) {
  cnf_schedule_conf c = cnf_schedule_conf_default(CNF_SCHED_COSINE);
  c.lr = 1.0;
  c.t0_steps = 10;
  c.t_mult = 2;
  c.eta_min = 0.1;
  cnf_schedule s;
  assert_int_equal(cnf_schedule_init(&s, &c), 0);
  /* cycles [0,10), [10,30), [30,70) */
  assert_close(cnf_schedule_lr(&s, 0), 1.0, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 5), 0.1 + 0.9 * 0.5, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 10), 1.0, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 15), 0.1 + 0.9 * (1 + cos(M_PI * 5 / 20)) / 2, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 30), 1.0, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 69), 0.1 + 0.9 * (1 + cos(M_PI * 39 / 40)) / 2, 1e-12, 0);
  /* a step in a cycle longer than INT64_MAX (t_mult 1000: cycles of 10, 1e4, ..., 1e16 steps
   * end at 10010010010010010, the next one has 1e19): no int64 overflow in the cycle search */
  c.t_mult = 1000;
  assert_int_equal(cnf_schedule_init(&s, &c), 0);
  const int64_t start7 = 10010010010010010LL, big = INT64_MAX - 7;
  assert_close(cnf_schedule_lr(&s, start7), 1.0, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, big),
               0.1 + 0.9 * (1 + cos(M_PI * ((double)(big - start7) / 1e19))) / 2, 1e-9, 0);
  /* ParaFlow: T_0 = batches per epoch, T_mult 1, eta_min 0 */
  c.t_mult = 1;
  c.eta_min = 0;
  assert_int_equal(cnf_schedule_init(&s, &c), 0);
  assert_close(cnf_schedule_lr(&s, 23), (1 + cos(M_PI * 3 / 10)) / 2, 1e-12, 0);
}

static void test_schedule_onecycle_matches_torch(void **state) {
  cnf_schedule_conf c = cnf_schedule_conf_default(CNF_SCHED_ONECYCLE);
  c.lr = 1e-4;
  c.total_steps = 100;
  cnf_schedule s;
  assert_int_equal(cnf_schedule_init(&s, &c), 0);
  const double initial = 1e-4 / 25, final = initial / 1e4;
  /* torch: phase 1 ends at step 0.3*100 - 1 = 29 */
  assert_close(cnf_schedule_lr(&s, 0), initial, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 29), 1e-4, 1e-12, 0);
  double pct = 10.0 / 29.0;
  assert_close(cnf_schedule_lr(&s, 10), 1e-4 + (initial - 1e-4) / 2 * (cos(M_PI * pct) + 1),
               1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 99), final, 1e-9, 0);
  pct = (64.0 - 29.0) / (99.0 - 29.0);
  assert_close(cnf_schedule_lr(&s, 64), final + (1e-4 - final) / 2 * (cos(M_PI * pct) + 1),
               1e-12, 0);
  /* momentum moves opposite: 0.95 -> 0.85 -> 0.95 */
  assert_close(cnf_schedule_beta1(&s, 0, 0.9), 0.95, 1e-12, 0);
  assert_close(cnf_schedule_beta1(&s, 29, 0.9), 0.85, 1e-12, 0);
  assert_close(cnf_schedule_beta1(&s, 99, 0.9), 0.95, 1e-12, 0);
}

static void test_schedule_multistep_per_epoch(void **state) {
  cnf_schedule_conf c = cnf_schedule_conf_default(CNF_SCHED_MULTISTEP);
  c.lr = 1e-4;
  c.steps_per_epoch = 7;
  const int ms[5] = {5, 15, 40, 60, 120};
  c.n_milestones = 5;
  memcpy(c.milestones, ms, sizeof ms);
  cnf_schedule s;
  assert_int_equal(cnf_schedule_init(&s, &c), 0);
  assert_close(cnf_schedule_lr(&s, 4 * 7 + 6), 1e-4, 1e-12, 0);   /* epoch 4 */
  assert_close(cnf_schedule_lr(&s, 5 * 7), 0.5e-4, 1e-12, 0);     /* epoch 5 */
  assert_close(cnf_schedule_lr(&s, 40 * 7 + 3), 0.125e-4, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 149 * 7), 1e-4 / 32, 1e-12, 0);
  assert_close(cnf_schedule_beta1(&s, 3, 0.9), 0.9, 0, 0);
}

static void test_plateau_lowers_peak_and_early_stopping(void **state) {
  cnf_schedule_conf c = cnf_schedule_conf_default(CNF_SCHED_COSINE);
  c.lr = 1e-3;
  c.t0_steps = 4;
  c.plateau_patience = 2;
  c.early_stop_patience = 4;
  cnf_schedule s;
  assert_int_equal(cnf_schedule_init(&s, &c), 0);
  /* improving epochs: nothing changes */
  assert_int_equal(cnf_schedule_epoch_end(&s, 10.0), 0);
  assert_int_equal(cnf_schedule_epoch_end(&s, 9.0), 0);
  assert_true(s.improved);
  assert_int_equal(s.best_epoch, 1);
  /* 3 bad epochs > patience 2: peak halves at the third */
  assert_int_equal(cnf_schedule_epoch_end(&s, 9.0), 0);
  assert_int_equal(cnf_schedule_epoch_end(&s, 9.5), 0);
  assert_close(cnf_schedule_lr(&s, 0), 1e-3, 1e-12, 0);
  assert_int_equal(cnf_schedule_epoch_end(&s, 9.0), 0);
  assert_close(cnf_schedule_lr(&s, 0), 0.5e-3, 1e-12, 0);
  assert_close(cnf_schedule_lr(&s, 2), 0.25e-3, 1e-12, 0); /* cosine half-way of the new peak */
  /* a tiny improvement below the relative threshold is not an improvement for the plateau rule
   * but is a new best for early stopping (strictly lower) */
  assert_int_equal(cnf_schedule_epoch_end(&s, 9.0 * (1 - 1e-5)), 0);
  assert_true(s.improved);
  assert_int_equal(s.plateau_bad_epochs, 1);
  /* 4 epochs without a new best: stop at the fourth */
  assert_int_equal(cnf_schedule_epoch_end(&s, 20.0), 0);
  assert_int_equal(cnf_schedule_epoch_end(&s, NAN), 0);
  assert_int_equal(cnf_schedule_epoch_end(&s, 20.0), 0);
  assert_int_equal(cnf_schedule_epoch_end(&s, 20.0), 1);
  assert_int_equal(s.best_epoch, 5);
  assert_int_equal(s.epoch, 10);
  assert_string_equal(cnf_schedule_kind_name(CNF_SCHED_ONECYCLE), "onecycle");
  assert_int_equal(cnf_schedule_kind_from_name("multistep"), CNF_SCHED_MULTISTEP);
  assert_int_equal(cnf_schedule_kind_from_name("nope"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adam_first_step_is_lr_sign),
      cmocka_unit_test(test_adam_converges),
      cmocka_unit_test(test_adamw_decay_and_clipping),
      cmocka_unit_test(test_adam_live_ranges),
      cmocka_unit_test(test_adam_denormal_gradients),
      cmocka_unit_test(test_adam_rejects_nan_gradient),
      cmocka_unit_test(test_schedule_poly),
      cmocka_unit_test(test_schedule_cosine_warm_restarts),
      cmocka_unit_test(test_schedule_onecycle_matches_torch),
      cmocka_unit_test(test_schedule_multistep_per_epoch),
      cmocka_unit_test(test_plateau_lowers_peak_and_early_stopping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
