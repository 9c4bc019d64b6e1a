/* Golden test, C side: for every flow preset, for chains with the fixed preprocessing bijectors
 * that `cnflow train` puts in front (src/train/prep.c: cnf, flowi, paraflow, regress with its
 * shift-only maf_affine), and for two hand-made chains (mixed kinds and settings; no
 * conditions), build the flow, give it a strongly non-linear random state (random hidden
 * layers, larger output layers, non-zero ActNorm), save the model file and dump log p(x | c),
 * the mean NLL and its gradients (all parameters, raw conditions) for a fixed batch inside the
 * support, and the sampling direction from fixed latents.
 * tests/golden_compare.py loads each model file with the self-contained PyTorch implementation
 * analysis/cnflow_torch.py and compares with autograd.
 *
 * usage: golden_dump OUTDIR [NAME...]     (default: every case; names in `cases` below)
 * writes OUTDIR/model_<NAME>.h5 and OUTDIR/golden_<NAME>.h5:
 *   x (n, D), c (n, C) raw conditions, logp (n) from cnf_flow_log_prob, logp_train (n) from
 *   cnf_flow_nll_backward, grad_params (n_params) = d mean NLL / d params, grad_c (n, C) =
 *   d mean NLL / d c_raw, z (n, D) fixed latents, x_inv (n, D) and logdet_inv (n) =
 *   log|det dx/dz| from cnf_flow_inverse (all float64); attrs name, preset, real_type, loss,
 *   expect_tails (1: some RQS inputs of the batch lie outside [-B, B], so the comparison
 *   covers the tails too). */
#include "cnflow/flow.h"

#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum golden_prep {
  PREP_NONE, PREP_CNF, PREP_FLOWI, PREP_PARAFLOW, PREP_REGRESS, PREP_MIXED, PREP_NOCOND
} golden_prep;

typedef struct golden_case {
  const char *name;
  const char *preset; /* core architecture (NULL: hand-made chain, see golden_build) */
  int D, C;           /* 0: the preset's default */
  golden_prep prep;
  int n;              /* events in the batch */
  double out_scale;   /* output-layer weights ~ N(0, out_scale^2 / H), biases 0.3 out_scale */
  int expect_tails;
} golden_case;

static const golden_case cases[] = {
    {"cnf_peer", "cnf_peer", 0, 0, PREP_NONE, 64, 0.3, 0},
    {"cnf", "cnf", 0, 0, PREP_NONE, 64, 1.0, 0},
    {"paraflow", "paraflow", 0, 0, PREP_NONE, 16, 1.0, 0},
    {"flowi", "flowi", 0, 0, PREP_NONE, 64, 1.0, 0},
    {"flowi_paper", "flowi_paper", 0, 0, PREP_NONE, 64, 1.0, 1},
    {"caloinn", "caloinn", 7, 1, PREP_NONE, 64, 1.0, 1},
    {"toy", "toy", 0, 0, PREP_NONE, 64, 1.0, 1},
    {"prep_cnf", "cnf", 0, 0, PREP_CNF, 64, 1.0, 0},
    {"prep_flowi", "flowi", 0, 0, PREP_FLOWI, 64, 1.0, 0},
    {"prep_paraflow", "paraflow", 16, 3, PREP_PARAFLOW, 32, 1.0, 0},
    {"prep_regress", NULL, 1, 5, PREP_REGRESS, 64, 1.0, 0},
    {"mixed", NULL, 5, 2, PREP_MIXED, 64, 1.0, 1},
    {"nocond", NULL, 3, 0, PREP_NOCOND, 32, 1.0, 1},
};

/* CNF target scales as `cnflow train -target_scale 20,0.01,0.005` (repeated over 6 targets) */
static const double cnf_target_scale[3] = {20.0, 0.01, 0.005};
/* paraflow preprocessing: the training range of the conditions (energy first) */
static const double para_lo[3] = {1e3, 0.5, 0.2}, para_hi[3] = {1e6, 2.0, 5.0};

#define GOLDEN_MAX_BIJ 128

/* The chain of one case: preprocessing bijectors in front of the preset's, as prep.c builds
 * them (constants fixed here instead of measured on a training split), and the condition
 * transform. */
static int golden_build(const golden_case *gc, cnf_flow **out) {
  cnf_bijector_spec specs[GOLDEN_MAX_BIJ];
  cnf_flow *core = NULL;
  int n = 0, rc = 0, D = gc->D, C = gc->C;
  static double pre_shift[128], pre_scale[128];
  static int perm[128];
  memset(specs, 0, sizeof specs);
  if (gc->preset) {
    CNF_CALL(cnf_flow_create_preset(gc->preset, gc->D, gc->C, 7, &core));
    D = cnf_flow_dim(core);
    C = cnf_flow_cond_dim(core);
  }
  switch (gc->prep) {
  case PREP_CNF: /* [affine_fixed(0, target_scale), (the preset's) tanh, core] */
    for (int j = 0; j < D; j++) {
      pre_shift[j] = 0;
      pre_scale[j] = cnf_target_scale[j % 3];
    }
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = pre_shift,
                                     .scale = pre_scale};
    break;
  case PREP_FLOWI: /* [log(eps), affine_fixed(ln10 - ln u, ln10 / 2), core], u = 1 MeV */
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_LOG, .eps = 1e-8};
    for (int j = 0; j < D; j++) {
      pre_shift[j] = M_LN10;
      pre_scale[j] = M_LN10 / 2;
    }
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = pre_shift,
                                     .scale = pre_scale};
    break;
  case PREP_PARAFLOW: { /* [cond_scale(E), logit(alpha), core] */
    const double sh = 0.5 * (log(para_lo[0]) + log(para_hi[0]));
    const double sc = 2.0 / (log(para_hi[0]) - log(para_lo[0]));
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_COND_SCALE, .cond_index = 0,
                                     .cond_a = 1.0 / sc, .cond_b = sh};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_LOGIT, .alpha = 1e-6};
    break;
  }
  case PREP_REGRESS: /* [log(0), affine_fixed(ln(10 GeV / u), ln10), maf_affine shift 3x256] */
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_LOG, .eps = 0};
    pre_shift[0] = log(1e4), pre_scale[0] = M_LN10; /* u = 1 MeV */
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = pre_shift,
                                     .scale = pre_scale};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 256, .n_hidden = 3,
                                     .scale_kind = CNF_AFFINE_SCALE_SHIFT};
    break;
  case PREP_MIXED: { /* every trainable kind with non-default settings, D odd, 2 conditions */
    for (int j = 0; j < D; j++) {
      pre_shift[j] = 0.1 * j - 0.2;
      pre_scale[j] = j % 2 ? -1.5 : 0.7; /* a negative scale: log|scale| */
    }
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = pre_shift,
                                     .scale = pre_scale};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_ACTNORM};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 16, .n_hidden = 2,
                                     .bins = 5, .tail_bound = 3.0, .min_bin_width = 1e-2,
                                     .min_bin_height = 2e-2, .min_derivative = 5e-2,
                                     .tails = CNF_TAILS_ELEMENT};
    const int p[5] = {3, 0, 4, 1, 2};
    memcpy(perm, p, sizeof p);
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = perm};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 24, .n_hidden = 1,
                                     .scale_kind = CNF_AFFINE_SCALE_EXP_TANH};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_RQS, .hidden = 16, .n_hidden = 3,
                                     .bins = 6, .tail_bound = 4.0, .min_bin_width = 2e-2,
                                     .min_bin_height = 5e-3, .min_derivative = 1e-2};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 8, .n_hidden = 2,
                                     .scale_kind = CNF_AFFINE_SCALE_EXP};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 12, .n_hidden = 2,
                                     .scale_kind = CNF_AFFINE_SCALE_SHIFT};
    break;
  }
  case PREP_NOCOND: /* C = 0: no condition columns anywhere */
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_RQS, .hidden = 12, .n_hidden = 2,
                                     .bins = 4, .tail_bound = 2.5, .min_bin_width = 1e-3,
                                     .min_bin_height = 1e-3, .min_derivative = 1e-3};
    perm[0] = 2, perm[1] = 0, perm[2] = 1;
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_PERMUTE, .perm = perm};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_COUPLING_RQS, .hidden = 10, .n_hidden = 1,
                                     .bins = 3, .tail_bound = 2.0, .min_bin_width = 1e-3,
                                     .min_bin_height = 1e-3, .min_derivative = 1e-3,
                                     .tails = CNF_TAILS_EVENT};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE, .hidden = 6, .n_hidden = 1,
                                     .scale_kind = CNF_AFFINE_SCALE_EXP_TANH};
    break;
  default: break;
  }
  if (core) /* the preset's specs (their arrays are copied by cnf_flow_create) */
    for (int k = 0; k < cnf_flow_num_bijectors(core) && n < GOLDEN_MAX_BIJ; k++)
      specs[n++] = cnf_flow_bijector(core, k)->spec;
  rc = cnf_flow_create(D, C, n, specs, out);
  cnf_flow_free(&core);
  if (rc < 0)
    return rc;
  /* condition transforms: non-trivial wherever there are conditions */
  cnf_cond_map map[8] = {0};
  double shift[8] = {0}, scl[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  switch (gc->prep) {
  case PREP_NONE:
    if (strcmp(gc->name, "cnf_peer") == 0) {
      const double s5[5] = {0.1, -0.2, 0.0, 0.3, 0.0}, c5[5] = {1.5, 0.5, 1.0, 2.0, 1.0};
      memcpy(shift, s5, sizeof s5);
      memcpy(scl, c5, sizeof c5);
    } else if (strcmp(gc->name, "flowi") == 0 || strcmp(gc->name, "flowi_paper") == 0) {
      map[0] = CNF_COND_LOG10; /* log10 of the raw energy, then centred */
      shift[0] = 1.0;
    } else if (strcmp(gc->name, "caloinn") == 0) {
      map[0] = CNF_COND_LOG;
      shift[0] = 2.0;
      scl[0] = 0.5;
    } else if (strcmp(gc->name, "paraflow") == 0) {
      shift[1] = 0.5;
      scl[2] = -2.0;
    }
    break;
  case PREP_CNF: /* c' = c / absmax(c) over the (here: nominal) training range of 3 */
    for (int j = 0; j < C; j++)
      scl[j] = 1.0 / 3.0;
    break;
  case PREP_FLOWI: /* c' = log10(E / 10 GeV), E in MeV */
    map[0] = CNF_COND_LOG10;
    shift[0] = 4.0;
    break;
  case PREP_PARAFLOW:
    for (int j = 0; j < C; j++) {
      map[j] = CNF_COND_LOG;
      shift[j] = 0.5 * (log(para_lo[j]) + log(para_hi[j]));
      scl[j] = 2.0 / (log(para_hi[j]) - log(para_lo[j]));
    }
    break;
  case PREP_REGRESS: /* layer energies (MeV) in units of 100 GeV */
    for (int j = 0; j < C; j++)
      scl[j] = 1e-5;
    break;
  case PREP_MIXED:
    map[0] = CNF_COND_LOG;
    shift[0] = 0.2, scl[0] = 1.3;
    shift[1] = -0.4, scl[1] = 0.8;
    break;
  default: break;
  }
  if (C > 0 && (rc = cnf_flow_set_cond_transform(*out, map, shift, scl)) < 0)
    cnf_flow_free(out);
  return rc;
}

/* A batch inside the support of each chain (raw observables and raw conditions); where the
 * case expects tails, every few events are scaled up beyond the spline bound. */
static void golden_data(const golden_case *gc, int n, int D, int C, cnf_real *x, cnf_real *c) {
  const char *nm = gc->name;
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, 2024, (uint64_t)i, 0);
    const double big = gc->expect_tails && i % 4 == 0 ? 4.0 : 1.0;
    for (int j = 0; j < D; j++) {
      const double z = cnf_rng_normal(&r);
      double v;
      if (gc->prep == PREP_CNF)
        v = cnf_target_scale[j % 3] * 0.98 * tanh(z);
      else if (gc->prep == PREP_REGRESS)
        v = pow(10.0, 4.0 + 0.8 * z); /* incident energy in MeV, around 10 GeV */
      else if (gc->prep == PREP_FLOWI)
        v = pow(10.0, 1.0 + 1.5 * z); /* MeV > 0 */
      else if (gc->prep == PREP_PARAFLOW)
        v = 0.0; /* set below from the energy */
      else if (strcmp(nm, "cnf_peer") == 0 || strcmp(nm, "cnf") == 0)
        v = 0.98 * tanh(z);
      else if (strcmp(nm, "paraflow") == 0)
        v = 1.2 * z;
      else if (gc->prep == PREP_NOCOND)
        v = 1.0 * z * big;
      else
        v = (strcmp(nm, "caloinn") == 0 || gc->prep == PREP_MIXED ? 2.0 : 3.0) * z * big;
      x[(size_t)i * D + j] = (cnf_real)v;
    }
    for (int j = 0; j < C; j++) {
      const double u = cnf_rng_uniform(&r);
      double v;
      if (gc->prep == PREP_FLOWI)
        v = pow(10.0, 3.0 + 3.0 * u); /* 1 GeV .. 1 TeV in MeV */
      else if (gc->prep == PREP_REGRESS) /* layer energies: fractions of the incident energy */
        v = x[(size_t)i * D] * (0.02 + 0.3 * u);
      else if (gc->prep == PREP_PARAFLOW)
        v = exp(log(para_lo[j]) + u * (log(para_hi[j]) - log(para_lo[j])));
      else if (strcmp(nm, "flowi") == 0 || strcmp(nm, "flowi_paper") == 0)
        v = pow(10.0, 2.0 * u);
      else if (strcmp(nm, "caloinn") == 0 || (gc->prep == PREP_MIXED && j == 0))
        v = exp(2.0 * u);
      else
        v = (gc->prep == PREP_CNF ? 3.0 : 1.0) * (2.0 * u - 1.0) * 1.5;
      c[(size_t)i * C + j] = (cnf_real)v;
    }
    if (gc->prep == PREP_PARAFLOW) /* voxel energies: fractions of the incident energy */
      for (int j = 0; j < D; j++)
        x[(size_t)i * D + j] = (cnf_real)(c[(size_t)i * C] * (1e-4 + 0.3 * cnf_rng_uniform(&r)));
  }
}

static void fill_normal(cnf_rng *r, cnf_real *p, size_t n, double sd) {
  for (size_t e = 0; e < n; e++)
    p[e] = (cnf_real)(cnf_rng_normal(r) * sd);
}

/* Overwrite every output layer (MADE: Wout, bout, Wc; coupling subnet: Wout, bout) with larger
 * random values so that the comparison exercises strongly non-linear transforms (random init is
 * near the identity), and give every ActNorm a non-trivial loc and log-scale;
 * cnf_flow_params_changed re-applies the masks. */
static int golden_perturb(cnf_flow *f, double scale) {
  const size_t D = (size_t)cnf_flow_dim(f), C = (size_t)cnf_flow_cond_dim(f);
  cnf_real *params = cnf_flow_params(f);
  cnf_rng r;
  cnf_rng_init(&r, 99, 0, 0);
  for (int k = 0; k < cnf_flow_num_bijectors(f); k++) {
    const cnf_bijector *b = cnf_flow_bijector(f, k);
    const size_t H = (size_t)b->spec.hidden, L = (size_t)b->spec.n_hidden;
    const size_t K = (size_t)b->spec.bins;
    cnf_real *p = params + b->param_offset;
    switch (b->spec.kind) {
    case CNF_BIJ_MAF_AFFINE:
    case CNF_BIJ_MAF_RQS: {
      /* P: affine (m, u), shift-only m, RQS 3K - 1 */
      const size_t P = b->spec.kind == CNF_BIJ_MAF_RQS                  ? 3 * K - 1
                       : b->spec.scale_kind == CNF_AFFINE_SCALE_SHIFT ? 1
                                                                        : 2;
      /* flow.h layout: W0 (H, D+C), b0, [W_l, b_l] x (L-1), Wout (D*P, H), bout, Wc (D*P, C) */
      p += H * (D + C) + H + (L - 1) * (H * H + H);
      fill_normal(&r, p, D * P * H, scale / sqrt((double)H)), p += D * P * H;
      fill_normal(&r, p, D * P, 0.3 * scale), p += D * P;
      fill_normal(&r, p, D * P * C, 0.3 * scale), p += D * P * C;
      break;
    }
    case CNF_BIJ_COUPLING_RQS: {
      const size_t d1 = (D + 1) / 2, d2 = D / 2, P = 3 * K - 1;
      /* W0 (H, d1+C), b0, [W_l, b_l] x (L-1), Wout (d2*P, H), bout (d2*P) */
      p += H * (d1 + C) + H + (L - 1) * (H * H + H);
      fill_normal(&r, p, d2 * P * H, scale / sqrt((double)H)), p += d2 * P * H;
      fill_normal(&r, p, d2 * P, 0.3 * scale), p += d2 * P;
      break;
    }
    case CNF_BIJ_ACTNORM: /* loc (D), log_scale (D) */
      fill_normal(&r, p, D, 0.5), p += D;
      fill_normal(&r, p, D, 0.3), p += D;
      break;
    default: break;
    }
    if (p != params + b->param_offset + b->n_params) {
      fprintf(stderr, "golden_dump: bijector %d (%s): flow.h layout gives a different size\n", k,
              cnf_bijector_kind_name(b->spec.kind));
      return CNF_ERR_FORMAT;
    }
  }
  return cnf_flow_params_changed(f);
}

/* Write a float64 dataset (rows) for cols < 0, else (rows, cols) (cols may be 0: no
 * conditions). */
static int h5_write(hid_t file, const char *name, size_t rows, long cols, const cnf_real *v) {
  const size_t count = rows * (cols >= 0 ? (size_t)cols : 1);
  double *d = malloc(sizeof(double) * (count + 1));
  if (!d)
    return -1;
  for (size_t i = 0; i < count; i++)
    d[i] = (double)v[i];
  hsize_t dims[2] = {rows, cols >= 0 ? (hsize_t)cols : 0};
  hid_t space = H5Screate_simple(cols >= 0 ? 2 : 1, dims, NULL);
  hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = ds < 0 ? -1 : (count ? H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, d) : 0);
  if (ds >= 0)
    H5Dclose(ds);
  H5Sclose(space);
  free(d);
  return st < 0 ? -1 : 0;
}

static int h5_attr_str(hid_t obj, const char *name, const char *val) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(val) + 1);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, t, val);
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  return st < 0 ? -1 : 0;
}

static int h5_attr_f64(hid_t obj, const char *name, double v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(sp);
  return st < 0 ? -1 : 0;
}

static int golden_run(const golden_case *gc, const char *dir) {
  cnf_flow *f = NULL;
  char path[1024];
  CNF_CALL(golden_build(gc, &f));
  const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f), n = gc->n;
  const size_t np = cnf_flow_num_params(f);
  int rc = 0;
  cnf_real *x = malloc(sizeof(cnf_real) * (size_t)n * D);
  cnf_real *c = malloc(sizeof(cnf_real) * ((size_t)n * C + 1));
  cnf_real *logp = malloc(sizeof(cnf_real) * n), *logp2 = malloc(sizeof(cnf_real) * n);
  cnf_real *dc = malloc(sizeof(cnf_real) * ((size_t)n * C + 1));
  cnf_real *z = malloc(sizeof(cnf_real) * (size_t)n * D), *xs = malloc(sizeof(cnf_real) * (size_t)n * D);
  cnf_real *ldi = malloc(sizeof(cnf_real) * n);
  if (!x || !c || !logp || !logp2 || !dc || !z || !xs || !ldi) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  CNF_CALL_GOTO(rc, done, cnf_flow_init_params(f, 11, 0));
  CNF_CALL_GOTO(rc, done, golden_perturb(f, gc->out_scale));
  snprintf(path, sizeof path, "%s/model_%s.h5", dir, gc->name);
  cnf_model_provenance prov = {.seed = 11};
  snprintf(prov.options, sizeof prov.options, "golden_dump %s", gc->name);
  CNF_CALL_GOTO(rc, done, cnf_flow_save(f, path, &prov));

  golden_data(gc, n, D, C, x, c);
  /* sampling direction from fixed latents (half the events at 2 sigma: steep regions too) */
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, 4242, (uint64_t)i, 0);
    for (int j = 0; j < D; j++)
      z[(size_t)i * D + j] = (cnf_real)(cnf_rng_normal(&r) * (i % 2 ? 2.0 : 1.0));
  }
  CNF_CALL_GOTO(rc, done, cnf_flow_inverse(f, n, z, c, xs, ldi));
  CNF_CALL_GOTO(rc, done, cnf_flow_log_prob(f, n, x, c, logp));
  double loss;
  cnf_flow_zero_grads(f);
  CNF_CALL_GOTO(rc, done, cnf_flow_nll_backward(f, n, x, c, NULL, &loss, logp2, C > 0 ? dc : NULL));

  snprintf(path, sizeof path, "%s/golden_%s.h5", dir, gc->name);
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    rc = cnf_error_set(CNF_ERR_IO, "cannot create %s", path);
    goto done;
  }
  int bad = h5_write(file, "x", n, D, x) || h5_write(file, "c", n, C, c) ||
            h5_write(file, "logp", n, -1, logp) || h5_write(file, "logp_train", n, -1, logp2) ||
            h5_write(file, "grad_params", np, -1, cnf_flow_grads(f)) ||
            h5_write(file, "grad_c", n, C, dc) || h5_write(file, "z", n, D, z) ||
            h5_write(file, "x_inv", n, D, xs) || h5_write(file, "logdet_inv", n, -1, ldi) ||
            h5_attr_str(file, "name", gc->name) ||
            h5_attr_str(file, "preset", gc->preset                 ? gc->preset
                                        : gc->prep == PREP_REGRESS ? "train -prep regress chain"
                                                                   : "hand-made chain") ||
            h5_attr_str(file, "real_type", CNF_REAL_IS_DOUBLE ? "float64" : "float32") ||
            h5_attr_f64(file, "loss", loss) ||
            h5_attr_f64(file, "expect_tails", gc->expect_tails);
  H5Fclose(file);
  if (bad) {
    rc = cnf_error_set(CNF_ERR_IO, "cannot write %s", path);
    goto done;
  }
  printf("golden_dump: %s: %d bijectors, %d events, %zu parameters, mean NLL %.6f -> %s\n",
         gc->name, cnf_flow_num_bijectors(f), n, np, loss, path);
done:
  free(x);
  free(c);
  free(logp);
  free(logp2);
  free(dc);
  free(z);
  free(xs);
  free(ldi);
  cnf_flow_free(&f);
  return rc;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const size_t n_cases = sizeof cases / sizeof cases[0];
  if (argc < 2) {
    fprintf(stderr, "usage: golden_dump OUTDIR [NAME ...]   NAME in");
    for (size_t k = 0; k < n_cases; k++)
      fprintf(stderr, " %s", cases[k].name);
    fprintf(stderr, "\n");
    MPI_Finalize();
    return 2;
  }
  int rc = 0;
  for (int a = 2; a < argc; a++) { /* every requested name must exist */
    size_t k = 0;
    while (k < n_cases && strcmp(argv[a], cases[k].name) != 0)
      k++;
    if (k == n_cases) {
      fprintf(stderr, "golden_dump: unknown case '%s'\n", argv[a]);
      rc = 2;
    }
  }
  for (size_t k = 0; k < n_cases && rc == 0; k++) {
    int wanted = argc == 2;
    for (int a = 2; a < argc; a++)
      wanted |= strcmp(argv[a], cases[k].name) == 0;
    if (wanted && golden_run(&cases[k], argv[1]) < 0) {
      fprintf(stderr, "golden_dump: %s: %s\n", cases[k].name, cnf_error_message());
      rc = 1;
    }
  }
  MPI_Finalize();
  return rc;
}
