/* `cnflow train` as a whole: ensemble groups, data, preprocessing, members, manifest.
 * K members are trained by G = min(K, ranks) groups of contiguous ranks (MPI_Comm_split);
 * group g trains members g, g + G, ... one after another, each data parallel over the group.
 * After every round of members the world shares its status, so a failure in one group ends
 * every group with the same one-line error. */
#include "train_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

void cnf_study_conf_default(cnf_study_conf *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->train_split, sizeof c->train_split, "train");
  snprintf(c->val_split, sizeof c->val_split, "val");
  snprintf(c->preset, sizeof c->preset, "cnf");
  snprintf(c->out_dir, sizeof c->out_dir, "train-out");
  snprintf(c->target_scale, sizeof c->target_scale, "1");
  c->logit_alpha = 1e-6;
  c->log_eps_mev = 1e-8;
  c->train = cnf_train_conf_default();
  c->seed = 1;
  c->ensemble = 1;
  c->checkpoint_every = 1;
  c->interrupt_at_step = -1;
}

/* ---- manifest ------------------------------------------------------------------------------- */
int cnf_ensemble_write(const char *path, const cnf_ensemble *e) {
  /* bound of what is written below: a header and one line per member (file name + numbers) */
  uint64_t need = 256;
  for (int k = 0; k < e->members; k++)
    need += strlen(e->path[k]) + 96;
  CNF_CALL(cnf_check_free_space(path, need));
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *fp = fopen(tmp, "w");
  if (!fp)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot write the ensemble manifest: %s", path,
                         strerror(errno));
  fprintf(fp, "# cnflow ensemble manifest: member files are relative to this file's directory\n");
  fprintf(fp, "format cnflow-ensemble 1\nmembers %d\nmetric %s\n", e->members, e->metric);
  for (int k = 0; k < e->members; k++) {
    const char *base = strrchr(e->path[k], '/');
    fprintf(fp, "member %d %s seed %llu best_epoch %d score %.17g\n", k,
            base ? base + 1 : e->path[k], (unsigned long long)e->seed[k], e->best_epoch[k],
            e->score[k]);
  }
  int bad = ferror(fp);
  bad |= fclose(fp) != 0;
  if (bad || rename(tmp, path) != 0) {
    remove(tmp);
    return cnf_error_set(CNF_ERR_IO, "%s: cannot write the ensemble manifest", path);
  }
  return 0;
}

int cnf_ensemble_read(const char *path, cnf_ensemble *e) {
  memset(e, 0, sizeof *e);
  FILE *fp = fopen(path, "r");
  if (!fp)
    return cnf_error_set(CNF_ERR_IO, "%s: cannot open the ensemble manifest: %s", path,
                         strerror(errno));
  char dir[1024] = ".";
  const char *slash = strrchr(path, '/');
  if (slash)
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  char line[2048];
  int version = 0, seen = 0, lineno = 0, rc = 0;
  e->members = -1;
  while (rc == 0 && fgets(line, sizeof line, fp)) {
    lineno++;
    if (line[0] == '#' || line[0] == '\n')
      continue;
    int k, be;
    unsigned long long sd;
    double sc;
    char file[1024];
    if (sscanf(line, "format cnflow-ensemble %d", &version) == 1)
      continue;
    if (sscanf(line, "members %d", &e->members) == 1) {
      if (e->members < 1 || e->members > 64)
        rc = cnf_error_set(CNF_ERR_FORMAT, "%s:%d: members %d outside [1, 64]", path, lineno,
                           e->members);
      continue;
    }
    if (sscanf(line, "metric %15s", e->metric) == 1)
      continue;
    if (sscanf(line, "member %d %1023s seed %llu best_epoch %d score %lf", &k, file, &sd, &be,
               &sc) == 5) {
      if (e->members < 1 || k < 0 || k >= e->members || e->path[k][0]) {
        rc = cnf_error_set(CNF_ERR_FORMAT, "%s:%d: member %d unexpected (members %d, or given "
                           "twice)", path, lineno, k, e->members);
        continue;
      }
      if (file[0] == '/')
        snprintf(e->path[k], sizeof e->path[k], "%s", file);
      else
        snprintf(e->path[k], sizeof e->path[k], "%s/%s", dir, file);
      e->seed[k] = sd;
      e->best_epoch[k] = be;
      e->score[k] = sc;
      seen++;
      continue;
    }
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s:%d: cannot parse '%.60s'", path, lineno, line);
  }
  fclose(fp);
  if (rc == 0 && version != 1)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: not a cnflow ensemble manifest (format line "
                       "missing)", path);
  if (rc == 0 && seen != e->members)
    rc = cnf_error_set(CNF_ERR_FORMAT, "%s: %d member lines for %d members", path, seen,
                       e->members);
  return rc;
}

/* ---- the study ------------------------------------------------------------------------------ */
static int check_conf(const cnf_study_conf *c, int world_size) {
  if (!c->train_file[0])
    return cnf_error_set(CNF_ERR_ARG, "train: no dataset file (-data FILE)");
  if (!c->target[0] || !c->cond[0])
    return cnf_error_set(CNF_ERR_ARG, "train: name the target and condition datasets (-target, "
                         "-cond)");
  if (c->ensemble < 1 || c->ensemble > 64)
    return cnf_error_set(CNF_ERR_ARG, "-ensemble %d must be in [1, 64]", c->ensemble);
  if (c->train.epochs < 1 || c->train.batch < 1)
    return cnf_error_set(CNF_ERR_ARG, "-epochs and -batch must be >= 1 (got %d, %d)",
                         c->train.epochs, c->train.batch);
  if (c->noise < 0 || !isfinite(c->noise))
    return cnf_error_set(CNF_ERR_ARG, "-noise %g must be >= 0", c->noise);
  if (!(c->logit_alpha > 0 && c->logit_alpha < 0.5))
    return cnf_error_set(CNF_ERR_ARG, "-logit_alpha %g must be in (0, 0.5)", c->logit_alpha);
  if (!(c->log_eps_mev > 0))
    return cnf_error_set(CNF_ERR_ARG, "-log_eps %g must be > 0", c->log_eps_mev);
  if (c->checkpoint_every < 0)
    return cnf_error_set(CNF_ERR_ARG, "-checkpoint_every %d must be >= 0", c->checkpoint_every);
  (void)world_size;
  return 0;
}

static int make_dir(const char *dir) { return cnf_mkdir_p(dir); }

/* Everything a checkpoint must agree with to be resumed bit-identically. */
static void fingerprint(const cnf_study_conf *c, const train_shard *tr, const train_shard *va,
                        const cnf_flow *f, int member, char *buf, size_t len) {
  const cnf_schedule_conf *s = &c->train.schedule;
  snprintf(buf, len,
           "data=%s|val=%s|splits=%s,%s|max=%lld,%lld|target=%s:%s|cond=%s:%s|prep=%s|"
           "scale=%s|noise=%.17g|alpha=%.17g|eps=%.17g|energy=%s|preset=%s|blocks=%d,%d,%d,%d|"
           "identity=%d|epochs=%d|batch=%d|lr=%.17g|sched=%d,%.17g,%.17g,%lld,%lld,%d,%.17g,"
           "%lld,%d,%.17g,%d,%.17g|adam=%.17g,%.17g,%.17g,%.17g,%.17g|metric=%d|seed=%llu|"
           "member=%d|n=%llu,%llu|params=%zu|cycle=%d",
           c->train_file, c->val_file, c->train_split, c->val_split,
           (long long)c->max_train_events, (long long)c->max_val_events, c->target,
           c->target_columns, c->cond, c->cond_columns, cnf_prep_kind_name(c->prep),
           c->target_scale, c->noise, c->logit_alpha, c->log_eps_mev, c->energy_column,
           c->preset, c->flow_blocks, c->flow_hidden, c->flow_n_hidden, c->flow_bins,
           c->identity_init, c->train.epochs, c->train.batch, s->lr, (int)s->kind, s->lr_end,
           s->power, (long long)s->decay_steps, (long long)s->t0_steps, s->n_milestones,
           s->gamma, (long long)s->total_steps, s->plateau_patience, s->plateau_factor,
           s->early_stop_patience, s->eta_min, c->train.adam.beta1, c->train.adam.beta2,
           c->train.adam.eps, c->train.adam.weight_decay, c->train.adam.clip_norm,
           (int)c->val_metric, (unsigned long long)(c->seed + (uint64_t)member), member,
           (unsigned long long)tr->n_global, (unsigned long long)va->n_global,
           cnf_flow_num_params(f), c->cosine_cycle_epochs);
}

static double peak_rss_mb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

int cnf_train_study(const cnf_study_conf *conf, MPI_Comm world, cnf_study_result *res) {
  int wrank = 0, wsize = 1;
  MPI_Comm_rank(world, &wrank);
  MPI_Comm_size(world, &wsize);
  /* before any data or model: the libraries, MPI and PETSc, the fixed part of the peak RSS */
  const double base_rss_mb = peak_rss_mb();
  int rc = train_sync(world, check_conf(conf, wsize));
  if (rc < 0)
    return rc;
  const int K = conf->ensemble, G = K < wsize ? K : wsize;
  const int color = (int)((int64_t)wrank * G / wsize);
  MPI_Comm group = MPI_COMM_NULL;
  if (MPI_Comm_split(world, color, wrank, &group) != MPI_SUCCESS)
    return cnf_error_set(CNF_ERR_MPI, "train: MPI_Comm_split into %d groups failed", G);
  int grank = 0, gsize = 1;
  MPI_Comm_rank(group, &grank);
  MPI_Comm_size(group, &gsize);
  if (conf->train.batch < gsize) {
    MPI_Comm_free(&group);
    return train_sync(world, cnf_error_set(CNF_ERR_ARG, "-batch %d is smaller than the %d ranks "
                                           "of a member's group", conf->train.batch, gsize));
  }
  cnf_log_info("train: %d member(s) on %d group(s) of %d-%d rank(s); data %s", K, G,
               wsize / G, (wsize + G - 1) / G, conf->train_file);

  train_shard tr = {0}, va = {0};
  train_prep prep;
  cnf_flow *f = NULL;
  unsigned char *keep = NULL;
  char *desc = cnf_malloc(2048), *fp = cnf_malloc(TRAIN_FINGERPRINT_MAX);
  cnf_member_result *mres = cnf_calloc((size_t)K, sizeof *mres);
  rc = (!desc || !fp || !mres) ? CNF_ERR_NOMEM : 0;
  rc = train_sync(world, rc);
  if (rc < 0)
    goto out;
  const char *val_file = conf->val_file[0] ? conf->val_file : conf->train_file;
  /* each group reads its own copy, sharded over its ranks; errors are the same in every group
   * (same files), so the world sync below only adds safety */
  rc = train_shard_load(group, conf, conf->train_file, conf->train_split, conf->max_train_events,
                        NULL, &tr);
  cnf_log_debug("train: peak RSS %.1f MB after reading the training shard", peak_rss_mb());
  if (rc == 0)
    rc = train_shard_load(group, conf, val_file, conf->val_split, conf->max_val_events, &tr, &va);
  cnf_log_debug("train: peak RSS %.1f MB after reading the validation shard", peak_rss_mb());
  if (rc == 0)
    rc = train_prep_build(group, conf, &tr, &prep, &f);
  if (rc == 0) {
    size_t nk = (size_t)(tr.n > va.n ? tr.n : va.n);
    keep = cnf_malloc(nk ? nk : 1);
    rc = keep ? 0 : CNF_ERR_NOMEM;
  }
  rc = train_sync(group, rc);
  if (rc == 0) {
    train_prep_support(&prep, &tr, keep);
    rc = train_shard_compact(group, &tr, keep);
  }
  if (rc == 0) {
    train_prep_support(&prep, &va, keep);
    rc = train_shard_compact(group, &va, keep);
  }
  rc = train_sync(world, train_sync(group, rc));
  if (rc < 0)
    goto out;
  cnf_log_debug("train: peak RSS %.1f MB after the preprocessing cuts", peak_rss_mb());
  if (tr.n_global < (uint64_t)conf->train.batch) {
    rc = train_sync(world, cnf_error_set(CNF_ERR_ARG, "%s: %llu training events (after the "
                                         "preprocessing cuts), fewer than one batch (-batch %d)",
                                         conf->train_file, (unsigned long long)tr.n_global,
                                         conf->train.batch));
    goto out;
  }
  /* the output directory only once the inputs are known to be good: a bad input leaves nothing */
  rc = train_sync(world, wrank == 0 ? make_dir(conf->out_dir) : 0);
  if (rc < 0)
    goto out;
  const double shard_mb = (double)(tr.n + va.n) * (tr.D + tr.C) * sizeof(cnf_real) / 1048576.0;
  cnf_log_info("train: %llu training + %llu validation events (%s preprocessing rejected "
               "%llu + %llu), %d targets, %d conditions, flow %s with %zu parameters",
               (unsigned long long)tr.n_global, (unsigned long long)va.n_global,
               cnf_prep_kind_name(prep.kind), (unsigned long long)tr.rejected,
               (unsigned long long)va.rejected, tr.D, tr.C, conf->preset,
               cnf_flow_num_params(f));
  train_prep_describe(&prep, conf, &tr, desc, 2048);

  for (int round = 0; round * G < K; round++) {
    const int k = color + round * G;
    int mrc = 0;
    if (k < K) {
      train_member_io io = {.member = k, .seed = conf->seed + (uint64_t)k, .fingerprint = fp,
                            .dataset_desc = desc};
      snprintf(io.model_path, sizeof io.model_path, "%s/member_%03d.h5", conf->out_dir, k);
      snprintf(io.ckpt_path, sizeof io.ckpt_path, "%s/member_%03d.ckpt.h5", conf->out_dir, k);
      snprintf(io.hist_path, sizeof io.hist_path, "%s/member_%03d.history.tsv", conf->out_dir, k);
      fingerprint(conf, &tr, &va, f, k, fp, TRAIN_FINGERPRINT_MAX);
      mrc = train_member_run(group, conf, &prep, f, &tr, &va, &io, &mres[k]);
      if (grank != 0)
        memset(&mres[k], 0, sizeof mres[k]); /* the root's copy is summed below */
    }
    /* a group that finished its member waits here for the slowest group (members stop early
     * at different epochs): a legitimate wait of any length, not a hang */
    cnf_watchdog_suspend("waiting for the other ensemble groups");
    rc = train_sync(world, mrc);
    cnf_watchdog_resume();
    if (rc < 0)
      goto out;
  }
  /* every member's result to every rank: only group roots contribute */
  {
    double *buf = cnf_calloc((size_t)K * 6, sizeof(double));
    if (!buf) {
      rc = train_sync(world, CNF_ERR_NOMEM);
      goto out;
    }
    for (int k = 0; k < K; k++)
      if (grank == 0 && k % G == color) {
        const cnf_member_result *m = &mres[k];
        double v[6] = {(double)m->seed, m->epochs_run, m->best_epoch, m->best_score,
                       m->events_per_s, m->seconds};
        memcpy(buf + 6 * k, v, sizeof v);
      }
    MPI_Allreduce(MPI_IN_PLACE, buf, K * 6, MPI_DOUBLE, MPI_SUM, world);
    for (int k = 0; k < K; k++) {
      const double *v = buf + 6 * k;
      mres[k] = (cnf_member_result){.member = k, .seed = (uint64_t)v[0], .epochs_run = (int)v[1],
                                    .best_epoch = (int)v[2], .best_score = v[3],
                                    .events_per_s = v[4], .seconds = v[5]};
    }
    free(buf);
  }
  if (wrank == 0) {
    cnf_ensemble e;
    memset(&e, 0, sizeof e);
    e.members = K;
    snprintf(e.metric, sizeof e.metric, "%s", conf->val_metric == CNF_VAL_W1 ? "w1" : "nll");
    for (int k = 0; k < K; k++) {
      snprintf(e.path[k], sizeof e.path[k], "member_%03d.h5", k);
      e.seed[k] = mres[k].seed;
      e.best_epoch[k] = mres[k].best_epoch;
      e.score[k] = mres[k].best_score;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/ensemble.txt", conf->out_dir);
    rc = cnf_ensemble_write(path, &e);
  }
  rc = train_sync(world, rc);
  if (rc < 0)
    goto out;
  if (res) {
    memset(res, 0, sizeof *res);
    res->members = K;
    for (int k = 0; k < K && k < 64; k++)
      res->member[k] = mres[k];
    res->n_train = tr.n_global;
    res->n_val = va.n_global;
    res->rejected_train = tr.rejected;
    res->rejected_val = va.rejected;
    double v[3] = {shard_mb, peak_rss_mb(), base_rss_mb};
    MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_MAX, world);
    res->shard_mb_max = v[0];
    res->peak_rss_mb_max = v[1];
    res->base_rss_mb_max = v[2];
  }
out:
  free(keep);
  free(desc);
  free(fp);
  free(mres);
  cnf_flow_free(&f);
  train_shard_free(&tr);
  train_shard_free(&va);
  MPI_Comm_free(&group);
  return rc;
}
