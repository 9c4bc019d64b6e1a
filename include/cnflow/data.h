/* cnflow data: dataset files in parallel HDF5.  The generic writer behind `cnflow generate`
 * (drives any cnf_generator: the interface is declared here and sim implements it, so the
 * arrow runs sim -> data only) and the sharded readers used by training, sampling and scans.
 *
 * ---- File layout written by cnf_data_generate ----------------------------------------------
 *   /<schema path>     2-D dataset (N, ncols), storage dtype from the schema (f32, f64, i32),
 *                      chunked (rows_per_chunk, ncols): at most 65536 rows and 4 MiB per
 *                      chunk, rows spread evenly over the chunks N needs; a function of N
 *                      and the row width only, never of the number of ranks.
 *                      Row i of every dataset is event index i.  Attributes:
 *                        columns      string[ncols]   column names
 *                        units        string[ncols]   ("" when unitless)
 *                        description  string
 *   / (root group attributes, the provenance)
 *     generator        string          e.g. "hgg"
 *     options          string          "name=value\n" for every option of the generator table
 *     seed, n_events   int64
 *     cnflow_version, cnflow_git_rev   strings
 *     split_names      string[3]       "train", "val", "test"
 *     split_ranges     int64 (3, 2)    (first row, row count) of each split: contiguous ranges
 *                                      in that order, covering [0, N)
 *   Strings are variable-length UTF-8.  Files are BYTE-IDENTICAL whatever the number of ranks
 *   that wrote them: no timestamps, no rank count, the same collective metadata operations in
 *   the same order, storage allocated at creation.
 *
 * CaloChallenge files ("incident_energies" (N, 1), "showers" (N, nvox)) are read the same way:
 * any 1-D (N) or 2-D (N, ncols) float or integer dataset is accepted, 1-D as (N, 1); columns
 * without a "columns" attribute are named "c0", "c1", ...
 *
 * ---- Collectives and errors ----------------------------------------------------------------
 * Functions marked COLLECTIVE must be called by every rank of the communicator given to
 * cnf_data_generate / cnf_data_open.  They return the SAME status on every rank: a failure on
 * one rank (bad argument, HDF5 error, generator error) is shared with the others (the message of
 * the lowest failing rank is copied everywhere), so no rank is left waiting in a collective.
 * Messages are one line and name the file (and dataset / column / event when relevant).
 */
#pragma once

#include "cnflow/core.h"

#include <mpi.h>

/* ------------------------------------------------------------------------------------------ */
/* The generator interface that cnf_data_generate drives (implemented by src/sim and testgen). */
/* Every generator is a pure function of (options, seed, event index); see include/cnflow/sim.h */
/* ------------------------------------------------------------------------------------------ */
/* ---- options: a table mapping PETSc-style option names to fields of the generator's opts ---- */
typedef enum cnf_opt_type {
  CNF_OPT_INT = 0,    /* int */
  CNF_OPT_INT64,      /* int64_t */
  CNF_OPT_REAL,       /* double */
  CNF_OPT_BOOL,       /* int (0/1) */
  CNF_OPT_STRING,     /* char[CNF_OPT_STRLEN] */
} cnf_opt_type;
#define CNF_OPT_STRLEN 256

typedef struct cnf_option {
  const char *name;   /* without the leading dash, e.g. "hgg_process" */
  cnf_opt_type type;
  size_t offset;      /* offsetof(opts struct, field) */
  const char *help;   /* one line, includes unit and default */
} cnf_option;

/* ---- output schema ---------------------------------------------------------------------- */
typedef enum cnf_dtype { CNF_DTYPE_F32 = 0, CNF_DTYPE_F64 = 1, CNF_DTYPE_I32 = 2 } cnf_dtype;

#define CNF_MAX_COLS 1024
typedef struct cnf_dataset_schema {
  const char *path;          /* dataset path in the file, e.g. "truth" or "baseline/smeared" */
  int ncols;                 /* row width (1 for per-event scalars, stored as (N, 1)) */
  cnf_dtype dtype;           /* storage type; event() always fills doubles */
  const char *const *colnames; /* ncols names (NULL: "c0", "c1", ...) */
  const char *const *units;    /* ncols units (NULL: "") */
  const char *description;   /* attribute "description" */
} cnf_dataset_schema;

#define CNF_MAX_DATASETS 32
typedef struct cnf_sim_desc {
  int n_datasets;
  cnf_dataset_schema datasets[CNF_MAX_DATASETS];
  uint64_t n_events;         /* number of output rows (from the options) */
} cnf_sim_desc;

typedef struct cnf_generator {
  const char *name;          /* "hgg", "calo-photon", "calo-pion" */
  const char *help;          /* one paragraph */
  size_t opts_size;
  int n_options;
  const cnf_option *options;
  void (*opts_default)(void *opts);
  /* Validate options (clear one-line error on bad values), precompute tables, fill desc.
   * Called on every rank with the block [first, first + count) that rank will generate.
   * May read input files (e.g. user-supplied truth). `state` receives generator-private state. */
  int (*setup)(const void *opts, uint64_t first, uint64_t count, cnf_sim_desc *desc,
               void **state);
  /* Fill one row of every dataset for event `index`: rows[k] points to desc->datasets[k].ncols
   * doubles.  Must depend only on (opts, seed, index). Thread-compatible (no global state). */
  int (*event)(const void *opts, void *state, uint64_t index, double *const *rows);
  /* Optional: extra attributes/datasets after all rows are written (collective; NULL if none).
   * `file` is an open hid_t (as int64_t to keep HDF5 out of this header). */
  int (*finalize)(const void *opts, void *state, int64_t file, void *mpi_comm);
  void (*teardown)(void *state);
} cnf_generator;


/* ------------------------------------------------------------------------------------------ */
/* Generator option tables (sim.h cnf_option) seen generically                                */
/* ------------------------------------------------------------------------------------------ */
/* The writer owns two options of every generator: the seed and the number of events.  A
 * generator declares them in its table under one of these names (INT or INT64):
 *   seed:     "seed" or "<prefix>_seed"
 *   events:   "n", "n_events", "nevents" or "<prefix>_n_events"
 * The seed option is required; the events option is optional (without it the generator's
 * desc.n_events is the default and event() must serve any index).  NULL when absent. */
const cnf_option *cnf_gen_seed_option(const cnf_generator *gen);
const cnf_option *cnf_gen_nevents_option(const cnf_generator *gen);
/* Read / write an INT or INT64 option of `opts` through its table entry.  The setter fails
 * with CNF_ERR_ARG when the value does not fit an INT option or the option is not integer. */
int64_t cnf_option_get_int64(const cnf_option *o, const void *opts);
int cnf_option_set_int64(const cnf_option *o, void *opts, int64_t value);
/* "name=value" for one option (reals with %.17g, so the text round-trips); returns the length
 * or CNF_ERR_ARG when `len` is too small. */
int cnf_option_format(const cnf_option *o, const void *opts, char *buf, size_t len);
/* All options of the table, one "name=value" line each.  Returns a malloc'ed string the caller
 * frees, or NULL (CNF_ERR_NOMEM set). */
char *cnf_gen_options_string(const cnf_generator *gen, const void *opts);

/* ------------------------------------------------------------------------------------------ */
/* Splits                                                                                      */
/* ------------------------------------------------------------------------------------------ */
enum { CNF_SPLIT_TRAIN = 0, CNF_SPLIT_VAL = 1, CNF_SPLIT_TEST = 2, CNF_N_SPLITS = 3 };
extern const char *const cnf_split_names[CNF_N_SPLITS]; /* "train", "val", "test" */

/* Contiguous split of n rows by fractions (train, val, test): each >= 0, sum 1 within 1e-6.
 * Boundaries are rounded cumulative fractions, b_k = floor(n * (f_0 + .. + f_k) + 1/2), so the
 * three counts always sum to n.  CNF_ERR_ARG on bad fractions. */
int cnf_data_split_ranges(uint64_t n, const double fractions[3], uint64_t first[3],
                          uint64_t count[3]);
/* Parse "0.8,0.1,0.1" into fractions[3] and validate as above. */
int cnf_data_parse_fractions(const char *s, double fractions[3]);
/* Index of a split name ("train", "val", "test"), or CNF_ERR_ARG. */
int cnf_data_split_index(const char *name);

/* ------------------------------------------------------------------------------------------ */
/* Writer                                                                                      */
/* ------------------------------------------------------------------------------------------ */
typedef struct cnf_data_gen_config {
  const char *path;           /* output file; written as <path>.tmp.<hash> and renamed at the end */
  int64_t seed;               /* written into the generator's seed option */
  int64_t n_events;           /* rows; 0 = the generator's default (desc.n_events) */
  double split_fractions[3];  /* train, val, test */
  int64_t batch_rows;         /* rows generated per rank between collective writes;
                                 0 = automatic (~8 MiB of stored rows per rank) */
  double progress_interval_s; /* rank-0 progress line period; <= 0: no progress lines */
} cnf_data_gen_config;

/* Defaults: fractions 0.8/0.1/0.1, automatic batch, progress every 10 s, seed 1, n 0. */
void cnf_data_gen_config_default(cnf_data_gen_config *cfg);

typedef struct cnf_data_gen_report {
  uint64_t n_events; /* rows written */
  uint64_t bytes;    /* raw data bytes of all datasets */
  double seconds;    /* wall time from setup to rename (max over ranks) */
  double seconds_event; /* time inside gen->event (max over ranks) */
  double seconds_write; /* time in the collective row writes (max over ranks) */
  uint64_t independent_writes; /* H5Dwrite calls HDF5 did not do collectively (all ranks; 0
                                  expected: the storage types are written without conversion) */
} cnf_data_gen_report;

/* COLLECTIVE over comm.  Generates gen (options `opts`, which are copied: the seed and, when
 * cfg->n_events > 0, the events option are set in the copy) into cfg->path:
 *   every rank calls gen->setup with its contiguous block of event indices (cnf_partition:
 *   low ranks take the remainder; when N comes from the generator a first setup(0, 0) asks for
 *   it), creates the file collectively, generates batches of rows with gen->event, converts
 *   them to the storage dtype (non-finite values and integers out of int32 range are errors)
 *   and writes each batch with a collective hyperslab write (ranks without rows take part with
 *   empty selections); then gen->finalize (if any), close, rename.  On failure the temporary file
 *   is removed, `path` is untouched and every rank returns the same error.  `report` may be NULL.
 */
int cnf_data_generate(const cnf_generator *gen, const void *opts, const cnf_data_gen_config *cfg,
                      MPI_Comm comm, cnf_data_gen_report *report);

/* ------------------------------------------------------------------------------------------ */
/* Reader                                                                                      */
/* ------------------------------------------------------------------------------------------ */
typedef struct cnf_data_file cnf_data_file; /* an open dataset file (opaque) */
typedef struct cnf_data_dset cnf_data_dset; /* an open 2-D dataset of that file (opaque) */

/* COLLECTIVE.  Share a status over comm: if any rank has rc < 0, every rank returns the code
 * and the one-line message of the lowest failing rank (so all leave together, never one
 * waiting in a later collective); otherwise rc.  Used by every stage that takes a comm. */
int cnf_sync_status(MPI_Comm comm, int rc);
/* 1 once closing an HDF5 file failed (a full disk): HDF5 then crashes in its shutdown, so the
 * program must exit without MPI_Finalize (main does). */
int cnf_data_hdf5_unusable(void);

/* COLLECTIVE.  Open `path` read-only on comm (which must outlive the handle).  Errors:
 * CNF_ERR_IO for a missing/unreadable file, a file that is not HDF5, truncated or corrupt.
 * *out is owned by the caller: release with cnf_data_close. */
int cnf_data_open(const char *path, MPI_Comm comm, cnf_data_file **out);
/* COLLECTIVE.  Close the file (NULL is fine).  Datasets must be closed first. */
void cnf_data_close(cnf_data_file *f);

const char *cnf_data_path(const cnf_data_file *f);
/* The "generator" root attribute, "" when absent (e.g. CaloChallenge files). */
const char *cnf_data_generator(const cnf_data_file *f);
/* CNF_ERR_FORMAT unless the file was written by generator `name`. */
int cnf_data_expect_generator(const cnf_data_file *f, const char *name);
/* Row range of a split recorded in the file ("train", "val", "test", or "all"/NULL meaning
 * [0, n_rows) where n_rows = the "n_events" attribute).  CNF_ERR_FORMAT when the file has no
 * split record (then compute ranges with cnf_data_split_ranges on the dataset's rows). */
int cnf_data_split(const cnf_data_file *f, const char *split, uint64_t *first, uint64_t *count);

/* COLLECTIVE.  Open dataset `path`; expect_ncols > 0 requires that row width.  Errors:
 * CNF_ERR_FORMAT for a missing dataset, wrong rank (not 1-D/2-D), non-numeric type or wrong
 * number of columns.  Release with cnf_data_dset_close. */
int cnf_data_dset_open(cnf_data_file *f, const char *path, int expect_ncols, cnf_data_dset **out);
/* COLLECTIVE.  NULL is fine. */
void cnf_data_dset_close(cnf_data_dset *d);
uint64_t cnf_data_dset_rows(const cnf_data_dset *d);
int cnf_data_dset_cols(const cnf_data_dset *d);
/* Name of column j (owned by d). */
const char *cnf_data_dset_column(const cnf_data_dset *d, int j);
/* Unit of column j ("" when unknown; owned by d). */
const char *cnf_data_dset_unit(const cnf_data_dset *d, int j);
/* Index of the column named `name`, or CNF_ERR_FORMAT (message names the dataset). */
int cnf_data_dset_find_column(const cnf_data_dset *d, const char *name);
/* Column indices of a comma-separated list of names ("" = every column, in order) into
 * cols[0..max); *n receives the count.  CNF_ERR_ARG when more than max, CNF_ERR_FORMAT for an
 * unknown name. */
int cnf_data_dset_resolve_columns(const cnf_data_dset *d, const char *list, int max, int *cols,
                                  int *n);

/* The calling rank's shard of a split of d: the split's rows (see cnf_data_split; for a file
 * without split record only "all"/NULL works) partitioned over the ranks with cnf_partition. */
int cnf_data_shard(const cnf_data_dset *d, const char *split, uint64_t *first, uint64_t *count);

/* COLLECTIVE.  Read rows [first, first + count) of d (each rank its own range; count 0 is fine)
 * into out, row-major (count, ncols_sel) as `mem` = CNF_DTYPE_F32 (float) or CNF_DTYPE_F64
 * (double).  cols = NULL reads all columns (ncols_sel must then be 0 or the dataset's width);
 * otherwise cols[0..ncols_sel) are distinct column indices, in any order (out follows it). */
int cnf_data_read(cnf_data_dset *d, uint64_t first, uint64_t count, int ncols_sel,
                  const int *cols, cnf_dtype mem, void *out);
/* COLLECTIVE.  cnf_data_shard + cnf_data_read: out must hold shard_count * width values. */
int cnf_data_read_split(cnf_data_dset *d, const char *split, int ncols_sel, const int *cols,
                        cnf_dtype mem, void *out);

/* The cnf_dtype matching cnf_real, for cnf_data_read into cnf_real arrays. */
#define CNF_DTYPE_REAL (CNF_REAL_IS_DOUBLE ? CNF_DTYPE_F64 : CNF_DTYPE_F32)

/* ------------------------------------------------------------------------------------------ */
/* testgen: a cheap deterministic generator for the data-layer tests (`cnflow generate testgen`)*/
/* ------------------------------------------------------------------------------------------ */
/* Datasets, row i = event index i (stream (seed, i), sub = attempt):
 *   truth    f64 (N, 3): event_id = i, x ~ N(0, sigma) truncated to |x| < cut by rejection,
 *                        u ~ U(0, 1) drawn after the accepted x
 *   cond     f32 (N, 1): energy = 1 + 99 u  [GeV]
 *   aux/meta i32 (N, 2): attempts (rejection attempts used), fold = i % 10
 * Options: seed, n (default 1000), testgen_sigma, testgen_cut, and two failure injections for
 * tests: testgen_fail_event (event() fails at that index) and testgen_fail_setup (setup fails on
 * the rank whose block holds that index); -1 disables them. */
typedef struct cnf_testgen_opts {
  int64_t seed;
  int64_t n;
  double sigma;
  double cut;
  int64_t fail_event;
  int64_t fail_setup;
} cnf_testgen_opts;
extern const cnf_generator cnf_gen_testgen;
