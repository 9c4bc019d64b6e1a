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

/* Mean NLL over all ranks' events (x (n, D), c (n, C) local), evaluated in chunks of the
 * batch size f is reserved for (cnf_flow_reserve; 1024 if none), so evaluating never grows the
 * flow's work buffers beyond what training uses.
 * Collective over comm. */
int cnf_train_mean_nll(cnf_flow *f, MPI_Comm comm, int n, const cnf_real *x, const cnf_real *c,
                       double *mean_nll);

/* ============================================================================================ */
/* cnflow train: a flow trained on dataset files, ensembles, checkpoint/resume                   */
/* ============================================================================================ */
/* The stage behind `cnflow train` (src/train/):
 *   data.c        each rank reads ITS shard of the train / validation splits of the target and
 *                 condition datasets (collective hyperslab reads, cnf_data_read);
 *   prep.c        the study's preprocessing, measured on the training split (collectives) and
 *                 turned into fixed bijectors prepended to the architecture plus the flow's
 *                 condition transform, so a model file is the density of the RAW observables;
 *                 events outside the preprocessing's support are rejected and counted;
 *   loop.c        the data-parallel loop: one global permutation of the global event indices
 *                 per epoch from a counter-based stream (so the global batches do not depend on
 *                 the rank count), each rank's part of a global batch = the batch events it
 *                 holds, one MPI_Allreduce of the flat gradient buffer, identical Adam steps;
 *                 validation NLL or mean 1-D W1, best epoch kept, checkpoints, signals;
 *   checkpoint.c  atomic HDF5 checkpoints (parameters, Adam moments, schedule, best, history);
 *   ensemble.c    K members on G = min(K, ranks) groups of ranks (MPI_Comm_split), seeds
 *                 seed + k, one model file per member and the ensemble manifest.
 *
 * Output directory (`-o DIR`):
 *   DIR/ensemble.txt             manifest (cnf_ensemble_read), written last
 *   DIR/member_<k>.h5            model file of member k (best epoch; cnf_flow_load)
 *   DIR/member_<k>.ckpt.h5       checkpoint of member k (kept: -resume of a finished run only
 *                                rewrites the model file)
 *   DIR/member_<k>.history.tsv   per-epoch history: epoch train_nll val_metric lr seconds
 */
#define CNF_TRAIN_MAX_COLS 1024

typedef enum cnf_prep_kind {
  CNF_PREP_NONE = 0,  /* raw targets and conditions */
  CNF_PREP_CNF,       /* targets / target_scale then atanh (rejects max |scaled| >= 1);
                         conditions / abs-max of the training split */
  CNF_PREP_FLOWI,     /* x = 2 (log10(E/MeV + eps) - 1); condition log10(E_inc / 10 GeV) */
  CNF_PREP_PARAFLOW,  /* images / E_inc, logit(alpha); conditions log-mapped to [-1, 1] over
                         the training range (rejects pixels outside [0, E_inc]) */
  CNF_PREP_REGRESS,   /* regression MLP (1-D shift-only MAF): t = log10(E_inc / 10 GeV), NLL = MSE/2 + const */
} cnf_prep_kind;
const char *cnf_prep_kind_name(cnf_prep_kind k);
int cnf_prep_kind_from_name(const char *name); /* -1 if unknown */

typedef enum cnf_val_metric { CNF_VAL_NLL = 0, CNF_VAL_W1 = 1 } cnf_val_metric;

typedef struct cnf_study_conf {
  /* data */
  char train_file[1024], val_file[1024]; /* val_file "" = train_file */
  char train_split[32], val_split[32];   /* "train", "val", "test" or "all" */
  char target[256], target_columns[2048]; /* dataset path, comma list of columns ("" = all) */
  char cond[256], cond_columns[1024];
  int64_t max_train_events, max_val_events; /* first n events of the split (0 = all) */
  /* preprocessing */
  cnf_prep_kind prep;
  char target_scale[512];   /* CNF: per-target scales; a shorter list repeats (20,0.01,0.005) */
  double noise;             /* uniform [0, noise) added to raw targets (training and val) */
  double logit_alpha;       /* PARAFLOW */
  double log_eps_mev;       /* FLOWI eps in MeV */
  char energy_column[64];   /* PARAFLOW: condition column the images are divided by */
  /* architecture */
  char preset[32];
  int flow_blocks, flow_hidden, flow_n_hidden, flow_bins; /* 0 = the preset's */
  int identity_init;
  /* optimisation */
  cnf_train_conf train;      /* epochs, batch, adam, schedule (lengths 0 = whole run) */
  int cosine_cycle_epochs;   /* cosine: epochs per cycle (0 = one cycle over the run; 1 = the
                                ParaFlow scheduler re-created every epoch) */
  cnf_val_metric val_metric;
  uint64_t seed;             /* member k uses seed + k (init, shuffles, noise, W1 sampling) */
  /* ensemble and files */
  int ensemble;              /* K members */
  char out_dir[1024];
  int checkpoint_every;      /* epochs between checkpoints (0: only on signals and at the end) */
  int resume;                /* continue from DIR/member_<k>.ckpt.h5 where present */
  int64_t interrupt_at_step; /* testing: behave as if SIGTERM arrived before this global step of
                                every member (-1 off) */
  int check_replicas;        /* after every step, compare a hash of the parameters over the
                                group's ranks (an error if the replicas ever differ) */
  char options[4096];        /* the command line, stored as provenance */
} cnf_study_conf;

/* Defaults: splits train/val, prep none, noise 0, alpha 1e-6, eps 1e-8 MeV, preset "cnf",
 * ensemble 1, checkpoint every epoch, val NLL, out_dir "train-out". */
void cnf_study_conf_default(cnf_study_conf *c);

typedef struct cnf_member_result {
  int member;
  uint64_t seed;
  int epochs_run, best_epoch; /* 0-based best epoch */
  double best_score;          /* validation metric of the best epoch */
  double events_per_s;        /* training throughput of the member's group */
  double seconds;
} cnf_member_result;

typedef struct cnf_study_result {
  int members;
  cnf_member_result member[64];
  uint64_t n_train, n_val;          /* global events after rejection */
  uint64_t rejected_train, rejected_val;
  double shard_mb_max;              /* largest shard in memory (targets + conditions), MB */
  double peak_rss_mb_max;           /* largest peak RSS of a rank, MB */
  double base_rss_mb_max;           /* largest RSS before data and model (libraries, MPI), MB */
} cnf_study_result;

/* COLLECTIVE over world.  Trains the whole ensemble; every rank returns the same status.
 * CNF_ERR_INTERRUPTED when a signal (SIGTERM / SIGUSR1) arrived: every member's checkpoint has
 * been written and -resume continues bit-identically. */
int cnf_train_study(const cnf_study_conf *conf, MPI_Comm world, cnf_study_result *res);

/* ---- ensemble manifest (DIR/ensemble.txt, read by scan / sample) ---------------------------- */
/* Text, one "key value..." per line, '#' comments:
 *   format cnflow-ensemble 1
 *   members K
 *   metric nll|w1
 *   member <k> <file relative to the manifest> seed <s> best_epoch <e> score <v>
 */
typedef struct cnf_ensemble {
  int members;
  char metric[16];
  char path[64][1100];  /* member model files, resolved against the manifest's directory */
  uint64_t seed[64];
  int best_epoch[64];
  double score[64];
} cnf_ensemble;
int cnf_ensemble_write(const char *path, const cnf_ensemble *e); /* atomic (temp + rename) */
int cnf_ensemble_read(const char *path, cnf_ensemble *e);
/* Install SIGTERM / SIGUSR1 handlers that only set a flag the training loop polls. */
void cnf_train_install_signal_handlers(void);
/* 1 once a handled signal arrived (testing: cnf_train_raise_stop sets it). */
int cnf_train_stop_requested(void);
void cnf_train_raise_stop(void);
