/* `cnflow train`: options -> cnf_study_conf -> cnf_train_study -> summary.
 * The study option files in jobs/ set the defaults of each study; every option can be given
 * on the command line after -options_file to override them. */
#include "cli.h"
#include "cnflow/train.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

static int read_data_options(cnf_study_conf *c) {
  CNF_CALL(cli_get_string("data", "", "dataset file (cnflow or CaloChallenge HDF5) [required]",
                          c->train_file, sizeof c->train_file));
  CNF_CALL(cli_get_string("val_data", "", "validation file (default: the -data file)",
                          c->val_file, sizeof c->val_file));
  CNF_CALL(cli_get_string("train_split", "train", "training split: train|val|test|all",
                          c->train_split, sizeof c->train_split));
  CNF_CALL(cli_get_string("val_split", "val", "validation split: train|val|test|all",
                          c->val_split, sizeof c->val_split));
  CNF_CALL(cli_get_string("target", "", "target dataset, e.g. gauss/target or layers [required]",
                          c->target, sizeof c->target));
  CNF_CALL(cli_get_string("target_columns", "", "comma list of target columns (default all)",
                          c->target_columns, sizeof c->target_columns));
  CNF_CALL(cli_get_string("cond", "", "condition dataset, e.g. truth or incident_energies "
                          "[required]", c->cond, sizeof c->cond));
  CNF_CALL(cli_get_string("cond_columns", "", "comma list of condition columns (default all)",
                          c->cond_columns, sizeof c->cond_columns));
  CNF_CALL(cli_get_int64("max_train_events", 0, "use the first N events of the training split "
                         "(0 = all)", &c->max_train_events));
  CNF_CALL(cli_get_int64("max_val_events", 0, "use the first N validation events (0 = all)",
                         &c->max_val_events));
  if (c->max_train_events < 0 || c->max_val_events < 0)
    return cnf_error_set(CNF_ERR_ARG, "-max_train_events / -max_val_events must be >= 0");
  return 0;
}

static int read_prep_options(cnf_study_conf *c) {
  char prep[32];
  CNF_CALL(cli_get_string("prep", "none", "preprocessing stored in the model: none | cnf | flowi "
                          "| paraflow | regress (the MSE baseline: a 1-D shift-only flow)", prep, sizeof prep));
  int k = cnf_prep_kind_from_name(prep);
  if (k < 0)
    return cnf_error_set(CNF_ERR_ARG, "-prep '%s': expected none, cnf, flowi, paraflow or regress", prep);
  c->prep = (cnf_prep_kind)k;
  CNF_CALL(cli_get_string("target_scale", "1", "cnf: scale of each target (1 or one per column)",
                          c->target_scale, sizeof c->target_scale));
  CNF_CALL(cli_get_real("noise", 0, "uniform [0, noise) added to raw targets (dequantisation), "
                        "in target units", &c->noise));
  CNF_CALL(cli_get_real("logit_alpha", 1e-6, "paraflow: logit(alpha + (1 - 2 alpha) x)",
                        &c->logit_alpha));
  CNF_CALL(cli_get_real("log_eps", 1e-8, "flowi: eps of log10(E/MeV + eps), MeV",
                        &c->log_eps_mev));
  CNF_CALL(cli_get_string("energy_column", "energy", "paraflow: condition the images are "
                          "divided by", c->energy_column, sizeof c->energy_column));
  return 0;
}

static int read_model_options(cnf_study_conf *c) {
  char init[16];
  CNF_CALL(cli_get_string("preset", "cnf", "architecture: cnf | cnf_peer | paraflow | flowi | "
                          "flowi_paper | caloinn | toy", c->preset, sizeof c->preset));
  CNF_CALL(cli_get_int("flow_blocks", 0, "use the first N blocks of the preset (0 = all)",
                       &c->flow_blocks));
  CNF_CALL(cli_get_int("flow_hidden", 0, "hidden width of every block (0 = preset)",
                       &c->flow_hidden));
  CNF_CALL(cli_get_int("flow_n_hidden", 0, "hidden layers per block (0 = preset)",
                       &c->flow_n_hidden));
  CNF_CALL(cli_get_int("flow_bins", 0, "spline bins (0 = preset)", &c->flow_bins));
  CNF_CALL(cli_get_string("init", "random", "random | identity (every block starts as the "
                          "identity)", init, sizeof init));
  if (strcmp(init, "random") != 0 && strcmp(init, "identity") != 0)
    return cnf_error_set(CNF_ERR_ARG, "-init '%s': expected random or identity", init);
  c->identity_init = strcmp(init, "identity") == 0;
  if (c->flow_blocks < 0 || c->flow_hidden < 0 || c->flow_n_hidden < 0 || c->flow_bins < 0)
    return cnf_error_set(CNF_ERR_ARG, "-flow_* overrides must be >= 0");
  return 0;
}

static int read_optim_options(cnf_study_conf *c) {
  cnf_train_conf *t = &c->train;
  char sched[32], milestones[256], metric[16];
  CNF_CALL(cli_get_int("epochs", 10, "epochs", &t->epochs));
  CNF_CALL(cli_get_int("batch", 512, "global batch size (split over a member's ranks)",
                       &t->batch));
  CNF_CALL(cli_get_string("schedule", "cosine", "LR schedule: constant | poly | cosine | "
                          "onecycle | multistep", sched, sizeof sched));
  int kind = cnf_schedule_kind_from_name(sched);
  if (kind < 0)
    return cnf_error_set(CNF_ERR_ARG, "-schedule '%s': expected constant, poly, cosine, "
                         "onecycle or multistep", sched);
  t->schedule = cnf_schedule_conf_default((cnf_schedule_kind)kind);
  cnf_schedule_conf *s = &t->schedule;
  CNF_CALL(cli_get_real("lr", 1e-3, "peak learning rate (onecycle: max_lr)", &s->lr));
  CNF_CALL(cli_get_real("lr_end", s->lr_end, "poly: final learning rate", &s->lr_end));
  CNF_CALL(cli_get_real("lr_power", s->power, "poly: power", &s->power));
  CNF_CALL(cli_get_real("eta_min", s->eta_min, "cosine: lowest learning rate", &s->eta_min));
  CNF_CALL(cli_get_int("cosine_cycle_epochs", 0, "cosine: epochs per cycle (0 = one cycle over "
                       "the run, 1 = restart every epoch as ParaFlow)", &c->cosine_cycle_epochs));
  if (c->cosine_cycle_epochs < 0)
    return cnf_error_set(CNF_ERR_ARG, "-cosine_cycle_epochs %d: must be >= 0",
                         c->cosine_cycle_epochs);
  CNF_CALL(cli_get_real("pct_start", s->pct_start, "onecycle: rising fraction", &s->pct_start));
  CNF_CALL(cli_get_real("div_factor", s->div_factor, "onecycle: initial lr = lr / div_factor",
                        &s->div_factor));
  CNF_CALL(cli_get_real("final_div_factor", s->final_div_factor, "onecycle: final division",
                        &s->final_div_factor));
  CNF_CALL(cli_get_string("milestones", "", "multistep: epochs where lr *= gamma, e.g. "
                          "5,15,40,60,120", milestones, sizeof milestones));
  CNF_CALL(cli_get_real("gamma", s->gamma, "multistep: factor", &s->gamma));
  CNF_CALL(cli_get_int("plateau_patience", 0, "reduce-on-plateau patience in epochs (0 = off)",
                       &s->plateau_patience));
  CNF_CALL(cli_get_real("plateau_factor", s->plateau_factor, "reduce-on-plateau factor",
                        &s->plateau_factor));
  CNF_CALL(cli_get_real("min_lr", s->min_lr, "reduce-on-plateau floor", &s->min_lr));
  CNF_CALL(cli_get_int("early_stop", 0, "stop after N epochs without a better validation "
                       "score (0 = off)", &s->early_stop_patience));
  if (milestones[0]) {
    int n = cnf_parse_int_list(milestones, s->milestones, CNF_SCHED_MAX_MILESTONES);
    if (n < 0)
      return cnf_error_set(CNF_ERR_ARG, "-milestones '%s': expected ascending epochs",
                           milestones);
    s->n_milestones = n;
  }
  CNF_CALL(cli_get_real("beta1", t->adam.beta1, "Adam beta1", &t->adam.beta1));
  CNF_CALL(cli_get_real("beta2", t->adam.beta2, "Adam beta2", &t->adam.beta2));
  CNF_CALL(cli_get_real("adam_eps", t->adam.eps, "Adam eps", &t->adam.eps));
  CNF_CALL(cli_get_real("weight_decay", 0, "AdamW decoupled weight decay", &t->adam.weight_decay));
  CNF_CALL(cli_get_real("clip_norm", 0, "global gradient-norm clip (0 = off)",
                        &t->adam.clip_norm));
  CNF_CALL(cli_get_string("val_metric", "nll", "model selection: nll | w1 (mean 1-D "
                          "Wasserstein distance of one sample per validation event)", metric,
                          sizeof metric));
  if (strcmp(metric, "nll") != 0 && strcmp(metric, "w1") != 0)
    return cnf_error_set(CNF_ERR_ARG, "-val_metric '%s': expected nll or w1", metric);
  c->val_metric = strcmp(metric, "w1") == 0 ? CNF_VAL_W1 : CNF_VAL_NLL;
  if (!(s->lr > 0))
    return cnf_error_set(CNF_ERR_ARG, "-lr %g must be > 0", s->lr);
  return 0;
}

static int read_run_options(cnf_study_conf *c) {
  int64_t seed;
  CNF_CALL(cli_get_int64("seed", 1, "member k uses seed + k (init, shuffles, noise)", &seed));
  c->seed = (uint64_t)seed;
  CNF_CALL(cli_get_int("ensemble", 1, "members K, trained by min(K, ranks) groups of ranks",
                       &c->ensemble));
  CNF_CALL(cli_get_string("o", "train-out", "output directory (models, manifest, checkpoints)",
                          c->out_dir, sizeof c->out_dir));
  CNF_CALL(cli_get_int("checkpoint_every", 1, "epochs between checkpoints (0: only on "
                       "SIGTERM/SIGUSR1 and at the end)", &c->checkpoint_every));
  CNF_CALL(cli_get_bool("resume", 0, "continue from the members' checkpoints in -o",
                        &c->resume));
  CNF_CALL(cli_get_bool("check_replicas", 0, "compare a hash of the parameters over the ranks "
                        "after every step (an error if they ever differ)", &c->check_replicas));
  CNF_CALL(cli_get_int64("train_interrupt_at_step", -1, "testing: act as if SIGTERM arrived "
                         "before this optimiser step (-1 off)", &c->interrupt_at_step));
  return 0;
}

/* The whole options database as "-name value" text: the model files' provenance. */
static void options_text(char *buf, size_t len) {
  char *all = NULL;
  buf[0] = '\0';
  if (PetscOptionsGetAll(NULL, &all) == 0 && all) {
    snprintf(buf, len, "train %s", all);
    PetscFree(all);
  }
}

int cmd_train(int argc, char **argv) {
  cnf_study_conf c;
  cnf_study_conf_default(&c);
  cli_help_header("cnflow train -data FILE -target DSET -cond DSET [options]",
                  "Train a conditional flow (or an ensemble, -ensemble K) on a dataset file, data\n"
                  "parallel over the ranks of each member's group; preprocessing is stored in the\n"
                  "model files; checkpoints every -checkpoint_every epochs and on SIGTERM/SIGUSR1\n"
                  "(exit status 75), -resume continues bit-identically.  Study defaults: jobs/*.opts");
  CNF_CALL(read_data_options(&c));
  CNF_CALL(read_prep_options(&c));
  CNF_CALL(read_model_options(&c));
  CNF_CALL(read_optim_options(&c));
  CNF_CALL(read_run_options(&c));
  CNF_CALL(cli_check_unused_options());
  if (cli_help_requested())
    return 0;
  options_text(c.options, sizeof c.options);
  cnf_train_install_signal_handlers();
  cnf_study_result r;
  const double t0 = cnf_time_now();
  CNF_CALL(cnf_train_study(&c, MPI_COMM_WORLD, &r));
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (int k = 0; k < r.members; k++)
    cnf_log_info("member %d (seed %llu): best epoch %d of %d, val %s %.5f, %.0f events/s, %.1f s",
                 k, (unsigned long long)r.member[k].seed, r.member[k].best_epoch + 1,
                 r.member[k].epochs_run, c.val_metric == CNF_VAL_W1 ? "W1" : "NLL",
                 r.member[k].best_score, r.member[k].events_per_s, r.member[k].seconds);
  /* the fixed part (shared libraries, MPI, PETSc) is stated apart: the ratio says whether the
   * data and the model cost more than the shard itself (no whole-file copies) */
  const double grown = r.peak_rss_mb_max - r.base_rss_mb_max;
  cnf_log_info("train: %d member(s) in %.1f s on %d rank(s); largest shard %.1f MB, peak RSS "
               "%.1f MB per rank = %.1f MB before reading (libraries, MPI) + %.1f MB (%.2fx the "
               "shard); manifest %s/ensemble.txt", r.members, cnf_time_now() - t0, size,
               r.shard_mb_max, r.peak_rss_mb_max, r.base_rss_mb_max, grown,
               r.shard_mb_max > 0 ? grown / r.shard_mb_max : 0.0, c.out_dir);
  return 0;
}
