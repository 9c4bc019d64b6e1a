/* Element-wise check of the MADE kernels, dump side.  Built twice (tests/cmake/made_kernels.cmake):
 * against the float library (run once on the SIMD path and once on the generic BLAS path) and
 * against the double library (the reference: generic path, the one the finite-difference tests
 * check).  Every run writes the same quantities for the same parameters and inputs; the
 * inputs and parameters are generated in double by a private generator and rounded to float
 * in BOTH builds, so the two libraries see bit-identical values and differ only in arithmetic.
 * tests/made_kernels_compare.c then checks every element.
 *
 * usage: made_kernels_dump OUTFILE simd|generic|auto
 * Cases:
 *   made_*  one MADE: out = cnf_made_forward, then cnf_made_backward with a fixed dout: the
 *           parameter gradients (every entry, masked ones included), dx and dc.  Shapes are the
 *           MADEs of architectures A (6-D, 5 cond, 2x128, P = 2), B (128-D, 3 cond, 2x196,
 *           P = 29), C (6-D, 1 cond, 2x64, P = 23) and two odd ones (widths 50 and 100, not
 *           multiples of 16; 3 and 1 hidden layers; D*P = 74 and 15).  n = 300 rows: two row
 *           tiles of 256 and a remainder that is not a multiple of the 8-row register block.
 *   flow_*  a whole flow: log p (cnf_flow_log_prob), the mean NLL's parameter gradients and
 *           condition gradients (cnf_flow_nll_backward) for the presets cnf_peer (A), flowi (C)
 *           and paraflow (B, its first two MAF blocks with their permutations: time).
 * File: a sequence of records  char name[48] | int64 count | count float64 values.
 */
#include "cnflow/flow.h"
#include "cnflow/nn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_LEN 48

/* splitmix64: the same stream in both builds (independent of cnf_real) */
static double uni(uint64_t *s, double lo, double hi) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const double u = (double)(z >> 11) * 0x1.0p-53;
  /* rounded to float: both libraries get exactly this value */
  return (double)(float)(lo + (hi - lo) * u);
}

static void fill(uint64_t *s, cnf_real *a, size_t n, double lo, double hi) {
  for (size_t i = 0; i < n; i++)
    a[i] = (cnf_real)uni(s, lo, hi);
}

static int put(FILE *fp, const char *name, size_t count, const cnf_real *v) {
  char nm[NAME_LEN] = {0};
  snprintf(nm, sizeof nm, "%s", name);
  const int64_t cnt = (int64_t)count;
  if (fwrite(nm, 1, NAME_LEN, fp) != NAME_LEN || fwrite(&cnt, sizeof cnt, 1, fp) != 1)
    return -1;
  for (size_t i = 0; i < count; i++) {
    const double d = (double)v[i];
    if (fwrite(&d, sizeof d, 1, fp) != 1)
      return -1;
  }
  return 0;
}

typedef struct made_case {
  const char *name;
  int D, C, H, L, P;
} made_case;

static const made_case made_cases[] = {
    {"made_A", 6, 5, 128, 2, 2},   {"made_B", 128, 3, 196, 2, 29}, {"made_C", 6, 1, 64, 2, 23},
    {"made_odd50", 37, 2, 50, 3, 2}, {"made_odd100", 5, 4, 100, 1, 3},
};

static int dump_made(FILE *fp, const made_case *mc, int n) {
  const int D = mc->D, C = mc->C, DP = mc->D * mc->P;
  cnf_made *m = NULL;
  int rc = cnf_made_create(D, C, mc->H, mc->L, mc->P, &m);
  if (rc)
    return rc;
  const size_t np = cnf_made_num_params(m);
  cnf_real *p = malloc(sizeof(cnf_real) * np), *g = calloc(np, sizeof(cnf_real));
  cnf_real *x = malloc(sizeof(cnf_real) * (size_t)n * D), *c = malloc(sizeof(cnf_real) * (size_t)n * C + 1);
  cnf_real *out = malloc(sizeof(cnf_real) * (size_t)n * DP), *dout = malloc(sizeof(cnf_real) * (size_t)n * DP);
  cnf_real *dx = malloc(sizeof(cnf_real) * (size_t)n * D), *dc = calloc((size_t)n * C + 1, sizeof(cnf_real));
  if (!p || !g || !x || !c || !out || !dout || !dx || !dc) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  uint64_t s = 12345u + (uint64_t)D * 7919u + (uint64_t)mc->H;
  /* weights ~ U(-a, a), a = 1.7/sqrt(fan in): ReLU layers keep O(1) activations, so the
   * outputs and gradients are O(1) and far from trivially small */
  for (int l = 0; l <= mc->L; l++) {
    const int fan = l == 0 ? D + C : mc->H, rows = l < mc->L ? mc->H : DP;
    const double a = 1.7 / sqrt((double)fan);
    fill(&s, p + cnf_made_offset_weight(m, l), (size_t)rows * fan, -a, a);
    fill(&s, p + cnf_made_offset_bias(m, l), (size_t)rows, -0.3, 0.3);
  }
  fill(&s, p + cnf_made_offset_wc(m), (size_t)DP * C, -0.5, 0.5);
  cnf_made_apply_mask(m, p);
  fill(&s, x, (size_t)n * D, -2, 2);
  fill(&s, c, (size_t)n * C, -1, 1);
  fill(&s, dout, (size_t)n * DP, -1, 1);
  CNF_CALL_GOTO(rc, done, cnf_made_forward(m, p, n, x, c, out));
  CNF_CALL_GOTO(rc, done, cnf_made_backward(m, p, n, x, c, dout, g, dx, C > 0 ? dc : NULL));
  char nm[NAME_LEN];
  snprintf(nm, sizeof nm, "%s/out", mc->name);
  rc |= put(fp, nm, (size_t)n * DP, out);
  snprintf(nm, sizeof nm, "%s/grad_params", mc->name);
  rc |= put(fp, nm, np, g);
  snprintf(nm, sizeof nm, "%s/dx", mc->name);
  rc |= put(fp, nm, (size_t)n * D, dx);
  snprintf(nm, sizeof nm, "%s/dc", mc->name);
  rc |= put(fp, nm, (size_t)n * C, dc);
  if (rc)
    rc = cnf_error_set(CNF_ERR_IO, "made_kernels_dump: write failed");
done:
  free(p), free(g), free(x), free(c), free(out), free(dout), free(dx), free(dc);
  cnf_made_free(&m);
  return rc;
}

typedef struct flow_case {
  const char *name, *preset;
  int n_maf;  /* keep the bijectors up to and including this many MAF blocks (0: all) */
  int n;
  double x_lo, x_hi;
  uint64_t seed; /* parameters and batch */
} flow_case;

static const flow_case flow_cases[] = {
    {"flow_A_cnf_peer", "cnf_peer", 0, 96, -0.95, 0.95, 777}, /* tanh in front */
    {"flow_C_flowi", "flowi", 0, 96, -3, 3, 778},
    {"flow_B_paraflow2", "paraflow", 2, 24, -3, 3, 779},
};

/* Output layers of every MAF block get larger values (random init is near the identity, where
 * the RQS/affine transforms would hardly depend on the MADE outputs); then every parameter is
 * rounded to float. */
static int flow_state(cnf_flow *f, uint64_t *s) {
  const size_t D = (size_t)cnf_flow_dim(f), C = (size_t)cnf_flow_cond_dim(f);
  cnf_real *params = cnf_flow_params(f);
  for (int k = 0; k < cnf_flow_num_bijectors(f); k++) {
    const cnf_bijector *b = cnf_flow_bijector(f, k);
    if (b->spec.kind != CNF_BIJ_MAF_AFFINE && b->spec.kind != CNF_BIJ_MAF_RQS)
      continue;
    const size_t H = (size_t)b->spec.hidden, L = (size_t)b->spec.n_hidden, K = (size_t)b->spec.bins;
    const size_t P = b->spec.kind == CNF_BIJ_MAF_RQS ? 3 * K - 1
                     : b->spec.scale_kind == CNF_AFFINE_SCALE_SHIFT ? 1 : 2;
    /* flow.h layout: W0 (H, D+C), b0, [W_l, b_l] x (L-1), Wout (D*P, H), bout, Wc (D*P, C) */
    cnf_real *p = params + b->param_offset + H * (D + C) + H + (L - 1) * (H * H + H);
    const double a = 1.0 / sqrt((double)H);
    fill(s, p, D * P * H, -a, a), p += D * P * H;
    fill(s, p, D * P, -0.3, 0.3), p += D * P;
    fill(s, p, D * P * C, -0.3, 0.3), p += D * P * C;
    if (p != params + b->param_offset + b->n_params)
      return cnf_error_set(CNF_ERR_FORMAT, "made_kernels_dump: bijector %d: flow.h layout "
                                           "gives a different size", k);
  }
  for (size_t i = 0; i < cnf_flow_num_params(f); i++)
    params[i] = (cnf_real)(float)params[i];
  return cnf_flow_params_changed(f);
}

static int dump_flow(FILE *fp, const flow_case *fc) {
  cnf_flow *core = NULL, *f = NULL;
  int rc = cnf_flow_create_preset(fc->preset, 0, 0, 7, &core);
  if (rc)
    return rc;
  const int D = cnf_flow_dim(core), C = cnf_flow_cond_dim(core), n = fc->n;
  int nb = cnf_flow_num_bijectors(core);
  if (fc->n_maf > 0) {
    int seen = 0, k = 0;
    for (; k < nb && seen < fc->n_maf; k++)
      seen += cnf_flow_bijector(core, k)->spec.kind == CNF_BIJ_MAF_RQS ||
              cnf_flow_bijector(core, k)->spec.kind == CNF_BIJ_MAF_AFFINE;
    nb = k;
  }
  cnf_bijector_spec *specs = malloc(sizeof *specs * (size_t)nb);
  cnf_real *x = malloc(sizeof(cnf_real) * (size_t)n * D), *c = malloc(sizeof(cnf_real) * ((size_t)n * C + 1));
  cnf_real *logp = malloc(sizeof(cnf_real) * n), *logp2 = malloc(sizeof(cnf_real) * n);
  cnf_real *dc = malloc(sizeof(cnf_real) * ((size_t)n * C + 1));
  if (!specs || !x || !c || !logp || !logp2 || !dc) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  for (int k = 0; k < nb; k++)
    specs[k] = cnf_flow_bijector(core, k)->spec; /* arrays borrowed from core, copied by create */
  CNF_CALL_GOTO(rc, done, cnf_flow_create(D, C, nb, specs, &f));
  CNF_CALL_GOTO(rc, done, cnf_flow_init_params(f, 11, 0));
  uint64_t s = fc->seed;
  CNF_CALL_GOTO(rc, done, flow_state(f, &s));
  fill(&s, x, (size_t)n * D, fc->x_lo, fc->x_hi);
  fill(&s, c, (size_t)n * C, -1, 1);
  CNF_CALL_GOTO(rc, done, cnf_flow_reserve(f, n));
  CNF_CALL_GOTO(rc, done, cnf_flow_log_prob(f, n, x, c, logp));
  double loss;
  cnf_flow_zero_grads(f);
  CNF_CALL_GOTO(rc, done, cnf_flow_nll_backward(f, n, x, c, NULL, &loss, logp2, dc));
  char nm[NAME_LEN];
  snprintf(nm, sizeof nm, "%s/logp", fc->name);
  rc |= put(fp, nm, (size_t)n, logp);
  snprintf(nm, sizeof nm, "%s/logp_train", fc->name);
  rc |= put(fp, nm, (size_t)n, logp2);
  snprintf(nm, sizeof nm, "%s/grad_params", fc->name);
  rc |= put(fp, nm, cnf_flow_num_params(f), cnf_flow_grads(f));
  snprintf(nm, sizeof nm, "%s/grad_c", fc->name);
  rc |= put(fp, nm, (size_t)n * C, dc);
  if (rc)
    rc = cnf_error_set(CNF_ERR_IO, "made_kernels_dump: write failed");
done:
  free(specs), free(x), free(c), free(logp), free(logp2), free(dc);
  cnf_flow_free(&f);
  cnf_flow_free(&core);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[2], "simd") && strcmp(argv[2], "generic") && strcmp(argv[2], "auto"))) {
    fprintf(stderr, "usage: made_kernels_dump OUTFILE simd|generic|auto\n");
    return 2;
  }
  if (strcmp(argv[2], "simd") == 0 && !cnf_made_simd_available()) {
    /* ctest SKIP_RETURN_CODE */
    printf("made_kernels_dump: SKIPPED: the SIMD MADE kernels are not available here "
           "(not compiled in or the CPU lacks AVX-512F)\n");
    return 77;
  }
  if (strcmp(argv[2], "auto") != 0 && cnf_made_set_simd(strcmp(argv[2], "simd") == 0) != 0) {
    fprintf(stderr, "made_kernels_dump: %s\n", cnf_error_message());
    return 1;
  }
  printf("made_kernels_dump: %s real, %s MADE path -> %s\n",
         sizeof(cnf_real) == 8 ? "double" : "float", cnf_made_simd() ? "SIMD" : "generic", argv[1]);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
  FILE *fp = fopen(tmp, "wb");
  if (!fp) {
    fprintf(stderr, "made_kernels_dump: %s: cannot create\n", tmp);
    return 1;
  }
  int rc = 0;
  for (size_t i = 0; !rc && i < sizeof made_cases / sizeof *made_cases; i++)
    rc = dump_made(fp, &made_cases[i], 300);
  for (size_t i = 0; !rc && i < sizeof flow_cases / sizeof *flow_cases; i++)
    rc = dump_flow(fp, &flow_cases[i]);
  if (fclose(fp) != 0 && !rc)
    rc = cnf_error_set(CNF_ERR_IO, "made_kernels_dump: %s: close failed", tmp);
  if (rc) {
    fprintf(stderr, "made_kernels_dump: %s\n", cnf_error_message());
    remove(tmp);
    return 1;
  }
  if (rename(tmp, argv[1]) != 0) {
    fprintf(stderr, "made_kernels_dump: cannot rename %s to %s\n", tmp, argv[1]);
    return 1;
  }
  return 0;
}
