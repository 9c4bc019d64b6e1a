/* The classifier test of generated against reference events: an MLP (the engine's dense
 * layers, src/nn/mlp.c) trained by binary cross-entropy to tell the two apart.  If the
 * generator were perfect no classifier could beat a coin, so the held-out AUC measures what
 * the one-dimensional metrics miss (correlations, conditional shapes), and the weights
 * w = D / (1 - D) of the reference events are the density ratio p_gen / p_ref the classifier
 * learnt (their spread says how far apart the samples are where the reference lives).
 *
 * Deterministic: the split (even events train, odd events test, in each sample), the
 * initialisation and the epoch shuffles all come from counter-based streams of conf->seed. */
#include "cnflow/infer.h"
#include "cnflow/optim.h"
#include "cnflow/stats.h"

#include "../nn/mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cnf_classifier_conf_default(cnf_classifier_conf *c) {
  *c = (cnf_classifier_conf){.hidden = 64, .n_hidden = 2, .epochs = 20, .batch = 256,
                             .lr = 1e-3, .seed = 1, .max_train = 200000};
}

/* BCE with logits, label y in {0, 1}: loss = softplus(s) - y s, dloss/ds = sigmoid(s) - y. */
static double bce(double s, int y, double *ds) {
  const double sp = s > 0 ? s + log1p(exp(-s)) : log1p(exp(s));
  *ds = 1.0 / (1.0 + exp(-s)) - y;
  return sp - y * s;
}

int cnf_classifier_test(const double *gen, size_t n_gen, const double *ref, size_t n_ref,
                        int d, const cnf_classifier_conf *conf, cnf_classifier_result *res) {
  memset(res, 0, sizeof *res);
  if (d < 1 || n_gen < 4 || n_ref < 4)
    return cnf_error_set(CNF_ERR_ARG, "classifier: need >= 4 events of each kind and >= 1 "
                         "feature (got %zu, %zu, %d)", n_gen, n_ref, d);
  if (conf->hidden < 1 || conf->n_hidden < 0 || conf->epochs < 1 || conf->batch < 1 ||
      !(conf->lr > 0))
    return cnf_error_set(CNF_ERR_ARG, "classifier: bad configuration");
  /* even events of each sample train, odd ones test; the training set capped at max_train
   * events of each kind (the AUC's error is set by the test set, which is kept whole) */
  size_t tr_gen = (n_gen + 1) / 2, tr_ref = (n_ref + 1) / 2;
  if (conf->max_train > 0) {
    if (tr_gen > (size_t)conf->max_train) tr_gen = (size_t)conf->max_train;
    if (tr_ref > (size_t)conf->max_train) tr_ref = (size_t)conf->max_train;
  }
  const size_t te_gen = n_gen / 2, te_ref = n_ref / 2, n_tr = tr_gen + tr_ref;
  cnf_mlp m;
  CNF_CALL(cnf_mlp_init(&m, d, conf->n_hidden, conf->hidden, 1, CNF_MLP_RELU, 0));
  const int B = conf->batch;
  double *mean = calloc((size_t)d, sizeof *mean), *sd = calloc((size_t)d, sizeof *sd);
  cnf_real *x = malloc(sizeof(cnf_real) * n_tr * d);          /* standardised training set */
  int *label = malloc(sizeof(int) * n_tr), *perm = malloc(sizeof(int) * n_tr);
  cnf_real *params = malloc(sizeof(cnf_real) * m.n_params);
  cnf_real *grads = malloc(sizeof(cnf_real) * m.n_params);
  cnf_real *xb = malloc(sizeof(cnf_real) * (size_t)B * d), *out = malloc(sizeof(cnf_real) * B);
  cnf_real *dout = malloc(sizeof(cnf_real) * B);
  cnf_real *work = malloc(sizeof(cnf_real) * (cnf_mlp_work_size(&m, B) + 1));
  cnf_real *scratch = malloc(sizeof(cnf_real) * 2 * (size_t)B * conf->hidden);
  double *s_gen = malloc(sizeof(double) * (te_gen + 1)), *s_ref = malloc(sizeof(double) * (te_ref + 1));
  cnf_adam adam = {0};
  int rc = 0;
  if (!mean || !sd || !x || !label || !perm || !params || !grads || !xb || !out || !dout ||
      !work || !scratch || !s_gen || !s_ref) {
    rc = cnf_error_set(CNF_ERR_NOMEM, "classifier: out of memory (%zu training events)", n_tr);
    goto out;
  }
  /* features standardised by the training set of both kinds together */
  for (size_t i = 0; i < n_tr; i++) {
    const double *row = i < tr_gen ? gen + 2 * i * d : ref + 2 * (i - tr_gen) * d;
    for (int j = 0; j < d; j++) {
      if (!isfinite(row[j])) {
        rc = cnf_error_set(CNF_ERR_NUMERIC, "classifier: a non-finite feature (column %d)", j);
        goto out;
      }
      mean[j] += row[j];
    }
  }
  for (int j = 0; j < d; j++)
    mean[j] /= (double)n_tr;
  for (size_t i = 0; i < n_tr; i++) {
    const double *row = i < tr_gen ? gen + 2 * i * d : ref + 2 * (i - tr_gen) * d;
    for (int j = 0; j < d; j++)
      sd[j] += (row[j] - mean[j]) * (row[j] - mean[j]);
  }
  for (int j = 0; j < d; j++)
    sd[j] = sd[j] > 0 ? sqrt(sd[j] / (double)n_tr) : 1.0;
  for (size_t i = 0; i < n_tr; i++) {
    const double *row = i < tr_gen ? gen + 2 * i * d : ref + 2 * (i - tr_gen) * d;
    for (int j = 0; j < d; j++)
      x[i * d + j] = (cnf_real)((row[j] - mean[j]) / sd[j]);
    label[i] = i < tr_gen;
  }
  cnf_rng rng;
  cnf_rng_init(&rng, conf->seed, 0, 0);
  cnf_mlp_init_params(&m, params, &rng, 0);
  cnf_adam_conf ac = cnf_adam_conf_default();
  rc = cnf_adam_init(&adam, m.n_params, &ac);
  if (rc < 0)
    goto out;
  /* class weights: each kind contributes half of the loss whatever the sample sizes */
  const double w_gen = 0.5 / (double)tr_gen, w_ref = 0.5 / (double)tr_ref;
  const size_t steps_per_epoch = (n_tr + (size_t)B - 1) / (size_t)B;
  for (int ep = 0; ep < conf->epochs; ep++) {
    cnf_rng pr;
    cnf_rng_init(&pr, conf->seed, 1 + (uint64_t)ep, 0);
    cnf_rng_permutation(&pr, (int)n_tr, perm);
    double loss = 0;
    for (size_t st = 0; st < steps_per_epoch; st++) {
      cnf_watchdog_beat("a classifier step");
      const size_t a = st * (size_t)B;
      const int nb = (int)(n_tr - a < (size_t)B ? n_tr - a : (size_t)B);
      for (int i = 0; i < nb; i++)
        memcpy(xb + (size_t)i * d, x + (size_t)perm[a + i] * d, sizeof(cnf_real) * d);
      cnf_mlp_forward(&m, params, nb, xb, out, work);
      /* the batch's share of the epoch loss: rescaled so a step sees the full-set weighting */
      const double scale = (double)n_tr / nb;
      for (int i = 0; i < nb; i++) {
        const int y = label[perm[a + i]];
        double ds;
        const double w = (y ? w_gen : w_ref) * scale;
        loss += (y ? w_gen : w_ref) * bce(out[i], y, &ds);
        dout[i] = (cnf_real)(w * ds);
      }
      memset(grads, 0, sizeof(cnf_real) * m.n_params);
      cnf_mlp_backward(&m, params, nb, xb, work, dout, grads, NULL, scratch);
      /* cosine decay over the run: the last epochs settle instead of jittering */
      const double t = (double)(ep * steps_per_epoch + st) / (double)(conf->epochs * steps_per_epoch);
      rc = cnf_adam_step(&adam, conf->lr * 0.5 * (1 + cos(M_PI * t)), params, grads, NULL);
      if (rc < 0)
        goto out;
    }
    res->train_loss = loss;
  }
  /* held-out scores (odd events) */
  for (int kind = 0; kind < 2; kind++) {
    const double *src = kind ? gen : ref;
    const size_t nt = kind ? te_gen : te_ref;
    double *score = kind ? s_gen : s_ref;
    for (size_t a = 0; a < nt; a += (size_t)B) {
      const int nb = (int)(nt - a < (size_t)B ? nt - a : (size_t)B);
      for (int i = 0; i < nb; i++) {
        const double *row = src + (2 * (a + i) + 1) * d;
        for (int j = 0; j < d; j++)
          xb[(size_t)i * d + j] = (cnf_real)((row[j] - mean[j]) / sd[j]);
      }
      cnf_mlp_forward(&m, params, nb, xb, out, work);
      for (int i = 0; i < nb; i++)
        score[a + i] = out[i];
    }
  }
  res->auc = cnf_auc(s_gen, te_gen, s_ref, te_ref);
  res->n_train = n_tr;
  res->n_test = te_gen + te_ref;
  /* AUC's standard error, Hanley & McNeil (1982) */
  {
    const double A = res->auc, q1 = A / (2 - A), q2 = 2 * A * A / (1 + A);
    const double v = (A * (1 - A) + (te_gen - 1.0) * (q1 - A * A) + (te_ref - 1.0) * (q2 - A * A)) /
                     ((double)te_gen * te_ref);
    res->auc_err = v > 0 ? sqrt(v) : 0;
  }
  /* w = D / (1 - D) = exp(logit) on the held-out reference events.  The class weights make
   * the classifier's odds the density ratio p_gen / p_ref directly. */
  double sw = 0, sw2 = 0, wmax = 0;
  for (size_t i = 0; i < te_ref; i++) {
    const double w = exp(s_ref[i] < 50 ? s_ref[i] : 50);
    sw += w;
    sw2 += w * w;
    if (w > wmax)
      wmax = w;
  }
  res->w_mean = sw / (double)te_ref;
  res->w_std = sqrt(fmax(0, sw2 / (double)te_ref - res->w_mean * res->w_mean));
  res->w_max = wmax;
out:
  cnf_adam_free(&adam);
  free(mean); free(sd); free(x); free(label); free(perm); free(params); free(grads);
  free(xb); free(out); free(dout); free(work); free(scratch); free(s_gen); free(s_ref);
  return rc;
}
