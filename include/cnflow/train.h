/* cnflow train: data-parallel training of a flow by maximum likelihood.
 *
 * cnf_train_basic is the training loop everything else grows from: every rank holds its own
 * shard of the training and validation events; an optimiser step takes a GLOBAL batch of
 * `batch` events split over the ranks (cnf_partition), each rank computes the gradient of its
 * part of the batch mean NLL (event weights 1/batch), ONE MPI_Allreduce(SUM) of the flat
 * gradient buffer gives every rank the gradient of the global batch mean (the same as the
 * mean of per-rank means divided by the number of ranks when the shards are equal), and every
 * rank takes the identical Adam step, so the replicas stay bit-identical.
 * After each epoch the validation NLL (mean over all ranks' validation events) is computed;
 * the parameters of the best epoch are kept and restored at the end.
 * Collective over `comm` (MPI_COMM_SELF for serial use; MPI must be initialised).
 */
#pragma once

#include "cnflow/flow.h"
#include "cnflow/optim.h"

#include <mpi.h>

typedef struct cnf_train_conf {
  int epochs;               /* passes over the (smallest) shard */
  int batch;                /* global batch size (all ranks together) */
  uint64_t seed;            /* shuffling stream (per epoch and rank) */
  cnf_adam_conf adam;
  /* LR schedule.  steps_per_epoch is filled in by the trainer; a length left at 0
   * (POLY decay_steps, COSINE t0_steps, ONECYCLE total_steps) means "all steps of the run". */
  cnf_schedule_conf schedule;
  int log_epochs;           /* 1: one progress line per epoch on rank 0 (cnf_log_info) */
} cnf_train_conf;

/* Defaults: 10 epochs, batch 512, Adam (torch defaults), cosine decay of lr 1e-3 to 0 over the
 * run, progress lines on. */
cnf_train_conf cnf_train_conf_default(void);

typedef struct cnf_train_result {
  int epochs_run;
  int best_epoch;           /* 0-based */
  double best_val_nll;      /* mean over all validation events, nats */
  double last_train_nll;    /* mean batch NLL of the last epoch */
  double events_per_s;      /* global training throughput (all ranks, training steps only) */
  double seconds;           /* wall time of the whole run */
} cnf_train_result;

/* Train f on x (n_train, D), c (n_train, C) (this rank's shard) with validation events
 * xv (n_val, D), cv (n_val, C).  The parameters must be initialised and identical on all
 * ranks.  On return f holds the best epoch's parameters.  res may be NULL. */
int cnf_train_basic(cnf_flow *f, MPI_Comm comm, int n_train, const cnf_real *x,
                    const cnf_real *c, int n_val, const cnf_real *xv, const cnf_real *cv,
                    const cnf_train_conf *conf, cnf_train_result *res);

/* Mean NLL over all ranks' events (x (n, D), c (n, C) local), evaluated in chunks.
 * Collective over comm. */
int cnf_train_mean_nll(cnf_flow *f, MPI_Comm comm, int n, const cnf_real *x, const cnf_real *c,
                       double *mean_nll);
