/* cnflow infer: trained flows used as likelihoods (per-shower maximum-likelihood calibration).
 *
 * Likelihood scan of one shower x over one condition E (the incident energy), for an ensemble of
 * K flows p_k(x | c):
 *   log L(E) = log( (1/K) sum_k p_k(x | c with c[j] = E) )    (log-sum-exp, never exp(log p))
 *   1. a coarse log-spaced grid over the WHOLE prior range [e_min, e_max] (never a window built
 *      from the true energy) finds the basin: the grid maximum, the number of local maxima;
 *   2. a bounded TAO solve (BLMVM) between the grid neighbours of that maximum refines it with
 *      the exact d log L / dE from the flows' condition gradients:
 *        d log L / dE = sum_k w_k d log p_k / dE,  w_k = p_k / sum_l p_l  (softmax of log p_k);
 *   3. the 68 % interval: E_lo < E_pred < E_hi where -2 (log L(E) - log L_max) = 1, each by a
 *      bracketed Brent root search (GSL) between E_pred and the first grid point beyond the
 *      crossing; if no grid point on a side crosses, the bound is the prior edge (flagged).
 * All in the condition's raw unit (the model files hold their preprocessing).  Double precision
 * for everything above the flows' log-densities.
 *
 * scan.h5 (written by `cnflow scan` with collective hyperslab writes, one row per shower in the
 * input's order, read by `cnflow bias`):
 *   /            attrs format = "cnflow-scan", format_version = 1 (int32), method = "flow",
 *                      prior (the training prior's label, -prior), e_min, e_max (float64, GeV),
 *                      input, split, ensemble (paths), members (int32), n_grid (int32),
 *                      cnflow_version, git_rev
 *   /scan/e_true (N) float64 GeV (the scanned condition's value in the input; NaN if absent)
 *   /scan/e_pred, e_lo, e_hi, logl_max (N) float64 (GeV; log L at the maximum)
 *   /scan/flags  (N) int32: CNF_SCAN_* bits     /scan/n_maxima (N) int32: local maxima on the grid
 *   /scan/block_done (ceil(N / block)) uint8: 1 once that block of showers is written
 *   (attribute resume_fingerprint: what a partial <out>.tmp must match to be resumed)
 * The file is created as <out>.tmp with every dataset allocated, each block of showers is
 * written collectively as soon as it is scanned and then marked done; SIGTERM / SIGUSR1 stops
 * after the current block (exit status 75) and -resume continues from the record, so a
 * preempted scan loses at most one block per rank.  Renamed to <out> when every block is done.
 */
#pragma once

#include "cnflow/flow.h"

#include <mpi.h>

enum {
  CNF_SCAN_AT_BOUNDARY = 1,    /* the maximum is on the prior boundary */
  CNF_SCAN_OPEN_INTERVAL = 2,  /* the 68 % interval leaves the prior range (bound = prior edge) */
  CNF_SCAN_MULTI_MAXIMA = 4,   /* several separated local maxima on the grid */
  CNF_SCAN_FAILED = 8,         /* log L not finite anywhere on the grid (values are NaN) */
};

/* CNF_SCAN_LOCKSTEP (default): every shower of a batch iterates a safeguarded Newton-secant on
 * d log L / d ln E (exact, from the flow's condition gradient) for the maximum, then Illinois
 * false position for the two interval ends, all showers' iterates of one step evaluated as ONE
 * batched flow evaluation per member.  CNF_SCAN_TAO: one bounded TAO solve (BLMVM) per shower
 * and GSL Brent roots, each iterate a single-row flow evaluation: the reference the lockstep
 * solver is tested against, ~10x slower per shower. */
typedef enum cnf_scan_method { CNF_SCAN_LOCKSTEP = 0, CNF_SCAN_TAO = 1 } cnf_scan_method;

typedef struct cnf_scan_conf {
  double e_min, e_max; /* prior range, raw condition unit (0 < e_min < e_max) */
  int n_grid;          /* coarse log-spaced grid points (>= 3; default 48) */
  int cond_index;      /* which condition column is scanned; the others keep the given values */
  double rel_tol;      /* relative tolerance of E_pred and the interval ends (1e-7; 1e-5 in float) */
  int refine;          /* 1: refinement and the interval (default); 0: grid maximum only,
                        * e_lo = e_hi = NaN (coarse scans, benchmarks against grid-only peers) */
  int method;          /* how the maximum and the interval are refined (cnf_scan_method) */
} cnf_scan_conf;
void cnf_scan_conf_default(cnf_scan_conf *conf);

typedef struct cnf_scan_result {
  double e_pred, e_lo, e_hi, logl_max;
  int flags, n_maxima;
} cnf_scan_result;

/* Scanner of an ensemble (members borrowed, not freed), with work buffers for batches of up to
 * max_showers showers x n_grid grid points. */
typedef struct cnf_scanner cnf_scanner;
int cnf_scanner_create(cnf_flow *const *members, int K, const cnf_scan_conf *conf,
                       int max_showers, cnf_scanner **out);
void cnf_scanner_free(cnf_scanner **s);

/* Scan n showers: x (n, D) raw targets, c (n, C) raw conditions (column cond_index ignored). */
int cnf_scanner_run(cnf_scanner *s, int n, const cnf_real *x, const cnf_real *c,
                    cnf_scan_result *out);

/* Flow evaluations so far, in rows per member (one row = one shower at one energy): log p only,
 * and log p with the condition gradient (a forward and a backward pass). */
void cnf_scanner_counts(const cnf_scanner *s, uint64_t *logp_rows, uint64_t *grad_rows);

/* The ensemble log-likelihood of one shower at E and (dlogl may be NULL) its derivative. */
int cnf_scanner_logl(cnf_scanner *s, const cnf_real *x, const cnf_real *c, double E, double *logl,
                     double *dlogl);

/* ---- the `cnflow scan` stage over a dataset file (src/infer/scan_file.c) -------------------- */
/* Load the members of an ensemble: path is a manifest (DIR/ensemble.txt of `cnflow train`) or
 * one model file.  f[0..max) receives them (caller frees each with cnf_flow_free, also on
 * failure: *K says how many were loaded); prov0 (may be NULL) member 0's provenance. */
int cnf_infer_load_ensemble(const char *path, cnf_flow **f, int max, int *K,
                            cnf_model_provenance *prov0);

typedef struct cnf_scan_job {
  char data[1024], split[16];          /* input dataset file and split (train|val|test|all) */
  char target[256], target_columns[1024];
  char cond[256], cond_columns[512];
  char scan_column[64];                /* the scanned condition column ("" = the only one) */
  char ensemble[1024];                 /* manifest (DIR/ensemble.txt) or one model file */
  char out[1024];                      /* scan.h5 */
  char prior[32];                      /* label stored in scan.h5 (e.g. uniform, loguniform) */
  double e_min_gev, e_max_gev;         /* prior range in GeV (converted to the column's unit) */
  int n_grid, block;                   /* grid points; showers per flow evaluation batch */
  int refine;                          /* cnf_scan_conf.refine */
  int method;                          /* cnf_scan_conf.method */
  int64_t max_showers;                 /* first N showers of the split (0 = all) */
  double progress_s;                   /* seconds between progress lines (0: none) */
  int resume;                          /* continue <out>.tmp, skipping its finished blocks */
  int64_t interrupt_after_blocks;      /* testing: stop as on SIGTERM after N rounds (0 off) */
  int part, parts;                     /* parts > 0: scan only part `part` (0-based) of `parts`
                                        * contiguous runs of whole blocks (a job array); the
                                        * part file records where it belongs (attrs part, parts,
                                        * part_first, part_showers_total, part_block) */
} cnf_scan_job;
void cnf_scan_job_default(cnf_scan_job *job);

/* Merge the n part files of one scan (cnflow scan -part i -parts n) into `out`, identical to a
 * single-job scan of the same showers (same datasets and root attributes, the part attributes
 * dropped).  Parts that do not fit together (another scan, a missing, duplicate or foreign
 * part, other ranges) are refused with one line naming the file.  Rank 0 reads and writes
 * (<out>.tmp, renamed when complete); COLLECTIVE over comm for the status. */
int cnf_scan_merge(const char *const *parts, int n, const char *out, MPI_Comm comm);

typedef struct cnf_scan_summary {
  uint64_t showers, scanned; /* in the file; scanned by this run (not resumed) */
  double seconds, showers_per_s;
  uint64_t flagged[4]; /* showers with each flag bit */
  double logp_per_shower, grad_per_shower; /* flow evaluations per scanned shower and member */
} cnf_scan_summary;

/* Collective over comm: every rank scans a contiguous block of the showers and writes its rows
 * of job->out (temporary name, renamed when complete). */
int cnf_scan_file(const cnf_scan_job *job, MPI_Comm comm, cnf_scan_summary *sum);

/* ---- `cnflow sample`: events drawn from an ensemble (src/infer/sample.c) ------------------ */
/* Event i (of the split's first N rows, input row split_first + i) is drawn by member i mod K
 * from the latent stream (seed, stream_id = i), the stream cnf_flow_sample gives event i, at
 * the input's conditions of that row.  samples.h5 is written by the generic parallel writer
 * (collective hyperslab writes, <out>.tmp renamed; byte-identical whatever the rank count):
 *   /                   writer attrs (generator = "sample", options, seed, n_events, splits:
 *                       every row "test") and format = "cnflow-samples", format_version = 1,
 *                       input, split, split_first (int64), ensemble, members (int64), target,
 *                       cond, truth ("" without reco), prep, model_noise (the members' training
 *                       noise: the generated targets include it, the reference does not)
 *   /generated/target   (N, D) f32  drawn targets in the input's raw units (columns, units)
 *   /generated/log_prob (N, 1) f64  log p of the drawn event under its member
 *   /generated/member   (N, 1) i32
 *   /conditions         (N, C) f64  the input's conditions (columns named as the input's)
 *   /reference/target   (N, D) f32  the input's targets of the same rows (absent with no target)
 *   /generated/reco, /reference/reco (N, D) f32  truth + response, when every target column is
 *                       d_<name> and the truth dataset has each <name> (the hgg layout)
 */
typedef struct cnf_sample_job {
  char data[1024], split[16];
  char target[256], target_columns[4096]; /* "" = the model's data binding (its provenance) */
  char cond[256], cond_columns[1024];
  char truth[256];            /* truth dataset for reco = truth + response ("truth") */
  int no_reference_default;   /* 1: leave an empty -target empty (conditions-only input) */
  char ensemble[1024], out[1024];
  int64_t max_events;         /* first N rows of the split (0 = all) */
  uint64_t seed;
  double progress_s;
  char prep[32], model_noise[64]; /* filled by cnf_sample_job_from_model */
} cnf_sample_job;
void cnf_sample_job_default(cnf_sample_job *job);
/* Serial (any rank): fill the empty target / cond bindings and prep, model_noise from member
 * 0's provenance. */
int cnf_sample_job_from_model(cnf_sample_job *job);

typedef struct cnf_sample_summary {
  uint64_t events;
  int ranks;
  double seconds, events_per_s;
} cnf_sample_summary;
/* COLLECTIVE over comm. */
int cnf_sample_file(const cnf_sample_job *job, MPI_Comm comm, cnf_sample_summary *sum);

/* ---- classifier test of generated vs reference events (src/infer/classifier.c) ------------ */
/* An MLP (n_hidden ReLU layers of `hidden`, src/nn/mlp.c) trained by class-balanced binary
 * cross-entropy (Adam, cosine-decayed lr) on the even events of both samples (at most
 * max_train of each kind), features standardised on that training set; evaluated on the odd
 * events.  auc: held-out ROC AUC (0.5: indistinguishable), auc_err its Hanley-McNeil error;
 * w = D / (1 - D) on the held-out reference events (the learnt density ratio p_gen / p_ref:
 * mean 1 and small spread for a good generator).  Deterministic in conf->seed. */
typedef struct cnf_classifier_conf {
  int hidden, n_hidden, epochs, batch;
  double lr;
  uint64_t seed;
  int64_t max_train; /* per kind (0 = all even events) */
} cnf_classifier_conf;
void cnf_classifier_conf_default(cnf_classifier_conf *c); /* 2 x 64, 20 epochs, batch 256, 1e-3 */
typedef struct cnf_classifier_result {
  double auc, auc_err, w_mean, w_std, w_max, train_loss;
  size_t n_train, n_test;
} cnf_classifier_result;
/* gen (n_gen, d), ref (n_ref, d) row-major features. */
int cnf_classifier_test(const double *gen, size_t n_gen, const double *ref, size_t n_ref, int d,
                        const cnf_classifier_conf *conf, cnf_classifier_result *res);

/* ---- `cnflow evaluate`: samples.h5 -> metrics.h5 (src/infer/evaluate.c) -------------------- */
/* Rank 0 reads samples.h5 and computes (other ranks wait for the status); layout of
 * metrics.h5 in README "cnflow evaluate". */
typedef struct cnf_eval_job {
  char samples[1024], out[1024];
  int n_bins;                /* histogram bins (50) */
  double core_k;             /* core-width window +-k sigma (2) */
  int image_rows, image_cols;/* image layout of 2-D targets (16 x 8: ParaFlow's window) */
  int classifier;            /* 1: run the classifier test */
  cnf_classifier_conf clf;
  int64_t max_events;        /* first N events (0 = all) */
} cnf_eval_job;
void cnf_eval_job_default(cnf_eval_job *job);
typedef struct cnf_eval_summary {
  uint64_t events;
  int members, dims;
  char kind[16];             /* "hgg", "images" or "generic" */
  double w1_mean, sep_mean, auc, auc_err, seconds, events_per_s;
} cnf_eval_summary;
/* COLLECTIVE over comm (status shared). */
int cnf_eval_file(const cnf_eval_job *job, MPI_Comm comm, cnf_eval_summary *sum);

/* ---- joint fit of conditions shared by a set of showers (src/infer/fit.c) ------------------- */
/* ParaFlow's stated future work: infer the upstream material (thickness d, distance b) from the
 * showers themselves.  For showers x_i with their own conditions c_i (e.g. the photon energy),
 * the P fitted conditions theta replace columns cond_index[0..P) in every shower:
 *   log L(theta) = sum_i log( (1/K) sum_k p_k(x_i | c_i[cond_index] = theta) )
 *   1. a grid of n_grid^P points over the whole box [lo, hi] (never a window from the truth);
 *   2. TAO (BLMVM) between the grid neighbours of the best grid point, exact gradient
 *      sum_i sum_k w_ik d log p_ik / d theta (w = the members' softmax weights per shower);
 *   3. the covariance as the inverse Hessian of -log L (central differences of the exact
 *      gradient); sigma = sqrt(diag) is the -2 delta log L = 1 width in the Gaussian limit.
 * The showers are spread over the ranks of comm (any split, empty ranks included): COLLECTIVE,
 * every evaluation is one MPI_Allreduce and every rank returns the same result. */
#define CNF_FIT_MAX_PAR 4
enum {
  CNF_FIT_AT_BOUNDARY = 1, /* the maximum is on the edge of the box in some parameter */
  CNF_FIT_NOT_CONVEX = 2,  /* the Hessian at the maximum is not positive definite (no cov) */
};
typedef struct cnf_fit_conf {
  int n_par;                      /* P fitted conditions (1..CNF_FIT_MAX_PAR) */
  int cond_index[CNF_FIT_MAX_PAR];
  double lo[CNF_FIT_MAX_PAR], hi[CNF_FIT_MAX_PAR]; /* the box, raw condition units */
  int n_grid;                     /* grid points per axis (>= 3; default 21) */
  int refine;                     /* TAO refinement (default 1); 0: the grid maximum */
  int block;                      /* showers per flow evaluation (default 256) */
} cnf_fit_conf;
void cnf_fit_conf_default(cnf_fit_conf *conf);

typedef struct cnf_fit_result {
  double best[CNF_FIT_MAX_PAR], sigma[CNF_FIT_MAX_PAR];
  double cov[CNF_FIT_MAX_PAR * CNF_FIT_MAX_PAR], hessian[CNF_FIT_MAX_PAR * CNF_FIT_MAX_PAR];
  double logl_max;
  long long n_showers;            /* over all ranks */
  long n_evals;                   /* log L evaluations (grid + TAO + Hessian) */
  int flags, tao_reason;
} cnf_fit_result;

/* x (n, D), c (n, C) this rank's showers (raw units).  grid_logl (n_grid^P, last axis fastest;
 * may be NULL) receives log L on the grid.  COLLECTIVE over comm. */
int cnf_fit_joint(cnf_flow *const *members, int K, const cnf_fit_conf *conf, MPI_Comm comm,
                  int n, const cnf_real *x, const cnf_real *c, double *grid_logl,
                  cnf_fit_result *res);

/* The `cnflow fit` stage: the showers of a dataset split (sharded collective reads) fitted
 * jointly; fit.h5 written by rank 0 (temporary name, renamed):
 *   /           attrs format = "cnflow-fit", format_version = 1, input, split, ensemble,
 *                     members, showers, columns (the fitted names, comma-separated), git_rev
 *   /fit/best, sigma, lo, hi, truth_mean, truth_std (P) float64   (truth_*: the fitted columns'
 *                     values in the file, NaN-free mean and standard deviation)
 *   /fit/cov, hessian (P, P) float64;  /fit/logl_max, flags, n_evals (scalars as (1))
 *   /fit/axis_<p> (n_grid) float64;  /fit/grid_logl (n_grid, ..., n_grid) float64 */
typedef struct cnf_fit_job {
  char data[1024], split[16];
  char target[256], target_columns[1024];
  char cond[256], cond_columns[512];
  char fit_columns[256];               /* comma-separated names of the fitted condition columns */
  double lo[CNF_FIT_MAX_PAR], hi[CNF_FIT_MAX_PAR];
  int n_lo, n_hi;                      /* how many lo / hi values were given */
  char ensemble[1024], out[1024];
  int n_grid, refine, block;
  int64_t max_showers;                 /* first N showers of the split (0 = all) */
  double noise;                        /* U[0, noise) added to every target value (< 0: the
                                        * model's training noise, from its provenance) */
  uint64_t seed;                       /* noise stream: (seed, shower index) */
} cnf_fit_job;
void cnf_fit_job_default(cnf_fit_job *job);
int cnf_fit_file(const cnf_fit_job *job, MPI_Comm comm, cnf_fit_result *res);

/* ---- `cnflow regress`: the direct-regression baseline (src/infer/regress.c) ----------------- */
/* The calibration study's MSE regression (flows-reference.md 5.6) as a 1-D conditional flow
 * trained by `cnflow train -prep regress`: z = log10(E / 10 GeV) - m(c) (shift-only maf_affine
 * after the stored log / affine_fixed preprocessing), so member k's prediction is its inverse at
 * z = 0, E_k = 10 GeV * 10^m_k(c), and the ensemble prediction is the mean of the E_k (E space,
 * as the study).  Output: the scan.h5 layout above with method = "regression", e_min = e_max =
 * NaN, n_grid = 0; per shower e_lo = e_hi = logl_max = NaN, n_maxima = 0, flags 0 or
 * CNF_SCAN_FAILED (a non-finite prediction, e_pred NaN), e_true copied from the input. */
/* c (n, C) raw inputs; e_pred (n) the ensemble mean in the target's raw unit; member_pred
 * (K, n) (may be NULL) each member's prediction. */
int cnf_regress_predict(cnf_flow *const *members, int K, int n, const cnf_real *c,
                        double *e_pred, double *member_pred);

typedef struct cnf_regress_job {
  char data[1024], split[16];        /* input dataset file and split (train|val|test|all) */
  char target[256], target_columns[256]; /* the true energy ("" = the model's binding) */
  char cond[256], cond_columns[1024];    /* the regressor's inputs ("" = the model's binding) */
  char ensemble[1024], out[1024];    /* manifest (DIR/ensemble.txt) or one model file; scan.h5 */
  char prior[32];                    /* label of the training prior stored for `cnflow bias` */
  int block;                         /* showers per flow call and per collective write (4096) */
  int64_t max_showers;               /* first N showers of the split (0 = all) */
  double progress_s;                 /* seconds between progress lines (0: none) */
} cnf_regress_job;
void cnf_regress_job_default(cnf_regress_job *job);

typedef struct cnf_regress_summary {
  uint64_t showers, failed;
  int members;
  double seconds, showers_per_s, mean_ratio; /* mean E_pred / E_true of the finite rows */
} cnf_regress_summary;
/* COLLECTIVE over comm: every rank predicts a contiguous run of whole blocks and writes its rows
 * of job->out (<out>.tmp, renamed when complete); the file does not depend on the rank count. */
int cnf_regress_file(const cnf_regress_job *job, MPI_Comm comm, cnf_regress_summary *sum);
