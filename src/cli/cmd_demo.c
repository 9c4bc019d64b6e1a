/* `cnflow demo`: train the "toy" flow on the built-in conditional toy density (stats.h), data
 * parallel over all ranks, and compare its held-out NLL with the exact NLL of the closed-form
 * density (the best any model can do on average: the gap is the flow's KL excess).
 *   data -> flow (preset "toy", random init) -> cnf_train_basic -> held-out NLL vs truth -> save
 */
#include "cli.h"
#include "cnflow/flow.h"
#include "cnflow/stats.h"
#include "cnflow/train.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef struct demo_opts {
  int train_events, val_events, epochs, batch;
  double lr;
  int64_t seed;
  char out[1024];
} demo_opts;

static int demo_read_options(demo_opts *o) {
  CNF_CALL(cli_get_int("demo_train_events", 40000, "training events (all ranks)", &o->train_events));
  CNF_CALL(cli_get_int("demo_val_events", 10000,
                       "validation events (model selection) = held-out test events", &o->val_events));
  CNF_CALL(cli_get_int("demo_epochs", 12, "epochs", &o->epochs));
  CNF_CALL(cli_get_int("demo_batch", 512, "global batch size (split over ranks)", &o->batch));
  CNF_CALL(cli_get_real("demo_lr", 3e-3, "peak Adam learning rate (cosine decay to 0)", &o->lr));
  CNF_CALL(cli_get_int64("demo_seed", 1, "seed of data, initialisation and shuffling", &o->seed));
  CNF_CALL(cli_get_string("demo_out", "", "save the trained model to this HDF5 file", o->out,
                          sizeof o->out));
  if (o->train_events < 1 || o->val_events < 1 || o->epochs < 1 || o->batch < 1 || !(o->lr > 0))
    return cnf_error_set(CNF_ERR_ARG, "demo: events, epochs, batch and lr must be positive");
  return 0;
}

/* This rank's block of a set of `total` events starting at global index `base`:
 * c (count, 1), x (count, 2) from the counter-based toy sampler (rank-count independent). */
typedef struct toy_shard {
  int n;
  cnf_real *x, *c;
} toy_shard;

static int toy_shard_make(uint64_t seed, uint64_t base, int total, int size, int rank,
                          toy_shard *s) {
  uint64_t first, count;
  cnf_partition((uint64_t)total, size, rank, &first, &count);
  s->n = (int)count;
  s->x = cnf_malloc(sizeof(cnf_real) * CNF_TOY_DIM * (count ? count : 1));
  s->c = cnf_malloc(sizeof(cnf_real) * CNF_TOY_COND_DIM * (count ? count : 1));
  if (!s->x || !s->c)
    return CNF_ERR_NOMEM;
  cnf_toy_sample(seed, base + first, s->n, s->x, s->c);
  return 0;
}

static void toy_shard_free(toy_shard *s) {
  free(s->x);
  free(s->c);
}

/* Mean of -log p_true over all ranks' events of the shard. */
static int toy_true_nll(const toy_shard *s, double *nll) {
  double acc[2] = {0.0, (double)s->n};
  for (int i = 0; i < s->n; i++) {
    double x[2] = {s->x[2 * i], s->x[2 * i + 1]};
    acc[0] -= cnf_toy_log_prob(x, s->c[i]);
  }
  if (MPI_Allreduce(MPI_IN_PLACE, acc, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "demo: MPI_Allreduce of the true NLL failed");
  *nll = acc[0] / acc[1];
  return 0;
}

static int demo_run(const demo_opts *o, int size, int rank) {
  const uint64_t seed = (uint64_t)o->seed;
  toy_shard tr = {0}, va = {0}, te = {0};
  cnf_flow *f = NULL;
  int rc;
  /* disjoint global index ranges: train | validation | held-out test */
  CNF_CALL_GOTO(rc, out, toy_shard_make(seed, 0, o->train_events, size, rank, &tr));
  CNF_CALL_GOTO(rc, out, toy_shard_make(seed, (uint64_t)o->train_events, o->val_events, size,
                                        rank, &va));
  CNF_CALL_GOTO(rc, out, toy_shard_make(seed, (uint64_t)o->train_events + o->val_events,
                                        o->val_events, size, rank, &te));
  CNF_CALL_GOTO(rc, out, cnf_flow_create_preset("toy", 0, 0, seed, &f));
  CNF_CALL_GOTO(rc, out, cnf_flow_init_params(f, seed, 0));
  cnf_log_info("demo: toy flow (%zu parameters), %d train / %d validation / %d held-out events "
               "on %d rank(s), batch %d, %d epochs", cnf_flow_num_params(f), o->train_events,
               o->val_events, o->val_events, size, o->batch, o->epochs);

  cnf_train_conf conf = cnf_train_conf_default();
  conf.epochs = o->epochs;
  conf.batch = o->batch;
  conf.seed = seed;
  conf.schedule.lr = o->lr;
  cnf_train_result res;
  CNF_CALL_GOTO(rc, out, cnf_train_basic(f, MPI_COMM_WORLD, tr.n, tr.x, tr.c, va.n, va.x, va.c,
                                         &conf, &res));
  double nll_flow = 0, nll_true = 0;
  CNF_CALL_GOTO(rc, out, cnf_train_mean_nll(f, MPI_COMM_WORLD, te.n, te.x, te.c, &nll_flow));
  CNF_CALL_GOTO(rc, out, toy_true_nll(&te, &nll_true));
  cnf_log_info("demo: best epoch %d (val NLL %.4f), %.1f s, %.0f training events/s",
               res.best_epoch + 1, res.best_val_nll, res.seconds, res.events_per_s);
  cnf_log_info("held-out NLL, flow       : %.4f nats", nll_flow);
  cnf_log_info("held-out NLL, true density: %.4f nats (closed form)", nll_true);
  cnf_log_info("difference (flow - true)  : %+.4f nats", nll_flow - nll_true);
  if (o->out[0]) {
    rc = 0;
    if (rank == 0) {
      cnf_model_provenance prov = {.seed = seed, .epoch = res.best_epoch,
                                   .val_score = res.best_val_nll};
      snprintf(prov.options, sizeof prov.options,
               "demo -demo_train_events %d -demo_val_events %d -demo_epochs %d -demo_batch %d "
               "-demo_lr %g -demo_seed %lld", o->train_events, o->val_events, o->epochs,
               o->batch, o->lr, (long long)o->seed);
      snprintf(prov.git_rev, sizeof prov.git_rev, "%s", cnf_git_rev());
      rc = cnf_flow_save(f, o->out, &prov);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc < 0) {
      if (rank != 0)
        cnf_error_set(rc, "demo: saving the model failed on rank 0");
      goto out;
    }
    cnf_log_info("demo: model saved to %s", o->out);
  }
out:
  cnf_flow_free(&f);
  toy_shard_free(&tr);
  toy_shard_free(&va);
  toy_shard_free(&te);
  return rc;
}

int cmd_demo(int argc, char **argv) {
  demo_opts o;
  cli_help_header("cnflow demo [options]",
                  "Train the 'toy' flow on a 2-D Gaussian mixture whose modes move with c, data\n"
                  "parallel over the MPI ranks; print the held-out NLL next to the exact NLL.");
  CNF_CALL(demo_read_options(&o));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return demo_run(&o, size, rank);
}
