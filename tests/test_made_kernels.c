/* MADE path selection in the float library (include/cnflow/nn.h: cnf_made_set_simd,
 * cnf_made_simd, cnf_made_simd_available, CNFLOW_SIMD), and the two paths against each other
 * in one process: forward outputs, parameter gradients, dx and dc of the SIMD kernels agree
 * with the generic BLAS path element-wise; a backward pass takes the path of its forward pass
 * even if the selection changed in between.  The SIMD half is skipped (with a message) where
 * the kernels are not compiled in or the CPU lacks AVX-512F.  The comparison with the double
 * library is tests/cmake/made_kernels.cmake. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnflow/nn.h"

typedef struct run {
  float *out, *g, *dx, *dc;
} run;

typedef struct setup {
  int D, C, H, L, P, n;
  cnf_made *m;
  float *p, *x, *c, *dout;
} setup;

static void setup_make(setup *s, int D, int C, int H, int L, int P, int n) {
  memset(s, 0, sizeof *s);
  s->D = D, s->C = C, s->H = H, s->L = L, s->P = P, s->n = n;
  assert_int_equal(cnf_made_create(D, C, H, L, P, &s->m), 0);
  const size_t np = cnf_made_num_params(s->m);
  s->p = malloc(sizeof(float) * np);
  s->x = malloc(sizeof(float) * (size_t)n * D);
  s->c = malloc(sizeof(float) * ((size_t)n * C + 1));
  s->dout = malloc(sizeof(float) * (size_t)n * D * P);
  assert_non_null(s->p), assert_non_null(s->x), assert_non_null(s->c), assert_non_null(s->dout);
  cnf_rng r;
  cnf_rng_init(&r, 5, (uint64_t)H, 0);
  cnf_made_init_params(s->m, s->p, &r, 0);
  for (size_t i = 0; i < np; i++)
    s->p[i] *= 1.5f; /* larger than the init: clearly non-linear */
  cnf_made_apply_mask(s->m, s->p);
  for (size_t i = 0; i < (size_t)n * D; i++)
    s->x[i] = (float)(4 * cnf_rng_uniform(&r) - 2);
  for (size_t i = 0; i < (size_t)n * C; i++)
    s->c[i] = (float)(2 * cnf_rng_uniform(&r) - 1);
  for (size_t i = 0; i < (size_t)n * D * P; i++)
    s->dout[i] = (float)(2 * cnf_rng_uniform(&r) - 1);
}

static void setup_drop(setup *s) {
  cnf_made_free(&s->m);
  free(s->p), free(s->x), free(s->c), free(s->dout);
}

/* forward on path fwd, then backward after switching the selection to bwd */
static void run_paths(setup *s, int fwd, int bwd, run *o) {
  const size_t np = cnf_made_num_params(s->m), n = (size_t)s->n;
  o->out = malloc(sizeof(float) * n * s->D * s->P);
  o->g = calloc(np, sizeof(float));
  o->dx = malloc(sizeof(float) * n * s->D);
  o->dc = calloc(n * s->C + 1, sizeof(float));
  assert_int_equal(cnf_made_set_simd(fwd), 0);
  assert_int_equal(cnf_made_simd(), fwd);
  assert_int_equal(cnf_made_forward(s->m, s->p, s->n, s->x, s->c, o->out), 0);
  assert_int_equal(cnf_made_set_simd(bwd), 0);
  assert_int_equal(cnf_made_backward(s->m, s->p, s->n, s->x, s->c, s->dout, o->g, o->dx, o->dc), 0);
}

static void run_free(run *o) { free(o->out), free(o->g), free(o->dx), free(o->dc); }

static void cmp(const char *what, size_t cnt, const float *a, const float *b, double rtol,
                double atol, int exact) {
  double *da = malloc(sizeof(double) * (cnt + 1)), *db = malloc(sizeof(double) * (cnt + 1));
  assert_non_null(da), assert_non_null(db);
  for (size_t i = 0; i < cnt; i++) {
    da[i] = a[i], db[i] = b[i];
    if (exact && memcmp(&a[i], &b[i], sizeof(float)) != 0)
      fail_msg("%s[%zu]: %.9g vs %.9g are not bit-identical", what, i, da[i], db[i]);
  }
  check_array(what, cnt, da, db, rtol, atol);
  free(da), free(db);
}

static void test_selection(void **state) {
  (void)state;
  const int avail = cnf_made_simd_available();
  assert_int_equal(cnf_made_set_simd(0), 0);
  assert_int_equal(cnf_made_simd(), 0);
  cnf_error_clear();
  if (avail) {
    assert_int_equal(cnf_made_set_simd(1), 0);
    assert_int_equal(cnf_made_simd(), 1);
  } else {
    assert_int_equal(cnf_made_set_simd(1), CNF_ERR_ARG);
    assert_non_null(strstr(cnf_error_message(), "AVX-512"));
    assert_int_equal(cnf_made_simd(), 0); /* unchanged */
    printf("test_made_kernels: SIMD path not available here (%s): SIMD half skipped\n",
           cnf_error_message());
  }
  /* -1: the default, re-reading CNFLOW_SIMD */
  assert_int_equal(setenv("CNFLOW_SIMD", "0", 1), 0);
  assert_int_equal(cnf_made_set_simd(-1), 0);
  assert_int_equal(cnf_made_simd(), 0);
  assert_int_equal(setenv("CNFLOW_SIMD", "1", 1), 0);
  assert_int_equal(cnf_made_set_simd(-1), 0);
  assert_int_equal(cnf_made_simd(), avail); /* 1 without the kernels: a warning, generic */
  assert_int_equal(setenv("CNFLOW_SIMD", "yes", 1), 0);
  assert_int_equal(cnf_made_set_simd(-1), 0);
  assert_int_equal(cnf_made_simd(), avail); /* not 0/1: warning, the automatic choice */
  assert_int_equal(unsetenv("CNFLOW_SIMD"), 0);
  assert_int_equal(cnf_made_set_simd(-1), 0);
  assert_int_equal(cnf_made_simd(), avail);
}

/* SIMD vs generic in the same binary (float both: same rounding model, different summation
 * orders): the tolerances of tests/made_kernels_compare.c.  Widths: 196 (7 panels, the last
 * 4 columns wide), 50 (a second panel of 18 columns: two vectors, the second masked), 24
 * (one partial vector); n = 300: two row tiles, a remainder of 44 rows. */
static void check_config(int D, int C, int H, int L, int P) {
  if (!cnf_made_simd_available()) {
    printf("test_made_kernels: SIMD not available: D=%d C=%d H=%d L=%d P=%d skipped\n", D, C, H,
           L, P);
    return;
  }
  setup s;
  setup_make(&s, D, C, H, L, P, 300);
  run gen, simd, mixed;
  run_paths(&s, 0, 0, &gen);
  run_paths(&s, 1, 1, &simd);
  run_paths(&s, 1, 0, &mixed); /* the backward must still run the SIMD kernels */
  const size_t n = (size_t)s.n, np = cnf_made_num_params(s.m);
  cmp("out", n * D * P, simd.out, gen.out, 2e-5, 2e-5, 0);
  cmp("grad_params", np, simd.g, gen.g, 1e-4, 5e-5, 0);
  cmp("dx", n * D, simd.dx, gen.dx, 5e-5, 5e-5, 0);
  cmp("dc", n * C, simd.dc, gen.dc, 5e-5, 5e-5, 0);
  /* masked weights: exact zeros in both */
  for (int l = 0; l <= L; l++) {
    const int rows = l < L ? H : D * P, cols = l == 0 ? D + C : H;
    const float *gs = simd.g + cnf_made_offset_weight(s.m, l);
    for (int r = 0; r < rows; r++)
      for (int j = 0; j < cols; j++)
        if (!cnf_made_connected(s.m, l, r, j) && gs[(size_t)r * cols + j] != 0.0f)
          fail_msg("SIMD gradient of masked weight (%d, %d) of layer %d is %g", r, j, l,
                   (double)gs[(size_t)r * cols + j]);
  }
  cmp("mixed out", n * D * P, mixed.out, simd.out, 0, 0, 1);
  cmp("mixed grad_params", np, mixed.g, simd.g, 0, 0, 1);
  cmp("mixed dx", n * D, mixed.dx, simd.dx, 0, 0, 1);
  cmp("mixed dc", n * C, mixed.dc, simd.dc, 0, 0, 1);
  run_free(&gen), run_free(&simd), run_free(&mixed);
  setup_drop(&s);
  assert_int_equal(cnf_made_set_simd(-1), 0);
}

/* grads NULL (likelihood scans: dx/dc only, no parameter gradients): on each available path,
 * dx and dc bit-identical to the pass with parameter gradients (the data gradients do not
 * depend on them: the skipped work must be exactly the parameter part). */
static void check_no_param_grads(int D, int C, int H, int L, int P) {
  setup s;
  setup_make(&s, D, C, H, L, P, 300);
  const size_t n = (size_t)s.n;
  for (int path = 0; path <= cnf_made_simd_available(); path++) {
    run full;
    run_paths(&s, path, path, &full);
    float *dx = malloc(sizeof(float) * n * D), *dc = calloc(n * C + 1, sizeof(float));
    assert_non_null(dx), assert_non_null(dc);
    assert_int_equal(cnf_made_forward(s.m, s.p, s.n, s.x, s.c, full.out), 0);
    assert_int_equal(cnf_made_backward(s.m, s.p, s.n, s.x, s.c, s.dout, NULL, dx, dc), 0);
    cmp(path ? "SIMD dx without grads" : "generic dx without grads", n * D, dx, full.dx, 0, 0,
        1);
    cmp(path ? "SIMD dc without grads" : "generic dc without grads", n * C, dc, full.dc, 0, 0,
        1);
    free(dx), free(dc);
    run_free(&full);
  }
  setup_drop(&s);
  assert_int_equal(cnf_made_set_simd(-1), 0);
}

static void test_no_param_grads(void **state) {
  (void)state;
  check_no_param_grads(6, 5, 128, 2, 2);
  check_no_param_grads(7, 1, 64, 2, 23); /* Flow-I's MADE: 7 layers, K = 8 bins */
  check_no_param_grads(37, 2, 50, 3, 2);
  check_no_param_grads(4, 1, 24, 1, 3);
}

/* cnf_made_set_param_cache: with the cache on, a forward after cnf_made_params_changed equals
 * a cache-off MADE's bit for bit; without the call it still uses the old copies (the cache is
 * real, and the contract matters); a different params pointer repacks by itself. */
static void test_param_cache(void **state) {
  (void)state;
  setup s;
  setup_make(&s, 6, 5, 128, 2, 2, 70);
  const size_t np = cnf_made_num_params(s.m), no = (size_t)s.n * 6 * 2;
  float *o_old = malloc(sizeof(float) * no), *o_new = malloc(sizeof(float) * no),
        *o_ref = malloc(sizeof(float) * no), *p2 = malloc(sizeof(float) * np);
  assert_non_null(o_old), assert_non_null(o_new), assert_non_null(o_ref), assert_non_null(p2);
  for (int path = 0; path <= cnf_made_simd_available(); path++) {
    assert_int_equal(cnf_made_set_simd(path), 0);
    cnf_made_set_param_cache(s.m, 1);
    memcpy(p2, s.p, sizeof(float) * np);
    assert_int_equal(cnf_made_forward(s.m, s.p, s.n, s.x, s.c, o_old), 0);
    for (size_t i = 0; i < np; i++)
      s.p[i] *= 0.75f;
    cnf_made_apply_mask(s.m, s.p);
    cnf_made_set_param_cache(s.m, 0); /* the reference: repacked from params on every call */
    assert_int_equal(cnf_made_forward(s.m, s.p, s.n, s.x, s.c, o_ref), 0);
    cnf_made_set_param_cache(s.m, 1);
    assert_int_equal(cnf_made_forward(s.m, s.p, s.n, s.x, s.c, o_new), 0); /* packs: new state */
    cmp("cached forward after enabling", no, o_new, o_ref, 0, 0, 1);
    memcpy(s.p, p2, sizeof(float) * np); /* back to the first values */
    assert_int_equal(cnf_made_forward(s.m, s.p, s.n, s.x, s.c, o_new), 0);
    if (path == 1) /* only the SIMD path packs: without params_changed its weight copies are
                    * stale (the biases are read from params), so this is not the fresh result */
      assert_memory_not_equal(o_new, o_old, sizeof(float) * no);
    cnf_made_params_changed(s.m);
    assert_int_equal(cnf_made_forward(s.m, s.p, s.n, s.x, s.c, o_new), 0);
    cmp("cached forward after params_changed", no, o_new, o_old, 0, 0, 1);
    for (size_t i = 0; i < np; i++) /* another buffer (the scaled values): repacks by itself */
      p2[i] *= 0.75f;
    cnf_made_apply_mask(s.m, p2);
    assert_int_equal(cnf_made_forward(s.m, p2, s.n, s.x, s.c, o_new), 0);
    cmp("cached forward, other params pointer", no, o_new, o_ref, 0, 0, 1);
    cnf_made_set_param_cache(s.m, 0);
  }
  free(o_old), free(o_new), free(o_ref), free(p2);
  setup_drop(&s);
  assert_int_equal(cnf_made_set_simd(-1), 0);
}

static void test_paths_A(void **state) { (void)state; check_config(6, 5, 128, 2, 2); }
static void test_paths_B_width196(void **state) { (void)state; check_config(20, 3, 196, 2, 5); }
static void test_paths_width50(void **state) { (void)state; check_config(37, 2, 50, 3, 2); }
static void test_paths_width24_nocond(void **state) { (void)state; check_config(4, 0, 24, 1, 3); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_selection),
      cmocka_unit_test(test_paths_A),
      cmocka_unit_test(test_paths_B_width196),
      cmocka_unit_test(test_paths_width50),
      cmocka_unit_test(test_paths_width24_nocond),
      cmocka_unit_test(test_no_param_grads),
      cmocka_unit_test(test_param_cache),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
