/* cnflow sim: the physics generators (specification: shared/research/physics-spec.md).
 *
 * Every generator is a pure function of (options, seed, event index): row i of every output
 * dataset is computed from the counter-based stream (seed, stream_id = i) only, so the file is
 * byte-identical whatever the number of ranks.  Rejection sampling (selection cuts) loops over
 * attempts inside one event index using the `sub` counter of the stream.
 *
 * The generic writer (src/data, `cnflow generate <name>`) knows nothing about the physics: it
 * asks a generator for its option table and dataset schema, gives each rank a contiguous block
 * of event indices, calls `event` per index and writes the rows with collective hyperslab
 * writes.
 */
#pragma once

#include "cnflow/core.h"

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

extern const cnf_generator cnf_gen_hgg;          /* G1: H->gamma gamma truth + smearing  (hgg.c) */
extern const cnf_generator cnf_gen_calo_photon;  /* G2: photon images behind material (calo_photon.c) */
extern const cnf_generator cnf_gen_calo_pion;    /* G3: pion layer energies          (calo_pion.c) */

/* Look a generator up by name; NULL if unknown. */
const cnf_generator *cnf_generator_find(const char *name);
/* The i-th registered generator (0, 1, ...), NULL past the last: for listing the names. */
const cnf_generator *cnf_generator_at(int i);
