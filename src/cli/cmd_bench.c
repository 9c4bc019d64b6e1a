/* `cnflow bench`: events/s of the flow engine on the three reference architectures, one BLAS
 * thread, next to the PyTorch peer (shared/bench/bench_torch.py, run in the same invocation
 * because the machine's speed drifts) and the dense-GEMM compute bound.
 *   A = preset "cnf_peer", B = "paraflow", C = "flowi" (the peer's configurations A, B, C)
 *   per model: training steps (log-prob + backward + Adam) at each batch, log-prob at
 *   -bench_logprob_batch, sampling at the peer's sampling batch (A 10000, B 1000, C 10000) or
 *   -bench_sample_batch;
 *   then the peer for the same items; then ratios against the targets.
 * Bound: peak single-thread sgemm GFLOP/s (1024^3) divided by the GEMM FLOPs per event of the
 * dense layers (masked zeros included, as torch_flows.forward_gemm_flops): one density pass for
 * log-prob, three (forward, data and weight gradients) for training, and for sampling the
 * peer's sliced inversion (D passes per block of the hidden layers plus P output rows).
 */
#include "cli.h"
#include "cnflow/flow.h"
#include "cnflow/optim.h"

#include <cblas.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_BATCHES 8
#define BENCH_MAX_ITEMS 64

typedef struct bench_model {
  char key;              /* 'A', 'B', 'C', 'D' */
  const char *preset;
  int sample_batch;      /* the peer's sampling batch */
  int D, C;              /* 0: the preset's */
  int has_peer;          /* the PyTorch peer has this configuration */
} bench_model;

/* D = the CaloINN coupling flow on ParaFlow's 128-crystal images with its 3 conditions: the
 * fast sampler the study set against MAF sampling (model B); the peer has no coupling flow. */
static const bench_model bench_models[] = {{'A', "cnf_peer", 10000, 0, 0, 1},
                                           {'B', "paraflow", 1000, 0, 0, 1},
                                           {'C', "flowi", 10000, 0, 0, 1},
                                           {'D', "caloinn", 1000, 128, 3, 0}};

/* One measured item (ours, and the peer's figure when it ran). */
typedef struct bench_item {
  char model;
  const char *kind;      /* "train", "logprob", "sample" */
  int batch;
  double eps, eps_min, eps_max; /* events/s: median, min, max over the repetitions */
  int reps, n_iter;
  double peer_eps;       /* 0 if not measured */
  double bound_eps;      /* dense-GEMM bound, 0 if no sgemm figure */
} bench_item;

typedef struct bench_opts {
  char models[64];
  int batches[BENCH_MAX_BATCHES], n_batches;
  int logprob_batch, sample_batch;
  double seconds;
  int peer, sgemm;
  char peer_dir[1024], python[256], out[1024];
} bench_opts;

/* ---- options --------------------------------------------------------------------------------- */
static int bench_read_options(bench_opts *o) {
  char batches[128];
  const char *env_peer = getenv("CNFLOW_PEER_DIR");
  char def_peer[1024];
  snprintf(def_peer, sizeof def_peer, "%s", env_peer ? env_peer : CNFLOW_SOURCE_DIR "/../shared/bench");
  CNF_CALL(cli_get_string("bench_models", "A,B,C,D", "models: A (cnf_peer), B (paraflow), C (flowi), D (caloinn, 128-D images)",
                          o->models, sizeof o->models));
  CNF_CALL(cli_get_string("bench_batches", "256,1024,4096", "training batch sizes", batches,
                          sizeof batches));
  CNF_CALL(cli_get_int("bench_logprob_batch", 10000, "log-prob batch size", &o->logprob_batch));
  CNF_CALL(cli_get_int("bench_sample_batch", 0,
                       "sampling batch size (0: the peer's, A 10000, B 1000, C 10000)",
                       &o->sample_batch));
  CNF_CALL(cli_get_real("bench_seconds", 2.0, "timed seconds per measurement (median of reps)",
                        &o->seconds));
  CNF_CALL(cli_get_bool("bench_peer", 1, "also run the PyTorch peer (bench_torch.py)", &o->peer));
  CNF_CALL(cli_get_bool("bench_sgemm", 1, "measure the sgemm peak and the GEMM bound", &o->sgemm));
  CNF_CALL(cli_get_string("bench_peer_dir", def_peer, "directory of bench_torch.py ($CNFLOW_PEER_DIR)",
                          o->peer_dir, sizeof o->peer_dir));
  CNF_CALL(cli_get_string("bench_python", "/usr/bin/python3", "python with torch for the peer",
                          o->python, sizeof o->python));
  CNF_CALL(cli_get_string("bench_out", "", "write the results as JSON to this file", o->out,
                          sizeof o->out));
  o->n_batches = cnf_parse_int_list(batches, o->batches, BENCH_MAX_BATCHES);
  if (o->n_batches < 1)
    return cnf_error_set(CNF_ERR_ARG, "-bench_batches: expected a comma list of up to %d sizes, "
                         "got '%s'", BENCH_MAX_BATCHES, batches);
  for (int i = 0; i < o->n_batches; i++)
    if (o->batches[i] < 1)
      return cnf_error_set(CNF_ERR_ARG, "-bench_batches: sizes must be positive");
  if (o->logprob_batch < 1 || o->sample_batch < 0 || !(o->seconds > 0))
    return cnf_error_set(CNF_ERR_ARG, "-bench_logprob_batch, -bench_sample_batch and "
                         "-bench_seconds must be positive");
  for (const char *p = o->models; *p; p++)
    if (*p != ',' && (*p < 'A' || *p > 'D'))
      return cnf_error_set(CNF_ERR_ARG, "-bench_models: expected letters A, B, C, D, got '%s'",
                           o->models);
  return 0;
}

/* ---- timing: warm up, choose n_iter, median over repetitions ------------------------------- */
typedef int (*bench_fn)(void *ctx);

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Runs fn until `seconds` are spent in >= 3 timed repetitions of n_iter calls each (after a
 * warm-up of >= 1 call and >= 10% of the budget); fills the item's rate statistics. */
static int bench_measure(bench_fn fn, void *ctx, int events_per_call, double seconds,
                         bench_item *it) {
  enum { MAX_REPS = 7 };
  double t0 = cnf_time_now();
  CNF_CALL(fn(ctx));
  int nw = 1;
  while (cnf_time_now() - t0 < 0.1 * seconds && nw < 1000) {
    CNF_CALL(fn(ctx));
    nw++;
  }
  double t_single = (cnf_time_now() - t0) / nw;
  int reps = MAX_REPS;
  if (t_single * reps > seconds)
    reps = 3; /* heavy calls: fewer, single-call repetitions */
  long n_iter = (long)(seconds / reps / t_single);
  if (n_iter < 1)
    n_iter = 1;
  double rates[MAX_REPS];
  for (int r = 0; r < reps; r++) {
    double s = cnf_time_now();
    for (long i = 0; i < n_iter; i++)
      CNF_CALL(fn(ctx));
    rates[r] = (double)events_per_call * n_iter / (cnf_time_now() - s);
  }
  qsort(rates, reps, sizeof(double), cmp_double);
  it->eps = reps % 2 ? rates[reps / 2] : 0.5 * (rates[reps / 2 - 1] + rates[reps / 2]);
  it->eps_min = rates[0];
  it->eps_max = rates[reps - 1];
  it->reps = reps;
  it->n_iter = (int)n_iter;
  return 0;
}

/* ---- the measured operations ---------------------------------------------------------------- */
typedef struct bench_ctx {
  cnf_flow *f;
  cnf_adam adam;
  int n;
  cnf_real *x, *c, *out; /* (n, D), (n, C), (n) or (n, D) */
  uint64_t sample_index;
  long restarts; /* training restarts after an overflowing log p (bench_train_step) */
} bench_ctx;

/* The peer's protocol: Adam at lr 1e-3 on one fixed batch.  With the unbounded exp scale of
 * cnf_peer that overfits until some log p overflows after a few hundred steps (the peer then
 * carries NaN on); here such a step restarts training from the initial parameters, counted in
 * the report, so that long measurements time training rather than stop. */
static int bench_train_step(void *p) {
  bench_ctx *b = p;
  double loss;
  cnf_flow_zero_grads(b->f);
  int rc = cnf_flow_nll_backward(b->f, b->n, b->x, b->c, NULL, &loss, NULL, NULL);
  if (rc == CNF_ERR_NUMERIC) {
    b->restarts++;
    cnf_error_clear();
    CNF_CALL(cnf_flow_init_params(b->f, 1, 0));
    cnf_adam_reset(&b->adam);
    return 0;
  }
  CNF_CALL(rc);
  CNF_CALL(cnf_adam_step(&b->adam, 1e-3, cnf_flow_params(b->f), cnf_flow_grads(b->f), NULL));
  return cnf_flow_params_changed(b->f);
}

static int bench_logprob(void *p) {
  bench_ctx *b = p;
  return cnf_flow_log_prob(b->f, b->n, b->x, b->c, b->out);
}

static int bench_sample(void *p) {
  bench_ctx *b = p;
  int rc = cnf_flow_sample(b->f, b->n, b->c, 3, b->sample_index, b->out, NULL);
  b->sample_index += (uint64_t)b->n;
  return rc;
}

/* Inputs with the peer's make_data distributions (values matter only through the spline bins
 * and tails): A x = 0.98 tanh(N), c = N;  B x = 1.2 N, c = N;  C x = 3 N, c = 2 U(0,1). */
static void bench_make_data(char key, int n, int D, int C, cnf_real *x, cnf_real *c) {
  for (int i = 0; i < n; i++) {
    cnf_rng r;
    cnf_rng_init(&r, 1, (uint64_t)i, 0);
    for (int j = 0; j < D; j++) {
      double z = cnf_rng_normal(&r);
      x[(size_t)i * D + j] = (cnf_real)(key == 'A' ? 0.98 * tanh(z) : (key == 'B' || key == 'D') ? 1.2 * z : 3.0 * z);
    }
    for (int j = 0; j < C; j++)
      c[(size_t)i * C + j] = (cnf_real)(key == 'C' ? 2.0 * cnf_rng_uniform(&r) : cnf_rng_normal(&r));
  }
}

/* GEMM FLOPs per event of one density pass (dense layers, masked zeros included) and of the
 * peer's sliced inversion. */
static void bench_gemm_flops(const cnf_flow *f, double *density, double *sampling) {
  const int D = cnf_flow_dim(f), C = cnf_flow_cond_dim(f);
  *density = *sampling = 0;
  for (int k = 0; k < cnf_flow_num_bijectors(f); k++) {
    const cnf_bijector *b = cnf_flow_bijector(f, k);
    if (b->spec.kind == CNF_BIJ_COUPLING_RQS) {
      /* subnet [x1 (ceil(D/2)), c] -> H ... -> x2 (floor(D/2)) x (3K - 1); one pass both ways */
      const double H = b->spec.hidden, L = b->spec.n_hidden, P = 3 * b->spec.bins - 1;
      const double d1 = (D + 1) / 2, d2 = D / 2;
      const double pass = 2 * ((d1 + C) * H + (L - 1) * H * H + H * d2 * P);
      *density += pass;
      *sampling += pass;
      continue;
    }
    if (b->spec.kind != CNF_BIJ_MAF_AFFINE && b->spec.kind != CNF_BIJ_MAF_RQS)
      continue;
    const double H = b->spec.hidden, L = b->spec.n_hidden;
    const double P = b->spec.kind == CNF_BIJ_MAF_AFFINE ? 2 : 3 * b->spec.bins - 1;
    const double hidden = (D + C) * H + (L - 1) * H * H;
    *density += 2 * (hidden + H * D * P);
    *sampling += 2 * D * (hidden + H * P);
  }
}

/* Peak single-thread sgemm (1024^3, NN) GFLOP/s: median of 5 repetitions. */
static double bench_sgemm_peak(double seconds) {
  const int n = 1024;
  float *a = cnf_aligned_alloc(sizeof(float) * n * n), *b = cnf_aligned_alloc(sizeof(float) * n * n),
        *c = cnf_aligned_alloc(sizeof(float) * n * n);
  if (!a || !b || !c) {
    free(a);
    free(b);
    free(c);
    return 0;
  }
  for (int i = 0; i < n * n; i++) {
    a[i] = (float)((i * 7 % 13) - 6) / 6.0f;
    b[i] = (float)((i * 5 % 11) - 5) / 5.0f;
  }
  double rates[5];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  for (int r = 0; r < 5; r++) {
    double t = cnf_time_now();
    int calls = 0;
    do {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
      calls++;
    } while (cnf_time_now() - t < seconds / 5);
    rates[r] = 2.0 * n * n * (double)n * calls / (cnf_time_now() - t) / 1e9;
  }
  free(a);
  free(b);
  free(c);
  qsort(rates, 5, sizeof(double), cmp_double);
  return rates[2];
}

typedef struct bench_plan {
  const char *kind;
  bench_fn fn;
  int batch;
  double flops; /* GEMM FLOPs per event (the bound's denominator) */
} bench_plan;

/* Our items for one model, appended to items[*n_items]. */
static int bench_model_ours(const bench_model *m, const bench_opts *o, double sgemm_gflops,
                            bench_item *items, int *n_items) {
  bench_ctx b = {0};
  int rc;
  CNF_CALL(cnf_flow_create_preset(m->preset, m->D, m->C, 1, &b.f));
  const int D = cnf_flow_dim(b.f), C = cnf_flow_cond_dim(b.f);
  const int sample_batch = o->sample_batch > 0 ? o->sample_batch : m->sample_batch;
  int nmax = o->logprob_batch > sample_batch ? o->logprob_batch : sample_batch;
  for (int i = 0; i < o->n_batches; i++)
    nmax = o->batches[i] > nmax ? o->batches[i] : nmax;
  cnf_adam_conf ac = cnf_adam_conf_default();
  b.x = cnf_malloc(sizeof(cnf_real) * (size_t)nmax * D);
  b.c = cnf_malloc(sizeof(cnf_real) * (size_t)nmax * (C > 0 ? C : 1));
  b.out = cnf_malloc(sizeof(cnf_real) * (size_t)nmax * D);
  if (!b.x || !b.c || !b.out) {
    rc = CNF_ERR_NOMEM;
    goto out;
  }
  CNF_CALL_GOTO(rc, out, cnf_flow_init_params(b.f, 1, 0));
  CNF_CALL_GOTO(rc, out, cnf_adam_init(&b.adam, cnf_flow_num_params(b.f), &ac));
  bench_make_data(m->key, nmax, D, C, b.x, b.c);
  double fl_density, fl_sample;
  bench_gemm_flops(b.f, &fl_density, &fl_sample);
  const double peak = sgemm_gflops * 1e9;
  cnf_log_info("bench %c (%s): D=%d C=%d, %zu parameters, %.3g GEMM FLOP/event per density pass",
               m->key, m->preset, D, C, cnf_flow_num_params(b.f), fl_density);

  bench_plan plan[BENCH_MAX_BATCHES + 2];
  int n_plan = 0;
  for (int i = 0; i < o->n_batches; i++)
    plan[n_plan++] = (bench_plan){"train", bench_train_step, o->batches[i], 3 * fl_density};
  plan[n_plan++] = (bench_plan){"logprob", bench_logprob, o->logprob_batch, fl_density};
  plan[n_plan++] = (bench_plan){"sample", bench_sample, sample_batch, fl_sample};
  for (int p = 0; p < n_plan; p++) {
    if (*n_items >= BENCH_MAX_ITEMS)
      break;
    bench_item *it = &items[(*n_items)++];
    *it = (bench_item){.model = m->key, .kind = plan[p].kind, .batch = plan[p].batch};
    b.n = plan[p].batch;
    /* training from the same initial state for every batch size */
    CNF_CALL_GOTO(rc, out, cnf_flow_init_params(b.f, 1, 0));
    cnf_adam_reset(&b.adam);
    CNF_CALL_GOTO(rc, out, cnf_flow_reserve(b.f, b.n));
    CNF_CALL_GOTO(rc, out, bench_measure(plan[p].fn, &b, b.n, o->seconds, it));
    it->bound_eps = peak > 0 ? peak / plan[p].flops : 0;
    cnf_log_info("  %c %-8s batch %6d  %12.1f events/s  [min %.1f, max %.1f, %d x %d calls]",
                 m->key, it->kind, it->batch, it->eps, it->eps_min, it->eps_max, it->reps,
                 it->n_iter);
    if (b.restarts > 0)
      cnf_log_info("    (%ld restart(s) from the initial parameters after log p overflowed)",
                   b.restarts);
    b.restarts = 0;
  }
  rc = 0;
out:
  cnf_adam_free(&b.adam);
  cnf_flow_free(&b.f);
  free(b.x);
  free(b.c);
  free(b.out);
  return rc;
}

/* The peer for one model's items: bench_torch.py --only M:KIND:BATCH,..., results read back
 * through a python one-liner (model kind batch events_per_s per line).  A failure of the peer
 * is a warning: our figures stand on their own. */
static void bench_model_peer(char key, const bench_opts *o, bench_item *items, int n_items) {
  char only[1024] = "", tmp_json[256], tmp_log[256], cmd[4096];
  for (int i = 0; i < n_items; i++) {
    if (items[i].model != key)
      continue;
    const char *kind = strcmp(items[i].kind, "sample") == 0 ? "sample_sliced" : items[i].kind;
    size_t len = strlen(only);
    snprintf(only + len, sizeof only - len, "%s%c:%s:%d", len ? "," : "", key, kind, items[i].batch);
  }
  if (!only[0])
    return;
  snprintf(tmp_json, sizeof tmp_json, "/tmp/cnflow_bench_peer_%d_%c.json", (int)getpid(), key);
  snprintf(tmp_log, sizeof tmp_log, "/tmp/cnflow_bench_peer_%d_%c.log", (int)getpid(), key);
  snprintf(cmd, sizeof cmd,
           "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 '%s' '%s/bench_torch.py' --torch-threads 1 "
           "--only '%s' --out '%s' > '%s' 2>&1",
           o->python, o->peer_dir, only, tmp_json, tmp_log);
  cnf_log_info("  peer %c: %s/bench_torch.py --only %s", key, o->peer_dir, only);
  fflush(stdout);
  int st = system(cmd);
  if (st != 0) {
    cnf_log_warn("bench: the PyTorch peer failed (exit status %d); its log: %s", st, tmp_log);
    return;
  }
  snprintf(cmd, sizeof cmd,
           "'%s' -c 'import json,sys\nfor r in json.load(open(sys.argv[1]))[\"results\"]: "
           "print(r[\"model\"], r[\"kind\"], r[\"batch\"], r[\"events_per_s\"])' '%s'",
           o->python, tmp_json);
  FILE *p = popen(cmd, "r");
  if (!p) {
    cnf_log_warn("bench: cannot read the peer's results %s", tmp_json);
    return;
  }
  char model[8], kind[32];
  int batch;
  double eps;
  while (fscanf(p, "%7s %31s %d %lf", model, kind, &batch, &eps) == 4) {
    const char *k = strcmp(kind, "sample_sliced") == 0 ? "sample" : kind;
    for (int i = 0; i < n_items; i++)
      if (items[i].model == model[0] && items[i].batch == batch && strcmp(items[i].kind, k) == 0) {
        items[i].peer_eps = eps;
        cnf_log_info("  peer %c %-8s batch %6d  %12.1f events/s", key, k, batch, eps);
      }
  }
  pclose(p);
  remove(tmp_json);
  remove(tmp_log);
}

/* ---- targets (issue): ours / peer ------------------------------------------------------------ */
typedef struct bench_target {
  char model;
  const char *kind;
  int batch; /* 0: the log-prob / sampling batch in use */
  double ratio;
} bench_target;

static const bench_target bench_targets[] = {
    {'A', "train", 1024, 2.0}, {'A', "logprob", 0, 1.5}, {'A', "sample", 0, 3.0},
    {'B', "train", 1024, 2.5}, {'B', "logprob", 0, 2.5}, {'B', "sample", 0, 10.0},
    {'C', "train", 1024, 4.0}, {'C', "logprob", 0, 5.0}};

static const bench_item *bench_find(const bench_item *items, int n, char model, const char *kind,
                                    int batch) {
  for (int i = 0; i < n; i++)
    if (items[i].model == model && strcmp(items[i].kind, kind) == 0 &&
        (batch == 0 || items[i].batch == batch))
      return &items[i];
  return NULL;
}

static void bench_print_table(const bench_item *items, int n, double sgemm) {
  printf("\ncnflow bench: 1 BLAS thread; sgemm peak %.1f GFLOP/s (1024^3); events/s, medians\n",
         sgemm);
  printf("%-5s %-8s %6s %13s %13s %8s %13s %7s\n", "model", "what", "batch", "cnflow", "peer",
         "ratio", "GEMM bound", "%bound");
  for (int i = 0; i < n; i++) {
    const bench_item *it = &items[i];
    char peer[32] = "-", ratio[32] = "-", bound[32] = "-", frac[32] = "-";
    if (it->peer_eps > 0) {
      snprintf(peer, sizeof peer, "%.1f", it->peer_eps);
      snprintf(ratio, sizeof ratio, "%.2fx", it->eps / it->peer_eps);
    }
    if (it->bound_eps > 0) {
      snprintf(bound, sizeof bound, "%.1f", it->bound_eps);
      snprintf(frac, sizeof frac, "%.0f%%", 100.0 * it->eps / it->bound_eps);
    }
    printf("%-5c %-8s %6d %13.1f %13s %8s %13s %7s\n", it->model, it->kind, it->batch, it->eps,
           peer, ratio, bound, frac);
  }
  /* the figure the calorimeter studies quote: time per generated shower on one core */
  for (int i = 0; i < n; i++)
    if (strcmp(items[i].kind, "sample") == 0 && (items[i].model == 'B' || items[i].model == 'D'))
      printf("sampling %c (%s): %.4f ms per shower (1 core, batch %d)\n", items[i].model,
             items[i].model == 'B' ? "ParaFlow MAF, 128-D" : "CaloINN coupling, 128-D",
             1e3 / items[i].eps, items[i].batch);
  printf("GEMM bound = sgemm peak / dense GEMM FLOPs per event (masked zeros included; training\n"
         "3 passes; sampling the peer's sliced inversion, which cnflow's sequential MADE beats by\n"
         "skipping masked blocks, so %%bound > 100%% is possible there)\n");
  printf("\ntargets (cnflow / peer, same run):\n");
  for (size_t t = 0; t < sizeof bench_targets / sizeof bench_targets[0]; t++) {
    const bench_target *g = &bench_targets[t];
    const bench_item *it = bench_find(items, n, g->model, g->kind, g->batch);
    if (!it)
      continue;
    if (it->peer_eps > 0)
      printf("  %c %-8s batch %6d  %7.2fx  (target >= %.1fx)  %s\n", g->model, g->kind,
             it->batch, it->eps / it->peer_eps, g->ratio,
             it->eps / it->peer_eps >= g->ratio ? "MET" : "NOT MET");
    else
      printf("  %c %-8s batch %6d  no peer figure (target >= %.1fx)\n", g->model, g->kind,
             it->batch, g->ratio);
  }
  fflush(stdout);
}

static int bench_write_json(const char *path, const bench_item *items, int n, double sgemm,
                            const bench_opts *o) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  char when[32];
  time_t now = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  FILE *fp = fopen(tmp, "w");
  if (!fp)
    return cnf_error_set(CNF_ERR_IO, "bench: cannot write %s", tmp);
  fprintf(fp, "{\"meta\": {\"finished\": \"%s\", \"cnflow_version\": \"%s\", \"git_rev\": \"%s\", \"real\": \"%s\", "
              "\"blas_threads\": 1, \"seconds_per_measurement\": %g, \"sgemm_gflops\": %.3f, "
              "\"peer\": %s},\n \"results\": [",
          when, CNFLOW_VERSION, cnf_git_rev(), CNF_REAL_IS_DOUBLE ? "double" : "float", o->seconds,
          sgemm, o->peer ? "true" : "false");
  for (int i = 0; i < n; i++) {
    const bench_item *it = &items[i];
    fprintf(fp, "%s\n  {\"model\": \"%c\", \"kind\": \"%s\", \"batch\": %d, \"events_per_s\": %.3f, "
                "\"min\": %.3f, \"max\": %.3f, \"reps\": %d, \"n_iter\": %d, "
                "\"peer_events_per_s\": %.3f, \"ratio\": %.4f, \"gemm_bound_events_per_s\": %.3f, "
                "\"fraction_of_bound\": %.4f}",
            i ? "," : "", it->model, it->kind, it->batch, it->eps, it->eps_min, it->eps_max,
            it->reps, it->n_iter, it->peer_eps, it->peer_eps > 0 ? it->eps / it->peer_eps : 0.0,
            it->bound_eps, it->bound_eps > 0 ? it->eps / it->bound_eps : 0.0);
  }
  fprintf(fp, "\n ],\n \"targets\": [");
  int first = 1;
  for (size_t t = 0; t < sizeof bench_targets / sizeof bench_targets[0]; t++) {
    const bench_target *g = &bench_targets[t];
    const bench_item *it = bench_find(items, n, g->model, g->kind, g->batch);
    if (!it)
      continue;
    double r = it->peer_eps > 0 ? it->eps / it->peer_eps : 0.0;
    fprintf(fp, "%s\n  {\"model\": \"%c\", \"kind\": \"%s\", \"batch\": %d, \"target\": %.2f, "
                "\"ratio\": %.4f, \"met\": %s}",
            first ? "" : ",", g->model, g->kind, it->batch, g->ratio, r,
            it->peer_eps > 0 ? (r >= g->ratio ? "true" : "false") : "null");
    first = 0;
  }
  fprintf(fp, "\n ]}\n");
  if (fclose(fp) != 0 || rename(tmp, path) != 0)
    return cnf_error_set(CNF_ERR_IO, "bench: cannot write %s", path);
  return 0;
}

static int bench_run(const bench_opts *o) {
  openblas_set_num_threads(1); /* the comparison is per core: one thread, as the peer */
  double sgemm = o->sgemm ? bench_sgemm_peak(o->seconds < 1 ? o->seconds : 1.0) : 0;
  if (o->sgemm)
    cnf_log_info("bench: sgemm peak %.1f GFLOP/s (1 thread, 1024^3)", sgemm);
  bench_item items[BENCH_MAX_ITEMS];
  int n_items = 0;
  for (size_t m = 0; m < sizeof bench_models / sizeof bench_models[0]; m++) {
    if (!strchr(o->models, bench_models[m].key))
      continue;
    int first = n_items;
    CNF_CALL(bench_model_ours(&bench_models[m], o, sgemm, items, &n_items));
    if (o->peer && bench_models[m].has_peer) /* right after ours: the machine drifts */
      bench_model_peer(bench_models[m].key, o, items + first, n_items - first);
  }
  bench_print_table(items, n_items, sgemm);
  if (o->out[0]) {
    CNF_CALL(bench_write_json(o->out, items, n_items, sgemm, o));
    cnf_log_info("bench: results written to %s", o->out);
  }
  return 0;
}

int cmd_bench(int argc, char **argv) {
  bench_opts o;
  cli_help_header("cnflow bench [options]",
                  "events/s of training steps, log-prob and sampling for the reference flows\n"
                  "(A cnf_peer, B paraflow, C flowi), 1 BLAS thread, next to the PyTorch peer\n"
                  "and the dense-GEMM bound.  Run it alone on a quiet machine.");
  CNF_CALL(bench_read_options(&o));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  int rank = 0, rc = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) /* a single-core benchmark: other ranks only wait */
    rc = bench_run(&o);
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rc < 0 && rank != 0)
    return cnf_error_set(rc, "bench failed on rank 0");
  return rc;
}
