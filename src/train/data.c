/* The training data of `cnflow train`: each rank reads its own block of a split of the target
 * and condition datasets with collective hyperslab reads (nothing is read whole on one rank),
 * and after the preprocessing's support cut the kept events are numbered globally, so that
 * the training loop can shuffle the GLOBAL index set. */
#include "train_impl.h"

#include "cnflow/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int train_sync(MPI_Comm comm, int rc) { return cnf_sync_status(comm, rc); }

void train_shard_free(train_shard *s) {
  free(s->x);
  free(s->c);
  memset(s, 0, sizeof *s);
}

/* First non-finite value of a (n, k) block -> error naming the file row and column. */
static int check_rows(const char *file, const char *dset, const cnf_data_dset *d, const int *cols,
                      int n, int k, const cnf_real *a, uint64_t first_row) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < k; j++)
      if (!isfinite((double)a[(size_t)i * k + j]))
        return cnf_error_set(CNF_ERR_NUMERIC, "%s: dataset '%s' row %llu column '%s' is %g",
                             file, dset, (unsigned long long)(first_row + i),
                             cnf_data_dset_column(d, cols[j]), (double)a[(size_t)i * k + j]);
  return 0;
}

typedef struct open_set {
  cnf_data_file *file;
  cnf_data_dset *target, *cond;
} open_set;

static void open_set_close(open_set *o) {
  cnf_data_dset_close(o->cond);
  cnf_data_dset_close(o->target);
  cnf_data_close(o->file);
  memset(o, 0, sizeof *o);
}

/* The split's row range, cut to its first max_events rows. */
static int split_range(const open_set *o, const char *file, const char *split, int64_t max_events,
                       uint64_t *first, uint64_t *count) {
  if (strcmp(split, "all") == 0) {
    *first = 0;
    *count = cnf_data_dset_rows(o->target);
  } else {
    int rc = cnf_data_split(o->file, split, first, count);
    if (rc < 0)
      return cnf_error_set(rc, "%s: no split '%s' recorded in the file (use -train_split / "
                           "-val_split all, or -val_file)", file, split);
  }
  uint64_t rows = cnf_data_dset_rows(o->target);
  if (cnf_data_dset_rows(o->cond) != rows)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: target and condition datasets have %llu and %llu "
                         "rows", file, (unsigned long long)rows,
                         (unsigned long long)cnf_data_dset_rows(o->cond));
  if (*first + *count > rows)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: split '%s' ends at row %llu beyond the %llu rows",
                         file, split, (unsigned long long)(*first + *count),
                         (unsigned long long)rows);
  if (max_events > 0 && (uint64_t)max_events < *count)
    *count = (uint64_t)max_events;
  if (*count == 0)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: split '%s' has no events", file, split);
  return 0;
}

static int names_match(const train_shard *a, const train_shard *b, const char *file) {
  if (a->D != b->D || a->C != b->C)
    return cnf_error_set(CNF_ERR_FORMAT, "%s: %d targets / %d conditions, the training file has "
                         "%d / %d", file, a->D, a->C, b->D, b->C);
  for (int j = 0; j < a->D; j++)
    if (strcmp(a->target_names[j], b->target_names[j]) != 0)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: target column %d is '%s', the training file's "
                           "is '%s'", file, j, a->target_names[j], b->target_names[j]);
  for (int j = 0; j < a->C; j++)
    if (strcmp(a->cond_names[j], b->cond_names[j]) != 0)
      return cnf_error_set(CNF_ERR_FORMAT, "%s: condition column %d is '%s', the training "
                           "file's is '%s'", file, j, a->cond_names[j], b->cond_names[j]);
  return 0;
}

int train_shard_load(MPI_Comm comm, const cnf_study_conf *conf, const char *file,
                     const char *split, int64_t max_events, const train_shard *expect,
                     train_shard *s) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  memset(s, 0, sizeof *s);
  snprintf(s->file, sizeof s->file, "%s", file);
  open_set o = {0};
  int tcols[CNF_TRAIN_MAX_COLS], ccols[64], rc;
  /* every step below is collective or synced: a failure anywhere stops all ranks together */
  CNF_CALL(cnf_data_open(file, comm, &o.file));
  rc = cnf_data_dset_open(o.file, conf->target, 0, &o.target);
  if (rc == 0)
    rc = cnf_data_dset_open(o.file, conf->cond, 0, &o.cond);
  if (rc == 0)
    rc = cnf_data_dset_resolve_columns(o.target, conf->target_columns, CNF_TRAIN_MAX_COLS, tcols,
                                       &s->D);
  if (rc == 0)
    rc = cnf_data_dset_resolve_columns(o.cond, conf->cond_columns, 64, ccols, &s->C);
  uint64_t first = 0, count = 0;
  if (rc == 0)
    rc = split_range(&o, file, split, max_events, &first, &count);
  rc = train_sync(comm, rc);
  if (rc < 0)
    goto fail;
  for (int j = 0; j < s->D; j++) {
    snprintf(s->target_names[j], sizeof s->target_names[j], "%s",
             cnf_data_dset_column(o.target, tcols[j]));
    snprintf(s->target_units[j], sizeof s->target_units[j], "%s",
             cnf_data_dset_unit(o.target, tcols[j]));
  }
  for (int j = 0; j < s->C; j++) {
    snprintf(s->cond_names[j], sizeof s->cond_names[j], "%s",
             cnf_data_dset_column(o.cond, ccols[j]));
    snprintf(s->cond_units[j], sizeof s->cond_units[j], "%s", cnf_data_dset_unit(o.cond, ccols[j]));
  }
  if (expect)
    rc = train_sync(comm, names_match(s, expect, file));
  if (rc < 0)
    goto fail;
  uint64_t pfirst, pcount;
  cnf_partition(count, size, rank, &pfirst, &pcount);
  if (pcount > (uint64_t)(1u << 31) - 1) {
    rc = cnf_error_set(CNF_ERR_ARG, "%s: %llu events on one rank: use more ranks", file,
                       (unsigned long long)pcount);
  } else {
    s->n = (int)pcount;
    s->first_row = first + pfirst;
    size_t nn = pcount ? pcount : 1;
    s->x = cnf_malloc(sizeof(cnf_real) * nn * (size_t)s->D);
    s->c = cnf_malloc(sizeof(cnf_real) * nn * (size_t)s->C);
    if (!s->x || !s->c)
      rc = CNF_ERR_NOMEM;
  }
  rc = train_sync(comm, rc);
  if (rc == 0)
    rc = cnf_data_read(o.target, s->first_row, (uint64_t)s->n, s->D, tcols, CNF_DTYPE_REAL, s->x);
  if (rc == 0)
    rc = cnf_data_read(o.cond, s->first_row, (uint64_t)s->n, s->C, ccols, CNF_DTYPE_REAL, s->c);
  if (rc == 0) {
    rc = check_rows(file, conf->target, o.target, tcols, s->n, s->D, s->x, s->first_row);
    if (rc == 0)
      rc = check_rows(file, conf->cond, o.cond, ccols, s->n, s->C, s->c, s->first_row);
  }
  rc = train_sync(comm, rc);
fail:
  open_set_close(&o);
  if (rc < 0)
    train_shard_free(s);
  return rc;
}

int train_shard_compact(MPI_Comm comm, train_shard *s, const unsigned char *keep) {
  int m = 0;
  for (int i = 0; i < s->n; i++) {
    if (!keep[i])
      continue;
    if (m != i) {
      memmove(s->x + (size_t)m * s->D, s->x + (size_t)i * s->D, sizeof(cnf_real) * s->D);
      memmove(s->c + (size_t)m * s->C, s->c + (size_t)i * s->C, sizeof(cnf_real) * s->C);
    }
    m++;
  }
  uint64_t kept = (uint64_t)m, rejected = (uint64_t)(s->n - m), before = 0, tot[2];
  uint64_t mine[2] = {kept, rejected};
  if (MPI_Exscan(&kept, &before, 1, MPI_UINT64_T, MPI_SUM, comm) != MPI_SUCCESS ||
      MPI_Allreduce(mine, tot, 2, MPI_UINT64_T, MPI_SUM, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "train: counting the kept events failed");
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  s->n = m;
  s->global_first = rank == 0 ? 0 : before; /* MPI_Exscan leaves rank 0's result undefined */
  s->n_global = tot[0];
  s->rejected = tot[1];
  if (s->n_global == 0)
    return cnf_error_set(CNF_ERR_ARG, "%s: every event was rejected by the preprocessing",
                         s->file);
  return 0;
}
