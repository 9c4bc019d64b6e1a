/* The data-parallel training loop of one ensemble member (include/cnflow/train.h).
 *
 * Global order: every epoch draws ONE permutation of the global event indices 0..N-1 keyed by
 * the stream (seed, epoch, sub 2); global batch s is perm[sB, (s+1)B).  The permutation is a
 * stateless Feistel bijection (cnf_perm), evaluated per batch position, so no rank holds an
 * N-entry array (that was 22 MB per rank on the 7 M-event file).  A rank computes the
 * gradient of the batch events it holds (weights 1/B), one MPI_Allreduce(SUM) of the flat
 * gradient buffer gives every rank the gradient of the global batch mean, and every rank takes
 * the same Adam step.  The batches therefore do not depend on the number of ranks; only the
 * order of the float sums does.  Per step a second, 3-value allreduce carries the batch loss,
 * the stop request (SIGTERM / SIGUSR1) and a failure flag, so a failing or signalled rank
 * takes every rank with it at the same step.
 * Noise (dequantisation) of event g in epoch e comes from the stream (seed, g, sub 16 + e);
 * validation events use sub 15 (the same noise every epoch). */
#include "train_impl.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SUB_SHUFFLE 2u
#define SUB_VAL_NOISE 15u
#define SUB_NOISE0 16u

/* ---- signals -------------------------------------------------------------------------------- */
static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) { stop_flag = sig; }

void cnf_train_install_signal_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
}
int cnf_train_stop_requested(void) { return stop_flag != 0; }
void cnf_train_raise_stop(void) { stop_flag = SIGTERM; }

/* A progress line from the group root (rank 0 of the member's group), prefixed like
 * cnf_log_info: with an ensemble every group prints its own member's lines. */
static void group_log(MPI_Comm comm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void group_log(MPI_Comm comm, const char *fmt, ...) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank != 0 || cnf_log_get_level() < CNF_LOG_INFO)
    return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  printf("[cnflow] %s\n", line);
  fflush(stdout);
}

/* ---- work buffers --------------------------------------------------------------------------- */
typedef struct loop_work {
  cnf_real *xb, *cb, *w; /* (B, D), (B, C), (B): this rank's part of a batch */
  uint64_t *gb;          /* (B) global index of each of those events */
  /* balancing the batch over the ranks (gather_batch) */
  MPI_Comm comm;
  int size, rank;
  uint64_t *bounds;      /* (size + 1) global index ranges of the ranks' shards */
  int *owner;            /* (B) rank holding each event of the global batch */
  int *counts;           /* (4 size) send / receive counts and displacements, in values */
  int *quota, *held, *seen; /* (size) events per rank and step; per-step tallies */
  cnf_real *sendbuf, *recvbuf; /* (B, D + C) rows that change rank */
  cnf_real *best;        /* (n_params) */
  cnf_real *xv;          /* (n_val, D) validation targets with their fixed noise (or NULL) */
  double *hist;          /* (epochs, TRAIN_HIST_COLS) */
} loop_work;

static void loop_work_free(loop_work *w) {
  free(w->bounds);
  free(w->owner);
  free(w->counts);
  free(w->quota);
  free(w->held);
  free(w->seen);
  free(w->sendbuf);
  free(w->recvbuf);
  free(w->xb);
  free(w->cb);
  free(w->w);
  free(w->gb);
  free(w->best);
  free(w->xv);
  free(w->hist);
}

static void add_noise(const train_prep *p, uint64_t seed, uint32_t sub, int n, const uint64_t *g,
                      uint64_t g0, int D, cnf_real *x) {
  if (!(p->noise > 0))
    return;
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, seed, g ? g[i] : g0 + (uint64_t)i, sub);
    for (int j = 0; j < D; j++)
      x[(size_t)i * D + j] += (cnf_real)(p->noise * cnf_rng_uniform(&r));
  }
}

/* COLLECTIVE.  This rank's share of global batch [b0, b0 + B) of the permutation, with noise.
 * The events of a random global batch fall on the ranks binomially (256 +- 11 of 512 on 2
 * ranks), and every step waits for the rank with the most: the ranks therefore trade the
 * surplus so that each computes exactly its quota (cnf_partition of B).  A rank keeps its own
 * events up to its quota; the surplus rows (targets with their noise, conditions) go, in batch
 * order, to the ranks short of theirs, in rank order.  Every rank derives the same plan from the
 * permutation and the shard bounds, so one MPI_Alltoallv of ~10 rows moves them. */
static int gather_batch(const train_shard *tr, const train_prep *p, uint64_t seed, int epoch,
                        const cnf_perm *perm, int64_t b0, int B, loop_work *w, int *m_out) {
  const int D = tr->D, C = tr->C, W = D + C, P = w->size, me = w->rank;
  int *send_n = w->counts, *send_off = w->counts + P, *recv_n = w->counts + 2 * P,
      *recv_off = w->counts + 3 * P;
  /* owner of each batch position, and how many each rank holds */
  int *held = w->held, *seen = w->seen;
  const int *quota = w->quota;
  for (int r = 0; r < P; r++) {
    held[r] = seen[r] = 0;
    send_n[r] = recv_n[r] = 0;
  }
  for (int j = 0; j < B; j++) {
    uint64_t g = cnf_perm_at(perm, (uint64_t)(b0 + j));
    int r = 0;
    while (r + 1 < P && g >= w->bounds[r + 1])
      r++;
    w->owner[j] = r;
    held[r]++;
    w->gb[j] = g; /* scratch: global index per position */
  }
  /* walk the surplus positions in batch order, handing them to deficit ranks in rank order */
  int taker = 0, taken = 0;
  int m = 0, ns = 0;
  const uint64_t lo = tr->global_first;
  for (int j = 0; j < B; j++) {
    const int r = w->owner[j];
    const uint64_t g = w->gb[j];
    if (seen[r]++ < quota[r]) { /* kept by its owner */
      if (r == me) {
        size_t i = (size_t)(g - lo);
        memcpy(w->xb + (size_t)m * D, tr->x + i * D, sizeof(cnf_real) * D);
        if (C > 0)
          memcpy(w->cb + (size_t)m * C, tr->c + i * C, sizeof(cnf_real) * C);
        w->owner[j] = -1 - m; /* local row m (for the noise below) */
        m++;
      }
      continue;
    }
    while (taker < P && held[taker] + taken >= quota[taker]) {
      taker++;
      taken = 0;
    }
    /* surplus position j moves from r to taker (rows leave in batch order per destination) */
    if (r == me) {
      size_t i = (size_t)(g - lo);
      cnf_real *row = w->sendbuf + (size_t)ns * W;
      memcpy(row, tr->x + i * D, sizeof(cnf_real) * D);
      if (C > 0)
        memcpy(row + D, tr->c + i * C, sizeof(cnf_real) * C);
      add_noise(p, seed, SUB_NOISE0 + (uint32_t)epoch, 1, &g, 0, D, row);
      send_n[taker] += W;
      ns++;
    }
    if (taker == me)
      recv_n[r] += W;
    taken++;
  }
  /* noise of the kept rows, keyed by their global index */
  for (int j = 0; j < B; j++)
    if (w->owner[j] < 0) {
      int row = -1 - w->owner[j];
      add_noise(p, seed, SUB_NOISE0 + (uint32_t)epoch, 1, &w->gb[j], 0, D,
                w->xb + (size_t)row * D);
    }
  int nr = 0;
  for (int r = 0, so = 0, ro = 0; r < P; r++) {
    send_off[r] = so;
    recv_off[r] = ro;
    so += send_n[r];
    ro += recv_n[r];
    nr += recv_n[r] / W;
  }
  if (P > 1 && MPI_Alltoallv(w->sendbuf, send_n, send_off, MPI_CNF_REAL, w->recvbuf, recv_n,
                             recv_off, MPI_CNF_REAL, w->comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "train: exchanging batch rows between the ranks failed");
  for (int i = 0; i < nr; i++, m++) {
    memcpy(w->xb + (size_t)m * D, w->recvbuf + (size_t)i * W, sizeof(cnf_real) * D);
    if (C > 0)
      memcpy(w->cb + (size_t)m * C, w->recvbuf + (size_t)i * W + D, sizeof(cnf_real) * C);
  }
  *m_out = m;
  return 0;
}

/* ActNorm (any bijector with a data_init) starts from the FIRST GLOBAL BATCH: the ranks'
 * parts are gathered everywhere, so every replica initialises from the same events. */
static int data_init_first_batch(MPI_Comm comm, cnf_flow *f, const train_shard *tr,
                                 const train_prep *p, uint64_t seed, int B, loop_work *w) {
  int needed = 0;
  for (int k = 0; k < cnf_flow_num_bijectors(f); k++)
    needed |= cnf_flow_bijector(f, k)->ops->data_init != NULL;
  if (!needed)
    return 0;
  int size = 1;
  MPI_Comm_size(comm, &size);
  const int D = tr->D, C = tr->C, W = D + C;
  cnf_perm perm;
  cnf_perm_init(&perm, tr->n_global, seed, 0, SUB_SHUFFLE);
  int m = 0;
  CNF_CALL(gather_batch(tr, p, seed, 0, &perm, 0, B, w, &m));
  int *counts = cnf_malloc(sizeof(int) * 2 * size);
  cnf_real *mine = cnf_malloc(sizeof(cnf_real) * (size_t)(m ? m : 1) * W);
  cnf_real *all = cnf_malloc(sizeof(cnf_real) * (size_t)B * W);
  int rc = (!counts || !mine || !all) ? CNF_ERR_NOMEM : 0;
  rc = train_sync(comm, rc);
  if (rc == 0) {
    for (int i = 0; i < m; i++) {
      memcpy(mine + (size_t)i * W, w->xb + (size_t)i * D, sizeof(cnf_real) * D);
      memcpy(mine + (size_t)i * W + D, w->cb + (size_t)i * C, sizeof(cnf_real) * C);
    }
    int mw = m * W;
    MPI_Allgather(&mw, 1, MPI_INT, counts, 1, MPI_INT, comm);
    int *displs = counts + size;
    for (int r = 0, o = 0; r < size; r++, o += counts[r - 1])
      displs[r] = o;
    if (MPI_Allgatherv(mine, mw, MPI_CNF_REAL, all, counts, displs, MPI_CNF_REAL, comm) !=
        MPI_SUCCESS)
      rc = cnf_error_set(CNF_ERR_MPI, "train: gathering the first batch failed");
  }
  if (rc == 0) {
    /* split the gathered rows back into x and c (reuse `mine` is too small: pack in place) */
    cnf_real *x = cnf_malloc(sizeof(cnf_real) * (size_t)B * D);
    cnf_real *c = cnf_malloc(sizeof(cnf_real) * (size_t)B * (C ? C : 1));
    rc = (!x || !c) ? CNF_ERR_NOMEM : 0;
    for (int i = 0; rc == 0 && i < B; i++) {
      memcpy(x + (size_t)i * D, all + (size_t)i * W, sizeof(cnf_real) * D);
      memcpy(c + (size_t)i * C, all + (size_t)i * W + D, sizeof(cnf_real) * C);
    }
    if (rc == 0)
      rc = cnf_flow_data_init(f, B, x, C > 0 ? c : NULL);
    free(x);
    free(c);
  }
  free(counts);
  free(mine);
  free(all);
  return train_sync(comm, rc);
}

/* ---- validation ----------------------------------------------------------------------------- */
static int cmp_real(const void *a, const void *b) {
  cnf_real x = *(const cnf_real *)a, y = *(const cnf_real *)b;
  return (x > y) - (x < y);
}

/* Mean over the D targets of the 1-D Wasserstein distance between the validation targets and
 * one generated sample per validation event, both in x / target_scale (the CNF study's rule).
 * The samples come from the stream (seed of the epoch, global validation index). */
static int val_w1(MPI_Comm comm, cnf_flow *f, const train_shard *va, const cnf_real *xv,
                  const train_prep *p, uint64_t seed, double *out) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int D = va->D, C = va->C, n = va->n;
  const uint64_t N = va->n_global;
  /* chunks of the training batch: evaluating needs no larger work buffers than training */
  const int chunk = cnf_flow_reserved(f) > 0 ? cnf_flow_reserved(f) : 1024;
  cnf_real *gen = cnf_malloc(sizeof(cnf_real) * (size_t)(n ? n : 1) * D);
  int rc = gen ? 0 : CNF_ERR_NOMEM;
  for (int s = 0; rc == 0 && s < n; s += chunk) {
    int m = n - s < chunk ? n - s : chunk;
    rc = cnf_flow_sample(f, m, C > 0 ? va->c + (size_t)s * C : NULL, seed,
                         va->global_first + (uint64_t)s, gen + (size_t)s * D, NULL);
  }
  rc = train_sync(comm, rc);
  if (rc < 0) {
    free(gen);
    return rc;
  }
  /* columns gathered on the root: (D, N) target and generated values */
  int *counts = cnf_malloc(sizeof(int) * 2 * size);
  cnf_real *col = cnf_malloc(sizeof(cnf_real) * (n ? n : 1));
  cnf_real *all_t = rank == 0 ? cnf_malloc(sizeof(cnf_real) * N) : NULL;
  cnf_real *all_g = rank == 0 ? cnf_malloc(sizeof(cnf_real) * N) : NULL;
  rc = (!counts || !col || (rank == 0 && (!all_t || !all_g))) ? CNF_ERR_NOMEM : 0;
  rc = train_sync(comm, rc);
  double w1_sum = 0;
  if (rc == 0) {
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
    int *displs = counts + size;
    if (rank == 0)
      for (int r = 0, o = 0; r < size; o += counts[r], r++)
        displs[r] = o;
    for (int j = 0; j < D && rc == 0; j++) {
      for (int which = 0; which < 2; which++) {
        const cnf_real *src = which ? gen : xv;
        for (int i = 0; i < n; i++)
          col[i] = (cnf_real)(src[(size_t)i * D + j] / p->target_scale[j]);
        if (MPI_Gatherv(col, n, MPI_CNF_REAL, which ? all_g : all_t, counts, displs,
                        MPI_CNF_REAL, 0, comm) != MPI_SUCCESS)
          rc = cnf_error_set(CNF_ERR_MPI, "train: gathering validation samples failed");
      }
      if (rank == 0 && rc == 0) {
        qsort(all_t, N, sizeof(cnf_real), cmp_real);
        qsort(all_g, N, sizeof(cnf_real), cmp_real);
        double acc = 0;
        for (uint64_t i = 0; i < N; i++)
          acc += fabs((double)all_t[i] - (double)all_g[i]);
        w1_sum += acc / (double)N;
      }
    }
  }
  double w1 = w1_sum / D;
  MPI_Bcast(&w1, 1, MPI_DOUBLE, 0, comm);
  free(gen);
  free(counts);
  free(col);
  free(all_t);
  free(all_g);
  *out = w1;
  return rc;
}

/* ---- the loop ------------------------------------------------------------------------------- */
/* FNV-1a over the parameter bytes: equal on every rank iff the replicas are (almost surely). */
static uint64_t params_hash(const cnf_real *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n * sizeof(cnf_real); i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static int check_replicas(MPI_Comm comm, cnf_flow *f, int member, int epoch, int64_t step) {
  uint64_t h = params_hash(cnf_flow_params(f), cnf_flow_num_params(f)), lo = 0, hi = 0;
  if (MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, comm) != MPI_SUCCESS ||
      MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "train: MPI_Allreduce of the parameter hash failed");
  if (lo != hi)
    return cnf_error_set(CNF_ERR_STATE, "train: member %d epoch %d step %lld: the ranks' "
                         "parameters differ (replicas diverged)", member, epoch + 1,
                         (long long)step);
  return 0;
}

static void schedule_fill_lengths(cnf_schedule_conf *s, int64_t steps_per_epoch, int epochs,
                                  int cosine_cycle_epochs) {
  int64_t total = steps_per_epoch * epochs;
  if (s->kind == CNF_SCHED_COSINE && s->t0_steps <= 0 && cosine_cycle_epochs > 0)
    s->t0_steps = steps_per_epoch * cosine_cycle_epochs;
  s->steps_per_epoch = steps_per_epoch;
  if (s->kind == CNF_SCHED_POLY && s->decay_steps <= 0)
    s->decay_steps = total;
  if (s->kind == CNF_SCHED_COSINE && s->t0_steps <= 0)
    s->t0_steps = total;
  if (s->kind == CNF_SCHED_ONECYCLE && s->total_steps <= 0)
    s->total_steps = total;
}

/* The group root writes; every rank returns its status. */
static int root_checkpoint(MPI_Comm comm, const train_member_io *io, const cnf_flow *f,
                           const cnf_adam *adam, const loop_work *w, const train_state *st) {
  int rank = 0, rc = 0;
  MPI_Comm_rank(comm, &rank);
  rc = cnf_fault(CNF_FAULT_CHECKPOINT, io->ckpt_path); /* testing aid (CNFLOW_FAULT) */
  if (rank == 0 && rc == 0)
    rc = train_checkpoint_write(io->ckpt_path, io->fingerprint, f, adam, w->best, st);
  cnf_watchdog_beat("a checkpoint");
  return train_sync(comm, rc);
}

/* Restore the root's checkpoint on every rank of the group.  1 = no checkpoint. */
static int resume_from_checkpoint(MPI_Comm comm, const train_member_io *io, cnf_flow *f,
                                  cnf_adam *adam, loop_work *w, train_state *st, int epochs) {
  int rank = 0, rc = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0)
    rc = train_checkpoint_read(io->ckpt_path, io->fingerprint, f, adam, w->best, st, epochs);
  rc = train_sync(comm, rc);
  MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
  if (rc != 0)
    return rc;
  const int np = (int)cnf_flow_num_params(f);
  cnf_schedule sched = st->sched;
  struct {
    int epoch, complete, best_epoch, n_hist;
    int64_t step_in_epoch, global_step, adam_t;
    double loss_sum, seconds, best_score;
  } sc = {st->epoch, st->complete, st->best_epoch, st->n_hist, st->step_in_epoch,
          st->global_step, adam->t, st->loss_sum, st->seconds, st->best_score};
  if (MPI_Bcast(&sc, (int)sizeof sc, MPI_BYTE, 0, comm) != MPI_SUCCESS ||
      MPI_Bcast(&sched, (int)sizeof sched, MPI_BYTE, 0, comm) != MPI_SUCCESS ||
      MPI_Bcast(cnf_flow_params(f), np, MPI_CNF_REAL, 0, comm) != MPI_SUCCESS ||
      MPI_Bcast(w->best, np, MPI_CNF_REAL, 0, comm) != MPI_SUCCESS ||
      MPI_Bcast(adam->m, np, MPI_CNF_REAL, 0, comm) != MPI_SUCCESS ||
      MPI_Bcast(adam->v, np, MPI_CNF_REAL, 0, comm) != MPI_SUCCESS ||
      MPI_Bcast(st->hist, sc.n_hist * TRAIN_HIST_COLS, MPI_DOUBLE, 0, comm) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "train: broadcasting the checkpoint failed");
  st->epoch = sc.epoch;
  st->complete = sc.complete;
  st->best_epoch = sc.best_epoch;
  st->n_hist = sc.n_hist;
  st->step_in_epoch = sc.step_in_epoch;
  st->global_step = sc.global_step;
  adam->t = sc.adam_t;
  st->loss_sum = sc.loss_sum;
  st->seconds = sc.seconds;
  st->best_score = sc.best_score;
  st->sched = sched;
  return cnf_flow_params_changed(f);
}

static int write_history(const char *path, const train_state *st, const char *metric) {
  /* bound of what is written below: the header and one line of 5 numbers per epoch */
  CNF_CALL(cnf_check_free_space(path, 128 + (uint64_t)st->n_hist * 96));
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *fp = fopen(tmp, "w");
  if (!fp)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot write the training history", path);
  fprintf(fp, "# epoch\ttrain_nll\tval_%s\tlr\tseconds\n", metric);
  for (int e = 0; e < st->n_hist; e++) {
    const double *h = st->hist + (size_t)e * TRAIN_HIST_COLS;
    fprintf(fp, "%d\t%.9g\t%.9g\t%.6g\t%.3f\n", (int)h[0], h[1], h[2], h[3], h[4]);
  }
  int bad = ferror(fp);
  bad |= fclose(fp) != 0;
  if (bad || rename(tmp, path) != 0) {
    remove(tmp);
    return cnf_error_set(CNF_ERR_IO, "%s: cannot write the training history", path);
  }
  return 0;
}

static int save_model(MPI_Comm comm, const cnf_study_conf *conf, const train_member_io *io,
                      cnf_flow *f, const loop_work *w, const train_state *st) {
  int rank = 0, rc = 0;
  MPI_Comm_rank(comm, &rank);
  memcpy(cnf_flow_params(f), w->best, sizeof(cnf_real) * cnf_flow_num_params(f));
  rc = cnf_flow_params_changed(f);
  if (rank == 0 && rc == 0) {
    cnf_model_provenance prov;
    memset(&prov, 0, sizeof prov);
    snprintf(prov.options, sizeof prov.options, "%s", conf->options);
    prov.seed = io->seed;
    prov.epoch = st->best_epoch;
    prov.val_score = st->best_score;
    snprintf(prov.git_rev, sizeof prov.git_rev, "%s", cnf_git_rev());
    snprintf(prov.dataset, sizeof prov.dataset, "%smember=%d\nval_metric=%s\n", io->dataset_desc,
             io->member, conf->val_metric == CNF_VAL_W1 ? "w1" : "nll");
    rc = cnf_flow_save(f, io->model_path, &prov);
    if (rc == 0)
      rc = write_history(io->hist_path, st, conf->val_metric == CNF_VAL_W1 ? "w1" : "nll");
  }
  return train_sync(comm, rc);
}

int train_member_run(MPI_Comm comm, const cnf_study_conf *conf, const train_prep *prep,
                     cnf_flow *f, const train_shard *tr, const train_shard *va,
                     const train_member_io *io, cnf_member_result *res) {
  const double t_start = cnf_time_now();
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int D = tr->D, C = tr->C, B = conf->train.batch, E = conf->train.epochs;
  const uint64_t seed = io->seed;
  const size_t np = cnf_flow_num_params(f);
  const char *metric = conf->val_metric == CNF_VAL_W1 ? "W1" : "NLL";
  if (tr->n_global > (uint64_t)INT32_MAX)
    return cnf_error_set(CNF_ERR_ARG, "train: %llu training events: at most 2^31 - 1",
                         (unsigned long long)tr->n_global);
  const int N = (int)tr->n_global;
  const int64_t steps = N / B;
  if (steps < 1)
    return cnf_error_set(CNF_ERR_ARG, "train: %d training events, fewer than one batch of %d", N,
                         B);
  train_state st;
  memset(&st, 0, sizeof st);
  st.best_epoch = -1;
  st.best_score = INFINITY;
  cnf_schedule_conf sconf = conf->train.schedule;
  schedule_fill_lengths(&sconf, steps, E, conf->cosine_cycle_epochs);
  CNF_CALL(cnf_schedule_init(&st.sched, &sconf));
  cnf_adam adam;
  CNF_CALL(cnf_adam_init(&adam, np, &conf->train.adam));
  loop_work w = {0};
  int rc = 0;
  w.xb = cnf_malloc(sizeof(cnf_real) * (size_t)B * D);
  w.cb = cnf_malloc(sizeof(cnf_real) * (size_t)B * (C ? C : 1));
  w.w = cnf_malloc(sizeof(cnf_real) * (size_t)B);
  w.gb = cnf_malloc(sizeof(uint64_t) * (size_t)B);
  w.best = cnf_malloc(sizeof(cnf_real) * (np ? np : 1));
  w.comm = comm;
  w.rank = rank;
  w.size = size;
  w.bounds = cnf_malloc(sizeof(uint64_t) * (size_t)(size + 1));
  w.owner = cnf_malloc(sizeof(int) * (size_t)B);
  w.counts = cnf_malloc(sizeof(int) * 4 * (size_t)size);
  w.quota = cnf_malloc(sizeof(int) * (size_t)size);
  w.held = cnf_malloc(sizeof(int) * (size_t)size);
  w.seen = cnf_malloc(sizeof(int) * (size_t)size);
  w.sendbuf = cnf_malloc(sizeof(cnf_real) * (size_t)B * (D + C));
  w.recvbuf = cnf_malloc(sizeof(cnf_real) * (size_t)B * (D + C));
  w.hist = cnf_calloc((size_t)E * TRAIN_HIST_COLS, sizeof(double));
  if (prep->noise > 0)
    w.xv = cnf_malloc(sizeof(cnf_real) * (size_t)(va->n ? va->n : 1) * D);
  if (!w.bounds || !w.owner || !w.counts || !w.quota || !w.held || !w.seen || !w.sendbuf ||
      !w.recvbuf || !w.xb || !w.cb || !w.w || !w.gb || !w.best || !w.hist ||
      (prep->noise > 0 && !w.xv))
    rc = CNF_ERR_NOMEM;
  for (int r = 0; rc == 0 && r < size; r++) { /* each rank's share of every global batch */
    uint64_t f0, cnt;
    cnf_partition((uint64_t)B, size, r, &f0, &cnt);
    w.quota[r] = (int)cnt;
  }
  if (rc == 0) { /* Adam touches only the entries that can have gradients (not masked) */
    size_t n_ranges = 0, *ranges = NULL;
    rc = cnf_flow_live_ranges(f, &n_ranges, &ranges);
    if (rc == 0)
      rc = cnf_adam_set_ranges(&adam, n_ranges, ranges);
    free(ranges);
  }
  CNF_CALL_GOTO(rc, out, train_sync(comm, rc));
  /* the shard bounds of every rank: the batch-balancing plan needs them */
  if (MPI_Allgather(&tr->global_first, 1, MPI_UINT64_T, w.bounds, 1, MPI_UINT64_T, comm) !=
      MPI_SUCCESS) {
    rc = cnf_error_set(CNF_ERR_MPI, "train: MPI_Allgather of the shard bounds failed");
    goto out;
  }
  w.bounds[size] = tr->n_global;
  st.hist = w.hist;
  for (int i = 0; i < B; i++)
    w.w[i] = (cnf_real)(1.0 / B);
  const cnf_real *xv = va->x;
  if (w.xv) {
    memcpy(w.xv, va->x, sizeof(cnf_real) * (size_t)va->n * D);
    add_noise(prep, seed, SUB_VAL_NOISE, va->n, NULL, va->global_first, D, w.xv);
    xv = w.xv;
  }
  CNF_CALL_GOTO(rc, out, cnf_flow_reserve(f, B));

  /* fresh start, then the checkpoint (if any) overwrites everything it holds */
  CNF_CALL_GOTO(rc, out, cnf_flow_init_params(f, seed, conf->identity_init));
  CNF_CALL_GOTO(rc, out, data_init_first_batch(comm, f, tr, prep, seed, B, &w));
  memcpy(w.best, cnf_flow_params(f), sizeof(cnf_real) * np);
  if (conf->resume) {
    rc = resume_from_checkpoint(comm, io, f, &adam, &w, &st, E);
    if (rc < 0)
      goto out;
    if (rc == 0)
      group_log(comm, "member %d: resumed from %s at epoch %d step %lld%s", io->member,
                io->ckpt_path, st.epoch + 1, (long long)st.step_in_epoch,
                st.complete ? " (training already complete)" : "");
    rc = 0;
  }

  double t_epochs = 0;
  int epochs_timed = 0;
  while (!st.complete && st.epoch < E) {
    const int epoch = st.epoch;
    cnf_perm perm; /* the epoch's order of the global index set, the same on every rank */
    cnf_perm_init(&perm, (uint64_t)N, seed, (uint64_t)epoch, SUB_SHUFFLE);
    const double t0 = cnf_time_now();
    const int64_t s_first = st.step_in_epoch;
    double t_allreduce = 0, t_status = 0;
    double lr = 0;
    for (int64_t s = s_first; s < steps; s++) {
      int m = 0;
      CNF_CALL_GOTO(rc, out, gather_batch(tr, prep, seed, epoch, &perm, s * B, B, &w, &m));
      lr = cnf_schedule_lr(&st.sched, st.global_step);
      adam.conf.beta1 = cnf_schedule_beta1(&st.sched, st.global_step, conf->train.adam.beta1);
      cnf_flow_zero_grads(f);
      double loss = 0;
      int lrc = cnf_flow_nll_backward(f, m, w.xb, C > 0 ? w.cb : NULL, w.w, &loss, NULL, NULL);
      if (lrc == 0) { /* testing aid (CNFLOW_FAULT): a failure or a NaN loss on one rank */
        const int frc = cnf_fault(CNF_FAULT_TRAIN_STEP, "train step");
        if (frc == CNF_FAULT_NAN)
          loss = NAN;
        else if (frc < 0)
          lrc = frc;
      }
      int stop = cnf_train_stop_requested() ||
                 (conf->interrupt_at_step >= 0 && st.global_step == conf->interrupt_at_step);
      double flags[3] = {lrc < 0 ? 0 : loss, stop ? 1 : 0, lrc < 0 ? 1 : 0};
      const double t_st = cnf_time_now();
      int src = MPI_Allreduce(MPI_IN_PLACE, flags, 3, MPI_DOUBLE, MPI_SUM, comm);
      t_status += cnf_time_now() - t_st; /* mostly waiting for the slowest rank's backward */
      if (src != MPI_SUCCESS) {
        rc = cnf_error_set(CNF_ERR_MPI, "train: MPI_Allreduce of the step status failed");
        goto out;
      }
      if (flags[2] > 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", lrc < 0 ? cnf_error_message() : "");
        rc = train_sync(comm, lrc < 0 ? cnf_error_set(lrc, "%s", msg) : 0);
        snprintf(msg, sizeof msg, "%s", cnf_error_message());
        rc = cnf_error_set(rc, "train: member %d epoch %d step %lld: %s (the last checkpoint, "
                           "if any, is kept: %s)", io->member, epoch + 1, (long long)s, msg,
                           io->ckpt_path);
        goto out;
      }
      /* the summed loss is NaN/Inf on every rank if on one: all stop here, before the step */
      if (!isfinite(flags[0])) {
        rc = cnf_error_set(CNF_ERR_NUMERIC, "train: member %d epoch %d step %lld: the batch loss "
                           "is not finite (%g); the last checkpoint, if any, is kept: %s",
                           io->member, epoch + 1, (long long)s, flags[0], io->ckpt_path);
        goto out;
      }
      if (flags[1] > 0) {
        st.step_in_epoch = s;
        st.seconds += cnf_time_now() - t0;
        CNF_CALL_GOTO(rc, out, root_checkpoint(comm, io, f, &adam, &w, &st));
        rc = cnf_error_set(CNF_ERR_INTERRUPTED, "train: interrupted at member %d epoch %d step "
                           "%lld: checkpoint %s written; continue with -resume", io->member,
                           epoch + 1, (long long)s, io->ckpt_path);
        goto out;
      }
      st.loss_sum += flags[0];
      const double t_ar = cnf_time_now();
      int arc = MPI_Allreduce(MPI_IN_PLACE, cnf_flow_grads(f), (int)np, MPI_CNF_REAL, MPI_SUM, comm);
      t_allreduce += cnf_time_now() - t_ar;
      if (arc != MPI_SUCCESS) {
        rc = cnf_error_set(CNF_ERR_MPI, "train: MPI_Allreduce of %zu gradients failed", np);
        goto out;
      }
      /* identical gradients everywhere: Adam fails (NaN/Inf) on every rank or on none */
      rc = cnf_adam_step(&adam, lr, cnf_flow_params(f), cnf_flow_grads(f), NULL);
      if (rc < 0) {
        rc = cnf_error_set(rc, "train: member %d epoch %d step %lld: %s (the last checkpoint, "
                           "if any, is kept: %s)", io->member, epoch + 1, (long long)s,
                           cnf_error_message(), io->ckpt_path);
        goto out;
      }
      CNF_CALL_GOTO(rc, out, cnf_flow_params_changed(f));
      cnf_watchdog_beat("a train step");
      if (conf->check_replicas)
        CNF_CALL_GOTO(rc, out, check_replicas(comm, f, io->member, epoch, s));
      st.global_step++;
    }
    const double dt_train = cnf_time_now() - t0;
    const double n_st = (double)(steps - s_first > 0 ? steps - s_first : 1);
    cnf_log_debug("train: member %d epoch %d: per step %.1f us, of which gradient allreduce "
                  "%.1f us and step-status allreduce (waiting for the slowest rank) %.1f us",
                  io->member, epoch + 1, 1e6 * dt_train / n_st, 1e6 * t_allreduce / n_st,
                  1e6 * t_status / n_st);
    double val = 0;
    cnf_watchdog_beat("the validation");
    if (conf->val_metric == CNF_VAL_W1) {
      uint64_t wseed = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1));
      rc = val_w1(comm, f, va, xv, prep, wseed, &val);
    } else {
      rc = cnf_train_mean_nll(f, comm, va->n, xv, C > 0 ? va->c : NULL, &val);
    }
    if (rc < 0) {
      rc = cnf_error_set(rc, "train: member %d epoch %d validation: %s", io->member, epoch + 1,
                         cnf_error_message());
      goto out;
    }
    const int early_stop = cnf_schedule_epoch_end(&st.sched, val);
    const int improved = st.sched.improved;
    if (improved) {
      memcpy(w.best, cnf_flow_params(f), sizeof(cnf_real) * np);
      st.best_epoch = epoch;
      st.best_score = val;
    }
    const double dt = cnf_time_now() - t0;
    const double train_nll = st.loss_sum / (double)(steps - 0);
    st.seconds += dt;
    double *h = st.hist + (size_t)st.n_hist * TRAIN_HIST_COLS;
    h[0] = epoch + 1;
    h[1] = train_nll;
    h[2] = val;
    h[3] = lr;
    h[4] = st.seconds;
    st.n_hist++;
    t_epochs += dt;
    epochs_timed++;
    const double eta = (E - epoch - 1) * (t_epochs / epochs_timed);
    group_log(comm, "member %d epoch %3d/%d  train NLL %9.4f  val %s %9.4f  lr %.2e  %9.0f "
              "events/s  ETA %.0f s%s", io->member, epoch + 1, E, train_nll, metric, val, lr,
              (double)(steps - s_first) * B / (dt_train > 0 ? dt_train : 1e-9), eta,
              improved ? "  *" : "");
    st.epoch = epoch + 1;
    st.step_in_epoch = 0;
    st.loss_sum = 0;
    if (early_stop) {
      group_log(comm, "member %d: early stopping after epoch %d (best epoch %d)", io->member,
                epoch + 1, st.best_epoch + 1);
      st.complete = 1;
    }
    if (st.epoch >= E)
      st.complete = 1;
    const int want = st.complete ||
                     (conf->checkpoint_every > 0 && st.epoch % conf->checkpoint_every == 0);
    if (want)
      CNF_CALL_GOTO(rc, out, root_checkpoint(comm, io, f, &adam, &w, &st));
  }
  if (st.best_epoch < 0) {
    rc = cnf_error_set(CNF_ERR_NUMERIC, "train: member %d: no epoch gave a finite validation "
                       "%s", io->member, metric);
    goto out;
  }
  CNF_CALL_GOTO(rc, out, save_model(comm, conf, io, f, &w, &st));
  if (res) {
    memset(res, 0, sizeof *res);
    res->member = io->member;
    res->seed = seed;
    res->epochs_run = st.n_hist;
    res->best_epoch = st.best_epoch;
    res->best_score = st.best_score;
    res->seconds = cnf_time_now() - t_start;
    res->events_per_s = st.seconds > 0 ? (double)st.global_step * B / st.seconds : 0;
  }
out:
  cnf_adam_free(&adam);
  loop_work_free(&w);
  return rc;
}
