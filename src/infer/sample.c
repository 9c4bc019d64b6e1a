/* `cnflow sample`: generated events from a trained ensemble at the conditions of a dataset
 * split, written through the generic parallel writer (src/data/writer.c) as if the ensemble
 * were one more generator.  That reuse is the point: the writer already gives collective
 * hyperslab writes, storage allocated up front, a temporary name renamed when complete, one
 * error on every rank, progress lines, and files that are byte-identical whatever the number of
 * ranks, provided row i depends on i only.  Here it does: event i is drawn by member i mod K
 * (equal shares, as the calibration study split its generation) from the latent stream
 * (seed, stream_id = i) -- the stream cnf_flow_sample gives event i -- at the conditions of
 * input row split_first + i.
 *
 * Each rank opens the input on MPI_COMM_SELF and reads only the rows of its own block, in
 * batches as the writer asks for them (independent reads of disjoint hyperslabs: nothing is
 * read whole or scattered), and loads every member once. */
#include "cnflow/data.h"
#include "cnflow/infer.h"
#include "cnflow/train.h"

#include "../data/h5util.h"

#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_BATCH 4096 /* events generated per refill (all members together) */
#define SAMPLE_MAX_MEMBERS 64

void cnf_sample_job_default(cnf_sample_job *job) {
  memset(job, 0, sizeof *job);
  snprintf(job->split, sizeof job->split, "test");
  snprintf(job->out, sizeof job->out, "samples.h5");
  job->seed = 1;
  job->progress_s = 10;
}

/* The generator's options: only what the writer itself needs (seed and n, by name) plus the
 * job, which the writer copies with the struct (a pointer: the job outlives the write). */
typedef struct sample_opts {
  int64_t seed, n;
  const cnf_sample_job *job;
  uint64_t split_first; /* first input row of the split */
} sample_opts;

static const cnf_option sample_options[] = {
    {"seed", CNF_OPT_INT64, offsetof(sample_opts, seed), "latent stream seed (default 1)"},
    {"n", CNF_OPT_INT64, offsetof(sample_opts, n), "events (the split's rows, or -max_events)"},
};

static void sample_opts_default(void *opts) { memset(opts, 0, sizeof(sample_opts)); }

enum { DS_GEN, DS_LOGP, DS_MEMBER, DS_COND, DS_REF, DS_GEN_RECO, DS_REF_RECO, DS_MAX };

typedef struct sample_state {
  cnf_flow *f[SAMPLE_MAX_MEMBERS];
  int K, D, C;
  cnf_data_file *file;
  cnf_data_dset *dt, *dc, *dtruth;
  int tcols[CNF_TRAIN_MAX_COLS], ccols[CNF_TRAIN_MAX_COLS], rcols[CNF_TRAIN_MAX_COLS];
  int have_ref, have_reco;
  int ds_index[DS_MAX];            /* position of each dataset in the schema (-1 absent) */
  /* column names (pointers into the open datasets or into reco_names) */
  const char *tnames[CNF_TRAIN_MAX_COLS], *tunits[CNF_TRAIN_MAX_COLS];
  const char *cnames[CNF_TRAIN_MAX_COLS], *cunits[CNF_TRAIN_MAX_COLS];
  const char *rnames[CNF_TRAIN_MAX_COLS];
  /* the current batch: events [b_first, b_first + b_n) of the output */
  uint64_t first, count, b_first;
  int b_n;
  cnf_real *x_ref, *c, *z, *x_gen, *logdet; /* (B, D), (B, C), ... */
  double *truth;                             /* (B, D) truth values of the reco columns */
  double *logp;
  int *member;
  cnf_real *mz, *mc, *mx, *mld;              /* one member's gathered rows */
  int *midx;
} sample_state;

static void sample_teardown(void *state) {
  sample_state *s = state;
  if (!s)
    return;
  for (int k = 0; k < s->K; k++)
    cnf_flow_free(&s->f[k]);
  cnf_data_dset_close(s->dt);
  cnf_data_dset_close(s->dc);
  cnf_data_dset_close(s->dtruth);
  cnf_data_close(s->file);
  free(s->x_ref); free(s->c); free(s->z); free(s->x_gen); free(s->logdet);
  free(s->truth); free(s->logp); free(s->member);
  free(s->mz); free(s->mc); free(s->mx); free(s->mld); free(s->midx);
  free(s);
}

/* Response targets named d_<name> next to a truth dataset with every <name>: reco = truth +
 * generated response (the CNF study's hgg layout).  Silently absent otherwise. */
static void sample_find_reco(sample_state *s, const cnf_sample_job *job) {
  if (!job->truth[0])
    return;
  for (int j = 0; j < s->D; j++)
    if (strncmp(s->tnames[j], "d_", 2) != 0 || !s->tnames[j][2])
      return;
  if (cnf_data_dset_open(s->file, job->truth, 0, &s->dtruth) < 0) {
    cnf_error_clear();
    return;
  }
  for (int j = 0; j < s->D; j++) {
    int col = cnf_data_dset_find_column(s->dtruth, s->tnames[j] + 2);
    if (col < 0) {
      cnf_error_clear();
      cnf_data_dset_close(s->dtruth);
      s->dtruth = NULL;
      return;
    }
    s->rcols[j] = col;
    s->rnames[j] = cnf_data_dset_column(s->dtruth, col);
  }
  s->have_reco = 1;
}

static int sample_setup_state(const void *opts, uint64_t first, uint64_t count,
                              cnf_sim_desc *desc, void **state) {
  const sample_opts *o = opts;
  const cnf_sample_job *job = o->job;
  *state = NULL;
  sample_state *s = calloc(1, sizeof *s);
  if (!s)
    return cnf_error_set(CNF_ERR_NOMEM, "sample: out of memory");
  *state = s;
  s->first = first;
  s->count = count;
  s->b_first = UINT64_MAX;
  CNF_CALL(cnf_infer_load_ensemble(job->ensemble, s->f, SAMPLE_MAX_MEMBERS, &s->K, NULL));
  s->D = cnf_flow_dim(s->f[0]);
  s->C = cnf_flow_cond_dim(s->f[0]);
  CNF_CALL(cnf_data_open(job->data, MPI_COMM_SELF, &s->file));
  CNF_CALL(cnf_data_dset_open(s->file, job->cond, 0, &s->dc));
  int n = 0;
  CNF_CALL(cnf_data_dset_resolve_columns(s->dc, job->cond_columns, CNF_TRAIN_MAX_COLS, s->ccols,
                                         &n));
  if (n != s->C)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: %d condition columns selected from '%s', the "
                         "model has %d", job->data, n, job->cond, s->C);
  for (int j = 0; j < s->C; j++) {
    s->cnames[j] = cnf_data_dset_column(s->dc, s->ccols[j]);
    s->cunits[j] = cnf_data_dset_unit(s->dc, s->ccols[j]);
  }
  if (job->target[0]) {
    CNF_CALL(cnf_data_dset_open(s->file, job->target, 0, &s->dt));
    CNF_CALL(cnf_data_dset_resolve_columns(s->dt, job->target_columns, CNF_TRAIN_MAX_COLS,
                                           s->tcols, &n));
    if (n != s->D)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: %d target columns selected from '%s', the "
                           "model has %d", job->data, n, job->target, s->D);
    for (int j = 0; j < s->D; j++) {
      s->tnames[j] = cnf_data_dset_column(s->dt, s->tcols[j]);
      s->tunits[j] = cnf_data_dset_unit(s->dt, s->tcols[j]);
    }
    s->have_ref = 1;
    sample_find_reco(s, job);
  } else {
    static char generic[CNF_TRAIN_MAX_COLS][16];
    for (int j = 0; j < s->D; j++) {
      snprintf(generic[j], sizeof generic[j], "c%d", j);
      s->tnames[j] = generic[j];
      s->tunits[j] = "";
    }
  }
  const size_t B = SAMPLE_BATCH, D = (size_t)s->D, C = (size_t)s->C;
  s->x_ref = malloc(sizeof(cnf_real) * B * D);
  s->c = malloc(sizeof(cnf_real) * B * C);
  s->z = malloc(sizeof(cnf_real) * B * D);
  s->x_gen = malloc(sizeof(cnf_real) * B * D);
  s->logdet = malloc(sizeof(cnf_real) * B);
  s->truth = malloc(sizeof(double) * B * D);
  s->logp = malloc(sizeof(double) * B);
  s->member = malloc(sizeof(int) * B);
  s->mz = malloc(sizeof(cnf_real) * B * D);
  s->mc = malloc(sizeof(cnf_real) * B * C);
  s->mx = malloc(sizeof(cnf_real) * B * D);
  s->mld = malloc(sizeof(cnf_real) * B);
  s->midx = malloc(sizeof(int) * B);
  if (!s->x_ref || !s->c || !s->z || !s->x_gen || !s->logdet || !s->truth || !s->logp ||
      !s->member || !s->mz || !s->mc || !s->mx || !s->mld || !s->midx)
    return cnf_error_set(CNF_ERR_NOMEM, "sample: out of memory for a batch of %zu events", B);

  *desc = (cnf_sim_desc){.n_datasets = 0, .n_events = (uint64_t)o->n};
  for (int k = 0; k < DS_MAX; k++)
    s->ds_index[k] = -1;
#define ADD(kind, path, ncols, dtype, names, units, what)                                     \
  do {                                                                                        \
    s->ds_index[kind] = desc->n_datasets;                                                     \
    desc->datasets[desc->n_datasets++] =                                                      \
        (cnf_dataset_schema){path, ncols, dtype, names, units, what};                         \
  } while (0)
  static const char *const logp_col[] = {"log_prob"}, *const member_col[] = {"member"};
  ADD(DS_GEN, "generated/target", s->D, CNF_DTYPE_F32, s->tnames, s->tunits,
      "targets drawn from the ensemble at the input's conditions (raw units)");
  ADD(DS_LOGP, "generated/log_prob", 1, CNF_DTYPE_F64, logp_col, NULL,
      "log density of the drawn event under the member that drew it");
  ADD(DS_MEMBER, "generated/member", 1, CNF_DTYPE_I32, member_col, NULL,
      "ensemble member that drew the event: event index mod members");
  ADD(DS_COND, "conditions", s->C, CNF_DTYPE_F64, s->cnames, s->cunits,
      "the input's conditions of each event (raw units)");
  if (s->have_ref)
    ADD(DS_REF, "reference/target", s->D, CNF_DTYPE_F32, s->tnames, s->tunits,
        "the input's targets of the same events (the reference)");
  if (s->have_reco) {
    ADD(DS_GEN_RECO, "generated/reco", s->D, CNF_DTYPE_F32, s->rnames, s->tunits,
        "truth + generated response (reco-level observables)");
    ADD(DS_REF_RECO, "reference/reco", s->D, CNF_DTYPE_F32, s->rnames, s->tunits,
        "truth + reference response");
  }
#undef ADD
  return 0;
}

/* The writer calls teardown only after a successful setup: a failed one frees its own state. */
static int sample_setup(const void *opts, uint64_t first, uint64_t count, cnf_sim_desc *desc,
                        void **state) {
  int rc = sample_setup_state(opts, first, count, desc, state);
  if (rc < 0) {
    sample_teardown(*state);
    *state = NULL;
  }
  return rc;
}

/* Generate events [b_first, b_first + b_n) of the output (input rows split_first + ...). */
static int sample_fill(const sample_opts *o, sample_state *s, uint64_t index) {
  const cnf_sample_job *job = o->job;
  /* The batch is the aligned run of SAMPLE_BATCH events holding `index`, whichever rank asks:
   * a flow evaluation is reproducible only for the same batch (the kernels' tile remainders
   * depend on its size), so a batch cut by a rank boundary is computed whole on both ranks. */
  const uint64_t b_first = index - index % SAMPLE_BATCH, N = (uint64_t)o->n;
  const int n = (int)(N - b_first < SAMPLE_BATCH ? N - b_first : SAMPLE_BATCH);
  const int D = s->D, C = s->C;
  const uint64_t row = o->split_first + b_first;
  CNF_CALL(cnf_data_read(s->dc, row, (uint64_t)n, C, s->ccols, CNF_DTYPE_REAL, s->c));
  if (s->have_ref)
    CNF_CALL(cnf_data_read(s->dt, row, (uint64_t)n, D, s->tcols, CNF_DTYPE_REAL, s->x_ref));
  if (s->have_reco)
    CNF_CALL(cnf_data_read(s->dtruth, row, (uint64_t)n, D, s->rcols, CNF_DTYPE_F64, s->truth));
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, job->seed, b_first + (uint64_t)i, 0); /* cnf_flow_sample's stream */
    for (int j = 0; j < D; j++)
      s->z[(size_t)i * D + j] = (cnf_real)cnf_rng_normal(&r);
    s->member[i] = (int)((b_first + (uint64_t)i) % (uint64_t)s->K);
  }
  for (int k = 0; k < s->K; k++) {
    int m = 0;
    for (int i = 0; i < n; i++)
      if (s->member[i] == k) {
        memcpy(s->mz + (size_t)m * D, s->z + (size_t)i * D, sizeof(cnf_real) * D);
        memcpy(s->mc + (size_t)m * C, s->c + (size_t)i * C, sizeof(cnf_real) * C);
        s->midx[m++] = i;
      }
    if (m == 0)
      continue;
    int rc = cnf_flow_inverse(s->f[k], m, s->mz, s->mc, s->mx, s->mld);
    if (rc < 0)
      return cnf_error_set(rc, "sample: member %d, events %llu..: %s", k,
                           (unsigned long long)b_first, cnf_error_message());
    for (int q = 0; q < m; q++) {
      const int i = s->midx[q];
      memcpy(s->x_gen + (size_t)i * D, s->mx + (size_t)q * D, sizeof(cnf_real) * D);
      s->logdet[i] = s->mld[q];
    }
  }
  for (int i = 0; i < n; i++) { /* log p(x) = log N(z) - log|det dx/dz| */
    double lz = 0;
    for (int j = 0; j < D; j++) {
      const double zz = s->z[(size_t)i * D + j];
      lz += -0.5 * zz * zz;
    }
    s->logp[i] = lz - 0.5 * D * log(2 * M_PI) - s->logdet[i];
  }
  s->b_first = b_first;
  s->b_n = n;
  return 0;
}

static int sample_event(const void *opts, void *state, uint64_t index, double *const *rows) {
  const sample_opts *o = opts;
  sample_state *s = state;
  if (s->b_first == UINT64_MAX || index < s->b_first || index >= s->b_first + (uint64_t)s->b_n)
    CNF_CALL(sample_fill(o, s, index));
  const size_t i = (size_t)(index - s->b_first);
  const int D = s->D, C = s->C;
  for (int j = 0; j < D; j++)
    rows[s->ds_index[DS_GEN]][j] = s->x_gen[i * D + j];
  rows[s->ds_index[DS_LOGP]][0] = s->logp[i];
  rows[s->ds_index[DS_MEMBER]][0] = s->member[i];
  for (int j = 0; j < C; j++)
    rows[s->ds_index[DS_COND]][j] = s->c[i * C + j];
  if (s->have_ref)
    for (int j = 0; j < D; j++)
      rows[s->ds_index[DS_REF]][j] = s->x_ref[i * D + j];
  if (s->have_reco)
    for (int j = 0; j < D; j++) {
      rows[s->ds_index[DS_GEN_RECO]][j] = s->truth[i * D + j] + s->x_gen[i * D + j];
      rows[s->ds_index[DS_REF_RECO]][j] = s->truth[i * D + j] + s->x_ref[i * D + j];
    }
  return 0;
}

static int attr_int64(hid_t loc, const char *name, int64_t v) {
  return h5u_attr_write_int64(loc, name, 0, NULL, &v);
}

/* What the evaluation needs to know about where the events came from (collective: every rank
 * writes the same values). */
static int sample_finalize(const void *opts, void *state, int64_t file, void *mpi_comm) {
  (void)mpi_comm;
  const sample_opts *o = opts;
  const cnf_sample_job *job = o->job;
  sample_state *s = state;
  hid_t f = (hid_t)file;
  int rc = 0;
  if (rc == 0) rc = h5u_attr_write_string(f, "format", "cnflow-samples");
  if (rc == 0) rc = attr_int64(f, "format_version", 1);
  if (rc == 0) rc = h5u_attr_write_string(f, "input", job->data);
  if (rc == 0) rc = h5u_attr_write_string(f, "split", job->split);
  if (rc == 0) rc = attr_int64(f, "split_first", (int64_t)o->split_first);
  if (rc == 0) rc = h5u_attr_write_string(f, "ensemble", job->ensemble);
  if (rc == 0) rc = attr_int64(f, "members", s->K);
  if (rc == 0) rc = h5u_attr_write_string(f, "target", job->target);
  if (rc == 0) rc = h5u_attr_write_string(f, "cond", job->cond);
  if (rc == 0) rc = h5u_attr_write_string(f, "truth", s->have_reco ? job->truth : "");
  if (rc == 0) rc = h5u_attr_write_string(f, "prep", job->prep);
  if (rc == 0) rc = h5u_attr_write_string(f, "model_noise", job->model_noise);
  return rc;
}

static const cnf_generator cnf_gen_sample = {
    .name = "sample",
    .help = "events drawn from a trained ensemble (cnflow sample)",
    .opts_size = sizeof(sample_opts),
    .n_options = (int)(sizeof sample_options / sizeof sample_options[0]),
    .options = sample_options,
    .opts_default = sample_opts_default,
    .setup = sample_setup,
    .event = sample_event,
    .finalize = sample_finalize,
    .teardown = sample_teardown,
};

int cnf_sample_job_from_model(cnf_sample_job *job) {
  cnf_flow *f[SAMPLE_MAX_MEMBERS] = {0};
  int K = 0;
  cnf_model_provenance prov;
  memset(&prov, 0, sizeof prov);
  int rc = cnf_infer_load_ensemble(job->ensemble, f, SAMPLE_MAX_MEMBERS, &K, &prov);
  for (int k = 0; k < K; k++)
    cnf_flow_free(&f[k]);
  CNF_CALL(rc);
  struct { const char *key; char *dst; size_t len; } fill[] = {
      {"target", job->target, sizeof job->target},
      {"target_columns", job->target_columns, sizeof job->target_columns},
      {"cond", job->cond, sizeof job->cond},
      {"cond_columns", job->cond_columns, sizeof job->cond_columns},
  };
  for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++)
    if (!fill[i].dst[0] && !(i < 2 && job->no_reference_default)) /* -target none */
      CNF_CALL(cnf_model_binding(&prov, fill[i].key, fill[i].dst, fill[i].len));
  if (!job->cond[0])
    return cnf_error_set(CNF_ERR_ARG, "sample: %s records no condition dataset: give -cond",
                         job->ensemble);
  CNF_CALL(cnf_model_binding(&prov, "prep", job->prep, sizeof job->prep));
  CNF_CALL(cnf_model_binding(&prov, "noise", job->model_noise, sizeof job->model_noise));
  return 0;
}

int cnf_sample_file(const cnf_sample_job *job, MPI_Comm comm, cnf_sample_summary *sum) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (sum)
    memset(sum, 0, sizeof *sum);
  /* the split's rows, collectively: a missing file or split fails here on every rank */
  cnf_data_file *file = NULL;
  uint64_t first = 0, count = 0;
  int rc = cnf_data_open(job->data, comm, &file);
  if (rc == 0) {
    rc = cnf_data_split(file, job->split, &first, &count);
    if (rc < 0 && strcmp(job->split, "all") == 0) { /* a CaloChallenge file: all rows */
      cnf_data_dset *d = NULL;
      cnf_error_clear();
      rc = cnf_data_dset_open(file, job->cond, 0, &d);
      if (rc == 0) {
        first = 0;
        count = cnf_data_dset_rows(d);
      }
      cnf_data_dset_close(d);
    }
  }
  cnf_data_close(file);
  CNF_CALL(cnf_sync_status(comm, rc));
  if (job->max_events > 0 && (uint64_t)job->max_events < count)
    count = (uint64_t)job->max_events;
  if (count == 0)
    return cnf_error_set(CNF_ERR_ARG, "%s: split '%s' has no events to sample", job->data,
                         job->split);
  sample_opts o = {.seed = (int64_t)job->seed, .n = (int64_t)count, .job = job,
                   .split_first = first};
  cnf_data_gen_config cfg;
  cnf_data_gen_config_default(&cfg);
  cfg.path = job->out;
  cfg.seed = (int64_t)job->seed;
  cfg.n_events = (int64_t)count;
  cfg.split_fractions[0] = 0;
  cfg.split_fractions[1] = 0;
  cfg.split_fractions[2] = 1; /* every generated event is a test event */
  cfg.progress_interval_s = job->progress_s;
  cnf_data_gen_report rep;
  const double t0 = cnf_time_now();
  CNF_CALL(cnf_data_generate(&cnf_gen_sample, &o, &cfg, comm, &rep));
  if (sum) {
    sum->events = rep.n_events;
    sum->seconds = cnf_time_now() - t0;
    sum->events_per_s = sum->seconds > 0 ? (double)rep.n_events / sum->seconds : 0;
    sum->ranks = size;
  }
  return 0;
}
