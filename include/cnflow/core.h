/* cnflow core: the scalar type, error handling, logging, timers and counter-based RNG streams.
 *
 * Conventions used across cnflow (documented once, here):
 *   - Arrays are row-major.  "(n, D)" means n rows of D contiguous values.
 *   - Functions that can fail return int: 0 on success, a negative cnf_status otherwise, after
 *     recording a one-line message with cnf_error_set() (retrieve it with cnf_error_message()).
 *     Callers propagate with CNF_CALL(expr).  Programmer errors (broken invariants) use
 *     CNF_ASSERT, which aborts the whole MPI job.
 *   - Backward passes ACCUMULATE (+=) into gradient buffers; zeroing is an explicit call.
 *   - cnf_real is float in the production library and double in cnflow_lib_f64 (-DCNF_DOUBLE),
 *     which the finite-difference gradient tests link against.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef CNF_DOUBLE
typedef double cnf_real;
#define CNF_REAL_IS_DOUBLE 1
#else
typedef float cnf_real;
#define CNF_REAL_IS_DOUBLE 0
#endif

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */
/* ------------------------------------------------------------------------------------------ */
typedef enum cnf_status {
  CNF_OK = 0,
  CNF_ERR_ARG = -1,     /* bad option or argument value */
  CNF_ERR_NOMEM = -2,   /* allocation failed */
  CNF_ERR_IO = -3,      /* file missing, unreadable, truncated, HDF5 failure */
  CNF_ERR_FORMAT = -4,  /* file readable but wrong schema / architecture / shape */
  CNF_ERR_NUMERIC = -5, /* NaN/Inf in input or result */
  CNF_ERR_MPI = -6,     /* MPI call failed */
  CNF_ERR_PETSC = -7,   /* PETSc/TAO call failed */
  CNF_ERR_STATE = -8,   /* call sequence error (e.g. backward before forward) */
  CNF_ERR_INTERRUPTED = -9, /* stopped by a signal (SIGTERM/SIGUSR1) after writing a checkpoint:
                               `cnflow` exits with status 75 (EX_TEMPFAIL), resume with -resume */
} cnf_status;

/* Record an error message (printf-style) for the current thread and return `code`.
 * The message is prefixed with nothing: keep it one line, state what and where. */
int cnf_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last recorded message ("" if none).  Owned by cnflow; valid until the next set. */
const char *cnf_error_message(void);
const char *cnf_status_string(int code);
void cnf_error_clear(void);

/* Propagate a failure: `CNF_CALL(cnf_flow_log_prob(...));` inside a function returning int. */
#define CNF_CALL(expr)            \
  do {                            \
    int cnf_call_rc_ = (expr);    \
    if (cnf_call_rc_ < 0)         \
      return cnf_call_rc_;        \
  } while (0)

/* Same, but jumps to a cleanup label after storing the code in `rc`. */
#define CNF_CALL_GOTO(rc, label, expr) \
  do {                                 \
    (rc) = (expr);                     \
    if ((rc) < 0)                      \
      goto label;                      \
  } while (0)

/* Invariant check: prints file:line and the expression, then MPI_Abort()s every rank. */
#define CNF_ASSERT(cond)                                     \
  do {                                                       \
    if (!(cond))                                             \
      cnf_abort_(__FILE__, __LINE__, "assertion failed: %s", #cond); \
  } while (0)
_Noreturn void cnf_abort_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fault injection, a TESTING AID (src/core/fault.c): CNFLOW_FAULT="rank=R,at=SITE,n=N,kind=K"
 * makes world rank R (default 0) fail the N-th time (default 1) it passes SITE (train_step,
 * checkpoint, scan_block).  K: alloc / io return CNF_ERR_NOMEM / CNF_ERR_IO through the caller's
 * error path, nan returns CNF_FAULT_NAN (the caller poisons its value; train_step only), exit /
 * abort / kill end the process without MPI_Finalize, hang stops the rank for ever (-watchdog).  Unset it costs one compare per site. */
typedef enum cnf_fault_site {
  CNF_FAULT_TRAIN_STEP, CNF_FAULT_CHECKPOINT, CNF_FAULT_SCAN_BLOCK, CNF_FAULT_NSITES
} cnf_fault_site;
#define CNF_FAULT_NAN 1
extern int cnf_fault_armed_;
int cnf_fault_hit_(cnf_fault_site site, const char *what);
/* 0, CNF_FAULT_NAN, or a negative cnf_status with its message ("<what>: ... (injected ...)") */
#define cnf_fault(site, what) (cnf_fault_armed_ ? cnf_fault_hit_((site), (what)) : 0)

/* Hang watchdog (src/core/watchdog.c; the common option -watchdog SECONDS, 0 = off): a thread
 * per rank ends the process with one line on stderr and exit status CNF_WATCHDOG_EXIT when no
 * cnf_watchdog_beat() happened for longer than the timeout, so that a rank that hangs (stuck
 * I/O, a deadlocked collective) ends the job instead of holding the allocation until the time
 * limit.  The work loops beat (train steps, flow evaluations, scan blocks, writer batches);
 * a wait that may legitimately last (a group waiting for the other ensemble groups) is
 * bracketed by suspend/resume, which nest.  A stopped-and-continued process is not hung.
 * `where` must be a string literal (it is kept, not copied).  Not collective. */
#define CNF_WATCHDOG_EXIT 3
int cnf_watchdog_start(double timeout_s); /* CNF_ERR_ARG for < 0, NaN, Inf; 0 does nothing */
void cnf_watchdog_stop(void);             /* joins the thread; safe when not started */
int cnf_watchdog_running(void);
extern int cnf_watchdog_armed_;
void cnf_watchdog_beat_(const char *where);
#define cnf_watchdog_beat(where) \
  do {                           \
    if (cnf_watchdog_armed_)     \
      cnf_watchdog_beat_(where); \
  } while (0)
void cnf_watchdog_suspend(const char *where);
void cnf_watchdog_resume(void);

/* The git revision the library was built from (`git describe --always --dirty`), or
 * "unknown" outside a checkout.  Written into every dataset and model file. */
const char *cnf_git_rev(void);

/* Checked allocation helpers: return NULL and set CNF_ERR_NOMEM on failure. */
void *cnf_malloc(size_t bytes);
void *cnf_calloc(size_t count, size_t size);
/* 64-byte aligned allocation (for GEMM operands); free with free(). */
void *cnf_aligned_alloc(size_t bytes);

/* ------------------------------------------------------------------------------------------ */
/* Logging: rank-aware.  cnf_log_set_rank() is called once by the CLI after MPI init.          */
/* ------------------------------------------------------------------------------------------ */
typedef enum cnf_log_level { CNF_LOG_QUIET = 0, CNF_LOG_INFO = 1, CNF_LOG_DEBUG = 2 } cnf_log_level;
void cnf_log_set_rank(int rank, int size);
void cnf_log_set_level(cnf_log_level level);
cnf_log_level cnf_log_get_level(void);
int cnf_log_rank(void);
/* Printed on rank 0 only, to stdout, prefixed "[cnflow] ". */
void cnf_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed on every rank at debug level, prefixed "[cnflow rank r] ". */
void cnf_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed on any rank that calls it, to stderr, prefixed "cnflow: warning: ". */
void cnf_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------------------------------ */
/* Timers                                                                                      */
/* ------------------------------------------------------------------------------------------ */
double cnf_time_now(void); /* monotonic seconds */

/* Progress reporter for long loops: prints "<what>: done/total (pct), rate/s, ETA" on rank 0,
 * at most every `interval_s` seconds.  `total` is the global count; `done` the global progress
 * estimate (e.g. local progress * number of ranks). */
typedef struct cnf_progress {
  const char *what;
  uint64_t total;
  double t_start, t_last, interval_s;
} cnf_progress;
void cnf_progress_init(cnf_progress *p, const char *what, uint64_t total, double interval_s);
void cnf_progress_update(cnf_progress *p, uint64_t done);
void cnf_progress_finish(cnf_progress *p, uint64_t done);

/* ------------------------------------------------------------------------------------------ */
/* Counter-based random streams (Random123 Philox4x32-10).                                     */
/*                                                                                             */
/* A stream is identified by (seed, stream_id); its values depend on nothing else, so a        */
/* generator that uses stream_id = event index produces the same events whatever the number    */
/* of ranks.  `sub` separates independent uses within one event (e.g. attempt number).         */
/* ------------------------------------------------------------------------------------------ */
typedef struct cnf_rng {
  uint32_t key[2];     /* seed (low/high) */
  uint32_t ctr[4];     /* ctr[0] = draw counter, ctr[1] = sub, ctr[2..3] = stream id */
  uint32_t buf[4];     /* last block of output */
  int used;            /* how many of buf[] were consumed */
  int has_spare;       /* Box-Muller spare */
  double spare;
} cnf_rng;

void cnf_rng_init(cnf_rng *r, uint64_t seed, uint64_t stream_id, uint32_t sub);
uint32_t cnf_rng_u32(cnf_rng *r);
uint64_t cnf_rng_u64(cnf_rng *r);
/* Uniform in the open interval (0, 1), 53 random bits. */
double cnf_rng_uniform(cnf_rng *r);
/* Standard normal (Box-Muller on the stream; deterministic given the stream). */
double cnf_rng_normal(cnf_rng *r);
/* Fisher-Yates shuffle of perm[0..n) drawn from the stream. */
void cnf_rng_permutation(cnf_rng *r, int n, int *perm);

/* A pseudo-random permutation of [0, n) evaluated at any position without storing it: a keyed
 * 6-round Feistel network on the smallest even-bit domain 2^(2h) >= n, with cycle walking back
 * into [0, n) (fewer than 4 rounds trips on average).  Keys come from the stream (seed,
 * stream_id, sub), so every rank computes the same permutation in O(1) memory: the training
 * loop shuffles the GLOBAL index set this way without holding an n-entry array per rank. */
typedef struct cnf_perm {
  uint64_t n, half_mask;
  unsigned half_bits;
  uint64_t key[6];
} cnf_perm;
void cnf_perm_init(cnf_perm *p, uint64_t n, uint64_t seed, uint64_t stream_id, uint32_t sub);
/* The image of position i (i < n) under the permutation. */
uint64_t cnf_perm_at(const cnf_perm *p, uint64_t i);

/* A GSL generator backed by a cnf_rng, so gsl_ran_* distributions (gamma, beta, poisson, ...)
 * draw from the counter-based stream.  Opaque here to keep GSL out of this header:
 * returns a gsl_rng* (cast it).  cnf_rng_gsl_reset() re-targets it to another stream without
 * reallocating.  Free with cnf_rng_gsl_free(). */
void *cnf_rng_gsl_alloc(uint64_t seed, uint64_t stream_id, uint32_t sub);
void cnf_rng_gsl_reset(void *gsl_rng_ptr, uint64_t seed, uint64_t stream_id, uint32_t sub);
void cnf_rng_gsl_free(void *gsl_rng_ptr);

/* ------------------------------------------------------------------------------------------ */
/* Small numeric helpers                                                                       */
/* ------------------------------------------------------------------------------------------ */
/* 1 if every value is finite. */
int cnf_all_finite(size_t n, const cnf_real *x);
int cnf_all_finite_d(size_t n, const double *x);
/* Block partition of `total` items over `size` ranks: low ranks take the remainder. */
void cnf_partition(uint64_t total, int size, int rank, uint64_t *first, uint64_t *count);
/* Parse a comma-separated list of ints into out[0..max); returns the count or <0 on error. */
int cnf_parse_int_list(const char *s, int *out, int max);
/* mkdir -p: create `dir` and its missing parents (0777 & umask); 0 if it exists as a directory,
 * CNF_ERR_IO naming the directory and the reason otherwise.  Not collective. */
int cnf_mkdir_p(const char *dir);
/* mkdir -p of the directory part of a file path ("runs/a/scan.h5" -> "runs/a"; nothing for a
 * bare file name).  Not collective. */
int cnf_mkdir_parent(const char *file_path);
/* Free-space pre-check before creating file `path` (which need not exist yet): statvfs on its
 * directory ("." for a bare name, "/" for a file in /); CNF_ERR_IO "<path>: not enough space on
 * the file system of '<dir>': the file needs X MB, Y MB are free" when fewer than need_bytes are
 * available to an unprivileged writer, 0 otherwise, and 0 when statvfs fails (not knowable
 * here: the create then reports the missing directory).  Writers call it before creating their
 * file, because a parallel HDF5 close that hits a full disk does not fail cleanly (the ranks can
 * wait in different collectives for ever) and a serial one can leave a truncated file.  Not
 * collective: run it on the rank that creates the file (rank 0 for a parallel file) and share
 * the status the way the caller shares its other errors (cnf_sync_status). */
int cnf_check_free_space(const char *path, uint64_t need_bytes);
