/* Golden test, C side: for each reference architecture, build the preset, give it a strongly
 * non-linear random state, save the model file, and dump log p(x | c), the mean NLL and its
 * gradients (all parameters, raw conditions) for a fixed batch.  tests/golden_compare.py
 * rebuilds the same flow from the model file on top of the independent PyTorch peer
 * (analysis/cnflow_torch.py) and compares with autograd.
 *
 * usage: golden_dump OUTDIR [MODEL...]     MODEL in A (cnf_peer), B (paraflow), C (flowi),
 *                                         T (cnf: half-swap permutations, tanh-bounded scale)
 * writes OUTDIR/model_<M>.h5 and OUTDIR/golden_<M>.h5:
 *   x (n, D), c (n, C) raw conditions, logp (n) from cnf_flow_log_prob, logp_train (n) from
 *   cnf_flow_nll_backward, grad_params (n_params) = d mean NLL / d params, grad_c (n, C) =
 *   d mean NLL / d c_raw, z (n, D) fixed latents, x_inv (n, D) and logdet_inv (n) =
 *   log|det dx/dz| from cnf_flow_inverse (all float64); attrs model, preset, real_type, loss. */
#include "cnflow/flow.h"

#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct golden_case {
  char key;
  const char *preset;
  int n;            /* events in the batch */
  double out_scale; /* output-layer weights ~ N(0, out_scale^2 / H), biases 0.3 out_scale */
} golden_case;

static const golden_case cases[] = {
    {'A', "cnf_peer", 64, 0.3}, {'B', "paraflow", 16, 1.0}, {'C', "flowi", 64, 1.0},
    {'T', "cnf", 64, 1.0}};

/* Data with the peer's make_data ranges; C's raw condition is an energy in [1, 100] that the
 * model maps with log10 (exercises the condition transform and its Jacobian). */
static void golden_data(char key, int n, int D, int C, cnf_real *x, cnf_real *c) {
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, 2024, (uint64_t)i, 0);
    for (int j = 0; j < D; j++) {
      double z = cnf_rng_normal(&r);
      x[(size_t)i * D + j] = (cnf_real)(key == 'A' || key == 'T' ? 0.98 * tanh(z)
                                        : key == 'B'             ? 1.2 * z
                                                                 : 3.0 * z);
    }
    for (int j = 0; j < C; j++)
      c[(size_t)i * C + j] = (cnf_real)(key == 'C' ? pow(10.0, 2.0 * cnf_rng_uniform(&r))
                                                   : cnf_rng_normal(&r));
  }
}

/* Overwrite every MADE's output layer (Wout, bout, Wc) with larger random values so that the
 * comparison exercises strongly non-linear transforms (random init is near the identity);
 * cnf_flow_params_changed re-applies the masks. */
static int golden_perturb(cnf_flow *f, double scale) {
  const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f);
  cnf_real *params = cnf_flow_params(f);
  cnf_rng r;
  cnf_rng_init(&r, 99, 0, 0);
  for (int k = 0; k < cnf_flow_num_bijectors(f); k++) {
    const cnf_bijector *b = cnf_flow_bijector(f, k);
    if (b->spec.kind != CNF_BIJ_MAF_AFFINE && b->spec.kind != CNF_BIJ_MAF_RQS)
      continue;
    const size_t H = (size_t)b->spec.hidden, L = (size_t)b->spec.n_hidden;
    const size_t P = b->spec.kind == CNF_BIJ_MAF_AFFINE ? 2 : 3 * (size_t)b->spec.bins - 1;
    /* flow.h layout: W0 (H, D+C), b0, [W_l, b_l] x (L-1), Wout (D*P, H), bout, Wc (D*P, C) */
    cnf_real *p = params + b->param_offset + H * (D + C) + H + (L - 1) * (H * H + H);
    for (size_t e = 0; e < (size_t)D * P * H; e++)
      *p++ = (cnf_real)(cnf_rng_normal(&r) * scale / sqrt((double)H));
    for (size_t e = 0; e < (size_t)D * P; e++)
      *p++ = (cnf_real)(cnf_rng_normal(&r) * 0.3 * scale);
    for (size_t e = 0; e < (size_t)D * P * C; e++)
      *p++ = (cnf_real)(cnf_rng_normal(&r) * 0.3 * scale);
    if (p != params + b->param_offset + b->n_params) {
      fprintf(stderr, "golden_dump: bijector %d: flow.h layout gives a different size\n", k);
      return CNF_ERR_FORMAT;
    }
  }
  return cnf_flow_params_changed(f);
}

/* Write a float64 dataset of rank 1 or 2 (cols 0 = rank 1). */
static int h5_write(hid_t file, const char *name, size_t rows, size_t cols, const cnf_real *v) {
  double *d = malloc(sizeof(double) * (rows * (cols ? cols : 1) + 1));
  if (!d)
    return -1;
  for (size_t i = 0; i < rows * (cols ? cols : 1); i++)
    d[i] = (double)v[i];
  hsize_t dims[2] = {rows, cols};
  hid_t space = H5Screate_simple(cols ? 2 : 1, dims, NULL);
  hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, d);
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
  CNF_CALL(cnf_flow_create_preset(gc->preset, 0, 0, 7, &f));
  const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f), n = gc->n;
  const size_t np = cnf_flow_num_params(f);
  if (gc->key == 'A') { /* a non-trivial affine condition transform */
    cnf_cond_map map[5] = {0};
    double shift[5] = {0.1, -0.2, 0.0, 0.3, 0.0}, scl[5] = {1.5, 0.5, 1.0, 2.0, 1.0};
    CNF_CALL(cnf_flow_set_cond_transform(f, map, shift, scl));
  } else if (gc->key == 'C') { /* log10 of the raw energy, then centred */
    cnf_cond_map map[1] = {CNF_COND_LOG10};
    double shift[1] = {1.0}, scl[1] = {1.0};
    CNF_CALL(cnf_flow_set_cond_transform(f, map, shift, scl));
  }
  CNF_CALL(cnf_flow_init_params(f, 11, 0));
  CNF_CALL(golden_perturb(f, gc->out_scale));
  snprintf(path, sizeof path, "%s/model_%c.h5", dir, gc->key);
  cnf_model_provenance prov = {.seed = 11};
  snprintf(prov.options, sizeof prov.options, "golden_dump preset %s", gc->preset);
  CNF_CALL(cnf_flow_save(f, path, &prov));

  cnf_real *x = malloc(sizeof(cnf_real) * (size_t)n * D), *c = malloc(sizeof(cnf_real) * n * C);
  cnf_real *logp = malloc(sizeof(cnf_real) * n), *logp2 = malloc(sizeof(cnf_real) * n);
  cnf_real *dc = malloc(sizeof(cnf_real) * n * C);
  cnf_real *z = malloc(sizeof(cnf_real) * (size_t)n * D), *xs = malloc(sizeof(cnf_real) * (size_t)n * D);
  cnf_real *ldi = malloc(sizeof(cnf_real) * n);
  if (!x || !c || !logp || !logp2 || !dc || !z || !xs || !ldi)
    return CNF_ERR_NOMEM;
  golden_data(gc->key, n, D, C, x, c);
  /* sampling direction from fixed latents (half the events at 2 sigma: steep regions too) */
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, 4242, (uint64_t)i, 0);
    for (int j = 0; j < D; j++)
      z[(size_t)i * D + j] = (cnf_real)(cnf_rng_normal(&r) * (i % 2 ? 2.0 : 1.0));
  }
  CNF_CALL(cnf_flow_inverse(f, n, z, c, xs, ldi));
  CNF_CALL(cnf_flow_log_prob(f, n, x, c, logp));
  double loss;
  cnf_flow_zero_grads(f);
  CNF_CALL(cnf_flow_nll_backward(f, n, x, c, NULL, &loss, logp2, dc));

  snprintf(path, sizeof path, "%s/golden_%c.h5", dir, gc->key);
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0)
    return cnf_error_set(CNF_ERR_IO, "cannot create %s", path);
  char model[2] = {gc->key, 0};
  int bad = h5_write(file, "x", n, D, x) || h5_write(file, "c", n, C, c) ||
            h5_write(file, "logp", n, 0, logp) || h5_write(file, "logp_train", n, 0, logp2) ||
            h5_write(file, "grad_params", np, 0, cnf_flow_grads(f)) ||
            h5_write(file, "grad_c", n, C, dc) || h5_write(file, "z", n, D, z) ||
            h5_write(file, "x_inv", n, D, xs) || h5_write(file, "logdet_inv", n, 0, ldi) ||
            h5_attr_str(file, "model", model) ||
            h5_attr_str(file, "preset", gc->preset) ||
            h5_attr_str(file, "real_type", CNF_REAL_IS_DOUBLE ? "float64" : "float32") ||
            h5_attr_f64(file, "loss", loss);
  H5Fclose(file);
  free(x);
  free(c);
  free(logp);
  free(logp2);
  free(dc);
  free(z);
  free(xs);
  free(ldi);
  cnf_flow_free(&f);
  if (bad)
    return cnf_error_set(CNF_ERR_IO, "cannot write %s", path);
  printf("golden_dump: %c (%s): %d events, %zu parameters, mean NLL %.6f -> %s\n", gc->key,
         gc->preset, n, np, loss, path);
  return 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  if (argc < 2) {
    fprintf(stderr, "usage: golden_dump OUTDIR [A|B|C|T ...]\n");
    MPI_Finalize();
    return 2;
  }
  int rc = 0;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0] && rc == 0; k++) {
    int wanted = argc == 2;
    for (int a = 2; a < argc; a++)
      wanted |= argv[a][0] == cases[k].key;
    if (wanted && golden_run(&cases[k], argv[1]) < 0) {
      fprintf(stderr, "golden_dump: %c (%s): %s\n", cases[k].key, cases[k].preset,
              cnf_error_message());
      rc = 1;
    }
  }
  MPI_Finalize();
  return rc;
}
