/* The conditional flow: an ordered chain of bijectors (density direction x -> z), one flat
 * parameter buffer and one flat gradient buffer, the condition transform, log-density,
 * sampling and the weighted-NLL backward pass.  Also the bijector factory and the one check of
 * bijector hyper-parameters.  The reference architectures ("presets") are in presets.c.
 * Conventions are documented in include/cnflow/flow.h. */
#include "bijector_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LOG_2PI 1.8378770664093454835606594728112

struct cnf_flow {
  int D, C, n_bij;
  cnf_bijector *bij; /* (n_bij) in density order */
  size_t n_params;
  cnf_real *params, *grads; /* (n_params) each; bijectors hold slices */
  cnf_cond_map *cond_map;   /* (C) */
  double *cond_shift, *cond_scale; /* (C) */
  /* work buffers, capacity nmax events */
  int nmax;
  cnf_real *act;       /* (n_bij + 1, nmax, D): slice k = input of bijector k; slice n_bij = z */
  cnf_real *cond;      /* (nmax, C) transformed conditions */
  cnf_real *dcond;     /* (nmax, C) d cond / d c_raw */
  cnf_real *dc_acc;    /* (nmax, C) dL/d cond summed over bijectors */
  cnf_real *grad_a, *grad_b; /* (nmax, D) dL/d(activation), ping-pong */
  cnf_real *logdet, *dlogdet; /* (nmax) */
};

/* ---- bijector kinds and the factory --------------------------------------------------------- */
static const char *const kind_names[CNF_BIJ_KIND_COUNT] = {
    [CNF_BIJ_MAF_AFFINE] = "maf_affine", [CNF_BIJ_MAF_RQS] = "maf_rqs",
    [CNF_BIJ_COUPLING_RQS] = "coupling_rqs", [CNF_BIJ_ACTNORM] = "actnorm",
    [CNF_BIJ_PERMUTE] = "permute", [CNF_BIJ_TANH] = "tanh",
    [CNF_BIJ_LOGIT] = "logit", [CNF_BIJ_AFFINE_FIXED] = "affine_fixed",
    [CNF_BIJ_LOG] = "log", [CNF_BIJ_COND_SCALE] = "cond_scale",
};

const char *cnf_bijector_kind_name(cnf_bijector_kind kind) {
  if ((int)kind < 0 || kind >= CNF_BIJ_KIND_COUNT)
    return "unknown";
  return kind_names[kind];
}

int cnf_bijector_kind_from_name(const char *name) {
  if (!name)
    return -1;
  for (int k = 0; k < CNF_BIJ_KIND_COUNT; k++)
    if (strcmp(name, kind_names[k]) == 0)
      return k;
  return -1;
}

/* ---- the one check of bijector hyper-parameters ------------------------------------------- */
/* Every entry point (cnf_flow_create, hence model files and presets, and the per-kind
 * constructors) runs this check, so a spec is accepted or refused by one rule set with one
 * message.  k >= 0 names the bijector's place in a flow ("bijector 3 (maf_rqs): ..."); k < 0 is
 * a bare constructor call ("maf_rqs: ...").  The problem text after the prefix is the same. */
static int spec_fail(int k, cnf_bijector_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int spec_fail(int k, cnf_bijector_kind kind, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (k >= 0)
    return cnf_error_set(CNF_ERR_ARG, "bijector %d (%s): %s", k, cnf_bijector_kind_name(kind),
                         msg);
  return cnf_error_set(CNF_ERR_ARG, "%s: %s", cnf_bijector_kind_name(kind), msg);
}

/* The RQS constants (flows-reference.md section 3.1): widths = min_w + (1 - K min_w) softmax(.)
 * needs 0 < min_w and K min_w < 1 -- min_w = 0 lets a softmax underflow give a zero-width bin
 * (a division by zero in xi = (x - x_k) / w_k), K min_w >= 1 leaves no free mass or makes
 * widths negative; the same for heights.  derivs = min_d + softplus(.) needs min_d > 0 (a zero
 * knot derivative is a zero Jacobian), and the tails' boundary derivative is exactly 1, made
 * by the raw value log(exp(1 - min_d) - 1), which exists only for min_d < 1.  The constants
 * are checked as the kernel sees them (cnf_real): a positive double that rounds to a float 0
 * is refused in the float library. */
static int check_rqs(const cnf_bijector_spec *s, int k) {
  if (s->bins < 2 || s->bins > CNF_RQS_MAX_BINS)
    return spec_fail(k, s->kind, "bins = %d must be in [2, %d]", s->bins, CNF_RQS_MAX_BINS);
  if (!(s->tail_bound > 0) || !isfinite(s->tail_bound))
    return spec_fail(k, s->kind, "tail_bound = %g must be > 0", s->tail_bound);
  double kmax = 1.0 / s->bins;
  if (!(s->min_bin_width > 0 && (cnf_real)s->min_bin_width > 0 && s->min_bin_width < kmax))
    return spec_fail(k, s->kind, "min_bin_width = %g must be in (0, 1/bins = %g)",
                     s->min_bin_width, kmax);
  if (!(s->min_bin_height > 0 && (cnf_real)s->min_bin_height > 0 && s->min_bin_height < kmax))
    return spec_fail(k, s->kind, "min_bin_height = %g must be in (0, 1/bins = %g)",
                     s->min_bin_height, kmax);
  if (!(s->min_derivative > 0 && (cnf_real)s->min_derivative > 0 && s->min_derivative < 1))
    return spec_fail(k, s->kind, "min_derivative = %g must be in (0, 1)", s->min_derivative);
  return 0;
}

/* A permutation of 0..D-1: every entry in range and none twice. */
static int check_perm(const cnf_bijector_spec *s, int D, int k) {
  if (!s->perm)
    return spec_fail(k, s->kind, "no permutation given");
  unsigned char *seen = cnf_calloc((size_t)D, 1);
  if (!seen)
    return cnf_error_set(CNF_ERR_NOMEM, "permute: cannot allocate %d flags", D);
  for (int j = 0; j < D; j++) {
    int p = s->perm[j];
    if (p < 0 || p >= D || seen[p]) {
      free(seen);
      return spec_fail(k, s->kind, "entry %d = %d makes it not a permutation of 0..%d", j, p,
                       D - 1);
    }
    seen[p] = 1;
  }
  free(seen);
  return 0;
}

int cnf_bijector_spec_check(const cnf_bijector_spec *s, int D, int C, int k) {
  if ((int)s->kind < 0 || s->kind >= CNF_BIJ_KIND_COUNT) {
    if (k >= 0)
      return cnf_error_set(CNF_ERR_ARG, "bijector %d: unknown kind %d", k, (int)s->kind);
    return cnf_error_set(CNF_ERR_ARG, "bijector: unknown kind %d", (int)s->kind);
  }
  if (D < 1 || C < 0)
    return spec_fail(k, s->kind, "need D >= 1 and C >= 0 (got D=%d C=%d)", D, C);
  switch (s->kind) {
  case CNF_BIJ_MAF_AFFINE:
  case CNF_BIJ_MAF_RQS:
  case CNF_BIJ_COUPLING_RQS:
    if (s->hidden < 1 || s->n_hidden < 1)
      return spec_fail(k, s->kind, "hidden = %d and n_hidden = %d must be >= 1", s->hidden,
                       s->n_hidden);
    if (s->kind == CNF_BIJ_MAF_AFFINE && s->scale_kind != CNF_AFFINE_SCALE_EXP &&
        s->scale_kind != CNF_AFFINE_SCALE_EXP_TANH && s->scale_kind != CNF_AFFINE_SCALE_SHIFT)
      return spec_fail(k, s->kind, "unknown scale_kind %d", (int)s->scale_kind);
    if (s->kind != CNF_BIJ_MAF_AFFINE)
      CNF_CALL(check_rqs(s, k));
    if (s->kind == CNF_BIJ_COUPLING_RQS) {
      if (D < 2)
        return spec_fail(k, s->kind, "needs dimension >= 2, got %d", D);
      if (s->tails != CNF_TAILS_EVENT && s->tails != CNF_TAILS_ELEMENT)
        return spec_fail(k, s->kind, "unknown tails %d", (int)s->tails);
    }
    break;
  case CNF_BIJ_PERMUTE: CNF_CALL(check_perm(s, D, k)); break;
  case CNF_BIJ_AFFINE_FIXED:
    if (!s->shift || !s->scale)
      return spec_fail(k, s->kind, "shift and scale required");
    for (int j = 0; j < D; j++)
      if (!isfinite(s->shift[j]) || !isfinite(s->scale[j]) || s->scale[j] == 0.0)
        return spec_fail(k, s->kind,
                         "dimension %d has shift %g, scale %g (need finite values and a "
                         "non-zero scale)",
                         j, s->shift[j], s->scale[j]);
    break;
  case CNF_BIJ_LOGIT:
    if (!(s->alpha >= 0 && s->alpha < 0.5))
      return spec_fail(k, s->kind, "alpha = %g must be in [0, 0.5)", s->alpha);
    break;
  case CNF_BIJ_LOG:
    if (!(s->eps >= 0.0) || !isfinite(s->eps))
      return spec_fail(k, s->kind, "eps = %g must be finite and >= 0", s->eps);
    break;
  case CNF_BIJ_COND_SCALE:
    if (s->cond_index < 0 || s->cond_index >= C)
      return spec_fail(k, s->kind, "condition index %d outside [0, %d)", s->cond_index, C);
    if (!isfinite(s->cond_a) || !isfinite(s->cond_b))
      return spec_fail(k, s->kind, "cond_a = %g, cond_b = %g must be finite", s->cond_a,
                       s->cond_b);
    break;
  default: break; /* actnorm, tanh: no hyper-parameters */
  }
  return 0;
}

/* Build bijector k of a flow on D dims with C conditions into *b (zeroed by the caller).
 * The spec's arrays are borrowed; the constructor deep-copies what it keeps. */
static int cnf_bijector_create(const cnf_bijector_spec *spec, int D, int C, int k,
                               cnf_bijector *b) {
  CNF_CALL(cnf_bijector_spec_check(spec, D, C, k));
  b->spec = *spec;
  /* only the kinds that own an array keep the pointer (never a dangling borrowed one) */
  if (spec->kind != CNF_BIJ_PERMUTE)
    b->spec.perm = NULL;
  if (spec->kind != CNF_BIJ_AFFINE_FIXED)
    b->spec.shift = b->spec.scale = NULL;
  b->dim = D;
  b->cond_dim = C;
  int rc;
  switch (spec->kind) {
  case CNF_BIJ_MAF_AFFINE:
  case CNF_BIJ_MAF_RQS: rc = cnf_bij_maf_create(b); break;
  case CNF_BIJ_COUPLING_RQS: rc = cnf_bij_coupling_create(b); break;
  case CNF_BIJ_ACTNORM: rc = cnf_bij_actnorm_create(b); break;
  default: rc = cnf_bij_elementwise_create(b); break;
  }
  if (rc < 0) {
    char msg[900];
    snprintf(msg, sizeof msg, "%s", cnf_error_message());
    return cnf_error_set(rc, "bijector %d (%s): %s", k, cnf_bijector_kind_name(spec->kind), msg);
  }
  return 0;
}

/* Re-record the current error message with the failing bijector's index and kind in front. */
static int bijector_error(const cnf_flow *f, int k, int rc) {
  char msg[900];
  snprintf(msg, sizeof msg, "%s", cnf_error_message());
  return cnf_error_set(rc, "bijector %d (%s): %s", k,
                       cnf_bijector_kind_name(f->bij[k].spec.kind), msg);
}

/* ---- lifecycle and accessors ---------------------------------------------------------------- */
int cnf_flow_create(int D, int C, int n_bij, const cnf_bijector_spec *specs, cnf_flow **out) {
  *out = NULL;
  if (D < 1 || C < 0 || n_bij < 1 || !specs)
    return cnf_error_set(CNF_ERR_ARG,
                         "cnf_flow_create: need D >= 1, C >= 0 and at least one bijector "
                         "(got D=%d C=%d n=%d)",
                         D, C, n_bij);
  cnf_flow *f = cnf_calloc(1, sizeof *f);
  if (!f)
    return CNF_ERR_NOMEM;
  f->D = D;
  f->C = C;
  int rc = 0;
  f->bij = cnf_calloc((size_t)n_bij, sizeof *f->bij);
  f->cond_map = cnf_calloc((size_t)(C > 0 ? C : 1), sizeof *f->cond_map);
  f->cond_shift = cnf_calloc((size_t)(C > 0 ? C : 1), sizeof(double));
  f->cond_scale = cnf_calloc((size_t)(C > 0 ? C : 1), sizeof(double));
  if (!f->bij || !f->cond_map || !f->cond_shift || !f->cond_scale) {
    rc = CNF_ERR_NOMEM;
    goto fail;
  }
  for (int j = 0; j < C; j++)
    f->cond_scale[j] = 1.0; /* identity map, shift 0 */
  for (int k = 0; k < n_bij; k++) {
    CNF_CALL_GOTO(rc, fail, cnf_bijector_create(&specs[k], D, C, k, &f->bij[k]));
    f->n_bij = k + 1; /* constructed so far: what cnf_flow_free destroys */
    f->bij[k].param_offset = f->n_params;
    f->n_params += f->bij[k].n_params;
  }
  /* one zeroed allocation each, padded to whole cache lines */
  size_t bytes = ((f->n_params * sizeof(cnf_real) + 63) / 64) * 64;
  f->params = cnf_aligned_alloc(bytes ? bytes : 64);
  f->grads = cnf_aligned_alloc(bytes ? bytes : 64);
  if (!f->params || !f->grads) {
    rc = CNF_ERR_NOMEM;
    goto fail;
  }
  memset(f->params, 0, bytes);
  memset(f->grads, 0, bytes);
  for (int k = 0; k < n_bij; k++) {
    cnf_bijector *b = &f->bij[k];
    b->params = b->n_params ? f->params + b->param_offset : NULL;
    b->grads = b->n_params ? f->grads + b->param_offset : NULL;
  }
  CNF_CALL_GOTO(rc, fail, cnf_flow_params_changed(f));
  *out = f;
  return 0;
fail:
  cnf_flow_free(&f);
  return rc;
}

static void flow_free_buffers(cnf_flow *f) {
  free(f->act);
  free(f->cond);
  free(f->dcond);
  free(f->dc_acc);
  free(f->grad_a);
  free(f->grad_b);
  free(f->logdet);
  free(f->dlogdet);
  f->act = f->cond = f->dcond = f->dc_acc = f->grad_a = f->grad_b = NULL;
  f->logdet = f->dlogdet = NULL;
  f->nmax = 0;
}

void cnf_flow_free(cnf_flow **flow) {
  cnf_flow *f = *flow;
  if (!f)
    return;
  for (int k = 0; k < f->n_bij; k++)
    if (f->bij[k].ops && f->bij[k].ops->destroy)
      f->bij[k].ops->destroy(&f->bij[k]);
  flow_free_buffers(f);
  free(f->bij);
  free(f->params);
  free(f->grads);
  free(f->cond_map);
  free(f->cond_shift);
  free(f->cond_scale);
  free(f);
  *flow = NULL;
}

int cnf_flow_dim(const cnf_flow *f) { return f->D; }
int cnf_flow_cond_dim(const cnf_flow *f) { return f->C; }
int cnf_flow_num_bijectors(const cnf_flow *f) { return f->n_bij; }
const cnf_bijector *cnf_flow_bijector(const cnf_flow *f, int k) {
  CNF_ASSERT(k >= 0 && k < f->n_bij);
  return &f->bij[k];
}
size_t cnf_flow_num_params(const cnf_flow *f) { return f->n_params; }
cnf_real *cnf_flow_params(cnf_flow *f) { return f->params; }
cnf_real *cnf_flow_grads(cnf_flow *f) { return f->grads; }
void cnf_flow_zero_grads(cnf_flow *f) { memset(f->grads, 0, f->n_params * sizeof(cnf_real)); }

int cnf_flow_live_ranges(const cnf_flow *f, size_t *n_ranges, size_t **ranges) {
  *n_ranges = 0;
  *ranges = NULL;
  /* two passes: count, then write; ranges of neighbouring bijectors that touch are merged */
  size_t *out = NULL, count = 0;
  for (int pass = 0; pass < 2; pass++) {
    count = 0;
    for (int k = 0; k < f->n_bij; k++) {
      const cnf_bijector *b = &f->bij[k];
      if (b->n_params == 0)
        continue;
      size_t local[2] = {b->param_offset, b->param_offset + b->n_params};
      size_t *dst = out ? out + 2 * count : NULL;
      size_t nk = 1;
      if (b->ops->live_ranges)
        nk = b->ops->live_ranges(b, dst);
      else if (dst)
        memcpy(dst, local, sizeof local);
      if (nk == 0)
        continue;
      if (count > 0 && out && out[2 * count - 1] == dst[0]) { /* merge across the boundary */
        out[2 * count - 1] = dst[1];
        memmove(dst, dst + 2, sizeof(size_t) * 2 * (nk - 1));
        nk--;
      }
      count += nk;
    }
    if (pass == 0) {
      out = cnf_malloc(sizeof(size_t) * 2 * (count ? count : 1));
      if (!out)
        return CNF_ERR_NOMEM;
    }
  }
  *n_ranges = count;
  *ranges = out;
  return 0;
}

int cnf_flow_params_changed(cnf_flow *f) {
  for (int k = 0; k < f->n_bij; k++) {
    cnf_bijector *b = &f->bij[k];
    if (b->ops->params_changed) {
      int rc = b->ops->params_changed(b);
      if (rc < 0)
        return bijector_error(f, k, rc);
    }
  }
  return 0;
}

/* ---- condition transform -------------------------------------------------------------------- */
int cnf_flow_set_cond_transform(cnf_flow *f, const cnf_cond_map *map, const double *shift,
                                const double *scale) {
  for (int j = 0; j < f->C; j++) {
    cnf_cond_map m = map ? map[j] : CNF_COND_IDENTITY;
    double sh = shift ? shift[j] : 0.0, sc = scale ? scale[j] : 1.0;
    if (m != CNF_COND_IDENTITY && m != CNF_COND_LOG10 && m != CNF_COND_LOG)
      return cnf_error_set(CNF_ERR_ARG, "condition %d: unknown map %d", j, (int)m);
    if (!isfinite(sh) || !isfinite(sc) || sc == 0.0)
      return cnf_error_set(CNF_ERR_ARG,
                           "condition %d: shift %g, scale %g (need finite, non-zero scale)", j,
                           sh, sc);
  }
  for (int j = 0; j < f->C; j++) {
    f->cond_map[j] = map ? map[j] : CNF_COND_IDENTITY;
    f->cond_shift[j] = shift ? shift[j] : 0.0;
    f->cond_scale[j] = scale ? scale[j] : 1.0;
  }
  return 0;
}

int cnf_flow_transform_cond(const cnf_flow *f, int n, const cnf_real *c_raw, cnf_real *c_out,
                            cnf_real *dcout_dcraw) {
  const int C = f->C;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < C; j++) {
      size_t e = (size_t)i * C + j;
      double v = c_raw[e], m, dm;
      if (!isfinite(v))
        return cnf_error_set(CNF_ERR_NUMERIC, "condition row %d column %d is %g", i, j, v);
      switch (f->cond_map[j]) {
      case CNF_COND_LOG10:
      case CNF_COND_LOG:
        if (!(v > 0))
          return cnf_error_set(CNF_ERR_NUMERIC,
                               "condition row %d column %d = %g must be > 0 for its %s map", i,
                               j, v, f->cond_map[j] == CNF_COND_LOG ? "log" : "log10");
        m = f->cond_map[j] == CNF_COND_LOG ? log(v) : log10(v);
        dm = f->cond_map[j] == CNF_COND_LOG ? 1.0 / v : 1.0 / (v * M_LN10);
        break;
      default:
        m = v;
        dm = 1.0;
        break;
      }
      c_out[e] = (cnf_real)((m - f->cond_shift[j]) * f->cond_scale[j]);
      if (dcout_dcraw)
        dcout_dcraw[e] = (cnf_real)(dm * f->cond_scale[j]);
    }
  return 0;
}

/* Accessors used by the model-file writer (flow_io.c) */
int cnf_flow_get_cond_transform(const cnf_flow *f, int j, cnf_cond_map *map, double *shift,
                                double *scale) {
  if (!f || j < 0 || j >= f->C)
    return cnf_error_set(CNF_ERR_ARG, "condition index %d outside [0, %d)", j, f ? f->C : 0);
  if (map)
    *map = f->cond_map[j];
  if (shift)
    *shift = f->cond_shift[j];
  if (scale)
    *scale = f->cond_scale[j];
  return 0;
}

/* ---- work buffers --------------------------------------------------------------------------- */
static cnf_real *act_slice(const cnf_flow *f, int k) {
  return f->act + (size_t)k * (size_t)f->nmax * (size_t)f->D;
}

int cnf_flow_reserved(const cnf_flow *f) { return f->nmax; }

int cnf_flow_reserve(cnf_flow *f, int nmax) {
  if (nmax < 0)
    return cnf_error_set(CNF_ERR_ARG, "cnf_flow_reserve: negative batch size %d", nmax);
  if (nmax <= f->nmax)
    return 0;
  flow_free_buffers(f);
  size_t n = (size_t)nmax, D = (size_t)f->D, C = (size_t)(f->C > 0 ? f->C : 1);
  f->act = cnf_malloc(sizeof(cnf_real) * (size_t)(f->n_bij + 1) * n * D);
  f->cond = cnf_malloc(sizeof(cnf_real) * n * C);
  f->dcond = cnf_malloc(sizeof(cnf_real) * n * C);
  f->dc_acc = cnf_malloc(sizeof(cnf_real) * n * C);
  f->grad_a = cnf_malloc(sizeof(cnf_real) * n * D);
  f->grad_b = cnf_malloc(sizeof(cnf_real) * n * D);
  f->logdet = cnf_malloc(sizeof(cnf_real) * n);
  f->dlogdet = cnf_malloc(sizeof(cnf_real) * n);
  if (!f->act || !f->cond || !f->dcond || !f->dc_acc || !f->grad_a || !f->grad_b ||
      !f->logdet || !f->dlogdet) {
    flow_free_buffers(f);
    return CNF_ERR_NOMEM;
  }
  f->nmax = nmax;
  for (int k = 0; k < f->n_bij; k++) {
    int rc = f->bij[k].ops->reserve(&f->bij[k], nmax);
    if (rc < 0) {
      flow_free_buffers(f);
      return bijector_error(f, k, rc);
    }
  }
  return 0;
}

/* First non-finite entry of a (n, cols) array -> CNF_ERR_NUMERIC naming row and column. */
static int check_finite(const char *what, const char *label, int n, int cols,
                        const cnf_real *a) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < cols; j++)
      if (!isfinite(a[(size_t)i * cols + j]))
        return cnf_error_set(CNF_ERR_NUMERIC, "%s: %s row %d column %d is %g", what, label, i,
                             j, (double)a[(size_t)i * cols + j]);
  return 0;
}

/* Validate and load a batch: x -> act slice 0, c_raw -> f->cond (and dcond if wanted). */
static int flow_load_batch(cnf_flow *f, const char *what, int n, const cnf_real *x,
                           const cnf_real *c, int want_dcond) {
  if (n < 0)
    return cnf_error_set(CNF_ERR_ARG, "%s: negative batch size %d", what, n);
  cnf_watchdog_beat("a flow evaluation"); /* every density, sample and gradient pass */
  if (f->C > 0 && !c && n > 0)
    return cnf_error_set(CNF_ERR_ARG, "%s: the flow has %d conditions but c is NULL", what,
                         f->C);
  CNF_CALL(cnf_flow_reserve(f, n));
  if (x) {
    CNF_CALL(check_finite(what, "x", n, f->D, x));
    memcpy(act_slice(f, 0), x, sizeof(cnf_real) * (size_t)n * f->D);
  }
  if (f->C > 0) {
    int rc = cnf_flow_transform_cond(f, n, c, f->cond, want_dcond ? f->dcond : NULL);
    if (rc < 0) {
      char msg[900];
      snprintf(msg, sizeof msg, "%s", cnf_error_message());
      return cnf_error_set(rc, "%s: %s", what, msg);
    }
  }
  return 0;
}

static const cnf_real *cond_or_null(const cnf_flow *f) { return f->C > 0 ? f->cond : NULL; }

/* Density direction through every bijector: act[0] -> act[n_bij], f->logdet WRITTEN. */
static int flow_run_forward(cnf_flow *f, int n) {
  memset(f->logdet, 0, sizeof(cnf_real) * (size_t)n);
  for (int k = 0; k < f->n_bij; k++) {
    cnf_bijector *b = &f->bij[k];
    int rc = b->ops->forward(b, n, act_slice(f, k), cond_or_null(f), act_slice(f, k + 1),
                             f->logdet);
    if (rc < 0)
      return bijector_error(f, k, rc);
  }
  return 0;
}

/* Sampling direction: act[n_bij] -> act[0], f->logdet WRITTEN with log|det dx/dz|. */
static int flow_run_inverse(cnf_flow *f, int n) {
  memset(f->logdet, 0, sizeof(cnf_real) * (size_t)n);
  for (int k = f->n_bij - 1; k >= 0; k--) {
    cnf_bijector *b = &f->bij[k];
    int rc = b->ops->inverse(b, n, act_slice(f, k + 1), cond_or_null(f), act_slice(f, k),
                             f->logdet);
    if (rc < 0)
      return bijector_error(f, k, rc);
  }
  return 0;
}

/* log N(z; 0, I) of row i of z (n, D). */
static double base_log_density(const cnf_real *zi, int D) {
  double s = 0;
  for (int j = 0; j < D; j++)
    s += (double)zi[j] * zi[j];
  return -0.5 * s - 0.5 * D * LOG_2PI;
}

/* ---- initialisation ------------------------------------------------------------------------- */
int cnf_flow_init_params(cnf_flow *f, uint64_t seed, int identity) {
  for (int k = 0; k < f->n_bij; k++) {
    cnf_bijector *b = &f->bij[k];
    cnf_rng r;
    cnf_rng_init(&r, seed, (uint64_t)k, 0); /* one stream per bijector: insertion-stable */
    int rc = b->ops->init_params(b, &r, identity);
    if (rc < 0)
      return bijector_error(f, k, rc);
  }
  return cnf_flow_params_changed(f);
}

int cnf_flow_data_init(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c) {
  if (n < 1)
    return cnf_error_set(CNF_ERR_ARG, "cnf_flow_data_init: need at least one event");
  CNF_CALL(flow_load_batch(f, "cnf_flow_data_init", n, x, c, 0));
  memset(f->logdet, 0, sizeof(cnf_real) * (size_t)n);
  for (int k = 0; k < f->n_bij; k++) {
    cnf_bijector *b = &f->bij[k];
    int rc = 0;
    /* the batch as it arrives at bijector k initialises it before it transforms the batch */
    if (b->ops->data_init) {
      rc = b->ops->data_init(b, n, act_slice(f, k));
      if (rc >= 0 && b->ops->params_changed)
        rc = b->ops->params_changed(b);
    }
    if (rc >= 0)
      rc = b->ops->forward(b, n, act_slice(f, k), cond_or_null(f), act_slice(f, k + 1),
                           f->logdet);
    if (rc < 0)
      return bijector_error(f, k, rc);
  }
  return 0;
}

/* ---- density, sampling ---------------------------------------------------------------------- */
int cnf_flow_forward(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c, cnf_real *z,
                     cnf_real *logdet) {
  CNF_CALL(flow_load_batch(f, "cnf_flow_forward", n, x, c, 0));
  if (n == 0)
    return 0;
  CNF_CALL(flow_run_forward(f, n));
  memcpy(z, act_slice(f, f->n_bij), sizeof(cnf_real) * (size_t)n * f->D);
  if (logdet)
    memcpy(logdet, f->logdet, sizeof(cnf_real) * (size_t)n);
  return 0;
}

int cnf_flow_log_prob(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c, cnf_real *logp) {
  CNF_CALL(flow_load_batch(f, "cnf_flow_log_prob", n, x, c, 0));
  if (n == 0)
    return 0;
  CNF_CALL(flow_run_forward(f, n));
  const cnf_real *z = act_slice(f, f->n_bij);
  for (int i = 0; i < n; i++)
    logp[i] = (cnf_real)(base_log_density(z + (size_t)i * f->D, f->D) + f->logdet[i]);
  /* -inf is a zero density (an underflow of the working precision or outside the support) and
   * callers handle it; NaN or +inf is never a density: say so instead of returning it */
  for (int i = 0; i < n; i++)
    if (isnan((double)logp[i]) || logp[i] == (cnf_real)INFINITY)
      return cnf_error_set(CNF_ERR_NUMERIC, "cnf_flow_log_prob: the log-density of event %d of %d "
                           "is %g (non-finite parameters, or an input the flow cannot represent)",
                           i, n, (double)logp[i]);
  return 0;
}

int cnf_flow_inverse(cnf_flow *f, int n, const cnf_real *z, const cnf_real *c, cnf_real *x,
                     cnf_real *logdet) {
  CNF_CALL(flow_load_batch(f, "cnf_flow_inverse", n, NULL, c, 0));
  if (n == 0)
    return 0;
  CNF_CALL(check_finite("cnf_flow_inverse", "z", n, f->D, z));
  memcpy(act_slice(f, f->n_bij), z, sizeof(cnf_real) * (size_t)n * f->D);
  CNF_CALL(flow_run_inverse(f, n));
  memcpy(x, act_slice(f, 0), sizeof(cnf_real) * (size_t)n * f->D);
  if (logdet)
    memcpy(logdet, f->logdet, sizeof(cnf_real) * (size_t)n);
  return 0;
}

int cnf_flow_sample(cnf_flow *f, int n, const cnf_real *c, uint64_t seed, uint64_t first_index,
                    cnf_real *x, cnf_real *logp) {
  CNF_CALL(flow_load_batch(f, "cnf_flow_sample", n, NULL, c, 0));
  if (n == 0)
    return 0;
  const int D = f->D;
  cnf_real *z = act_slice(f, f->n_bij);
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, seed, first_index + (uint64_t)i, 0); /* event i's own stream */
    for (int j = 0; j < D; j++)
      z[(size_t)i * D + j] = (cnf_real)cnf_rng_normal(&r);
  }
  if (logp)
    for (int i = 0; i < n; i++)
      logp[i] = (cnf_real)base_log_density(z + (size_t)i * D, D);
  CNF_CALL(flow_run_inverse(f, n));
  memcpy(x, act_slice(f, 0), sizeof(cnf_real) * (size_t)n * D);
  if (logp)
    for (int i = 0; i < n; i++)
      logp[i] = (cnf_real)((double)logp[i] - f->logdet[i]);
  return 0;
}

/* ---- training: weighted NLL and its gradients ----------------------------------------------- */
/* The reverse pass behind cnf_flow_nll_backward and cnf_flow_cond_gradient: loss =
 * -sum_i w_i log p_i with w_i = weights[i], or w_const for every event when weights is NULL.
 * param_grads == 0: the bijectors see b->grads = NULL for this pass and compute no parameter
 * gradient (the data and condition gradients are the same arithmetic either way). */
static int flow_backward(cnf_flow *f, const char *what, int n, const cnf_real *x,
                         const cnf_real *c, const cnf_real *weights, double w_const, double *loss,
                         cnf_real *logp, cnf_real *dc, int param_grads) {
  *loss = 0;
  CNF_CALL(flow_load_batch(f, what, n, x, c, dc != NULL));
  if (n == 0)
    return 0;
  if (weights)
    CNF_CALL(check_finite(what, "weights", n, 1, weights));
  CNF_CALL(flow_run_forward(f, n));
  const int D = f->D, C = f->C;
  const cnf_real *z = act_slice(f, f->n_bij);
  double total = 0;
  /* loss = -sum_i w_i log p_i, log p_i = log N(z_i) + logdet_i, so the chain-rule seeds are
   * dL/dz_i = w_i z_i and dL/dlogdet_i = -w_i */
  for (int i = 0; i < n; i++) {
    double w = weights ? weights[i] : w_const;
    double lp = base_log_density(z + (size_t)i * D, D) + f->logdet[i];
    if (!isfinite(lp))
      return cnf_error_set(CNF_ERR_NUMERIC, "%s: log p of event %d is %g", what, i, lp);
    if (logp)
      logp[i] = (cnf_real)lp;
    total -= w * lp;
    f->dlogdet[i] = (cnf_real)(-w);
    for (int j = 0; j < D; j++)
      f->grad_a[(size_t)i * D + j] = (cnf_real)(w * z[(size_t)i * D + j]);
  }
  *loss = total;
  cnf_real *dc_acc = (dc && C > 0) ? f->dc_acc : NULL;
  if (dc_acc)
    memset(dc_acc, 0, sizeof(cnf_real) * (size_t)n * C);
  cnf_real *dz = f->grad_a, *dx = f->grad_b;
  for (int k = f->n_bij - 1; k >= 0; k--) {
    cnf_bijector *b = &f->bij[k];
    cnf_real *grads = b->grads;
    if (!param_grads)
      b->grads = NULL;
    int rc = b->ops->backward(b, n, act_slice(f, k), cond_or_null(f), act_slice(f, k + 1), dz,
                              f->dlogdet, dx, dc_acc);
    b->grads = grads;
    if (rc < 0)
      return bijector_error(f, k, rc);
    cnf_real *t = dz;
    dz = dx;
    dx = t;
  }
  /* chain through the condition transform: dL/dc_raw = dL/dc' * dc'/dc_raw */
  if (dc_acc)
    for (size_t e = 0; e < (size_t)n * C; e++)
      dc[e] = dc_acc[e] * f->dcond[e];
  return 0;
}

int cnf_flow_nll_backward(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c,
                          const cnf_real *weights, double *loss, cnf_real *logp, cnf_real *dc) {
  return flow_backward(f, "cnf_flow_nll_backward", n, x, c, weights, n > 0 ? 1.0 / n : 0, loss,
                       logp, dc, 1);
}

int cnf_flow_cond_gradient(cnf_flow *f, int n, const cnf_real *x, const cnf_real *c,
                           cnf_real *logp, cnf_real *dlogp_dc) {
  const char *what = "cnf_flow_cond_gradient";
  if (f->C < 1 || !dlogp_dc)
    return cnf_error_set(CNF_ERR_ARG, "%s: the flow has no conditions or dlogp_dc is NULL",
                         what);
  /* weight -1: the "loss" is +sum log p, so dL/dc is d log p/dc itself (the seeds are exactly
   * the negated unit-weight ones: the result is bit-identical to -dc of nll_backward) */
  double sum_logp = 0;
  return flow_backward(f, what, n, x, c, NULL, -1.0, &sum_logp, logp, dlogp_dc, 0);
}
