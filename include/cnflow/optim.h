/* cnflow optim: Adam/AdamW over one flat parameter buffer, and learning-rate schedules.
 *
 * Adam follows torch.optim.Adam / AdamW exactly (bias-corrected moments, eps added to the
 * square root of the corrected second moment, decoupled weight decay applied as
 * p *= 1 - lr * weight_decay before the Adam step).  Global gradient-norm clipping (torch
 * clip_grad_norm_) is optional.  The moments m, v have the parameter buffer's layout, so the
 * update is one flat loop and data-parallel replicas stay bit-identical.
 *
 * Schedules.  The trainer asks cnf_schedule_lr(s, step) for the LR of optimiser step `step`
 * (0-based global count of optimiser steps, BEFORE the step is taken) and calls
 * cnf_schedule_epoch_end(s, val_loss) once per epoch.  Each kind states whether its curve moves
 * per step or per epoch (per-epoch kinds use epoch = step / steps_per_epoch):
 *   CONSTANT    lr                                                              -
 *   POLY        Keras PolynomialDecay, per step:
 *               lr(s) = (lr - lr_end) (1 - min(s, decay_steps)/decay_steps)^power + lr_end
 *               (the CNF study: 1e-3 -> 1e-5, power 0.5, decay_steps = epochs * batches)
 *   COSINE      SGDR (torch CosineAnnealingWarmRestarts), per step: cycles of t0_steps steps,
 *               each t_mult times longer than the last, from the peak down to eta_min:
 *               lr = eta_min + (peak - eta_min) (1 + cos(pi t_cur / t_i)) / 2.
 *               ParaFlow: t0_steps = batches per epoch, t_mult 1, eta_min 0 (its CosineAnnealingLR
 *               re-created every epoch), with reduce-on-plateau lowering the peak.
 *   ONECYCLE    torch OneCycleLR (cos anneal, two phases), per step: from lr/div_factor up to
 *               lr (= max_lr) over pct_start * total_steps - 1 steps, then down to
 *               lr/(div_factor*final_div_factor) at step total_steps - 1.  Also cycles Adam's
 *               beta1 between 0.95 and 0.85 (torch cycle_momentum default): cnf_schedule_beta1.
 *   MULTISTEP   torch MultiStepLR, per epoch: lr * gamma^(number of milestones <= epoch)
 *               (calibration Flow-I: milestones 5,15,40,60,120, gamma 0.5).
 * For every kind, the peak is lr * plateau_scale: reduce-on-plateau (plateau_patience > 0,
 * torch ReduceLROnPlateau semantics, mode min, relative threshold) multiplies plateau_scale by
 * plateau_factor after more than plateau_patience epochs without improvement, never below
 * min_lr / lr.  Early stopping (early_stop_patience > 0) stops after that many consecutive
 * epochs without a new best validation loss.
 */
#pragma once

#include "cnflow/core.h"

/* ---- Adam ------------------------------------------------------------------------------------ */
typedef struct cnf_adam_conf {
  double beta1, beta2, eps; /* torch defaults 0.9, 0.999, 1e-8 */
  double weight_decay;      /* decoupled (AdamW); 0 = plain Adam */
  double clip_norm;         /* global L2 gradient-norm clip; 0 = off */
} cnf_adam_conf;

/* torch defaults: beta1 0.9, beta2 0.999, eps 1e-8, no weight decay, no clipping */
cnf_adam_conf cnf_adam_conf_default(void);

typedef struct cnf_adam {
  size_t n;           /* number of parameters */
  cnf_adam_conf conf; /* beta1 may be changed between steps (one-cycle momentum) */
  cnf_real *m, *v;    /* (n) first and second moments, same layout as the parameters */
  int64_t t;          /* steps taken (checkpointed with m and v) */
  /* Live ranges (cnf_adam_set_ranges): the step reads and writes only [r[2i], r[2i+1]);
   * cnf_adam_init sets the one range [0, n). */
  size_t n_ranges, *ranges;
} cnf_adam;

/* Allocates zero moments for n parameters.  Free with cnf_adam_free. */
int cnf_adam_init(cnf_adam *a, size_t n, const cnf_adam_conf *conf);
void cnf_adam_free(cnf_adam *a);
/* Zero the moments and the step count (fresh start on the same parameters). */
void cnf_adam_reset(cnf_adam *a);
/* Restrict every step to n_ranges sorted, disjoint, non-empty ranges [r[2i], r[2i+1]) of the
 * buffer (copied).  Entries outside must have zero gradients always (the masked MADE weights,
 * stored as exact zeros: cnf_flow_live_ranges); a full step would leave them, their moments
 * and their zero value unchanged, so the restricted step gives bit-identical parameters without
 * streaming the masked entries (39 % of the CNF flow's buffer).  CNF_ERR_ARG if the ranges are
 * unsorted, overlap or leave [0, n). */
int cnf_adam_set_ranges(cnf_adam *a, size_t n_ranges, const size_t *ranges);
/* Entries the step updates (n if no ranges are set). */
size_t cnf_adam_live_count(const cnf_adam *a);

/* One step with learning rate lr: params (n) updated in place from grads (n) (not modified).
 * *grad_norm (may be NULL) receives the global gradient L2 norm before clipping.  Returns
 * CNF_ERR_NUMERIC, leaving params and moments untouched, if a gradient is NaN/Inf. */
int cnf_adam_step(cnf_adam *a, double lr, cnf_real *params, const cnf_real *grads,
                  double *grad_norm);

/* ---- learning-rate schedules ------------------------------------------------------------- */
typedef enum cnf_schedule_kind {
  CNF_SCHED_CONSTANT = 0,
  CNF_SCHED_POLY,
  CNF_SCHED_COSINE,
  CNF_SCHED_ONECYCLE,
  CNF_SCHED_MULTISTEP,
  CNF_SCHED_KIND_COUNT
} cnf_schedule_kind;

#define CNF_SCHED_MAX_MILESTONES 32

typedef struct cnf_schedule_conf {
  cnf_schedule_kind kind;
  double lr;               /* base / peak LR (ONECYCLE: max_lr) */
  int64_t steps_per_epoch; /* optimiser steps per epoch (MULTISTEP needs it) */
  /* POLY */
  double lr_end, power;
  int64_t decay_steps;
  /* COSINE (SGDR) */
  int64_t t0_steps;
  int t_mult; /* >= 1 */
  double eta_min;
  /* ONECYCLE */
  int64_t total_steps;
  double pct_start, div_factor, final_div_factor;
  double base_momentum, max_momentum; /* beta1 range; both 0 = no momentum cycling */
  /* MULTISTEP */
  int n_milestones;
  int milestones[CNF_SCHED_MAX_MILESTONES]; /* epochs, ascending */
  double gamma;
  /* reduce-on-plateau of the peak (any kind); patience 0 = off */
  int plateau_patience;
  double plateau_factor;    /* e.g. 0.5 */
  double plateau_threshold; /* relative improvement needed, torch default 1e-4 */
  double min_lr;            /* the peak never drops below this */
  /* early stopping (any kind); 0 = off */
  int early_stop_patience;
} cnf_schedule_conf;

/* A conf of the given kind with the reference defaults filled in:
 *   POLY lr_end 1e-5, power 0.5;  COSINE t_mult 1, eta_min 0;  ONECYCLE pct_start 0.3,
 *   div_factor 25, final_div_factor 1e4, momentum 0.85..0.95;  MULTISTEP gamma 0.5;
 *   plateau factor 0.5, threshold 1e-4 (patience 0 = off);  early stopping off.
 * The caller sets lr, steps_per_epoch and the kind's length (decay_steps, t0_steps,
 * total_steps, milestones). */
cnf_schedule_conf cnf_schedule_conf_default(cnf_schedule_kind kind);

typedef struct cnf_schedule {
  cnf_schedule_conf conf;
  /* state (checkpoint it with the optimiser) */
  double plateau_scale;    /* peak = lr * plateau_scale */
  double plateau_best;     /* best monitored loss for the plateau rule */
  int plateau_bad_epochs;
  double best_loss;        /* best validation loss seen (early stopping / model selection) */
  int best_epoch;          /* epoch index of best_loss, -1 before the first epoch */
  int epochs_since_best;
  int epoch;               /* epochs completed */
  int improved;            /* 1 if the last cnf_schedule_epoch_end set a new best */
} cnf_schedule;

/* Validates the conf (clear message naming the bad field) and resets the state. */
int cnf_schedule_init(cnf_schedule *s, const cnf_schedule_conf *conf);
/* LR for optimiser step `step` (0-based). */
double cnf_schedule_lr(const cnf_schedule *s, int64_t step);
/* Adam beta1 for step `step`: the conf value's cycling (ONECYCLE with momenta set), else
 * `beta1_default`. */
double cnf_schedule_beta1(const cnf_schedule *s, int64_t step, double beta1_default);
/* End of an epoch with validation loss val_loss (lower is better; NaN counts as no
 * improvement).  Updates best/plateau state; returns 1 if training should stop (early
 * stopping), else 0. */
int cnf_schedule_epoch_end(cnf_schedule *s, double val_loss);
/* "constant", "poly", "cosine", "onecycle", "multistep" and back (-1 if unknown). */
const char *cnf_schedule_kind_name(cnf_schedule_kind kind);
int cnf_schedule_kind_from_name(const char *name);

/* ---- bounded minimisation through PETSc/TAO (src/optim/tao.c) ------------------------------- */
/* Objective and gradient at x (n): return 0, or < 0 to abort the solve with that status (its
 * message set with cnf_error_set).  A non-finite *f is reported as CNF_ERR_NUMERIC. */
typedef int (*cnf_objective_fg)(void *ctx, int n, const double *x, double *f, double *g);

typedef struct cnf_tao_conf {
  const char *type;     /* TAO type, e.g. "blmvm" (gradient only, the default when NULL) */
  const char *prefix;   /* options prefix: -<prefix>tao_type, -<prefix>tao_view ... (NULL none) */
  double gatol, grtol;  /* TaoSetTolerances: absolute and relative gradient tolerances */
  int max_it;           /* iteration limit (0: TAO's default) */
} cnf_tao_conf;

/* Minimise f over the box [lo, hi] (n values each) from x (clamped into the box); on return x
 * holds the solution and *fmin (may be NULL) its objective.  *reason (may be NULL) receives
 * TAO's converged reason (> 0 converged, < 0 diverged; a diverged solve is not an error: the
 * caller decides).  Serial: PETSC_COMM_SELF, one solver per call, so results never depend on
 * what was solved before on this rank. */
int cnf_tao_minimize_bounded(const cnf_tao_conf *conf, int n, cnf_objective_fg fg, void *ctx,
                             const double *lo, const double *hi, double *x, double *fmin,
                             int *reason);
