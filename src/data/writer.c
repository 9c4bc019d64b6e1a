/* The generic parallel writer: drives any cnf_generator into one HDF5 dataset file with
 * collective hyperslab writes (layout in include/cnflow/data.h).
 *
 * Byte identity whatever the number of ranks rests on four choices, each made below:
 *   - no timestamps: obj_track_times off on the root group (file creation list), on every group
 *     and dataset, and no time or rank count in any attribute;
 *   - every rank issues the same metadata operations in the same order (layout first, then raw
 *     data only), with collective metadata writes;
 *   - storage is allocated at creation (H5D_ALLOC_TIME_EARLY, never filled) with chunk shapes
 *     that depend only on N and the row width, so raw-data writes never allocate or touch
 *     metadata, whatever the batching;
 *   - fixed format bounds (h5u_fapl). */
#include "cnflow/data.h"
#include "h5util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITER_CHUNK_ROWS_MAX 65536
#define WRITER_CHUNK_BYTES (4u << 20)
#define WRITER_BATCH_STORED_BYTES (8u << 20) /* automatic batch: stored bytes per rank */
#define WRITER_BATCH_BYTES_MAX (64u << 20)   /* cap of the per-rank batch buffers */

void cnf_data_gen_config_default(cnf_data_gen_config *cfg) {
  *cfg = (cnf_data_gen_config){.path = NULL,
                               .seed = 1,
                               .n_events = 0,
                               .split_fractions = {0.8, 0.1, 0.1},
                               .batch_rows = 0,
                               .progress_interval_s = 10.0};
}

typedef struct writer_dset {
  const cnf_dataset_schema *schema;
  size_t elem;       /* bytes per stored value */
  hid_t file_type;   /* little-endian storage type */
  hid_t mem_type;    /* native type of `store` */
  hid_t dset, fspace;
  double *rows;      /* (batch, ncols) as filled by gen->event */
  void *store;       /* (batch, ncols) in the storage type; == rows for f64 */
} writer_dset;

typedef struct writer {
  const cnf_generator *gen;
  const cnf_data_gen_config *cfg;
  MPI_Comm comm;
  int rank, size;
  void *opts;           /* private copy with seed / n set */
  char *options_text;   /* "name=value" lines */
  cnf_sim_desc desc;
  void *state;
  int have_state;
  uint64_t n, first, count, batch;
  char tmp_path[4200];
  hid_t file;
  int created; /* the temporary file exists on disk */
  writer_dset d[CNF_MAX_DATASETS];
  double t_event, t_write;
  uint64_t independent_writes; /* H5Dwrite calls HDF5 did not perform collectively */
} writer;

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s) {
  s = s ? s : "";
  return fnv1a(h, s, strlen(s) + 1);
}

/* ---- options and setup ------------------------------------------------------------------- */

/* Private copy of the options with the writer-owned seed and event count set. */
static int writer_prepare_opts(writer *w, const void *opts) {
  const cnf_generator *gen = w->gen;
  const cnf_option *seed = cnf_gen_seed_option(gen), *nev = cnf_gen_nevents_option(gen);
  if (!gen->setup || !gen->event || gen->opts_size == 0)
    return cnf_error_set(CNF_ERR_STATE, "generator '%s' is not implemented", gen->name);
  if (!seed)
    return cnf_error_set(CNF_ERR_STATE, "generator '%s' has no seed option", gen->name);
  if (!w->cfg->path || !w->cfg->path[0])
    return cnf_error_set(CNF_ERR_ARG, "no output file given");
  if (strlen(w->cfg->path) > 4096)
    return cnf_error_set(CNF_ERR_ARG, "output path too long");
  if (w->cfg->n_events < 0)
    return cnf_error_set(CNF_ERR_ARG, "number of events must be >= 0, got %lld",
                         (long long)w->cfg->n_events);
  if (w->cfg->batch_rows < 0)
    return cnf_error_set(CNF_ERR_ARG, "batch must be >= 0 rows (0: automatic), got %lld",
                         (long long)w->cfg->batch_rows);
  uint64_t first[3], count[3];
  CNF_CALL(cnf_data_split_ranges(0, w->cfg->split_fractions, first, count));
  w->opts = cnf_malloc(gen->opts_size);
  if (!w->opts)
    return CNF_ERR_NOMEM;
  memcpy(w->opts, opts, gen->opts_size);
  CNF_CALL(cnf_option_set_int64(seed, w->opts, w->cfg->seed));
  if (w->cfg->n_events > 0 && nev)
    CNF_CALL(cnf_option_set_int64(nev, w->opts, w->cfg->n_events));
  w->options_text = cnf_gen_options_string(gen, w->opts);
  return w->options_text ? 0 : CNF_ERR_NOMEM;
}

static int schema_validate(const cnf_generator *gen, const cnf_sim_desc *desc) {
  if (desc->n_datasets < 1 || desc->n_datasets > CNF_MAX_DATASETS)
    return cnf_error_set(CNF_ERR_STATE, "generator '%s': %d datasets (need 1..%d)", gen->name,
                         desc->n_datasets, CNF_MAX_DATASETS);
  for (int k = 0; k < desc->n_datasets; k++) {
    const cnf_dataset_schema *s = &desc->datasets[k];
    if (!s->path || !s->path[0] || s->path[0] == '/' || s->path[strlen(s->path) - 1] == '/')
      return cnf_error_set(CNF_ERR_STATE, "generator '%s': dataset %d has a bad path '%s'",
                           gen->name, k, s->path ? s->path : "(null)");
    if (s->ncols < 1 || s->ncols > CNF_MAX_COLS)
      return cnf_error_set(CNF_ERR_STATE, "generator '%s': dataset '%s' has %d columns (need 1..%d)",
                           gen->name, s->path, s->ncols, CNF_MAX_COLS);
    if (s->dtype != CNF_DTYPE_F32 && s->dtype != CNF_DTYPE_F64 && s->dtype != CNF_DTYPE_I32)
      return cnf_error_set(CNF_ERR_STATE, "generator '%s': dataset '%s' has an unknown dtype",
                           gen->name, s->path);
    for (int j = 0; j < k; j++)
      if (strcmp(desc->datasets[j].path, s->path) == 0)
        return cnf_error_set(CNF_ERR_STATE, "generator '%s': dataset '%s' declared twice",
                             gen->name, s->path);
  }
  return 0;
}

static uint64_t schema_hash(const cnf_sim_desc *desc, uint64_t n) {
  uint64_t h = fnv1a(0xcbf29ce484222325ULL, &n, sizeof n);
  for (int k = 0; k < desc->n_datasets; k++) {
    const cnf_dataset_schema *s = &desc->datasets[k];
    h = fnv1a_str(h, s->path);
    h = fnv1a(h, &s->ncols, sizeof s->ncols);
    h = fnv1a(h, &s->dtype, sizeof s->dtype);
    for (int j = 0; j < s->ncols; j++) {
      h = fnv1a_str(h, s->colnames ? s->colnames[j] : NULL);
      h = fnv1a_str(h, s->units ? s->units[j] : NULL);
    }
    h = fnv1a_str(h, s->description);
  }
  return h;
}

/* Every rank must hold the same schema and N, or the collective layout calls would diverge. */
static int schema_check_same(writer *w) {
  uint64_t h = schema_hash(&w->desc, w->n), lo = h, hi = h;
  if (MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, w->comm) != MPI_SUCCESS ||
      MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, w->comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "MPI_Allreduce failed comparing schemas");
  if (lo != hi)
    return cnf_error_set(CNF_ERR_STATE, "generator '%s' returned different schemas on different ranks",
                         w->gen->name);
  return 0;
}

/* N from the configuration, else from a setup over an empty block; then the real setup with
 * this rank's block.  COLLECTIVE (statuses shared). */
static int writer_setup(writer *w) {
  const cnf_generator *gen = w->gen;
  int rc = 0;
  if (w->cfg->n_events > 0) {
    w->n = (uint64_t)w->cfg->n_events;
  } else {
    void *probe = NULL;
    rc = gen->setup(w->opts, 0, 0, &w->desc, &probe);
    if (rc == 0 && gen->teardown)
      gen->teardown(probe);
    CNF_CALL(h5u_sync(w->comm, rc));
    w->n = w->desc.n_events;
    if (w->n == 0)
      return cnf_error_set(CNF_ERR_ARG, "generator '%s' gives 0 events by default: set -n",
                           gen->name);
  }
  cnf_partition(w->n, w->size, w->rank, &w->first, &w->count);
  rc = gen->setup(w->opts, w->first, w->count, &w->desc, &w->state);
  w->have_state = rc == 0;
  if (rc == 0)
    rc = schema_validate(gen, &w->desc);
  CNF_CALL(h5u_sync(w->comm, rc));
  return h5u_sync(w->comm, schema_check_same(w));
}

/* ---- file layout ------------------------------------------------------------------------- */

/* Rows per chunk: at most 65536 rows and 4 MiB, spread evenly over the chunks N needs, since
 * early allocation reserves the padding of the last chunk on disk. */
static hsize_t chunk_rows(uint64_t n, int ncols, size_t elem) {
  uint64_t rows = WRITER_CHUNK_BYTES / ((uint64_t)ncols * elem);
  if (rows < 1)
    rows = 1;
  if (rows > WRITER_CHUNK_ROWS_MAX)
    rows = WRITER_CHUNK_ROWS_MAX;
  uint64_t chunks = (n + rows - 1) / rows;
  return (hsize_t)((n + chunks - 1) / chunks);
}

/* Create the groups above `path` ("a/b/ds" -> a, a/b) that do not exist yet, untimed. */
static int create_parent_groups(hid_t file, const char *path) {
  char prefix[1024];
  if (strlen(path) >= sizeof prefix)
    return cnf_error_set(CNF_ERR_ARG, "dataset path too long: %s", path);
  for (const char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
    memcpy(prefix, path, (size_t)(p - path));
    prefix[p - path] = '\0';
    htri_t exists = H5Lexists(file, prefix, H5P_DEFAULT);
    if (exists < 0)
      return h5u_fail(CNF_ERR_IO, "cannot query group '%s'", prefix);
    if (exists)
      continue;
    hid_t gcpl = h5u_gcpl_untimed(H5P_GROUP_CREATE);
    hid_t g = gcpl < 0 ? -1 : H5Gcreate2(file, prefix, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0)
      H5Pclose(gcpl);
    if (g < 0)
      return h5u_fail(CNF_ERR_IO, "cannot create group '%s'", prefix);
    H5Gclose(g);
  }
  return 0;
}

static int write_root_attrs(writer *w) {
  uint64_t first[3], count[3];
  CNF_CALL(cnf_data_split_ranges(w->n, w->cfg->split_fractions, first, count));
  int64_t ranges[6], seed = w->cfg->seed, n = (int64_t)w->n;
  for (int k = 0; k < 3; k++) {
    ranges[2 * k] = (int64_t)first[k];
    ranges[2 * k + 1] = (int64_t)count[k];
  }
  hsize_t dims[2] = {3, 2};
  CNF_CALL(h5u_attr_write_string(w->file, "generator", w->gen->name));
  CNF_CALL(h5u_attr_write_string(w->file, "options", w->options_text));
  CNF_CALL(h5u_attr_write_int64(w->file, "seed", 0, NULL, &seed));
  CNF_CALL(h5u_attr_write_int64(w->file, "n_events", 0, NULL, &n));
  CNF_CALL(h5u_attr_write_string(w->file, "cnflow_version", CNFLOW_VERSION));
  CNF_CALL(h5u_attr_write_string(w->file, "cnflow_git_rev", cnf_git_rev()));
  CNF_CALL(h5u_attr_write_strings(w->file, "split_names", 3, cnf_split_names));
  return h5u_attr_write_int64(w->file, "split_ranges", 2, dims, ranges);
}

static int write_dset_attrs(hid_t dset, const cnf_dataset_schema *s) {
  const char **names = cnf_calloc((size_t)s->ncols, sizeof *names);
  char *generated = cnf_calloc((size_t)s->ncols, 16);
  const char **units = cnf_calloc((size_t)s->ncols, sizeof *units);
  int rc = (names && generated && units) ? 0 : CNF_ERR_NOMEM;
  for (int j = 0; rc == 0 && j < s->ncols; j++) {
    if (s->colnames && s->colnames[j]) {
      names[j] = s->colnames[j];
    } else {
      snprintf(generated + 16 * j, 16, "c%d", j);
      names[j] = generated + 16 * j;
    }
    units[j] = s->units && s->units[j] ? s->units[j] : "";
  }
  if (rc == 0)
    rc = h5u_attr_write_strings(dset, "columns", s->ncols, names);
  if (rc == 0)
    rc = h5u_attr_write_strings(dset, "units", s->ncols, units);
  if (rc == 0)
    rc = h5u_attr_write_string(dset, "description", s->description ? s->description : "");
  free(units);
  free(generated);
  free(names);
  return rc;
}

static int create_dataset(writer *w, writer_dset *d) {
  const cnf_dataset_schema *s = d->schema;
  int rc = 0;
  CNF_CALL(create_parent_groups(w->file, s->path));
  hsize_t dims[2] = {w->n, (hsize_t)s->ncols};
  hsize_t chunk[2] = {chunk_rows(w->n, s->ncols, d->elem), (hsize_t)s->ncols};
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0 ||
      H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
      H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot set up dataset '%s'", w->cfg->path, s->path);
    goto done;
  }
  d->fspace = H5Screate_simple(2, dims, NULL);
  if (d->fspace < 0) {
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot describe dataset '%s'", w->cfg->path, s->path);
    goto done;
  }
  d->dset = H5Dcreate2(w->file, s->path, d->file_type, d->fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d->dset < 0) {
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot create dataset '%s'", w->cfg->path, s->path);
    goto done;
  }
  rc = write_dset_attrs(d->dset, s);
done:
  if (dcpl >= 0)
    H5Pclose(dcpl);
  return rc;
}

/* Batch rows: -batch, or automatically ~8 MiB of stored rows per rank, since every collective
 * write has a fixed cost (ompio: tens of ms on a loaded node); capped by the buffer memory. */
static int writer_alloc_buffers(writer *w) {
  size_t row_bytes = 0, stored_bytes = 0;
  for (int k = 0; k < w->desc.n_datasets; k++) {
    row_bytes += (size_t)w->desc.datasets[k].ncols * (sizeof(double) + w->d[k].elem);
    stored_bytes += (size_t)w->desc.datasets[k].ncols * w->d[k].elem;
  }
  uint64_t batch = w->cfg->batch_rows > 0 ? (uint64_t)w->cfg->batch_rows
                                          : WRITER_BATCH_STORED_BYTES / stored_bytes;
  uint64_t cap = WRITER_BATCH_BYTES_MAX / row_bytes;
  if (batch > cap)
    batch = cap;
  if (batch < 1)
    batch = 1;
  uint64_t most = w->n / (uint64_t)w->size + (w->n % (uint64_t)w->size != 0);
  w->batch = batch < most ? batch : most;
  for (int k = 0; k < w->desc.n_datasets; k++) {
    writer_dset *d = &w->d[k];
    size_t vals = (size_t)w->batch * (size_t)d->schema->ncols;
    d->rows = cnf_malloc(vals * sizeof(double));
    if (!d->rows)
      return CNF_ERR_NOMEM;
    if (d->schema->dtype == CNF_DTYPE_F64) {
      d->store = d->rows;
    } else {
      d->store = cnf_malloc(vals * d->elem);
      if (!d->store)
        return CNF_ERR_NOMEM;
    }
  }
  return 0;
}

/* The file's size is known before it exists (storage allocated at creation): the datasets'
 * payload plus a margin for chunk padding, metadata and attributes.  Rank 0 only. */
static int writer_check_space(const writer *w) {
  uint64_t need = 0;
  for (int k = 0; k < w->desc.n_datasets; k++)
    need += w->n * (uint64_t)w->desc.datasets[k].ncols * (uint64_t)w->d[k].elem;
  need += need / 100 + (256u << 10); /* chunk padding, metadata and attributes */
  return cnf_check_free_space(w->cfg->path, need);
}

/* COLLECTIVE: temporary file, root attributes, every dataset with its attributes. */
static int writer_create(writer *w) {
  int rc = 0;
  uint64_t h = fnv1a_str(0xcbf29ce484222325ULL, w->gen->name);
  h = fnv1a_str(fnv1a(h, &w->n, sizeof w->n), w->options_text);
  snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp.%016llx", w->cfg->path,
           (unsigned long long)h);
  for (int k = 0; k < w->desc.n_datasets; k++) {
    writer_dset *d = &w->d[k];
    d->schema = &w->desc.datasets[k];
    switch (d->schema->dtype) {
    case CNF_DTYPE_F32: d->elem = 4; d->file_type = H5T_IEEE_F32LE; d->mem_type = H5T_NATIVE_FLOAT; break;
    case CNF_DTYPE_F64: d->elem = 8; d->file_type = H5T_IEEE_F64LE; d->mem_type = H5T_NATIVE_DOUBLE; break;
    case CNF_DTYPE_I32: d->elem = 4; d->file_type = H5T_STD_I32LE; d->mem_type = H5T_NATIVE_INT32; break;
    }
  }
  rc = writer_alloc_buffers(w);
  CNF_CALL(h5u_sync(w->comm, rc));
  /* Storage is allocated up front, so the file's size is known now.  Checking the free space
   * before creating the file matters: a parallel HDF5 close that hits a full disk does not
   * fail cleanly (the ranks can wait in different collectives for ever). */
  if (w->rank == 0)
    rc = writer_check_space(w);
  CNF_CALL(h5u_sync(w->comm, rc));

  hid_t fapl = h5u_fapl(w->comm), fcpl = h5u_gcpl_untimed(H5P_FILE_CREATE);
  if (fapl < 0 || fcpl < 0)
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot set up file property lists", w->cfg->path);
  else if ((w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, fapl)) < 0)
    rc = h5u_fail(CNF_ERR_IO, "cannot create '%s'", w->cfg->path);
  if (fcpl >= 0)
    H5Pclose(fcpl);
  if (fapl >= 0)
    H5Pclose(fapl);
  w->created = w->file >= 0;
  CNF_CALL(h5u_sync(w->comm, rc));

  rc = write_root_attrs(w);
  for (int k = 0; rc == 0 && k < w->desc.n_datasets; k++)
    rc = create_dataset(w, &w->d[k]);
  return h5u_sync(w->comm, rc);
}

/* ---- rows ---------------------------------------------------------------------------------- */

static int bad_value(const writer *w, const writer_dset *d, size_t i, int j, double v,
                     const char *why) {
  const char *col = d->schema->colnames && d->schema->colnames[j] ? d->schema->colnames[j] : "";
  return cnf_error_set(CNF_ERR_NUMERIC, "generator '%s' event %llu: dataset '%s' column %d %s = %g %s",
                       w->gen->name, (unsigned long long)(w->first + i), d->schema->path, j, col, v,
                       why);
}

/* Convert `rows` doubles of the batch to the storage type (base = index of the batch's first
 * row relative to this rank's block, for messages). */
static int convert_batch(const writer *w, writer_dset *d, uint64_t base, size_t rows) {
  int ncols = d->schema->ncols;
  for (size_t i = 0; i < rows; i++)
    for (int j = 0; j < ncols; j++) {
      size_t at = i * (size_t)ncols + (size_t)j;
      double v = d->rows[at];
      if (!isfinite(v))
        return bad_value(w, d, base + i, j, v, "is not finite");
      if (d->schema->dtype == CNF_DTYPE_F32) {
        ((float *)d->store)[at] = (float)v;
      } else if (d->schema->dtype == CNF_DTYPE_I32) {
        if (v < -2147483648.0 || v > 2147483647.0)
          return bad_value(w, d, base + i, j, v, "does not fit int32");
        ((int32_t *)d->store)[at] = (int32_t)llround(v);
      }
    }
  return 0;
}

/* Collective write of this rank's `rows` rows starting at global row `row0` (0 rows: empty
 * selections, so every rank makes the same number of H5Dwrite calls). */
static int write_batch(writer *w, writer_dset *d, hid_t dxpl, uint64_t row0, size_t rows) {
  hsize_t start[2] = {row0, 0}, cnt[2] = {rows, (hsize_t)d->schema->ncols};
  hsize_t mdims[2] = {rows > 0 ? rows : 1, (hsize_t)d->schema->ncols};
  int rc = 0;
  hid_t mspace = H5Screate_simple(2, mdims, NULL);
  if (mspace < 0)
    return h5u_fail(CNF_ERR_IO, "%s: cannot describe a batch of '%s'", w->cfg->path,
                    d->schema->path);
  herr_t sel = rows > 0 ? H5Sselect_hyperslab(d->fspace, H5S_SELECT_SET, start, NULL, cnt, NULL)
                        : H5Sselect_none(d->fspace);
  if (sel < 0 || (rows == 0 && H5Sselect_none(mspace) < 0))
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot select rows of '%s'", w->cfg->path, d->schema->path);
  else if (H5Dwrite(d->dset, d->mem_type, mspace, d->fspace, dxpl, d->store) < 0)
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot write rows %llu..%llu of '%s'", w->cfg->path,
                  (unsigned long long)row0, (unsigned long long)(row0 + rows), d->schema->path);
  /* HDF5 silently falls back to independent I/O (e.g. on type conversion): count it */
  H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
  if (rc == 0 && (H5Pget_mpio_actual_io_mode(dxpl, &mode) < 0 || mode == H5D_MPIO_NO_COLLECTIVE))
    w->independent_writes++;
  H5Sclose(mspace);
  return rc;
}

static int generate_batch(writer *w, uint64_t b0, size_t rows) {
  double *row_ptrs[CNF_MAX_DATASETS];
  double t0 = cnf_time_now();
  for (size_t i = 0; i < rows; i++) {
    for (int k = 0; k < w->desc.n_datasets; k++)
      row_ptrs[k] = w->d[k].rows + i * (size_t)w->d[k].schema->ncols;
    CNF_CALL(w->gen->event(w->opts, w->state, w->first + b0 + i, row_ptrs));
  }
  w->t_event += cnf_time_now() - t0;
  for (int k = 0; k < w->desc.n_datasets; k++)
    CNF_CALL(convert_batch(w, &w->d[k], b0, rows));
  return 0;
}

/* COLLECTIVE: all batches.  The number of iterations is that of the largest block (rank 0's),
 * known to every rank without communication. */
static int writer_rows(writer *w) {
  uint64_t most = w->n / (uint64_t)w->size + (w->n % (uint64_t)w->size != 0);
  uint64_t iters = (most + w->batch - 1) / w->batch;
  cnf_progress progress;
  char what[128];
  snprintf(what, sizeof what, "generate %s", w->gen->name);
  cnf_progress_init(&progress, what, w->n, w->cfg->progress_interval_s);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  int rc = (dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
               ? h5u_fail(CNF_ERR_IO, "cannot set up collective transfers")
               : 0;
  rc = h5u_sync(w->comm, rc);
  for (uint64_t it = 0; rc == 0 && it < iters; it++) {
    uint64_t b0 = it * w->batch;
    size_t rows = b0 < w->count ? (size_t)(w->count - b0 < w->batch ? w->count - b0 : w->batch) : 0;
    /* share generator failures BEFORE the collective writes, so no rank is left in one */
    rc = h5u_sync(w->comm, generate_batch(w, b0, rows));
    double t0 = cnf_time_now();
    for (int k = 0; rc == 0 && k < w->desc.n_datasets; k++)
      rc = h5u_sync(w->comm, write_batch(w, &w->d[k], dxpl, w->first + b0, rows));
    w->t_write += cnf_time_now() - t0;
    cnf_watchdog_beat("a batch of the dataset writer");
    if (rc == 0 && w->cfg->progress_interval_s > 0) {
      uint64_t done = (b0 + rows) * (uint64_t)w->size;
      cnf_progress_update(&progress, done < w->n ? done : w->n);
    }
  }
  if (rc == 0 && w->cfg->progress_interval_s > 0)
    cnf_progress_finish(&progress, w->n);
  if (dxpl >= 0)
    H5Pclose(dxpl);
  return rc;
}

/* ---- closing ------------------------------------------------------------------------------ */

static int writer_close_file(writer *w) {
  int rc = 0;
  for (int k = 0; k < w->desc.n_datasets && k < CNF_MAX_DATASETS; k++) {
    if (w->d[k].fspace >= 0)
      H5Sclose(w->d[k].fspace);
    if (w->d[k].dset >= 0 && H5Dclose(w->d[k].dset) < 0 && rc == 0)
      rc = h5u_fail(CNF_ERR_IO, "%s: cannot close dataset '%s'", w->cfg->path, w->d[k].schema->path);
    w->d[k].dset = w->d[k].fspace = -1;
  }
  if (w->file >= 0 && H5Fclose(w->file) < 0) {
    if (rc == 0)
      rc = h5u_fail(CNF_ERR_IO, "cannot close '%s' (full disk or quota?)", w->tmp_path);
    h5u_abandon_file(w->file);
  }
  w->file = -1;
  return rc;
}

/* COLLECTIVE: generator finalize, close, rename on rank 0. */
static int writer_finish(writer *w) {
  int rc = 0;
  if (w->gen->finalize)
    rc = w->gen->finalize(w->opts, w->state, (int64_t)w->file, &w->comm);
  CNF_CALL(h5u_sync(w->comm, rc));
  CNF_CALL(h5u_sync(w->comm, writer_close_file(w)));
  if (w->rank == 0 && rename(w->tmp_path, w->cfg->path) != 0)
    rc = cnf_error_set(CNF_ERR_IO, "cannot rename '%s' to '%s'", w->tmp_path, w->cfg->path);
  return h5u_sync(w->comm, rc);
}

/* COLLECTIVE cleanup after a shared failure: close what is open, remove the temporary file. */
static void writer_discard(writer *w) {
  writer_close_file(w);
  if (w->created && w->rank == 0)
    remove(w->tmp_path);
  MPI_Barrier(w->comm);
}

static void writer_free(writer *w) {
  for (int k = 0; k < w->desc.n_datasets && k < CNF_MAX_DATASETS; k++) {
    if (w->d[k].store != w->d[k].rows)
      free(w->d[k].store);
    free(w->d[k].rows);
  }
  if (w->have_state && w->gen->teardown)
    w->gen->teardown(w->state);
  free(w->options_text);
  free(w->opts);
}

int cnf_data_generate(const cnf_generator *gen, const void *opts, const cnf_data_gen_config *cfg,
                      MPI_Comm comm, cnf_data_gen_report *report) {
  writer w = {.gen = gen, .cfg = cfg, .comm = comm, .file = -1};
  for (int k = 0; k < CNF_MAX_DATASETS; k++)
    w.d[k].dset = w.d[k].fspace = -1;
  double t0 = MPI_Wtime();
  MPI_Comm_rank(comm, &w.rank);
  MPI_Comm_size(comm, &w.size);
  h5u_quiet quiet;
  h5u_quiet_begin(&quiet);
  int rc = h5u_sync(comm, writer_prepare_opts(&w, opts));
  if (rc == 0)
    rc = writer_setup(&w);
  if (rc == 0)
    rc = writer_create(&w);
  if (rc == 0)
    rc = writer_rows(&w);
  if (rc == 0)
    rc = writer_finish(&w);
  if (rc < 0)
    writer_discard(&w);
  if (rc == 0 && report) {
    double t[3] = {MPI_Wtime() - t0, w.t_event, w.t_write}, tmax[3];
    MPI_Allreduce(t, tmax, 3, MPI_DOUBLE, MPI_MAX, comm);
    report->n_events = w.n;
    report->seconds = tmax[0];
    report->seconds_event = tmax[1];
    report->seconds_write = tmax[2];
    MPI_Allreduce(&w.independent_writes, &report->independent_writes, 1, MPI_UINT64_T, MPI_SUM,
                  comm);
    report->bytes = 0;
    for (int k = 0; k < w.desc.n_datasets; k++)
      report->bytes += w.n * (uint64_t)w.desc.datasets[k].ncols * (uint64_t)w.d[k].elem;
  }
  writer_free(&w);
  h5u_quiet_end(&quiet);
  return rc;
}
