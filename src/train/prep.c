/* The stored preprocessing of `cnflow train`.  Each study's preprocessing becomes fixed
 * bijectors in FRONT of the architecture plus the flow's condition transform, so that the
 * model file is the density of the raw observables (every data- or condition-dependent step
 * contributes its log-Jacobian through the bijector) and a later stage needs nothing but the
 * file.  Constants that depend on the data are measured on the training split (collectives),
 * never on the validation or test events.
 *   cnf      [affine_fixed(0, target_scale), tanh, core...]; c' = c / absmax(c)
 *   flowi    [log(eps), affine_fixed(ln10 - ln u, ln10 / 2), core...]  (u = MeV per unit):
 *            x = 2 (log10(E/MeV + eps) - 1); c' = log10(E_inc / 10 GeV)
 *   paraflow [cond_scale(E), logit(alpha), core...]: x / E_inc then logit;
 *            c' = 2 (ln c - ln lo) / (ln hi - ln lo) - 1 over the training range [lo, hi]
 *   regress  [log(0), affine_fixed(ln(10 GeV / u), ln10), maf_affine shift-only]: the study's
 *            direct-regression MLP (flows-reference.md 5.6) as a 1-D conditional flow.  With
 *            D = 1 no hidden MADE unit may see the target, so m(c) is an MLP of the conditions
 *            (plus the direct Wc term) and z = t - m(c) with t = log10(E_inc / 10 GeV): the NLL
 *            is MSE/2 + const, i.e. MSE training, and the inverse at z = 0 is the prediction
 *            E = 10 GeV * 10^m(c).  The architecture is fixed here (RegressionLayerNet: 3 hidden
 *            layers of 256 ReLU; -flow_hidden / -flow_n_hidden override it, -preset is not
 *            read); conditions are the raw layer energies in units of 100 GeV (no log, no
 *            noise), c' = c * (MeV per unit) / 1e5.
 */
#include "train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const prep_names[] = {"none", "cnf", "flowi", "paraflow", "regress"};

const char *cnf_prep_kind_name(cnf_prep_kind k) {
  return (int)k >= 0 && k <= CNF_PREP_REGRESS ? prep_names[k] : "unknown";
}

int cnf_prep_kind_from_name(const char *name) {
  for (int k = 0; k <= CNF_PREP_REGRESS; k++)
    if (name && strcmp(name, prep_names[k]) == 0)
      return k;
  return -1;
}

/* MeV per unit of an energy column ("" = MeV, the CaloChallenge convention). */
static int unit_mev(const char *unit, const char *what, double *out) {
  if (!unit[0] || strcmp(unit, "MeV") == 0)
    *out = 1.0;
  else if (strcmp(unit, "GeV") == 0)
    *out = 1e3;
  else if (strcmp(unit, "keV") == 0)
    *out = 1e-3;
  else if (strcmp(unit, "TeV") == 0)
    *out = 1e6;
  else
    return cnf_error_set(CNF_ERR_FORMAT, "%s has unit '%s': an energy in keV, MeV, GeV or TeV "
                         "is needed", what, unit);
  return 0;
}

/* Per-column min and max over all ranks' events of (n, k) array a. */
static int column_range(MPI_Comm comm, int n, int k, const cnf_real *a, double *lo, double *hi) {
  double *buf = cnf_malloc(sizeof(double) * 2 * (size_t)k);
  if (!buf)
    return CNF_ERR_NOMEM;
  /* buf = (-min, max): one MAX reduction gives both */
  for (int j = 0; j < 2 * k; j++)
    buf[j] = -INFINITY;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < k; j++) {
      double v = a[(size_t)i * k + j];
      buf[j] = fmax(buf[j], -v);
      buf[k + j] = fmax(buf[k + j], v);
    }
  int rc = MPI_Allreduce(MPI_IN_PLACE, buf, 2 * k, MPI_DOUBLE, MPI_MAX, comm);
  for (int j = 0; j < k; j++) {
    lo[j] = -buf[j];
    hi[j] = buf[k + j];
  }
  free(buf);
  return rc == MPI_SUCCESS ? 0 : cnf_error_set(CNF_ERR_MPI, "train: MPI_Allreduce of ranges failed");
}

/* Parse the CNF target scales (a list repeated over the columns). */
static int parse_scales(const char *list, int D, double *out) {
  int n = 0;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    char *end;
    double v = strtod(t, &end);
    if (end == t || *end || !(v > 0) || !isfinite(v) || n >= D)
      return cnf_error_set(CNF_ERR_ARG, "-target_scale '%s': need at most %d positive numbers",
                           list, D);
    out[n++] = v;
  }
  /* a shorter list repeats: "20,0.01,0.005" covers both photons' (dET, dphi, deta) */
  if (n == 0 || D % n != 0)
    return cnf_error_set(CNF_ERR_ARG, "-target_scale '%s': need a list whose length divides "
                         "the %d targets (got %d)", list, D, n);
  for (int j = n; j < D; j++)
    out[j] = out[j % n];
  return 0;
}

/* Trainable blocks (MADE or coupling) counted for -flow_blocks. */
static int is_block(cnf_bijector_kind k) {
  return k == CNF_BIJ_MAF_AFFINE || k == CNF_BIJ_MAF_RQS || k == CNF_BIJ_COUPLING_RQS;
}

/* The preset's specs with the overrides applied; blocks beyond -flow_blocks are cut (with the
 * permutation / ActNorm leading into them). */
static int core_specs(const cnf_study_conf *conf, const cnf_flow *core, cnf_bijector_spec *out,
                      int max, int *n_out) {
  int nb = cnf_flow_num_bijectors(core), blocks = 0, n = 0, last = -1;
  for (int k = 0; k < nb; k++)
    blocks += is_block(cnf_flow_bijector(core, k)->spec.kind);
  if (conf->flow_blocks > blocks)
    return cnf_error_set(CNF_ERR_ARG, "-flow_blocks %d: preset %s has only %d blocks",
                         conf->flow_blocks, conf->preset, blocks);
  int want = conf->flow_blocks > 0 ? conf->flow_blocks : blocks, seen = 0;
  for (int k = 0; k < nb && seen < want; k++) {
    cnf_bijector_spec s = cnf_flow_bijector(core, k)->spec;
    if (is_block(s.kind)) {
      seen++;
      last = n;
      if (conf->flow_hidden > 0)
        s.hidden = conf->flow_hidden;
      if (conf->flow_n_hidden > 0)
        s.n_hidden = conf->flow_n_hidden;
      if (conf->flow_bins > 0 && s.kind != CNF_BIJ_MAF_AFFINE)
        s.bins = conf->flow_bins;
    }
    if (n >= max)
      return cnf_error_set(CNF_ERR_ARG, "train: too many bijectors");
    out[n++] = s;
  }
  *n_out = last + 1;
  return 0;
}

int train_prep_build(MPI_Comm comm, const cnf_study_conf *conf, const train_shard *tr,
                     train_prep *prep, cnf_flow **flow) {
  const int D = tr->D, C = tr->C;
  *flow = NULL;
  memset(prep, 0, sizeof *prep);
  prep->kind = conf->prep;
  prep->D = D;
  prep->C = C;
  prep->noise = conf->noise;
  prep->energy_col = -1;
  for (int j = 0; j < D; j++)
    prep->target_scale[j] = 1.0;

  double *lo = cnf_malloc(sizeof(double) * (C ? C : 1)), *hi = cnf_malloc(sizeof(double) * (C ? C : 1));
  double *shift = cnf_calloc((size_t)(C ? C : 1), sizeof(double));
  double *scale = cnf_malloc(sizeof(double) * (C ? C : 1));
  cnf_cond_map *map = cnf_calloc((size_t)(C ? C : 1), sizeof(cnf_cond_map));
  enum { MAX_BIJ = 256 };
  cnf_bijector_spec *specs = cnf_calloc(MAX_BIJ, sizeof *specs);
  double *pre_shift = cnf_calloc((size_t)D, sizeof(double)), *pre_scale = cnf_malloc(sizeof(double) * D);
  cnf_flow *core = NULL;
  int rc = 0, n = 0;
  if (!lo || !hi || !shift || !scale || !map || !specs || !pre_shift || !pre_scale) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  for (int j = 0; j < C; j++)
    scale[j] = 1.0;
  if (C > 0)
    CNF_CALL_GOTO(rc, done, column_range(comm, tr->n, C, tr->c, lo, hi));

  switch (conf->prep) {
  case CNF_PREP_CNF:
    CNF_CALL_GOTO(rc, done, parse_scales(conf->target_scale, D, prep->target_scale));
    for (int j = 0; j < D; j++)
      pre_scale[j] = prep->target_scale[j];
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = pre_shift,
                                     .scale = pre_scale};
    for (int j = 0; j < C; j++) {
      double m = fmax(fabs(lo[j]), fabs(hi[j]));
      scale[j] = m > 0 ? 1.0 / m : 1.0;
    }
    break;
  case CNF_PREP_FLOWI: {
    CNF_CALL_GOTO(rc, done, unit_mev(tr->target_units[0], "the first target column", &prep->energy_unit_mev));
    for (int j = 1; j < D; j++)
      if (strcmp(tr->target_units[j], tr->target_units[0]) != 0) {
        rc = cnf_error_set(CNF_ERR_FORMAT, "%s: flowi preprocessing needs one energy unit for "
                           "all targets ('%s' vs '%s')", tr->file, tr->target_units[0],
                           tr->target_units[j]);
        goto done;
      }
    const double u = prep->energy_unit_mev;
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_LOG, .eps = conf->log_eps_mev / u};
    for (int j = 0; j < D; j++) {
      pre_shift[j] = M_LN10 - log(u);
      pre_scale[j] = M_LN10 / 2;
    }
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = pre_shift,
                                     .scale = pre_scale};
    for (int j = 0; j < C; j++) {
      double cu;
      char what[96];
      snprintf(what, sizeof what, "condition '%s'", tr->cond_names[j]);
      CNF_CALL_GOTO(rc, done, unit_mev(tr->cond_units[j], what, &cu));
      map[j] = CNF_COND_LOG10;
      shift[j] = log10(1e4 / cu); /* log10(E / 10 GeV) */
    }
    break;
  }
  case CNF_PREP_PARAFLOW: {
    const char *ename = conf->energy_column[0] ? conf->energy_column : "energy";
    for (int j = 0; j < C; j++)
      if (strcmp(tr->cond_names[j], ename) == 0)
        prep->energy_col = j;
    if (prep->energy_col < 0) {
      rc = cnf_error_set(CNF_ERR_ARG, "%s: no condition column '%s' to divide the images by "
                         "(-energy_column)", tr->file, ename);
      goto done;
    }
    for (int j = 0; j < C; j++) {
      if (!(lo[j] > 0)) {
        rc = cnf_error_set(CNF_ERR_ARG, "%s: condition '%s' reaches %g: the paraflow log map "
                           "needs positive conditions", tr->file, tr->cond_names[j], lo[j]);
        goto done;
      }
      map[j] = CNF_COND_LOG;
      shift[j] = 0.5 * (log(lo[j]) + log(hi[j]));
      scale[j] = hi[j] > lo[j] ? 2.0 / (log(hi[j]) - log(lo[j])) : 1.0;
    }
    const int e = prep->energy_col;
    /* s = ln E = c'/scale + shift: the bijector divides by the raw energy exactly */
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_COND_SCALE, .cond_index = e,
                                     .cond_a = 1.0 / scale[e], .cond_b = shift[e]};
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_LOGIT, .alpha = conf->logit_alpha};
    break;
  }
  case CNF_PREP_REGRESS: {
    if (D != 1) {
      rc = cnf_error_set(CNF_ERR_ARG, "%s: regress preprocessing needs one target column (the "
                         "incident energy), got %d (-target incident_energies)", tr->file, D);
      goto done;
    }
    if (conf->flow_blocks > 1) {
      rc = cnf_error_set(CNF_ERR_ARG, "-flow_blocks %d: the regression MLP is one block",
                         conf->flow_blocks);
      goto done;
    }
    double u;
    CNF_CALL_GOTO(rc, done, unit_mev(tr->target_units[0], "the target (incident energy)", &u));
    /* t = ln(E) / ln 10 - log10(10 GeV / u) = log10(E / 10 GeV); eps 0: E must be > 0 */
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_LOG, .eps = 0};
    pre_shift[0] = log(1e4 / u);
    pre_scale[0] = M_LN10;
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_AFFINE_FIXED, .shift = pre_shift,
                                     .scale = pre_scale};
    for (int j = 0; j < C; j++) {
      double cu;
      char what[96];
      snprintf(what, sizeof what, "condition '%s'", tr->cond_names[j]);
      CNF_CALL_GOTO(rc, done, unit_mev(tr->cond_units[j], what, &cu));
      scale[j] = cu / 1e5; /* units of 100 GeV, the study's inputs */
    }
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_MAF_AFFINE,
                                     .hidden = conf->flow_hidden > 0 ? conf->flow_hidden : 256,
                                     .n_hidden = conf->flow_n_hidden > 0 ? conf->flow_n_hidden : 3,
                                     .scale_kind = CNF_AFFINE_SCALE_SHIFT};
    CNF_CALL_GOTO(rc, done, cnf_flow_create(D, C, n, specs, flow));
    if (C > 0)
      CNF_CALL_GOTO(rc, done, cnf_flow_set_cond_transform(*flow, map, shift, scale));
    goto done;
  }
  default:
    break;
  }

  CNF_CALL_GOTO(rc, done, cnf_flow_create_preset(conf->preset, D, C, conf->seed, &core));
  if (cnf_flow_dim(core) != D || cnf_flow_cond_dim(core) != C) {
    rc = cnf_error_set(CNF_ERR_ARG, "preset %s is %d-D with %d conditions, the data have %d "
                       "targets and %d conditions", conf->preset, cnf_flow_dim(core),
                       cnf_flow_cond_dim(core), D, C);
    goto done;
  }
  if (conf->prep == CNF_PREP_CNF && cnf_flow_bijector(core, 0)->spec.kind != CNF_BIJ_TANH)
    specs[n++] = (cnf_bijector_spec){.kind = CNF_BIJ_TANH};
  int n_core = 0;
  CNF_CALL_GOTO(rc, done, core_specs(conf, core, specs + n, MAX_BIJ - n, &n_core));
  CNF_CALL_GOTO(rc, done, cnf_flow_create(D, C, n + n_core, specs, flow));
  if (C > 0)
    CNF_CALL_GOTO(rc, done, cnf_flow_set_cond_transform(*flow, map, shift, scale));
done:
  cnf_flow_free(&core);
  free(lo);
  free(hi);
  free(shift);
  free(scale);
  free(map);
  free(specs);
  free(pre_shift);
  free(pre_scale);
  if (rc < 0)
    cnf_flow_free(flow);
  return train_sync(comm, rc);
}

void train_prep_support(const train_prep *p, const train_shard *s, unsigned char *keep) {
  const int D = s->D, C = s->C;
  for (int i = 0; i < s->n; i++) {
    const cnf_real *x = s->x + (size_t)i * D, *c = s->c + (size_t)i * C;
    int ok = 1;
    switch (p->kind) {
    case CNF_PREP_CNF:
      for (int j = 0; j < D && ok; j++)
        ok = fabs((double)x[j] / p->target_scale[j]) < 1.0;
      break;
    case CNF_PREP_FLOWI:
      for (int j = 0; j < D && ok; j++)
        ok = x[j] >= 0;
      for (int j = 0; j < C && ok; j++)
        ok = c[j] > 0;
      break;
    case CNF_PREP_REGRESS: /* log(E): a positive incident energy */
      ok = x[0] > 0;
      break;
    case CNF_PREP_PARAFLOW: {
      double e = c[p->energy_col];
      ok = e > 0;
      for (int j = 0; j < C && ok; j++)
        ok = c[j] > 0;
      for (int j = 0; j < D && ok; j++)
        ok = x[j] >= 0 && (double)x[j] + p->noise <= e;
      break;
    }
    default:
      break;
    }
    keep[i] = (unsigned char)ok;
  }
}

static void append(char *buf, size_t len, const char *fmt, const char *a, const char *b) {
  size_t used = strlen(buf);
  if (used < len)
    snprintf(buf + used, len - used, fmt, a, b);
}

void train_prep_describe(const train_prep *p, const cnf_study_conf *conf, const train_shard *s,
                         char *buf, size_t len) {
  char cols[4096] = "", num[64];
  buf[0] = '\0';
  append(buf, len, "%s=%s\n", "train_file", conf->train_file);
  append(buf, len, "%s=%s\n", "target", conf->target);
  for (int j = 0; j < s->D; j++) {
    strncat(cols, s->target_names[j], sizeof cols - strlen(cols) - 2);
    if (j + 1 < s->D)
      strcat(cols, ",");
  }
  append(buf, len, "%s=%s\n", "target_columns", cols);
  append(buf, len, "%s=%s\n", "cond", conf->cond);
  cols[0] = '\0';
  for (int j = 0; j < s->C; j++) {
    strncat(cols, s->cond_names[j], sizeof cols - strlen(cols) - 2);
    if (j + 1 < s->C)
      strcat(cols, ",");
  }
  append(buf, len, "%s=%s\n", "cond_columns", cols);
  append(buf, len, "%s=%s\n", "prep", cnf_prep_kind_name(p->kind));
  snprintf(num, sizeof num, "%.17g", p->noise);
  append(buf, len, "%s=%s\n", "noise", num);
  if (p->kind == CNF_PREP_PARAFLOW)
    append(buf, len, "%s=%s\n", "energy_column", s->cond_names[p->energy_col]);
}
