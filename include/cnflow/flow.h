/* cnflow flow: bijectors and the conditional flow that chains them.
 *
 * Direction convention (same as nflows/zuko): the DENSITY direction maps data x to latent z in
 * one pass ("forward"); the SAMPLING direction maps z to x ("inverse").
 *     log p(x | c) = log N(z; 0, I) + sum_k log|det dz_k/dz_{k-1}|
 * A flow is an ordered list of bijector specs, listed in the density direction: spec[0] is
 * applied to the data first.  Example (architecture A, the CNF study):
 *     [tanh, maf_affine, permute(reverse), maf_affine, permute(reverse), ..., maf_affine]
 * where "tanh" in the density direction is x -> atanh(x) (its sampling direction is tanh).
 *
 * Parameters of all bijectors live in ONE contiguous buffer (cnf_flow_params), gradients in a
 * second buffer with the same layout (cnf_flow_grads): data parallelism is one allreduce.
 *
 * ---- Parameter layout (the order of the model file's single /model/params dataset) ---------
 * Bijectors in spec order; each owns the slice [param_offset, param_offset + n_params).
 *
 * MADE (inside maf_affine / maf_rqs), D inputs, C conditions, H hidden units per layer,
 * L = n_hidden hidden layers, P parameters per dimension:
 *     W0   (H, D + C)   input columns are x_1..x_D then c_1..c_C (conditions never masked)
 *     b0   (H)
 *     W_l  (H, H), b_l (H)          for l = 1..L-1
 *     Wout (D*P, H)                 output row index = d*P + p  ("dimension-major")
 *     bout (D*P)
 *     Wc   (D*P, C)                 direct condition -> output weights, no bias.  They make
 *                                   every output (including the first dimension, which no hidden
 *                                   unit may reach) depend on c: this avoids the nflows
 *                                   first-feature bug (TFP "all_layers" does the same at the
 *                                   output).
 *   Hidden degrees: the nflows/peer sequence deg(k) = k mod max(1, D-1) + min(1, D-1),
 *   k = 0..H-1, SORTED ascending (stable), identical in every hidden layer.  Input degrees 1..D.
 *   Masks: hidden <- input/hidden: deg_out >= deg_in; output(d) <- hidden: d+1 > deg_in.
 *   Masked weights are stored as exact zeros and stay zero (their gradients are masked).
 *
 * Elementwise transforms, per dimension d, parameters p = 0..P-1 of that dimension:
 *   maf_affine (P = 2): p0 = shift m, p1 = u; s = u (scale_kind EXP) or s = tanh(u) (EXP_TANH);
 *       density direction z = (x - m) * exp(-s), log|dz/dx| = -s.
 *   maf_rqs / coupling_rqs (P = 3K - 1): [K unnormalised widths | K heights | K-1 interior
 *       derivatives]; widths = min_w + (1 - K min_w) softmax(uw) scaled to [-B, B] (same for
 *       heights), interior derivatives = min_d + softplus(ud), boundary derivatives exactly 1,
 *       identity (log-det 0) outside [-B, B] (linear tails).  Bin of x: number of interior
 *       knots <= x (a value on a knot belongs to the bin on its right; x = B to the last bin).
 *
 * coupling_rqs: x1 = first ceil(D/2) dims pass through, x2 = last floor(D/2) are transformed
 *   with theta = subnet([x1, c]); subnet = n_hidden dense layers of width H with
 *   LeakyReLU(0.01), then a dense output layer (|x2|*P, H) (zeroed by identity init, so the block
 *   starts as the identity as in CaloINN).  Layout:
 *   W0 (H, |x1| + C), b0 (H), [W_l (H,H), b_l (H)]..., Wout (|x2|*P, H), bout (|x2|*P).
 * actnorm: loc (D), log_scale (D); density z = (x - loc) * exp(-log_scale).
 * permute, tanh, logit, affine_fixed, log, cond_scale: no trainable parameters.
 *   log:        z = log(x + eps), log|dz/dx| = -log(x + eps); sampling x = exp(z) - eps.
 *   cond_scale: s = cond_a * c'_j + cond_b (c' = transformed conditions), z = x exp(-s),
 *               log|det| = -D s; it depends on c, so dL/dc' gets d/dc' of both z and log|det|.
 * These fixed bijectors carry the stored preprocessing of `cnflow train` (a model file is then
 * the density of the raw observables): e.g. Flow-I = [log, affine_fixed, flow...].
 */
#pragma once

#include "cnflow/core.h"

#define CNF_FLOW_FORMAT_VERSION 1

typedef enum cnf_bijector_kind {
  CNF_BIJ_MAF_AFFINE = 0,   /* affine MAF block (MADE) */
  CNF_BIJ_MAF_RQS,          /* rational-quadratic-spline MAF block (MADE) */
  CNF_BIJ_COUPLING_RQS,     /* RQS coupling block (CaloINN) */
  CNF_BIJ_ACTNORM,          /* ActNorm, data-initialised */
  CNF_BIJ_PERMUTE,          /* fixed permutation: density direction z = x[:, perm] */
  CNF_BIJ_TANH,             /* density direction z = atanh(x); data in (-1, 1) */
  CNF_BIJ_LOGIT,            /* density direction z = logit(alpha + (1 - 2 alpha) x); data in [0,1] */
  CNF_BIJ_AFFINE_FIXED,     /* density direction z = (x - shift) / scale, constants per dim */
  CNF_BIJ_LOG,              /* density direction z = log(x + eps) (natural log); data x > -eps */
  CNF_BIJ_COND_SCALE,       /* density direction z = x * exp(-(cond_a * c'_j + cond_b)), j =
                               cond_index, c' the TRANSFORMED condition: with a log map on c_j
                               this is z = x / c_j exactly (ParaFlow's images / E_inc) */
  CNF_BIJ_KIND_COUNT
} cnf_bijector_kind;

typedef enum cnf_affine_scale {
  CNF_AFFINE_SCALE_EXP = 0,      /* log-scale s = u (the PyTorch peer) */
  CNF_AFFINE_SCALE_EXP_TANH = 1, /* s = tanh(u): scale in [1/e, e] (the CNF study) */
  CNF_AFFINE_SCALE_SHIFT = 2,    /* s = 0, P = 1 (m only, no u): z = x - m (MSE regression) */
} cnf_affine_scale;

typedef enum cnf_coupling_tails {
  CNF_TAILS_EVENT = 0,   /* CaloINN: an event's whole x2 half is untouched if any |x2_j| > B */
  CNF_TAILS_ELEMENT = 1, /* nflows: elementwise identity outside [-B, B] */
} cnf_coupling_tails;

/* Everything that defines one bijector (architecture and fixed constants; no weights).
 * Arrays (perm, shift, scale) are borrowed by cnf_flow_create, which copies them. */
typedef struct cnf_bijector_spec {
  cnf_bijector_kind kind;
  int hidden;            /* MADE / subnet width H */
  int n_hidden;          /* number of hidden layers */
  int bins;              /* RQS K */
  double tail_bound;     /* RQS B */
  double min_bin_width, min_bin_height, min_derivative; /* RQS constants (default 1e-3) */
  cnf_affine_scale scale_kind;   /* maf_affine */
  cnf_coupling_tails tails;      /* coupling_rqs */
  double alpha;          /* logit */
  const int *perm;       /* permute: length D */
  const double *shift;   /* affine_fixed: length D */
  const double *scale;   /* affine_fixed: length D (non-zero) */
  double eps;            /* log: offset inside the log (>= 0) */
  int cond_index;        /* cond_scale: which (transformed) condition sets the scale */
  double cond_a, cond_b; /* cond_scale: log-scale = cond_a * c'_j + cond_b */
} cnf_bijector_spec;

const char *cnf_bijector_kind_name(cnf_bijector_kind kind);
/* Returns the kind for a name ("maf_affine", ...), or -1. */
int cnf_bijector_kind_from_name(const char *name);

/* ---- the bijector interface (implemented per kind under src/flow/) ------------------------ */
typedef struct cnf_bijector cnf_bijector;
typedef struct cnf_bijector_ops {
  /* Density direction, x (n, D) -> z (n, D); logdet[i] += log|det dz/dx| of event i.
   * c is (n, C) (may be NULL when C == 0).  Caches what backward needs for this n. */
  int (*forward)(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c, cnf_real *z,
                 cnf_real *logdet);
  /* Reverse-mode through the last forward call (same x, c, z):
   *   dz (n, D): dL/dz;  dlogdet (n): dL/d(logdet_i) (e.g. -1/n for the mean NLL)
   *   dx (n, D): dL/dx, OVERWRITTEN;  dc (n, C): dL/dc ACCUMULATED (skipped if NULL);
   *   parameter gradients ACCUMULATED into b->grads. */
  int (*backward)(cnf_bijector *b, int n, const cnf_real *x, const cnf_real *c,
                  const cnf_real *z, const cnf_real *dz, const cnf_real *dlogdet, cnf_real *dx,
                  cnf_real *dc);
  /* Sampling direction, z (n, D) -> x (n, D); logdet[i] += log|det dx/dz|. No cache kept. */
  int (*inverse)(cnf_bijector *b, int n, const cnf_real *z, const cnf_real *c, cnf_real *x,
                 cnf_real *logdet);
  /* Allocate caches for batches of up to nmax events. */
  int (*reserve)(cnf_bijector *b, int nmax);
  /* Initialise parameters (random with the stream, or identity: last layer zero). */
  int (*init_params)(cnf_bijector *b, cnf_rng *rng, int identity);
  /* Optional (NULL if not needed): initialise from a data batch arriving at this bijector
   * (ActNorm: loc = mean, log_scale = log std). */
  int (*data_init)(cnf_bijector *b, int n, const cnf_real *x);
  /* Optional: called after the parameter buffer changed (optimizer step, load), e.g. to
   * refresh packed weight copies.  Also re-applies masks. */
  int (*params_changed)(cnf_bijector *b);
  /* Optional: the ranges of the flow's buffer (b->param_offset included) whose gradients can be
   * non-zero, as cnf_made_live_ranges; NULL = the whole slice. */
  size_t (*live_ranges)(const cnf_bijector *b, size_t *out);
  void (*destroy)(cnf_bijector *b);
} cnf_bijector_ops;

struct cnf_bijector {
  const cnf_bijector_ops *ops;
  cnf_bijector_spec spec; /* arrays inside point to memory owned by the bijector */
  int dim, cond_dim;
  size_t n_params, param_offset;
  cnf_real *params, *grads; /* slices of the flow's buffers (NULL if n_params == 0) */
  void *impl;               /* kind-specific state */
};

/* ---- condition preprocessing (stored in the model; applied by the flow to raw c) ---------- */
typedef enum cnf_cond_map { CNF_COND_IDENTITY = 0, CNF_COND_LOG10 = 1, CNF_COND_LOG = 2 } cnf_cond_map;

/* ---- the conditional flow ----------------------------------------------------------------- */
typedef struct cnf_flow cnf_flow;

/* Create a flow of n_bij bijectors on D dims with C conditions.  Parameters are allocated
 * (zero) but not initialised: call cnf_flow_init_params.  *out owned by caller: cnf_flow_free. */
int cnf_flow_create(int D, int C, int n_bij, const cnf_bijector_spec *specs, cnf_flow **out);
void cnf_flow_free(cnf_flow **flow);

int cnf_flow_dim(const cnf_flow *f);
int cnf_flow_cond_dim(const cnf_flow *f);
int cnf_flow_num_bijectors(const cnf_flow *f);
const cnf_bijector *cnf_flow_bijector(const cnf_flow *f, int k);
size_t cnf_flow_num_params(const cnf_flow *f);
cnf_real *cnf_flow_params(cnf_flow *f); /* (n_params) owned by the flow */
cnf_real *cnf_flow_grads(cnf_flow *f);  /* (n_params) owned by the flow */
void cnf_flow_zero_grads(cnf_flow *f);
/* The entries of the buffers that can have a non-zero gradient, as sorted, disjoint, merged
 * ranges [r[2i], r[2i+1]) (*ranges allocated, free() it): everything but the masked MADE
 * weights, which are exact zeros with zero gradients (61 % of the CNF preset's entries are
 * live).  Adam restricted to them (cnf_adam_set_ranges) gives bit-identical parameters. */
int cnf_flow_live_ranges(const cnf_flow *f, size_t *n_ranges, size_t **ranges);
/* Must be called after writing into cnf_flow_params() (optimizer step, allreduce, load). */
int cnf_flow_params_changed(cnf_flow *f);

/* Per-condition map applied to the raw conditions before the bijectors see them:
 *   c' = (map(c) - shift) * scale.   Default: identity, shift 0, scale 1. */
int cnf_flow_set_cond_transform(cnf_flow *f, const cnf_cond_map *map, const double *shift,
                                const double *scale);
/* Read condition j's transform back (model files, scans reporting in raw units): map, shift
 * and scale, any of them may be NULL.  CNF_ERR_ARG if j is out of range. */
int cnf_flow_get_cond_transform(const cnf_flow *f, int j, cnf_cond_map *map, double *shift,
                                double *scale);
/* Apply the condition transform (n, C) -> (n, C) and optionally its Jacobian diag (dc'/dc). */
int cnf_flow_transform_cond(const cnf_flow *f, int n, const cnf_real *c_raw, cnf_real *c_out,
                            cnf_real *dcout_dcraw);

/* Allocate caches for batches up to nmax (grows automatically if a larger n is passed). */
int cnf_flow_reserve(cnf_flow *f, int nmax);
/* The batch size the work buffers hold now (0 before the first reserve or evaluation). */
int cnf_flow_reserved(const cnf_flow *f);
/* Random init (seeded stream) or identity init (every block starts as the identity). */
int cnf_flow_init_params(cnf_flow *f, uint64_t seed, int identity);
/* Data-dependent init (ActNorm) from a batch of (raw) data: x (n, D), c (n, C). */
int cnf_flow_data_init(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c);

/* log p(x | c) for n events: x (n, D), c (n, C) raw conditions, logp (n).
 * Fails with CNF_ERR_NUMERIC if x or c contain NaN/Inf. */
int cnf_flow_log_prob(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c, cnf_real *logp);

/* Weighted NLL and gradients: loss = -sum_i w_i log p(x_i | c_i), w_i = 1/n if weights NULL.
 * Parameter gradients are ACCUMULATED into cnf_flow_grads (zero them first).  If dc != NULL,
 * dL/dc_raw (n, C) is WRITTEN (gradient w.r.t. the raw conditions, for likelihood scans).
 * logp (n) receives log p (may be NULL).  *loss receives the loss. */
int cnf_flow_nll_backward(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c,
                          const cnf_real *weights, double *loss, cnf_real *logp, cnf_real *dc);

/* log p(x | c) (n; may be NULL) and its gradient with respect to the raw conditions,
 * dlogp_dc (n, C) WRITTEN, with no parameter gradient (cnf_flow_grads untouched): what a
 * likelihood scan needs, about a third cheaper than cnf_flow_nll_backward, whose -dc it equals
 * bit for bit.  CNF_ERR_ARG if the flow has no conditions. */
int cnf_flow_cond_gradient(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c,
                           cnf_real *logp, cnf_real *dlogp_dc);

/* Sample x (n, D) given raw conditions c (n, C).  Latent draws come from the counter-based
 * stream (seed, stream_id = first_index + i) so results do not depend on batching or ranks.
 * logp (n) receives log p(x | c) (may be NULL). */
int cnf_flow_sample(cnf_flow *f, int n, const cnf_real *c, uint64_t seed, uint64_t first_index,
                    cnf_real *x, cnf_real *logp);
/* Sampling direction from given latents z (n, D). logdet (n) = log|det dx/dz| (may be NULL). */
int cnf_flow_inverse(cnf_flow *f, int n, const cnf_real *z, const cnf_real *c, cnf_real *x,
                     cnf_real *logdet);
/* Density direction to latents: z (n, D), logdet (n) = log|det dz/dx| (may be NULL). */
int cnf_flow_forward(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c, cnf_real *z,
                     cnf_real *logdet);

/* ---- reference architectures -------------------------------------------------------------- */
/* "cnf"        A as the CNF study (TFP chain): 6-D, 5 cond, final tanh, 10 affine MAF 2x128
 *               with scale exp(tanh(u)) and a half-swap permutation before each block;
 * "cnf_peer"   A as the PyTorch peer: reverse permutations between blocks, scale exp(u);
 * "paraflow"   B: 128-D, 3 cond, 10 RQS MAF 2x196, K=10, B=14, random permutations (stored);
 * "flowi"      C: 6-D, 1 cond, 6 RQS MAF 2x64, K=8, B=14, reverse permutations, min 1e-3;
 * "flowi_paper" C as Du et al.: 3 hidden layers (nflows num_blocks=2), min 1e-6, random perms;
 * "caloinn"    [ActNorm, RQS coupling, random permutation] blocks; D required, C default 1;
 * "toy"        2-D, 1 cond, small RQS MAF (the demo).
 * D/C may be 0 to take the preset's default.  Creates the flow; parameters uninitialised. */
int cnf_flow_create_preset(const char *name, int D, int C, uint64_t seed, cnf_flow **out);

/* ---- model files (HDF5; layout documented in README "Model file") -------------------------- */
typedef struct cnf_model_provenance {
  char options[4096]; /* options used for training */
  uint64_t seed;
  int epoch;
  double val_score;
  char git_rev[64];
  char dataset[2048]; /* the data binding, "key=value\n" lines written by `cnflow train`
                         (train_file, target, target_columns, cond, cond_columns, prep, noise,
                         ...); stored as /provenance attribute "dataset", "" when absent */
} cnf_model_provenance;

/* The value of "key=value" line `key` of prov->dataset (the data binding) into out: 1 if
 * found, 0 if absent, CNF_ERR_ARG if it does not fit in len. */
int cnf_model_binding(const cnf_model_provenance *prov, const char *key, char *out, size_t len);

/* Serial HDF5 I/O (call on one rank).  Writes to "<path>.tmp" then renames. */
int cnf_flow_save(const cnf_flow *f, const char *path, const cnf_model_provenance *prov);
/* Loads architecture + parameters; clear error for a missing/truncated/foreign file. */
int cnf_flow_load(const char *path, cnf_flow **out, cnf_model_provenance *prov);
