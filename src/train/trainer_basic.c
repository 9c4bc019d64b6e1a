/* The basic data-parallel training loop (include/cnflow/train.h): shuffled local batches, one
 * allreduce of the flat gradient buffer per step, identical Adam steps on every rank,
 * validation NLL per epoch, best parameters kept. */
#include "cnflow/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


#if CNF_REAL_IS_DOUBLE
#define MPI_CNF_REAL MPI_DOUBLE
#else
#define MPI_CNF_REAL MPI_FLOAT
#endif

cnf_train_conf cnf_train_conf_default(void) {
  cnf_train_conf c = {.epochs = 10, .batch = 512, .seed = 1, .log_epochs = 1};
  c.adam = cnf_adam_conf_default();
  c.schedule = cnf_schedule_conf_default(CNF_SCHED_COSINE);
  c.schedule.lr = 1e-3;
  return c;
}

/* In-place sum over ranks of a buffer that may exceed INT_MAX elements. */
static int allreduce_sum(cnf_real *buf, size_t n, MPI_Comm comm) {
  const size_t chunk = (size_t)1 << 30;
  for (size_t o = 0; o < n; o += chunk) {
    int count = (int)(n - o < chunk ? n - o : chunk);
    if (MPI_Allreduce(MPI_IN_PLACE, buf + o, count, MPI_CNF_REAL, MPI_SUM, comm) != MPI_SUCCESS)
      return cnf_error_set(CNF_ERR_MPI, "train: MPI_Allreduce of %zu gradients failed", n);
  }
  return 0;
}

int cnf_train_mean_nll(cnf_flow *f, MPI_Comm comm, int n, const cnf_real *x, const cnf_real *c,
                       double *mean_nll) {
  const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f);
  const int chunk = cnf_flow_reserved(f) > 0 ? cnf_flow_reserved(f) : 1024;
  cnf_real *logp = cnf_malloc(sizeof(cnf_real) * chunk);
  if (!logp)
    return CNF_ERR_NOMEM;
  double acc[2] = {0.0, (double)n}; /* sum of -log p, number of events */
  int rc = 0;
  for (int s = 0; s < n && rc == 0; s += chunk) {
    int m = n - s < chunk ? n - s : chunk;
    rc = cnf_flow_log_prob(f, m, x + (size_t)s * D, c ? c + (size_t)s * C : NULL, logp);
    for (int i = 0; i < m && rc == 0; i++)
      acc[0] -= logp[i];
  }
  free(logp);
  /* a local failure must not leave the other ranks waiting: poison the sum instead */
  if (rc < 0)
    acc[0] = NAN;
  if (MPI_Allreduce(MPI_IN_PLACE, acc, 2, MPI_DOUBLE, MPI_SUM, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "train: MPI_Allreduce of the NLL sum failed");
  if (rc < 0)
    return rc;
  if (acc[1] <= 0)
    return cnf_error_set(CNF_ERR_ARG, "train: no events to evaluate the NLL on");
  if (!isfinite(acc[0]))
    return cnf_error_set(CNF_ERR_NUMERIC, "train: NLL is not finite (failed on another rank)");
  *mean_nll = acc[0] / acc[1];
  return 0;
}

/* Fill the schedule's run-length fields that were left at 0 with the run's step count. */
static void schedule_fill_lengths(cnf_schedule_conf *s, int64_t steps_per_epoch, int epochs) {
  int64_t total = steps_per_epoch * epochs;
  s->steps_per_epoch = steps_per_epoch;
  if (s->kind == CNF_SCHED_POLY && s->decay_steps <= 0)
    s->decay_steps = total;
  if (s->kind == CNF_SCHED_COSINE && s->t0_steps <= 0)
    s->t0_steps = total;
  if (s->kind == CNF_SCHED_ONECYCLE && s->total_steps <= 0)
    s->total_steps = total;
}

typedef struct train_work {
  int *perm;              /* (n_train) shuffled local indices */
  cnf_real *xb, *cb, *w;  /* (b, D), (b, C), (b) local part of the batch and its weights */
  cnf_real *best;         /* (n_params) parameters of the best epoch */
} train_work;

static void train_work_free(train_work *w) {
  free(w->perm);
  free(w->xb);
  free(w->cb);
  free(w->w);
  free(w->best);
}

/* One optimiser step on the local events perm[0..b): zero grads, local backward, allreduce,
 * Adam.  A local failure poisons the gradient with NaN so that every rank fails at Adam. */
static int train_step(cnf_flow *f, MPI_Comm comm, cnf_adam *adam, double lr, int b,
                      const int *perm, const cnf_real *x, const cnf_real *c, train_work *w,
                      double *loss) {
  const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f);
  const size_t np = cnf_flow_num_params(f);
  for (int i = 0; i < b; i++) {
    memcpy(w->xb + (size_t)i * D, x + (size_t)perm[i] * D, sizeof(cnf_real) * D);
    if (C > 0)
      memcpy(w->cb + (size_t)i * C, c + (size_t)perm[i] * C, sizeof(cnf_real) * C);
  }
  cnf_flow_zero_grads(f);
  cnf_real *g = cnf_flow_grads(f);
  int local_rc = cnf_flow_nll_backward(f, b, w->xb, C > 0 ? w->cb : NULL, w->w, loss, NULL, NULL);
  char local_msg[256] = "";
  if (local_rc < 0) {
    snprintf(local_msg, sizeof local_msg, "%s", cnf_error_message());
    for (size_t k = 0; k < np; k++)
      g[k] = (cnf_real)NAN;
  }
  CNF_CALL(allreduce_sum(g, np, comm));
  int rc = cnf_adam_step(adam, lr, cnf_flow_params(f), g, NULL);
  if (local_rc < 0) /* report this rank's own cause rather than Adam's NaN message */
    return cnf_error_set(local_rc, "%s", local_msg);
  if (rc < 0)
    return cnf_error_set(rc, "train: %s (on another rank's events)", cnf_error_message());
  return cnf_flow_params_changed(f);
}

int cnf_train_basic(cnf_flow *f, MPI_Comm comm, int n_train, const cnf_real *x,
                    const cnf_real *c, int n_val, const cnf_real *xv, const cnf_real *cv,
                    const cnf_train_conf *conf, cnf_train_result *res) {
  const double t_run = cnf_time_now();
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f);
  const size_t np = cnf_flow_num_params(f);
  if (conf->epochs < 1 || conf->batch < size)
    return cnf_error_set(CNF_ERR_ARG, "train: need epochs >= 1 (got %d) and batch >= ranks "
                         "(batch %d, %d ranks)", conf->epochs, conf->batch, size);
  uint64_t first, count;
  cnf_partition((uint64_t)conf->batch, size, rank, &first, &count);
  const int b = (int)count; /* this rank's part of every global batch */
  int steps = n_train / b;
  MPI_Allreduce(MPI_IN_PLACE, &steps, 1, MPI_INT, MPI_MIN, comm); /* same count on all ranks */
  if (steps < 1)
    return cnf_error_set(CNF_ERR_ARG, "train: a shard has fewer events than its part of the "
                         "batch (%d events, batch part %d)", n_train, b);

  cnf_schedule_conf sconf = conf->schedule;
  schedule_fill_lengths(&sconf, steps, conf->epochs);
  cnf_schedule sched;
  CNF_CALL(cnf_schedule_init(&sched, &sconf));
  CNF_CALL(cnf_flow_reserve(f, b));

  train_work w = {0};
  cnf_adam adam;
  int rc = cnf_adam_init(&adam, np, &conf->adam);
  if (rc < 0)
    return rc;
  w.perm = cnf_malloc(sizeof(int) * (size_t)n_train);
  w.xb = cnf_malloc(sizeof(cnf_real) * (size_t)b * D);
  w.cb = cnf_malloc(sizeof(cnf_real) * (size_t)b * (C > 0 ? C : 1));
  w.w = cnf_malloc(sizeof(cnf_real) * (size_t)b);
  w.best = cnf_malloc(sizeof(cnf_real) * (np ? np : 1));
  if (!w.perm || !w.xb || !w.cb || !w.w || !w.best) {
    rc = CNF_ERR_NOMEM;
    goto done;
  }
  /* weights 1/batch: the allreduced SUM is then the gradient of the global batch mean */
  for (int i = 0; i < b; i++)
    w.w[i] = (cnf_real)(1.0 / conf->batch);
  memcpy(w.best, cnf_flow_params(f), sizeof(cnf_real) * np);

  cnf_train_result r = {.best_epoch = -1, .best_val_nll = INFINITY};
  double t_steps = 0;
  int64_t step = 0;
  for (int epoch = 0; epoch < conf->epochs; epoch++) {
    cnf_rng rng;
    cnf_rng_init(&rng, conf->seed, (uint64_t)epoch, (uint32_t)rank); /* stream per epoch, rank */
    cnf_rng_permutation(&rng, n_train, w.perm);
    double loss_sum = 0, lr = 0;
    const double t0 = cnf_time_now();
    for (int s = 0; s < steps; s++, step++) {
      double loss;
      lr = cnf_schedule_lr(&sched, step);
      adam.conf.beta1 = cnf_schedule_beta1(&sched, step, conf->adam.beta1);
      CNF_CALL_GOTO(rc, done, train_step(f, comm, &adam, lr, b, w.perm + (size_t)s * b, x, c,
                                         &w, &loss));
      loss_sum += loss;
    }
    const double dt = cnf_time_now() - t0;
    t_steps += dt;
    /* each rank's loss is its share of the batch mean: the sum over ranks is the mean */
    MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, comm);
    double val;
    CNF_CALL_GOTO(rc, done, cnf_train_mean_nll(f, comm, n_val, xv, cv, &val));
    int stop = cnf_schedule_epoch_end(&sched, val);
    if (sched.improved) {
      memcpy(w.best, cnf_flow_params(f), sizeof(cnf_real) * np);
      r.best_epoch = epoch;
      r.best_val_nll = val;
    }
    r.epochs_run = epoch + 1;
    r.last_train_nll = loss_sum / steps;
    if (conf->log_epochs)
      cnf_log_info("epoch %3d/%d  train NLL %8.4f  val NLL %8.4f  lr %.2e  %9.0f events/s%s",
                   epoch + 1, conf->epochs, r.last_train_nll, val, lr,
                   (double)steps * conf->batch / dt, sched.improved ? "  *" : "");
    if (stop)
      break;
  }
  if (r.best_epoch < 0) {
    rc = cnf_error_set(CNF_ERR_NUMERIC, "train: no epoch gave a finite validation NLL");
    goto done;
  }
  memcpy(cnf_flow_params(f), w.best, sizeof(cnf_real) * np);
  CNF_CALL_GOTO(rc, done, cnf_flow_params_changed(f));
  r.events_per_s = (double)step * conf->batch / (t_steps > 0 ? t_steps : 1e-9);
  r.seconds = cnf_time_now() - t_run;
  if (res)
    *res = r;
done:
  cnf_adam_free(&adam);
  train_work_free(&w);
  return rc;
}
