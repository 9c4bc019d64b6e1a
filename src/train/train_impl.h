/* Private to src/train: the pieces of `cnflow train` (see include/cnflow/train.h). */
#pragma once

#include "cnflow/train.h"

#if CNF_REAL_IS_DOUBLE
#define MPI_CNF_REAL MPI_DOUBLE
#else
#define MPI_CNF_REAL MPI_FLOAT
#endif

/* Share a status over comm: rc when no rank failed, else every rank returns the code and the
 * message of the lowest failing rank.  COLLECTIVE. */
int train_sync(MPI_Comm comm, int rc);

/* ---- data.c: this rank's shard of one split ----------------------------------------------- */
typedef struct train_shard {
  int n;                  /* events held by this rank (after rejection) */
  int D, C;
  cnf_real *x, *c;        /* (n, D), (n, C) raw targets and conditions */
  uint64_t first_row;     /* file row of this rank's first event (before rejection) */
  uint64_t global_first;  /* global index of x[0] among the kept events of all ranks */
  uint64_t n_global;      /* kept events of all ranks */
  uint64_t rejected;      /* events of all ranks rejected by the preprocessing */
  char file[1024];
  char target_names[CNF_TRAIN_MAX_COLS][32]; /* target column names (D) */
  char cond_names[64][32];                    /* condition column names (C) */
  char target_units[CNF_TRAIN_MAX_COLS][16], cond_units[64][16];
} train_shard;

/* COLLECTIVE over comm.  Read the shard of `split` (first max_events rows, 0 = all) of the
 * target and condition datasets of `file`; non-finite values are an error naming file, dataset,
 * row and column.  expect_* (may be NULL) must match the column names found (the validation
 * file against the training file). */
int train_shard_load(MPI_Comm comm, const cnf_study_conf *conf, const char *file,
                     const char *split, int64_t max_events, const train_shard *expect,
                     train_shard *s);
void train_shard_free(train_shard *s);
/* COLLECTIVE.  Drop the events with keep[i] == 0, then number the kept events globally
 * (global_first, n_global) and count the rejected ones. */
int train_shard_compact(MPI_Comm comm, train_shard *s, const unsigned char *keep);

/* ---- prep.c: preprocessing and the flow ---------------------------------------------------- */
typedef struct train_prep {
  cnf_prep_kind kind;
  int D, C;
  double target_scale[CNF_TRAIN_MAX_COLS]; /* CNF (W1 is measured in x / target_scale) */
  double energy_unit_mev;                  /* FLOWI: MeV per target unit */
  int energy_col;                          /* PARAFLOW: index of the energy condition */
  double noise;
} train_prep;

/* COLLECTIVE.  Measure the preprocessing constants on the training shard, build the flow
 * (preset core with its overrides, preprocessing bijectors in front, condition transform) and
 * mark the events outside the support in keep (train and val shards). */
int train_prep_build(MPI_Comm comm, const cnf_study_conf *conf, const train_shard *train,
                     train_prep *prep, cnf_flow **flow);
/* keep[i] = 1 for events inside the support of the preprocessing (noise included). */
void train_prep_support(const train_prep *prep, const train_shard *s, unsigned char *keep);
/* "key=value\n" lines describing the data binding (model-file provenance "dataset"). */
void train_prep_describe(const train_prep *prep, const cnf_study_conf *conf,
                         const train_shard *s, char *buf, size_t len);

/* ---- checkpoint.c -------------------------------------------------------------------------- */
#define TRAIN_HIST_COLS 5 /* epoch, train NLL, validation metric, lr, seconds */
typedef struct train_state {
  int epoch;             /* epoch in progress (0-based) */
  int64_t step_in_epoch; /* steps of that epoch already taken */
  int64_t global_step;   /* optimiser steps taken */
  double loss_sum;       /* sum of this epoch's global batch losses so far */
  double seconds;        /* training wall time so far */
  int complete;          /* 1: training finished (the model file may be re-derived) */
  cnf_schedule sched;    /* schedule state (conf included) */
  int best_epoch;
  double best_score;
  int n_hist;
  double *hist;          /* (epochs, TRAIN_HIST_COLS) */
} train_state;

/* The configuration fingerprint a checkpoint carries: built by ensemble.c, compared whole by
 * train_checkpoint_read (two long file paths alone can take 8 KiB). */
#define TRAIN_FINGERPRINT_MAX 16384

/* Serial (one rank).  Atomic: <path>.tmp then rename. */
int train_checkpoint_write(const char *path, const char *fingerprint, const cnf_flow *f,
                           const cnf_adam *adam, const cnf_real *best, const train_state *st);
/* Serial.  Returns 1 if path does not exist, 0 when loaded; the fingerprint and the parameter
 * count must match (a checkpoint of another configuration is an error). */
int train_checkpoint_read(const char *path, const char *fingerprint, cnf_flow *f,
                          cnf_adam *adam, cnf_real *best, train_state *st, int max_hist);

/* ---- loop.c -------------------------------------------------------------------------------- */
typedef struct train_member_io {
  int member;
  uint64_t seed;
  char model_path[1100], ckpt_path[1100], hist_path[1100];
  const char *fingerprint;
  const char *dataset_desc;
} train_member_io;

/* COLLECTIVE over the member's group.  Trains (or resumes) one member and writes its model
 * file; *res is filled on every rank. */
int train_member_run(MPI_Comm comm, const cnf_study_conf *conf, const train_prep *prep,
                     cnf_flow *f, const train_shard *tr, const train_shard *va,
                     const train_member_io *io, cnf_member_result *res);
