/* Sharded collective readers for dataset files (ours and CaloChallenge-style): open with clear
 * one-line errors, look columns up by name, read a rank's rows (optionally a column subset) as
 * float or double with collective hyperslab reads. */
#include "cnflow/data.h"
#include "h5util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define READER_BLOCK_BYTES (2u << 20) /* bound of the per-read staging buffer */

struct cnf_data_file {
  MPI_Comm comm;
  int rank, size;
  hid_t file;
  char path[4200];
  char generator[128];
  int has_split;
  uint64_t split_first[CNF_N_SPLITS], split_count[CNF_N_SPLITS];
  int has_n;
  uint64_t n_events;
};

struct cnf_data_dset {
  cnf_data_file *f;
  hid_t dset;
  char path[1024];
  int ndims;        /* 1 or 2 in the file; a 1-D dataset reads as (N, 1) */
  uint64_t rows;
  int cols;
  hid_t mem_type;   /* native type the values are staged in (no HDF5 conversion when it
                       matches the file, which keeps the transfer collective) */
  size_t elem;
  int is_float;
  char **names, **units; /* cols entries each */
};

/* ---- file ------------------------------------------------------------------------------- */

/* 1 if the HDF5 signature sits at offset 0, 512, 1024, 2048, ... (after a user block).  Read
 * by hand rather than with H5Fis_hdf5, which may take a file lock that fails on NFS/Lustre. */
static int has_hdf5_signature(FILE *f, long size) {
  static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  unsigned char buf[8];
  for (long off = 0; off + 8 <= size; off = off ? 2 * off : 512)
    if (fseek(f, off, SEEK_SET) == 0 && fread(buf, 1, 8, f) == 8 && memcmp(buf, sig, 8) == 0)
      return 1;
  return 0;
}

/* Rank 0 classifies the file cheaply (missing, not HDF5) before the collective open, whose
 * own message for these cases is vague ("unable to open file"). */
static int probe_file(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return cnf_error_set(CNF_ERR_IO, "cannot open dataset file '%s': %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return cnf_error_set(CNF_ERR_IO, "dataset file '%s' is not a regular file", path);
  FILE *f = fopen(path, "rb");
  if (!f)
    return cnf_error_set(CNF_ERR_IO, "cannot open dataset file '%s': %s", path, strerror(errno));
  int ok = has_hdf5_signature(f, (long)st.st_size);
  fclose(f);
  if (!ok)
    return cnf_error_set(CNF_ERR_IO, "'%s' is not an HDF5 file", path);
  return 0;
}

static int read_root_attrs(cnf_data_file *f) {
  int rc = h5u_attr_read_string(f->file, "generator", f->generator, sizeof f->generator);
  if (rc < 0)
    return rc;
  if (rc == 1)
    f->generator[0] = '\0';
  int64_t n = 0, ranges[6];
  rc = h5u_attr_read_int64(f->file, "n_events", 1, &n);
  if (rc < 0)
    return rc;
  f->has_n = rc == 0 && n >= 0;
  f->n_events = (uint64_t)n;
  rc = h5u_attr_read_int64(f->file, "split_ranges", 6, ranges);
  if (rc < 0)
    return rc;
  f->has_split = rc == 0;
  uint64_t next = 0;
  for (int k = 0; f->has_split && k < CNF_N_SPLITS; k++) {
    if (ranges[2 * k] != (int64_t)next || ranges[2 * k + 1] < 0)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: attribute split_ranges is not contiguous",
                           f->path);
    f->split_first[k] = (uint64_t)ranges[2 * k];
    f->split_count[k] = (uint64_t)ranges[2 * k + 1];
    next += f->split_count[k];
  }
  if (f->has_split && f->has_n && next != f->n_events)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: split_ranges cover %llu rows, n_events is %llu",
                         f->path, (unsigned long long)next, (unsigned long long)f->n_events);
  return 0;
}

int cnf_data_open(const char *path, MPI_Comm comm, cnf_data_file **out) {
  h5u_quiet quiet;
  h5u_quiet_begin(&quiet);
  *out = NULL;
  cnf_data_file *f = cnf_calloc(1, sizeof *f);
  int rc = f ? 0 : CNF_ERR_NOMEM;
  if (rc == 0) {
    f->comm = comm;
    f->file = -1;
    MPI_Comm_rank(comm, &f->rank);
    MPI_Comm_size(comm, &f->size);
    if (strlen(path) >= sizeof f->path)
      rc = cnf_error_set(CNF_ERR_ARG, "dataset file path too long");
    else
      strcpy(f->path, path);
  }
  if (rc == 0 && f->rank == 0)
    rc = probe_file(path);
  rc = h5u_sync(comm, rc);
  if (rc == 0) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
        H5Pset_all_coll_metadata_ops(fapl, 1) < 0)
      rc = h5u_fail(CNF_ERR_IO, "%s: cannot set up file access", path);
    else if ((f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0)
      rc = h5u_fail(CNF_ERR_IO, "cannot open dataset file '%s' (truncated or corrupt?)", path);
    if (fapl >= 0)
      H5Pclose(fapl);
    rc = h5u_sync(comm, rc);
  }
  if (rc == 0)
    rc = h5u_sync(comm, read_root_attrs(f));
  if (rc < 0) {
    cnf_data_close(f);
  } else {
    *out = f;
  }
  h5u_quiet_end(&quiet);
  return rc;
}

void cnf_data_close(cnf_data_file *f) {
  if (!f)
    return;
  if (f->file >= 0) {
    h5u_quiet quiet;
    h5u_quiet_begin(&quiet);
    H5Fclose(f->file);
    H5Eclear2(H5E_DEFAULT);
    h5u_quiet_end(&quiet);
  }
  free(f);
}

const char *cnf_data_path(const cnf_data_file *f) { return f->path; }
const char *cnf_data_generator(const cnf_data_file *f) { return f->generator; }

int cnf_data_expect_generator(const cnf_data_file *f, const char *name) {
  if (strcmp(f->generator, name) != 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: written by generator '%s', expected '%s'", f->path,
                         f->generator[0] ? f->generator : "(none)", name);
  return 0;
}

int cnf_data_split(const cnf_data_file *f, const char *split, uint64_t *first, uint64_t *count) {
  if (!split || strcmp(split, "all") == 0) {
    if (!f->has_n)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: no n_events attribute", f->path);
    *first = 0;
    *count = f->n_events;
    return 0;
  }
  int k = cnf_data_split_index(split);
  if (k < 0)
    return k;
  if (!f->has_split)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: no split record (split_ranges attribute)", f->path);
  *first = f->split_first[k];
  *count = f->split_count[k];
  return 0;
}

/* ---- datasets ---------------------------------------------------------------------------- */

/* 0 if every group above `path` and the link itself exist, 1 if not, < 0 on error. */
static int link_exists(hid_t file, const char *path) {
  char prefix[1024];
  if (strlen(path) >= sizeof prefix)
    return cnf_error_set(CNF_ERR_ARG, "dataset path too long: %s", path);
  const char *p = path;
  for (;;) {
    p = strchr(p + 1, '/');
    size_t len = p ? (size_t)(p - path) : strlen(path);
    memcpy(prefix, path, len);
    prefix[len] = '\0';
    htri_t e = H5Lexists(file, prefix, H5P_DEFAULT);
    if (e < 0)
      return h5u_fail(CNF_ERR_IO, "cannot look up '%s'", prefix);
    if (!e)
      return 1;
    if (!p)
      return 0;
  }
}

static int dset_describe(cnf_data_dset *d) {
  const char *fp = d->f->path;
  hid_t space = H5Dget_space(d->dset), type = H5Dget_type(d->dset);
  int rc = 0;
  if (space < 0 || type < 0) {
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot inspect dataset '%s'", fp, d->path);
    goto done;
  }
  hsize_t dims[2] = {0, 1};
  d->ndims = H5Sget_simple_extent_ndims(space);
  if (d->ndims != 1 && d->ndims != 2) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: dataset '%s' has %d dimensions (need 1 or 2)", fp,
                       d->path, d->ndims);
    goto done;
  }
  H5Sget_simple_extent_dims(space, dims, NULL);
  /* no CNF_MAX_COLS cap here: CaloChallenge showers have up to 40500 voxels */
  if (dims[1] < 1 || dims[1] > (1u << 24)) {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: dataset '%s' has %llu columns (need 1..%u)", fp,
                       d->path, (unsigned long long)dims[1], 1u << 24);
    goto done;
  }
  d->rows = dims[0];
  d->cols = (int)dims[1];
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT && (size == 4 || size == 8)) {
    d->is_float = 1;
    d->elem = size;
    d->mem_type = size == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
  } else if (cls == H5T_INTEGER && size <= 8) {
    d->elem = size <= 4 ? 4 : 8;
    d->mem_type = size <= 4 ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64;
  } else {
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: dataset '%s' is not a float or integer array", fp,
                       d->path);
  }
done:
  if (type >= 0)
    H5Tclose(type);
  if (space >= 0)
    H5Sclose(space);
  return rc;
}

/* Column names and units from the attributes, "c<j>" / "" when absent. */
static int dset_read_labels(cnf_data_dset *d) {
  int rc = h5u_attr_read_strings(d->dset, "columns", d->cols, &d->names);
  if (rc < 0)
    return rc;
  rc = h5u_attr_read_strings(d->dset, "units", d->cols, &d->units);
  if (rc < 0)
    return rc;
  if (!d->names && !(d->names = cnf_calloc((size_t)d->cols, sizeof *d->names)))
    return CNF_ERR_NOMEM;
  if (!d->units && !(d->units = cnf_calloc((size_t)d->cols, sizeof *d->units)))
    return CNF_ERR_NOMEM;
  for (int j = 0; j < d->cols; j++) {
    if (!d->names[j]) {
      char buf[16];
      snprintf(buf, sizeof buf, "c%d", j);
      d->names[j] = strdup(buf);
    }
    if (!d->units[j])
      d->units[j] = strdup("");
    if (!d->names[j] || !d->units[j])
      return cnf_error_set(CNF_ERR_NOMEM, "out of memory reading column names");
  }
  return 0;
}

int cnf_data_dset_open(cnf_data_file *f, const char *path, int expect_ncols, cnf_data_dset **out) {
  h5u_quiet quiet;
  h5u_quiet_begin(&quiet);
  *out = NULL;
  cnf_data_dset *d = cnf_calloc(1, sizeof *d);
  int rc = d ? 0 : CNF_ERR_NOMEM;
  if (rc == 0) {
    d->f = f;
    d->dset = -1;
    snprintf(d->path, sizeof d->path, "%s", path);
    rc = link_exists(f->file, path);
    if (rc == 1)
      rc = cnf_error_set(CNF_ERR_FORMAT, "%s: no dataset '%s'", f->path, path);
  }
  if (rc == 0 && (d->dset = H5Dopen2(f->file, path, H5P_DEFAULT)) < 0)
    rc = h5u_fail(CNF_ERR_FORMAT, "%s: '%s' is not a dataset", f->path, path);
  if (rc == 0)
    rc = dset_describe(d);
  if (rc == 0 && expect_ncols > 0 && d->cols != expect_ncols)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: dataset '%s' has %d columns, expected %d", f->path,
                       path, d->cols, expect_ncols);
  if (rc == 0)
    rc = dset_read_labels(d);
  rc = h5u_sync(f->comm, rc);
  h5u_quiet_end(&quiet);
  if (rc < 0) {
    cnf_data_dset_close(d);
    return rc;
  }
  *out = d;
  return 0;
}

void cnf_data_dset_close(cnf_data_dset *d) {
  if (!d)
    return;
  if (d->dset >= 0)
    H5Dclose(d->dset);
  for (int j = 0; j < d->cols; j++) {
    if (d->names)
      free(d->names[j]);
    if (d->units)
      free(d->units[j]);
  }
  free(d->names);
  free(d->units);
  free(d);
}

uint64_t cnf_data_dset_rows(const cnf_data_dset *d) { return d->rows; }
int cnf_data_dset_cols(const cnf_data_dset *d) { return d->cols; }
const char *cnf_data_dset_column(const cnf_data_dset *d, int j) { return d->names[j]; }
const char *cnf_data_dset_unit(const cnf_data_dset *d, int j) { return d->units[j]; }

int cnf_data_dset_find_column(const cnf_data_dset *d, const char *name) {
  for (int j = 0; j < d->cols; j++)
    if (strcmp(d->names[j], name) == 0)
      return j;
  return cnf_error_set(CNF_ERR_FORMAT, "%s: dataset '%s' has no column '%s'", d->f->path, d->path,
                       name);
}

int cnf_data_dset_resolve_columns(const cnf_data_dset *d, const char *list, int max, int *cols,
                                  int *n) {
  if (!list[0]) {
    *n = cnf_data_dset_cols(d);
    if (*n > max)
      return cnf_error_set(CNF_ERR_ARG, "dataset has %d columns, at most %d supported", *n, max);
    for (int j = 0; j < *n; j++)
      cols[j] = j;
    return 0;
  }
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", list);
  *n = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ')
      tok++;
    if (*n >= max)
      return cnf_error_set(CNF_ERR_ARG, "more than %d columns in '%s'", max, list);
    int j = cnf_data_dset_find_column(d, tok);
    if (j < 0)
      return j;
    cols[(*n)++] = j;
  }
  if (*n == 0)
    return cnf_error_set(CNF_ERR_ARG, "empty column list '%s'", list);
  return 0;
}

int cnf_data_shard(const cnf_data_dset *d, const char *split, uint64_t *first, uint64_t *count) {
  uint64_t sfirst = 0, scount = d->rows, pfirst, pcount;
  if (split && strcmp(split, "all") != 0) {
    CNF_CALL(cnf_data_split(d->f, split, &sfirst, &scount));
    if (sfirst + scount > d->rows)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: split '%s' ends at row %llu, dataset '%s' has %llu",
                           d->f->path, split, (unsigned long long)(sfirst + scount), d->path,
                           (unsigned long long)d->rows);
  }
  cnf_partition(scount, d->f->size, d->f->rank, &pfirst, &pcount);
  *first = sfirst + pfirst;
  *count = pcount;
  return 0;
}

/* ---- reading ----------------------------------------------------------------------------- */

/* A column selection: the distinct columns ascending (what a hyperslab union reads, in file
 * order) and, for each requested position, where it sits in that order. */
typedef struct col_sel {
  int n;       /* requested columns */
  int *sorted; /* n ascending column indices */
  int *pos;    /* pos[p] = index in sorted of requested column p */
} col_sel;

static int col_sel_init(col_sel *s, const cnf_data_dset *d, int ncols_sel, const int *cols) {
  s->n = cols ? ncols_sel : d->cols;
  s->sorted = cnf_malloc((size_t)s->n * sizeof(int));
  s->pos = cnf_malloc((size_t)s->n * sizeof(int));
  if (!s->sorted || !s->pos)
    return CNF_ERR_NOMEM;
  if (!cols) {
    if (ncols_sel != 0 && ncols_sel != d->cols)
      return cnf_error_set(CNF_ERR_ARG, "%s: reading all columns of '%s' (%d), not %d",
                           d->f->path, d->path, d->cols, ncols_sel);
    for (int j = 0; j < s->n; j++)
      s->sorted[j] = s->pos[j] = j;
    return 0;
  }
  if (ncols_sel < 1 || ncols_sel > d->cols)
    return cnf_error_set(CNF_ERR_ARG, "%s: %d columns requested from '%s' (has %d)", d->f->path,
                         ncols_sel, d->path, d->cols);
  for (int p = 0; p < s->n; p++) {
    if (cols[p] < 0 || cols[p] >= d->cols)
      return cnf_error_set(CNF_ERR_ARG, "%s: column %d out of range for '%s' (%d columns)",
                           d->f->path, cols[p], d->path, d->cols);
    s->sorted[p] = cols[p];
  }
  /* insertion sort: selections are short */
  for (int i = 1; i < s->n; i++)
    for (int j = i; j > 0 && s->sorted[j - 1] > s->sorted[j]; j--) {
      int t = s->sorted[j];
      s->sorted[j] = s->sorted[j - 1];
      s->sorted[j - 1] = t;
    }
  for (int i = 1; i < s->n; i++)
    if (s->sorted[i] == s->sorted[i - 1])
      return cnf_error_set(CNF_ERR_ARG, "%s: column %d of '%s' requested twice", d->f->path,
                           s->sorted[i], d->path);
  for (int p = 0; p < s->n; p++)
    for (int i = 0; i < s->n; i++)
      if (s->sorted[i] == cols[p])
        s->pos[p] = i;
  return 0;
}

static void col_sel_free(col_sel *s) {
  free(s->sorted);
  free(s->pos);
}

/* File selection of rows [row0, row0 + rows) x the selected columns (runs of adjacent columns
 * as one hyperslab each), or nothing when rows == 0. */
static herr_t select_rows(const cnf_data_dset *d, hid_t fspace, const col_sel *s, uint64_t row0,
                          uint64_t rows) {
  if (rows == 0)
    return H5Sselect_none(fspace);
  if (d->ndims == 1) {
    hsize_t start = row0, cnt = rows;
    return H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
  }
  H5S_seloper_t op = H5S_SELECT_SET;
  for (int i = 0; i < s->n;) {
    int j = i + 1;
    while (j < s->n && s->sorted[j] == s->sorted[j - 1] + 1)
      j++;
    hsize_t start[2] = {row0, (hsize_t)s->sorted[i]}, cnt[2] = {rows, (hsize_t)(j - i)};
    if (H5Sselect_hyperslab(fspace, op, start, NULL, cnt, NULL) < 0)
      return -1;
    op = H5S_SELECT_OR;
    i = j;
  }
  return 0;
}

/* Staged values -> caller's array in the requested column order and type. */
static void unstage(const cnf_data_dset *d, const col_sel *s, const void *stage, uint64_t rows,
                    cnf_dtype mem, void *out) {
  for (uint64_t r = 0; r < rows; r++)
    for (int p = 0; p < s->n; p++) {
      size_t at = (size_t)r * (size_t)s->n + (size_t)s->pos[p], to = (size_t)r * (size_t)s->n + (size_t)p;
      double v;
      if (d->is_float)
        v = d->elem == 4 ? (double)((const float *)stage)[at] : ((const double *)stage)[at];
      else
        v = d->elem == 4 ? (double)((const int32_t *)stage)[at] : (double)((const int64_t *)stage)[at];
      if (mem == CNF_DTYPE_F32)
        ((float *)out)[to] = (float)v;
      else
        ((double *)out)[to] = v;
    }
}

static int read_block(cnf_data_dset *d, hid_t fspace, hid_t dxpl, const col_sel *s, uint64_t row0,
                      uint64_t rows, void *stage) {
  hsize_t mdims[2] = {rows > 0 ? rows : 1, (hsize_t)s->n};
  hid_t mspace = H5Screate_simple(2, mdims, NULL);
  int rc = 0;
  if (mspace < 0 || select_rows(d, fspace, s, row0, rows) < 0 ||
      (rows == 0 && H5Sselect_none(mspace) < 0))
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot select rows of '%s'", d->f->path, d->path);
  else if (H5Dread(d->dset, d->mem_type, mspace, fspace, dxpl, stage) < 0)
    rc = h5u_fail(CNF_ERR_IO, "%s: cannot read rows %llu..%llu of '%s'", d->f->path,
                  (unsigned long long)row0, (unsigned long long)(row0 + rows), d->path);
  if (mspace >= 0)
    H5Sclose(mspace);
  return rc;
}

int cnf_data_read(cnf_data_dset *d, uint64_t first, uint64_t count, int ncols_sel,
                  const int *cols, cnf_dtype mem, void *out) {
  MPI_Comm comm = d->f->comm;
  h5u_quiet quiet;
  h5u_quiet_begin(&quiet);
  col_sel s = {0};
  void *stage = NULL;
  hid_t fspace = -1, dxpl = -1;
  int rc = 0;
  if (mem != CNF_DTYPE_F32 && mem != CNF_DTYPE_F64)
    rc = cnf_error_set(CNF_ERR_ARG, "%s: reads return float or double only", d->f->path);
  else if (first > d->rows || count > d->rows - first)
    rc = cnf_error_set(CNF_ERR_ARG, "%s: rows %llu..%llu out of range for '%s' (%llu rows)",
                       d->f->path, (unsigned long long)first, (unsigned long long)(first + count),
                       d->path, (unsigned long long)d->rows);
  if (rc == 0)
    rc = col_sel_init(&s, d, ncols_sel, cols);
  uint64_t block = 0, iters = 0, my_iters = 0;
  if (rc == 0) {
    block = READER_BLOCK_BYTES / ((uint64_t)s.n * d->elem);
    block = block > 0 ? block : 1;
    my_iters = (count + block - 1) / block;
    stage = cnf_malloc((size_t)(count < block ? (count ? count : 1) : block) * (size_t)s.n * d->elem);
    fspace = H5Dget_space(d->dset);
    dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (!stage)
      rc = CNF_ERR_NOMEM;
    else if (fspace < 0 || dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
      rc = h5u_fail(CNF_ERR_IO, "%s: cannot set up reading '%s'", d->f->path, d->path);
  }
  rc = h5u_sync(comm, rc);
  /* every rank makes the same number of collective H5Dread calls: the largest count wins */
  if (rc == 0 && MPI_Allreduce(&my_iters, &iters, 1, MPI_UINT64_T, MPI_MAX, comm) != MPI_SUCCESS)
    rc = cnf_error_set(CNF_ERR_MPI, "MPI_Allreduce failed while reading '%s'", d->path);
  for (uint64_t it = 0; rc == 0 && it < iters; it++) {
    uint64_t r0 = it * block, rows = r0 < count ? (count - r0 < block ? count - r0 : block) : 0;
    rc = h5u_sync(comm, read_block(d, fspace, dxpl, &s, first + r0, rows, stage));
    if (rc == 0 && rows > 0) {
      size_t offset = (size_t)r0 * (size_t)s.n * (mem == CNF_DTYPE_F32 ? sizeof(float) : sizeof(double));
      unstage(d, &s, stage, rows, mem, (char *)out + offset);
    }
  }
  if (dxpl >= 0)
    H5Pclose(dxpl);
  if (fspace >= 0)
    H5Sclose(fspace);
  free(stage);
  col_sel_free(&s);
  h5u_quiet_end(&quiet);
  return rc;
}

int cnf_data_read_split(cnf_data_dset *d, const char *split, int ncols_sel, const int *cols,
                        cnf_dtype mem, void *out) {
  uint64_t first = 0, count = 0;
  CNF_CALL(h5u_sync(d->f->comm, cnf_data_shard(d, split, &first, &count)));
  return cnf_data_read(d, first, count, ncols_sel, cols, mem, out);
}
